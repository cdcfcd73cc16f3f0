"""A destination fault caused by one table stops that table alone, on DuckDB and on Snowflake
(fakesnow in server mode, real connector): its DDL refused at the copy (an object of another kind
under the target's name), its MERGE refused mid-stream (a target changed behind the engine's
back), or an unchanged TOAST value for a key the target no longer holds (never stored as NULL).
The other tables keep streaming; after the fix and `etl-tui pipeline start` (or the resync the
hint names) the table is copied again and streams."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import redis

from engine.config.repository import ConfigRepository
from engine.errors import ErrorKind
from engine.identifiers import TableName, parse_table_list
from engine.pipeline.activity import RunnerState
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from tests.integration.harness import EngineThread, run_sql, source_rows, wait_caught_up, wait_until
from tests.integration.targets import Target, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DESTINATIONS = ["duckdb", "snowflake"]
TABLES = ("orders", "customers", "blocked")


def _setup(settings: Settings, dsn: str, target: Target, tables: tuple[str, ...], *others: str) -> None:
    """``tables`` on the source with 20 rows each, and pipeline p1 replicating them and ``others``."""
    for name in tables:
        run_sql(
            dsn,
            f"CREATE TABLE {name} (id int PRIMARY KEY, v text)",
            f"INSERT INTO {name} SELECT g, '{name} ' || g FROM generate_series(1, 20) g",
        )
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("dst", target.type, target.config())
        names = ",".join(f"public.{t}" for t in (*tables, *others))
        repo.add_pipeline("p1", "src", "dst", parse_table_list(names))


def _state(settings: Settings, pipeline_id: int, table: str) -> TableState | None:
    return PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id).load().get(TableName("public", table))


def _phase(settings: Settings, pipeline_id: int, table: str) -> TablePhase | None:
    st = _state(settings, pipeline_id, table)
    return st.phase if st else None


def _cli(settings: Settings, *args: str) -> str:
    """``etl-tui <args>`` as an operator runs it."""
    env = dict(os.environ, CONFIG_DB_URL=settings.config_db_url, REDIS_URL=settings.redis_url)
    done = subprocess.run(
        [sys.executable, "-m", "etl_tui.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _rows(target: Target, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """The target's rows, read between the engine's writes (it opens the DuckDB file per write)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return target.rows(table, columns)
        except duckdb.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _in_sync(target: Target, dsn: str, table: str) -> bool:
    want = source_rows(dsn, f"SELECT id, v FROM {table} ORDER BY id")
    return _rows(target, table, ["id", "v"]) == want


def _insert(dsn: str, tables: tuple[str, ...], first: int, last: int) -> None:
    run_sql(
        dsn,
        *(f"INSERT INTO {t} SELECT g, 'new {t} ' || g FROM generate_series({first}, {last}) g" for t in tables),
    )


