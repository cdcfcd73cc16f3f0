"""A table copied again (resync, retry) copies beside the stream: the pipeline's other tables keep
streaming, the slot keeps advancing, the runner never stops, and the copied table ends equal to
the source with the changes made during its copy. A SIGKILL during such a copy loses nothing.

The copy is held open deterministically: a temporary slot's snapshot waits for the transactions
running when it is created, so a transaction left open on the source keeps the copy waiting for
as long as the test needs."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest

from engine.config.repository import ConfigRepository
from engine.identifiers import parse_table_list
from engine.pipeline.activity import RunnerState
from engine.runtime import admin
from engine.settings import Settings
from engine.state.table_state import TablePhase
from etl_tui.cli import main
from tests.integration.harness import (
    EngineThread,
    add_pipeline,
    engine_process,
    run_sql,
    slot_confirmed,
    source_rows,
    table_phase,
    wait_caught_up,
    wait_until,
)
from tests.integration.targets import DuckTarget, Target, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BIG_ROWS = 20_000


@pytest.fixture(params=["duckdb", "snowflake"])
def target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    return make_target(request.param, tmp_path, request, monkeypatch)


def _schema(dsn: str) -> None:
    run_sql(
        dsn,
        "CREATE TABLE big (id int PRIMARY KEY, v text, n int)",
        f"INSERT INTO big SELECT g, 'v' || g, g FROM generate_series(1, {BIG_ROWS}) g",
        "CREATE TABLE small1 (id int PRIMARY KEY, v text)",
        "CREATE TABLE small2 (id int PRIMARY KEY, v text)",
        "CREATE TABLE hold (id int)",  # not replicated: its open transaction holds copies back
    )


def _env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)


def _equal(target: Target, dsn: str, table: str, columns: list[str]) -> None:
    src = source_rows(dsn, f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")
    assert target.rows(table, columns) == src, table


def test_a_resync_copies_beside_the_stream_and_the_others_go_on(
    settings: Settings, source_dsn: str, target: Target
) -> None:
    _schema(source_dsn)
    add_pipeline(settings, source_dsn, target, "public.big,public.small1,public.small2")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid, slot = runner.spec.id, runner.spec.pipeline.slot_name
        for table in ("public.big", "public.small1", "public.small2"):
            wait_until(lambda t=table: table_phase(settings, pid, t) is TablePhase.READY, 90, what=f"{table} ready")
        with psycopg.connect(source_dsn) as holder:
            holder.execute("INSERT INTO hold VALUES (1)")  # an open transaction with an xid
            with ConfigRepository(settings.config_db_url) as repo:
                report = admin.resync_pipeline(repo, settings, "p1", parse_table_list("public.big"))
            assert "beside the stream" in report, report
            wait_until(lambda: table_phase(settings, pid, "public.big") is TablePhase.DATA_SYNC, 30, what="big copying")
            before = slot_confirmed(source_dsn, slot) or 0
            # the copy waits for `holder`: meanwhile the others stream and the slot advances
            run_sql(
                source_dsn,
                "INSERT INTO small1 VALUES (1, 'during the copy')",
                "INSERT INTO small2 VALUES (1, 'during the copy')",
                # changes to the copying table: held, then applied after its copy
                "UPDATE big SET v = 'changed early' WHERE id <= 10",
                "DELETE FROM big WHERE id BETWEEN 11 AND 20",
            )
            wait_until(lambda: target.rows("small1", ["id", "v"]) == [(1, "during the copy")], 30, what="small1")
            wait_until(lambda: target.rows("small2", ["id", "v"]) == [(1, "during the copy")], 30, what="small2")
            wait_until(lambda: (slot_confirmed(source_dsn, slot) or 0) > before, 30, what="the slot to advance")
            assert table_phase(settings, pid, "public.big") is TablePhase.DATA_SYNC  # still copying
            assert engine.runner("p1") is runner and runner.state is RunnerState.STREAMING
            holder.rollback()
        # the copy runs; changes made while it copies are applied after it
        run_sql(
            source_dsn,
            "UPDATE big SET n = -n WHERE id BETWEEN 100 AND 200",
            f"INSERT INTO big VALUES ({BIG_ROWS + 1}, 'new', 0)",
        )
        wait_until(lambda: table_phase(settings, pid, "public.big") is TablePhase.READY, 90, what="big ready again")
        run_sql(source_dsn, "UPDATE big SET v = 'after' WHERE id = 1", "INSERT INTO small1 VALUES (2, 'after')")
        wait_caught_up(source_dsn, slot)
        _equal(target, source_dsn, "big", ["id", "v", "n"])
        _equal(target, source_dsn, "small1", ["id", "v"])
        _equal(target, source_dsn, "small2", ["id", "v"])
        assert engine.runner("p1") is runner  # never restarted
        kinds = [e.message for e in engine.events if "beside the stream" in e.message]
        assert kinds, "the copy beside the stream is announced"


def test_a_retry_after_the_fix_copies_beside_the_stream(
    settings: Settings, source_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pipeline start` of a streaming pipeline copies its errored tables again; the runner goes on."""
    _env(settings, monkeypatch)
    target = DuckTarget(tmp_path / "out.duckdb")
    run_sql(
        source_dsn,
        "CREATE TABLE small1 (id int PRIMARY KEY, v text)",
        "CREATE TABLE nokey (id int, v text)",
        "INSERT INTO nokey VALUES (1, 'one')",
    )
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list("public.small1,public.nokey"))
    with EngineThread(settings, poll=0.5) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        wait_until(lambda: table_phase(settings, pid, "public.nokey") is TablePhase.ERRORED, 60, what="nokey errored")
        wait_until(lambda: runner.state is RunnerState.STREAMING, 60, what="streaming")
        run_sql(source_dsn, "ALTER TABLE nokey ADD PRIMARY KEY (id)", "INSERT INTO nokey VALUES (2, 'two')")
        assert main(["pipeline", "start", "p1"]) == 0
        wait_until(lambda: table_phase(settings, pid, "public.nokey") is TablePhase.READY, 60, what="nokey ready")
        run_sql(source_dsn, "INSERT INTO nokey VALUES (3, 'three')", "INSERT INTO small1 VALUES (1, 'x')")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        _equal(target, source_dsn, "nokey", ["id", "v"])
        _equal(target, source_dsn, "small1", ["id", "v"])
        assert engine.runner("p1") is runner, "the runner was not restarted"


