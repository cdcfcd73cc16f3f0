"""Bad input gets a clear error that names what and where, and loses nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from engine.config.models import PipelineStatus
from engine.config.repository import ConfigRepository
from engine.embedded.loopback import free_port
from engine.embedded.postgres import EmbeddedPostgres
from engine.errors import ErrorKind, RetryPolicy
from engine.pipeline.activity import EventKind, RunnerState
from engine.settings import Settings
from engine.state.table_state import TablePhase
from engine.status.board import PipelineView
from etl_tui.cli import main
from tests.integration.harness import EngineThread, duck_rows, source_rows, table_phase, wait_caught_up, wait_until
from tests.integration.scenarios import DUCK_ITEMS_SQL, ITEMS_SQL, configure, setup_items


def _state(settings: Settings, name: str = "p1") -> PipelineView:
    from engine.state.store import connect_redis
    from engine.status.report import collect_status

    with ConfigRepository(settings.config_db_url) as repo:
        found = collect_status(repo, connect_redis(settings.redis_url)).pipeline(name)
    assert found is not None
    return found


def test_unreachable_source_retries_with_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    configure(
        settings,
        f"host=127.0.0.1 port={port} dbname=shop user=app connect_timeout=2",
        tmp_path / "o.duckdb",
        "public.items",
    )
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: runner.state is RunnerState.RETRYING, 30, what="retrying")
        err = runner.last_error
        assert err is not None and err.kind is ErrorKind.SOURCE_UNREACHABLE and err.retry is RetryPolicy.TIMED
        assert f"port={port}" in err.reason and 'source "src"' in err.reason
        assert "reachable" in err.hint
        assert runner.next_retry_at is not None
        status = wait_until(lambda: _state(settings).last_error, 10, what="published error")
        assert status.kind == "source_unreachable"


def test_a_fault_that_lasts_stops_retrying_and_waits_for_the_operator(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient fault that never goes away ends in errored, with the reason, once the runs of
    attempts are spent (I6: no endless retry loop); fewer attempts here so it takes seconds."""
    from engine.pipeline import runner as runner_module

    monkeypatch.setattr(runner_module, "MAX_TIMED_ATTEMPTS", 3)
    configure(
        settings,
        f"host=127.0.0.1 port={free_port()} dbname=shop connect_timeout=2",
        tmp_path / "o.duckdb",
        "public.items",
    )
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: runner.state is RunnerState.ERRORED, 30, what="errored after 3 attempts")
        assert runner.last_error is not None and runner.last_error.kind is ErrorKind.SOURCE_UNREACHABLE
        assert runner.next_retry_at is None
        retries = [e.message for e in engine.events if e.kind is EventKind.RETRY]
        assert [m.rsplit(" retry ", 1)[1].split()[0] for m in retries] == ["1", "2"]


def test_a_role_under_row_level_security_errors_its_table_instead_of_copying_a_subset(
    pg: EmbeddedPostgres, pg_db: str, settings: Settings, tmp_path: Path
) -> None:
    """The copy runs with row_security = off: a role that RLS would filter gets an error for that
    table (reason and hint), never a silently partial copy; the other table replicates."""
    role = f"r_{uuid.uuid4().hex[:10]}"
    dsn = pg.dsn(pg_db)
    pg.execute(f"CREATE ROLE {role} LOGIN REPLICATION")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in (
                "CREATE TABLE guarded (id int PRIMARY KEY, tenant int)",
                "INSERT INTO guarded SELECT g, g % 2 FROM generate_series(1, 10) g",
                "ALTER TABLE guarded ENABLE ROW LEVEL SECURITY",
                "CREATE POLICY mine ON guarded USING (tenant = 1)",
                "CREATE TABLE open (id int PRIMARY KEY)",
                "INSERT INTO open SELECT generate_series(1, 5)",
                f"GRANT SELECT ON guarded, open TO {role}",
            ):
                conn.execute(statement)
        duck = tmp_path / "o.duckdb"
        configure(settings, pg.dsn(pg_db, user=role), duck, "public.guarded,public.open")
        with ConfigRepository(settings.config_db_url) as repo:
            p = repo.get_pipeline("p1")
        with psycopg.connect(dsn, autocommit=True) as conn:  # made by its owner: the role owns no table
            conn.execute(f"CREATE PUBLICATION {p.publication_name} FOR TABLE guarded, open")
        with EngineThread(settings):
            wait_until(lambda: table_phase(settings, p.id, "public.open") == TablePhase.READY, 60, what="open ready")
            wait_until(lambda: table_phase(settings, p.id, "public.guarded") == TablePhase.ERRORED, 30, what="errored")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO open VALUES (6)")
            wait_until(
                lambda: duck_rows(duck, "SELECT id FROM main.open ORDER BY id") == [(i,) for i in range(1, 7)], 30
            )
            guarded = _state(settings).tables
            error = next(t.error for t in guarded if t.name == "public.guarded")
            assert error is not None and error.kind == ErrorKind.SOURCE_PRIVILEGE
            assert "row-level security" in error.reason and f"ALTER ROLE {role} BYPASSRLS;" in error.hint
            try:
                copied = duck_rows(duck, "SELECT count(*) FROM main.guarded")
            except Exception:  # the target was never created
                copied = [(0,)]
            assert copied == [(0,)]  # nothing, rather than the 5 rows the policy lets the role see
    finally:
        pg.execute(f"DROP OWNED BY {role}", pg_db)
        pg.execute(f"DROP ROLE {role}")