def _assert_others_stream(settings: Settings, dsn: str, target: Target, runner_slot: str, first: int) -> None:
    """Rows inserted now into every table arrive in the healthy ones."""
    _insert(dsn, TABLES, first, first + 9)
    wait_caught_up(dsn, runner_slot, 90)
    for healthy in ("orders", "customers"):
        wait_until(lambda t=healthy: _in_sync(target, dsn, t), 60, what=f"{healthy} to stream")  # type: ignore[misc]
        assert (first + 9, f"new {healthy} {first + 9}") in _rows(target, healthy, ["id", "v"])


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_a_refused_ddl_stops_only_its_table_until_fixed(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch)
    _setup(settings, source_dsn, target, TABLES)
    # a view under the target's name: the copy's CREATE TABLE (or DROP TABLE) is refused
    if kind == "snowflake":
        schema = target.target_sql("blocked").rsplit(".", 1)[0]
        target.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    target.execute(f"CREATE VIEW {target.target_sql('blocked')} AS SELECT 1 AS x")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid, slot = runner.spec.id, runner.spec.pipeline.slot_name
        for name in ("orders", "customers"):
            wait_until(lambda n=name: _phase(settings, pid, n) is TablePhase.READY, 90, what=f"{name} ready")  # type: ignore[misc]
        st = wait_until(
            lambda: (s := _state(settings, pid, "blocked")) is not None and s.phase is TablePhase.ERRORED and s,
            60,
            what="blocked errored",
        )
        assert st.error_kind == ErrorKind.DESTINATION_TABLE
        assert "public.blocked" in st.reason and "copying into" in st.reason
        assert "view" in st.reason.lower(), st.reason  # the destination's own message
        assert "etl-tui pipeline start" in st.hint
        _assert_others_stream(settings, source_dsn, target, slot, 101)
        # the pipeline never retried as a whole: one session, streaming, no pipeline error
        assert runner.state is RunnerState.STREAMING and runner.last_error is None
        assert _phase(settings, pid, "blocked") is TablePhase.ERRORED

        target.execute(f"DROP VIEW {target.target_sql('blocked')}")
        assert "status start" in _cli(settings, "pipeline", "start", "p1")
        wait_until(lambda: _phase(settings, pid, "blocked") is TablePhase.READY, 120, what="blocked copied again")
        wait_until(lambda: _in_sync(target, source_dsn, "blocked"), 60, what="blocked copied")
        _insert(source_dsn, ("blocked",), 201, 205)
        wait_until(lambda: _in_sync(target, source_dsn, "blocked"), 60, what="blocked streams")
        assert (205, "new blocked 205") in _rows(target, "blocked", ["id", "v"])
        for healthy in ("orders", "customers"):
            assert _in_sync(target, source_dsn, healthy)


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_a_refused_merge_stops_only_its_table(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch)
    _setup(settings, source_dsn, target, TABLES)
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid, slot = runner.spec.id, runner.spec.pipeline.slot_name
        for name in TABLES:
            wait_until(lambda n=name: _phase(settings, pid, n) is TablePhase.READY, 90, what=f"{name} ready")  # type: ignore[misc]
        # the target loses the column the MERGE writes, behind the engine's back
        v, w = ("V", "W") if kind == "snowflake" else ("v", "w")
        target.execute(f'ALTER TABLE {target.target_sql("blocked")} RENAME COLUMN "{v}" TO "{w}"')
        run_sql(source_dsn, "UPDATE blocked SET v = 'changed' WHERE id = 1")
        st = wait_until(
            lambda: (s := _state(settings, pid, "blocked")) is not None and s.phase is TablePhase.ERRORED and s,
            60,
            what="blocked errored",
        )
        assert st.error_kind == ErrorKind.DESTINATION_TABLE
        assert "public.blocked" in st.reason and "MERGE into" in st.reason, st.reason
        assert "etl-tui pipeline start p1" in st.hint  # the applier names the pipeline
        _assert_others_stream(settings, source_dsn, target, slot, 101)
        assert runner.state is RunnerState.STREAMING and runner.last_error is None

        # the restart copies the errored table again, replacing the broken target
        _cli(settings, "pipeline", "start", "p1")
        wait_until(lambda: _phase(settings, pid, "blocked") is TablePhase.READY, 120, what="blocked copied again")
        wait_until(lambda: _in_sync(target, source_dsn, "blocked"), 60, what="blocked copied")
        assert (1, "changed") in _rows(target, "blocked", ["id", "v"])


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_a_target_gone_while_the_engine_was_down_stops_only_its_table(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch)
    _setup(settings, source_dsn, target, TABLES)
    with EngineThread(settings) as engine:
        pid = engine.runner("p1").spec.id
        for name in TABLES:
            wait_until(lambda n=name: _phase(settings, pid, n) is TablePhase.READY, 90, what=f"{name} ready")  # type: ignore[misc]
    target.execute(f"DROP TABLE {target.target_sql('blocked')}")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        st = wait_until(
            lambda: (s := _state(settings, pid, "blocked")) is not None and s.phase is TablePhase.ERRORED and s,
            60,
            what="blocked errored",
        )
        assert st.error_kind == ErrorKind.DESTINATION_TABLE
        assert "public.blocked" in st.reason and "missing" in st.reason, st.reason
        assert "etl-tui pipeline resync p1 --table 'public.blocked'" in st.hint  # the runner names the pipeline
        wait_until(lambda: runner.state is RunnerState.STREAMING, 60, what="streaming")
        _assert_others_stream(settings, source_dsn, target, slot, 101)
        assert runner.last_error is None

        _cli(settings, "pipeline", "start", "p1")  # a restart copies the errored table again
        wait_until(lambda: _phase(settings, pid, "blocked") is TablePhase.READY, 120, what="blocked copied again")
        wait_until(lambda: _in_sync(target, source_dsn, "blocked"), 60, what="blocked copied")


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_an_unchanged_toast_value_for_a_missing_key_is_never_stored_as_null(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch)
    run_sql(
        source_dsn,
        "CREATE TABLE docs (id int PRIMARY KEY, name text, big text)",
        # EXTERNAL: out of line and uncompressed, so an UPDATE that leaves it alone sends "unchanged"
        "ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL",
        "INSERT INTO docs SELECT g, 'doc ' || g, repeat(md5(g::text), 200) FROM generate_series(1, 10) g",
    )
    _setup(settings, source_dsn, target, ("orders",), "docs")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid, slot = runner.spec.id, runner.spec.pipeline.slot_name
        for name in ("orders", "docs"):
            wait_until(lambda n=name: _phase(settings, pid, n) is TablePhase.READY, 90, what=f"{name} ready")  # type: ignore[misc]
        # the target loses rows behind the engine's back; then updates leave `big` alone
        key = "ID" if kind == "snowflake" else "id"
        target.execute(f'DELETE FROM {target.target_sql("docs")} WHERE "{key}" IN (1, 2)')
        run_sql(source_dsn, "UPDATE docs SET name = 'renamed' WHERE id <= 3")
        st = wait_until(
            lambda: (s := _state(settings, pid, "docs")) is not None and s.phase is TablePhase.ERRORED and s,
            60,
            what="docs errored",
        )
        assert st.error_kind == ErrorKind.UNCHANGED_TOAST
        # 2 keys, or 1 when the stream cut the transaction into two batches (the table stops at the first)
        assert re.match(r"table public\.docs: [12] updated row\(s\) left a TOASTed value unchanged", st.reason), (
            st.reason
        )
        assert "etl-tui pipeline resync p1 --table 'public.docs'" in st.hint
        got = _rows(target, "docs", ["id", "name", "big"])
        assert [r[0] for r in got] == list(range(3, 11)), "no row inserted for the missing keys"
        assert all(r[2] is not None for r in got), "no value stored as NULL"
        _insert(source_dsn, ("orders",), 101, 110)
        wait_caught_up(source_dsn, slot, 90)
        wait_until(lambda: _in_sync(target, source_dsn, "orders"), 60, what="orders to stream")
        assert runner.state is RunnerState.STREAMING and runner.last_error is None

        # the hint's command brings the table back, whole
        _cli(settings, "pipeline", "resync", "p1", "--table", "public.docs")
        wait_until(lambda: _phase(settings, pid, "docs") is TablePhase.READY, 120, what="docs copied again")
        want = source_rows(source_dsn, "SELECT id, name, big FROM docs ORDER BY id")
        wait_until(lambda: _rows(target, "docs", ["id", "name", "big"]) == want, 60, what="docs resynced")
