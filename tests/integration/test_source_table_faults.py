"""Source-side faults that concern one table stop only that table, with the fix, and the others
go on: a table the role may not add to the publication (it does not own it), and a table dropped
on the source while it streams."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from engine.embedded.postgres import EmbeddedPostgres
from engine.errors import ErrorKind
from engine.identifiers import parse_table_list
from engine.pipeline.activity import RunnerState
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from etl_tui.cli import main
from tests.integration.harness import (
    EngineThread,
    add_pipeline,
    run_sql,
    source_rows,
    table_phase,
    wait_caught_up,
    wait_until,
)
from tests.integration.targets import DuckTarget


def _state(settings: Settings, pipeline_id: int, table: str) -> TableState | None:
    return PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id).load().get(parse_table_list(table)[0])


def test_a_table_the_role_may_not_publish_stops_alone(
    pg: EmbeddedPostgres, pg_db: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    role = f"r_{uuid.uuid4().hex[:10]}"
    admin_dsn = pg.dsn(pg_db)
    pg.execute(f"CREATE ROLE {role} LOGIN REPLICATION")
    try:
        run_sql(
            admin_dsn,
            f"GRANT CREATE ON DATABASE {pg_db} TO {role}",
            "CREATE TABLE theirs (id int PRIMARY KEY, v text)",  # owned by the admin
            "INSERT INTO theirs VALUES (1, 'a')",
            f"GRANT SELECT ON theirs TO {role}",
            "CREATE TABLE mine (id int PRIMARY KEY, v text)",
            "INSERT INTO mine VALUES (1, 'x')",
            f"ALTER TABLE mine OWNER TO {role}",
        )
        dsn = pg.dsn(pg_db, user=role)
        target = DuckTarget(tmp_path / "out.duckdb")
        add_pipeline(settings, dsn, target, "public.mine,public.theirs")
        with EngineThread(settings, poll=0.5) as engine:
            runner = engine.runner("p1")
            pid = runner.spec.id
            wait_until(lambda: table_phase(settings, pid, "public.mine") is TablePhase.READY, 60, what="mine ready")
            st = _state(settings, pid, "public.theirs")
            assert st is not None and st.phase is TablePhase.ERRORED
            assert st.error_kind == ErrorKind.SOURCE_PRIVILEGE and "may not add public.theirs" in st.reason, st
            assert "ALTER PUBLICATION" in st.hint and "etl-tui pipeline start p1" in st.hint, st.hint
            run_sql(dsn, "INSERT INTO mine VALUES (2, 'y')")
            wait_until(lambda: len(target.rows("mine", ["id"])) == 2, 30, what="mine streams")
            assert runner.state is RunnerState.STREAMING and runner.last_error is None
            # the fix in the hint, run by the owner; then `pipeline start` copies it beside the stream
            publication = runner.spec.pipeline.publication_name
            run_sql(admin_dsn, f"ALTER PUBLICATION {publication} ADD TABLE public.theirs")
            assert main(["pipeline", "start", "p1"]) == 0
            wait_until(lambda: table_phase(settings, pid, "public.theirs") is TablePhase.READY, 60, what="theirs")
            run_sql(admin_dsn, "INSERT INTO theirs VALUES (2, 'b')")
            wait_caught_up(dsn, runner.spec.pipeline.slot_name)
            assert target.rows("theirs", ["id", "v"]) == source_rows(admin_dsn, "SELECT id, v FROM theirs ORDER BY id")
            assert engine.runner("p1") is runner
    finally:
        pg.execute(f"DROP OWNED BY {role}", pg_db)
        pg.execute(f"DROP ROLE {role}")


def test_a_table_dropped_while_streaming_stops_alone_and_says_so(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE keep (id int PRIMARY KEY, v text)",
        "CREATE TABLE doomed (id int PRIMARY KEY, v text)",
        "INSERT INTO doomed VALUES (1, 'a')",
    )
    target = DuckTarget(tmp_path / "out.duckdb")
    add_pipeline(settings, source_dsn, target, "public.keep,public.doomed")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        wait_until(lambda: table_phase(settings, pid, "public.doomed") is TablePhase.READY, 60, what="ready")
        run_sql(source_dsn, "DROP TABLE doomed", "INSERT INTO keep VALUES (1, 'still')")
        st = wait_until(
            lambda: (s := _state(settings, pid, "public.doomed")) is not None and s.phase is TablePhase.ERRORED and s,
            30,
            what="doomed errored",
        )
        assert st.error_kind == ErrorKind.TABLE_MISSING and "dropped on the source" in st.reason, st
        assert "etl-tui pipeline resync p1 --table 'public.doomed'" in st.hint, st.hint
        wait_until(lambda: target.rows("keep", ["id", "v"]) == [(1, "still")], 30, what="keep streams")
        assert runner.state is RunnerState.STREAMING