def test_an_array_with_a_lower_bound_other_than_1_stops_its_table_in_copy_and_stream(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    """PostgreSQL prints such arrays as '[0:2]={…}'; a list would keep the elements at other
    indexes, so the table stops with the reason, copied or streamed; the others go on."""
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE arr_copy (id int PRIMARY KEY, a int[])")
        conn.execute("INSERT INTO arr_copy VALUES (1, '{1,2}'), (2, '[0:2]={1,2,3}')")
        conn.execute("CREATE TABLE arr_stream (id int PRIMARY KEY, a text[])")
        conn.execute("INSERT INTO arr_stream VALUES (1, '{a,b}')")
        conn.execute("CREATE TABLE ok (id int PRIMARY KEY)")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.arr_copy,public.arr_stream,public.ok")
    with ConfigRepository(settings.config_db_url) as repo:
        pid = repo.get_pipeline("p1").id
    with EngineThread(settings):
        wait_until(lambda: table_phase(settings, pid, "public.arr_stream") == TablePhase.READY, 60, what="ready")
        wait_until(lambda: table_phase(settings, pid, "public.arr_copy") == TablePhase.ERRORED, 30, what="copy")
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("UPDATE arr_stream SET a = '[-1:0]={x,y}' WHERE id = 1")
            conn.execute("INSERT INTO ok VALUES (1), (2)")
        wait_until(lambda: table_phase(settings, pid, "public.arr_stream") == TablePhase.ERRORED, 30, what="stream")
        wait_until(lambda: duck_rows(duck, "SELECT id FROM main.ok ORDER BY id") == [(1,), (2,)], 30, what="ok")
        tables = {t.name: t for t in _state(settings).tables}
        for name in ("public.arr_copy", "public.arr_stream"):
            error = tables[name].error
            assert error is not None and error.kind == ErrorKind.VALUE_CONVERSION, name
            assert "not starting at 1" in error.reason and "column 'a'" in error.reason, error.reason
        assert tables["public.ok"].phase == TablePhase.READY
        assert duck_rows(duck, "SELECT a FROM main.arr_stream") == [(["a", "b"],)]  # never the shifted list


def test_wrong_password_is_an_auth_error_and_the_password_is_never_shown(
    pg: EmbeddedPostgres, pg_db: str, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "correct-horse-42"
    pg.execute("DO $$ BEGIN CREATE ROLE etl_pw LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.execute(f"ALTER ROLE etl_pw PASSWORD '{secret}'")
    wrong = "wrong-battery-17"
    dsn = f"postgresql://etl_pw:{wrong}@127.0.0.1:{pg.port}/{pg_db}"
    configure(settings, dsn, tmp_path / "o.duckdb", "public.items")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: runner.state is RunnerState.ERRORED, 30, what="errored")
        err = runner.last_error
        assert err is not None and err.kind is ErrorKind.SOURCE_AUTH and err.retry is RetryPolicy.MANUAL
        assert "password" in err.hint
        assert wrong not in str(err)
        # the CLI shows the DSN redacted, in text and JSON
        import os

        os.environ["CONFIG_DB_URL"], os.environ["REDIS_URL"] = settings.config_db_url, settings.redis_url
        try:
            assert main(["source", "list"]) == 0
            assert main(["status"]) == 0
            assert main(["status", "--json"]) == 0
        finally:
            del os.environ["CONFIG_DB_URL"], os.environ["REDIS_URL"]
        out = capsys.readouterr()
        assert wrong not in out.out + out.err
        assert "etl_pw:****@" in out.out
        assert "authentication failed" in out.out


@pytest.fixture
def replica_level_pg() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(settings={"wal_level": "replica"}) as server:
        yield server


def test_wal_level_not_logical_says_how_to_fix_it(
    replica_level_pg: EmbeddedPostgres, settings: Settings, tmp_path: Path
) -> None:
    replica_level_pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    configure(settings, replica_level_pg.dsn(), tmp_path / "o.duckdb", "public.items")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: runner.state is RunnerState.ERRORED, 30, what="errored")
        err = runner.last_error
        assert err is not None and err.kind is ErrorKind.SOURCE_SETTINGS
        assert "wal_level=replica" in err.reason
        assert "ALTER SYSTEM SET wal_level = logical" in err.hint


def test_table_without_key_or_missing_errors_alone_and_recovers_after_the_fix(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    setup_items(source_dsn, 500)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE nokey (a int, b text)")
        conn.execute("INSERT INTO nokey SELECT g, 'v' || g FROM generate_series(1, 50) g")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items,public.nokey,public.nope")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        wait_until(lambda: table_phase(settings, pid, "public.items") == TablePhase.READY, 60, what="items ready")
        status = _state(settings)
        tables = {t.name: t for t in status.tables}
        nokey, nope = tables["public.nokey"].error, tables["public.nope"].error
        assert tables["public.nokey"].phase == "errored" and nokey is not None and "no primary key" in nokey.reason
        assert "ADD PRIMARY KEY" in nokey.hint and "REPLICA IDENTITY" in nokey.hint
        assert tables["public.nope"].phase == "errored" and nope is not None
        assert "public.nope does not exist" in nope.reason
        assert runner.state is RunnerState.STREAMING  # the good table streams on
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items (id, name, qty, price) VALUES (9999, 'still flowing', 1, 1)")
            conn.execute("INSERT INTO nokey VALUES (51, 'written while errored')")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        assert duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL)

        # the operator fixes the table and retries: nothing written meanwhile is lost
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE nokey ADD PRIMARY KEY (a)")
        with ConfigRepository(settings.config_db_url) as repo:
            repo.set_pipeline_status("p1", PipelineStatus.START)
        wait_until(
            lambda: table_phase(settings, pid, "public.nokey") in (TablePhase.READY, TablePhase.FINISHED_COPY),
            60,
            what="nokey copied",
        )
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("UPDATE nokey SET b = 'after fix' WHERE a = 1")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        wait_until(
            lambda: (
                duck_rows(duck, "SELECT a, b FROM main.nokey ORDER BY a")
                == source_rows(source_dsn, "SELECT a, b FROM nokey ORDER BY a")
            ),
            30,
            what="nokey equal",
        )
        assert table_phase(settings, pid, "public.nope") == TablePhase.ERRORED


def test_cli_rejects_bad_input_with_exit_codes_and_hints(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert main(["source", "add", "src", "--dsn", "postgresql://u:pw@h/db"]) == 0
    assert main(["destination", "add", "d", "--type", "duckdb", "--path", "/tmp/x.duckdb"]) == 0
    capsys.readouterr()
    assert main(["pipeline", "add", "p", "--source", "src", "--destination", "d", "--tables", 'public."unclosed']) == 2
    assert "unclosed quote" in capsys.readouterr().err
    assert main(["pipeline", "add", "p", "--source", "nope", "--destination", "d", "--tables", "public.a"]) == 2
    err = capsys.readouterr().err
    assert "source 'nope' does not exist" in err and "hint:" in err
    assert main(["pipeline", "add", "bad name!", "--source", "src", "--destination", "d", "--tables", "a"]) == 2
    assert main(["source", "add", "src", "--dsn", "host=x"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "pipeline",
                "add",
                "p",
                "--source",
                "src",
                "--destination",
                "d",
                "--tables",
                'public.a, public."Order Items", "My Schema"."T,1"',
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["pipeline", "list"]) == 0
    out = capsys.readouterr().out
    assert 'public."Order Items"' in out and '"My Schema"."T,1"' in out
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pipelines"][0]["desired"] == "start" and data["pipelines"][0]["actual"] == "not running"
    assert "pw" not in data["pipelines"][0]["source_dsn"].replace("****", "")


def test_missing_config_db_setting_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for var in ("CONFIG_DB_URL", "CONFIG_DB_HOST"):
        monkeypatch.delenv(var, raising=False)
    assert main(["pipeline", "list"]) == 2
    err = capsys.readouterr().err
    assert "CONFIG_DB_URL" in err and "etl-tui demo" in err
