"""``etl-tui pipeline edit --tables``: the tables of a pipeline changed from the command line. A
table added to a streaming pipeline is copied beside the stream and the runner goes on; with
``--column-type`` in the same call the added table takes its override; a bad call writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.repository import ConfigRepository
from engine.errors import ConfigError
from engine.pipeline.activity import RunnerState
from engine.runtime.operations import Operations
from engine.settings import Settings
from engine.state.table_state import TablePhase
from etl_tui.cli import main
from tests.integration.harness import (
    EngineThread,
    add_pipeline,
    duck_rows,
    run_sql,
    source_rows,
    table_phase,
    wait_caught_up,
    wait_until,
)
from tests.integration.targets import DuckTarget

TWO = "public.small1,public.small2"
THREE = "public.small1,public.small2,public.added"


def _schema(dsn: str) -> None:
    run_sql(
        dsn,
        "CREATE TABLE small1 (id int PRIMARY KEY, v text)",
        "CREATE TABLE small2 (id int PRIMARY KEY, v text)",
        "CREATE TABLE added (id int PRIMARY KEY, v text, amount numeric)",
        "INSERT INTO small1 SELECT g, 's1 ' || g FROM generate_series(1, 50) g",
        "INSERT INTO small2 SELECT g, 's2 ' || g FROM generate_series(1, 50) g",
        # fits DECIMAL(38,2), which the engine would choose: only the override makes it text
        "INSERT INTO added SELECT g, 'a ' || g, g * 1.25 FROM generate_series(1, 500) g",
    )


def _configure(settings: Settings, dsn: str, target: DuckTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    add_pipeline(settings, dsn, target, TWO)
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)


def _equal(target: DuckTarget, dsn: str, table: str, columns: list[str]) -> None:
    src = source_rows(dsn, f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")
    assert target.rows(table, columns) == src, table


def _stored_tables(settings: Settings) -> list[str]:
    with ConfigRepository(settings.config_db_url) as repo:
        return [str(t) for t in repo.get_pipeline("p1").tables]


def test_edit_tables_copies_the_added_table_beside_the_stream(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = DuckTarget(tmp_path / "out.duckdb")
    _schema(source_dsn)
    _configure(settings, source_dsn, target, monkeypatch)
    with EngineThread(settings, poll=0.5) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        for table in ("public.small1", "public.small2"):
            wait_until(lambda t=table: table_phase(settings, pid, t) is TablePhase.READY, 60, what=f"{table} ready")
        assert table_phase(settings, pid, "public.added") is None  # not replicated yet
        capsys.readouterr()
        assert main(["pipeline", "edit", "p1", "--tables", THREE]) == 0
        out = capsys.readouterr().out
        assert "public.added beside the stream" in out, out
        assert _stored_tables(settings) == ["public.added", "public.small1", "public.small2"]
        run_sql(source_dsn, "INSERT INTO small1 VALUES (1000, 'while added is copied')")
        wait_until(lambda: table_phase(settings, pid, "public.added") is TablePhase.READY, 60, what="added ready")
        run_sql(
            source_dsn,
            "UPDATE added SET v = 'after' WHERE id <= 10",
            "DELETE FROM added WHERE id = 500",
            "INSERT INTO small2 VALUES (1000, 'after')",
        )
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        _equal(target, source_dsn, "added", ["id", "v"])
        _equal(target, source_dsn, "small1", ["id", "v"])
        _equal(target, source_dsn, "small2", ["id", "v"])
        assert engine.runner("p1") is runner, "the runner was restarted"
        assert runner.state is RunnerState.STREAMING


def test_edit_tables_with_a_column_type_copies_the_added_table_with_it(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = DuckTarget(tmp_path / "out.duckdb")
    _schema(source_dsn)
    _configure(settings, source_dsn, target, monkeypatch)
    with EngineThread(settings, poll=0.5) as engine:
        pid = engine.runner("p1").spec.id
        for table in ("public.small1", "public.small2"):
            wait_until(lambda t=table: table_phase(settings, pid, t) is TablePhase.READY, 60, what=f"{table} ready")
        capsys.readouterr()
        assert main(["pipeline", "edit", "p1", "--tables", THREE, "--column-type", "public.added.amount=text"]) == 0
        out = capsys.readouterr().out
        assert "public.added.amount=text" in out and "restarts the pipeline with them" in out, out
        wait_until(lambda: table_phase(settings, pid, "public.added") is TablePhase.READY, 60, what="added ready")
        runner = engine.runner("p1")
        assert runner.spec.pipeline.column_types and str(runner.spec.pipeline.column_types[0]) == (
            "public.added.amount=text"
        )
        run_sql(source_dsn, "UPDATE added SET amount = amount * 7 WHERE id <= 5")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
    kind = duck_rows(
        target.path,
        "SELECT data_type FROM duckdb_columns() WHERE table_name = 'added' AND column_name = 'amount'",
    )
    assert kind == [("VARCHAR",)]
    assert target.rows("added", ["id", "amount"]) == source_rows(
        source_dsn, "SELECT id, amount::text FROM added ORDER BY 1"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["pipeline", "edit", "nope", "--tables", THREE], "pipeline 'nope' does not exist"),
        (["pipeline", "edit", "p1", "--tables", ""], "--tables of pipeline p1 names no table"),
        (["pipeline", "edit", "p1", "--tables", " , "], "--tables of pipeline p1 names no table"),
        (["pipeline", "edit", "p1", "--tables", "db.public.small1"], "--tables 'db.public.small1' of pipeline p1"),
        (["pipeline", "edit", "p1", "--tables", 'public."small1'], "--tables 'public.\"small1' of pipeline p1"),
        (["pipeline", "edit", "p1", "--tables", "public.a,public.a"], "table public.a is listed twice"),
        (
            ["pipeline", "edit", "p1", "--tables", TWO, "--column-type", "public.added.amount=text"],
            "--column-type public.added.amount: pipeline p1 would not replicate table public.added",
        ),
        (["pipeline", "edit", "p1"], "pipeline edit p1: nothing to change"),
    ],
)
def test_edit_tables_refuses_a_bad_call_and_writes_nothing(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    _configure(settings, source_dsn, DuckTarget(tmp_path / "out.duckdb"), monkeypatch)
    with ConfigRepository(settings.config_db_url) as repo:
        before = repo.get_pipeline("p1")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "hint" in err, err
    with ConfigRepository(settings.config_db_url) as repo:
        after = repo.get_pipeline("p1")
    assert after == before  # same tables, overrides and generation: nothing was written


def test_the_console_save_replaces_the_column_types(
    settings: Settings, source_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form sends every override the pipeline is to have: those left out are removed; a bad
    one is refused before anything is written."""
    _configure(settings, source_dsn, DuckTarget(tmp_path / "out.duckdb"), monkeypatch)
    ops = Operations(settings)  # not started: only its config actions

    def stored() -> tuple[str, ...]:
        return next(p for p in ops.config().pipelines if p.name == "p1").column_types

    def generation() -> float:
        with ConfigRepository(settings.config_db_url) as repo:
            return repo.get_pipeline("p1").generation

    try:
        ops.save_pipeline("p1", "src", "dest_p1", THREE, original="p1", column_types=["public.added.amount=text"])
        assert stored() == ("public.added.amount=text",)
        types = ["public.added.amount=decimal(38,4)", 'public.small1."Net"=text']
        ops.save_pipeline("p1", "src", "dest_p1", THREE, original="p1", column_types=types)
        assert stored() == ("public.added.amount=decimal(38,4)", 'public.small1."Net"=text')
        ops.save_pipeline("p1", "src", "dest_p1", THREE, original="p1", column_types=['public.small1."Net"=text'])
        assert stored() == ('public.small1."Net"=text',)
        ops.save_pipeline("p1", "src", "dest_p1", THREE, original="p1")  # None keeps them
        assert stored() == ('public.small1."Net"=text',)
        with pytest.raises(ConfigError, match="is given twice"):
            ops.save_pipeline(
                "p1",
                "src",
                "dest_p1",
                THREE,
                original="p1",
                column_types=["public.added.x=text", "public.added.X=auto"],
            )
        before = generation()
        with pytest.raises(ConfigError, match=r"does not replicate table public\.added"):
            ops.save_pipeline("p1", "src", "dest_p1", TWO, original="p1", column_types=["public.added.amount=text"])
        assert generation() == before and len(ops.config().pipelines[0].tables) == 3  # refused before writing
        ops.save_pipeline("p1", "src", "dest_p1", TWO, original="p1", column_types=[])  # its table gone: all gone
        assert stored() == ()
        ops.save_pipeline("p2", "src", "dest_p1", TWO, column_types=["public.small2.v=decimal(10,2)"])
        assert next(p for p in ops.config().pipelines if p.name == "p2").column_types == (
            "public.small2.v=decimal(10,2)",
        )
    finally:
        ops.stop()