def test_sigkill_during_a_copy_beside_the_stream_loses_nothing(
    settings: Settings, source_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(settings, monkeypatch)
    target = DuckTarget(tmp_path / "out.duckdb")
    _schema(source_dsn)
    add_pipeline(settings, source_dsn, target, "public.big,public.small1,public.small2")
    log = tmp_path / "engine.log"
    with engine_process(settings, log_path=log) as proc:
        with ConfigRepository(settings.config_db_url) as repo:
            pid = repo.get_pipeline("p1").id
            slot = repo.get_pipeline("p1").slot_name
        for table in ("public.big", "public.small1", "public.small2"):
            wait_until(lambda t=table: table_phase(settings, pid, t) is TablePhase.READY, 90, what=f"{table} ready")
        with psycopg.connect(source_dsn) as holder:
            holder.execute("INSERT INTO hold VALUES (1)")
            assert main(["pipeline", "resync", "p1", "--table", "public.big"]) == 0
            wait_until(lambda: table_phase(settings, pid, "public.big") is TablePhase.DATA_SYNC, 30, what="big copying")
            run_sql(
                source_dsn,
                "UPDATE big SET v = 'held' WHERE id <= 50",
                "INSERT INTO small1 VALUES (1, 'during')",
            )
            wait_until(lambda: target.rows("small1", ["id", "v"]) == [(1, "during")], 30, what="small1 during the copy")
            wait_caught_up(source_dsn, slot)  # the slot passed big's held changes
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            holder.rollback()
    run_sql(source_dsn, "UPDATE big SET n = 0 WHERE id > 19000", "INSERT INTO small2 VALUES (1, 'down')")
    with engine_process(settings, log_path=log):
        # big was in data_sync: copied again at the start, so its held changes are not lost
        wait_until(lambda: table_phase(settings, pid, "public.big") is TablePhase.READY, 90, what="big ready")
        time.sleep(0.5)
        wait_caught_up(source_dsn, slot)
        wait_until(lambda: target.rows("small2", ["id", "v"]) == [(1, "down")], 30, what="small2")
        _equal(target, source_dsn, "big", ["id", "v", "n"])
        _equal(target, source_dsn, "small1", ["id", "v"])


def test_a_table_added_to_a_streaming_pipeline_copies_beside_the_stream(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    target = DuckTarget(tmp_path / "out.duckdb")
    _schema(source_dsn)
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list("public.small1"))
    with EngineThread(settings, poll=0.5) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        wait_until(lambda: table_phase(settings, pid, "public.small1") is TablePhase.READY, 60, what="small1")
        with psycopg.connect(source_dsn) as holder:
            holder.execute("INSERT INTO hold VALUES (1)")
            with ConfigRepository(settings.config_db_url) as repo:
                repo.set_pipeline_tables("p1", parse_table_list("public.small1,public.big"))
            wait_until(lambda: table_phase(settings, pid, "public.big") is TablePhase.DATA_SYNC, 30, what="big copying")
            run_sql(source_dsn, "INSERT INTO small1 VALUES (1, 'during')", "UPDATE big SET v = 'held' WHERE id <= 5")
            wait_until(lambda: target.rows("small1", ["id", "v"]) == [(1, "during")], 30, what="small1 streams")
            holder.rollback()
        wait_until(lambda: table_phase(settings, pid, "public.big") is TablePhase.READY, 60, what="big ready")
        run_sql(source_dsn, "DELETE FROM big WHERE id = 7")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        _equal(target, source_dsn, "big", ["id", "v", "n"])
        _equal(target, source_dsn, "small1", ["id", "v"])
        assert engine.runner("p1") is runner, "the runner was not restarted"


def test_a_resync_that_chooses_other_numeric_types_goes_on_beside_the_stream(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    """A value that no longer fits stops its table; the resync measures again, and the changes held
    during that copy are converted with the types it chose, without restarting the session."""
    target = DuckTarget(tmp_path / "out.duckdb")
    run_sql(
        source_dsn,
        "CREATE TABLE amounts (id int PRIMARY KEY, x numeric)",
        "INSERT INTO amounts VALUES (1, 1.25), (2, 10.5)",
        "CREATE TABLE small1 (id int PRIMARY KEY, v text)",
        "CREATE TABLE hold (id int)",
    )
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list("public.amounts,public.small1"))
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        wait_until(lambda: table_phase(settings, pid, "public.amounts") is TablePhase.READY, 60, what="ready")
        run_sql(source_dsn, "INSERT INTO amounts VALUES (3, 0.00000000000012)")  # 14 fractional digits
        wait_until(lambda: table_phase(settings, pid, "public.amounts") is TablePhase.ERRORED, 30, what="errored")
        with psycopg.connect(source_dsn) as holder:
            holder.execute("INSERT INTO hold VALUES (1)")
            with ConfigRepository(settings.config_db_url) as repo:
                admin.resync_pipeline(repo, settings, "p1", parse_table_list("public.amounts"))
            wait_until(lambda: table_phase(settings, pid, "public.amounts") is TablePhase.DATA_SYNC, 30, what="copying")
            run_sql(source_dsn, "INSERT INTO amounts VALUES (4, 0.00000000000034)")  # held: needs the new scale
            holder.rollback()
        run_sql(source_dsn, "INSERT INTO amounts VALUES (5, 0.00000000000056)")
        wait_until(lambda: table_phase(settings, pid, "public.amounts") is TablePhase.READY, 60, what="ready again")
        # a change after the copy: the table stopped earlier in this session, and streams again
        run_sql(source_dsn, "INSERT INTO amounts VALUES (6, 0.00000000000078)", "UPDATE amounts SET x = 2 WHERE id = 1")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        src = source_rows(source_dsn, "SELECT id, x FROM amounts ORDER BY id")
        assert target.rows("amounts", ["id", "x"]) == src
        assert engine.runner("p1") is runner
        assert not [e for e in engine.events if e.kind == "retry"], "the session never started again"
