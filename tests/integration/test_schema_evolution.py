"""Schema changes on the source, end to end, for DuckDB and for Snowflake (fakesnow): ADD and
DROP COLUMN propagate while streaming and while the engine is down; a rename or a type change
stops only its table, with a hint, and a resync brings it back with its new shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config.repository import ConfigRepository
from engine.errors import ErrorKind
from engine.identifiers import parse_table_list
from engine.runtime import admin
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from tests.integration.harness import EngineThread, add_pipeline, run_sql, source_rows, wait_caught_up, wait_until
from tests.integration.targets import Target, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KINDS = ["duckdb", "snowflake"]


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    return make_target(request.param, tmp_path, request, monkeypatch)


def _state(settings: Settings, pipeline_id: int, table: str) -> TableState | None:
    store = PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id)
    return store.load().get(parse_table_list(table)[0])


def _wait_phase(settings: Settings, pipeline_id: int, table: str, phase: TablePhase, timeout: float = 90) -> TableState:
    def reached() -> TableState | None:
        st = _state(settings, pipeline_id, table)
        return st if st is not None and st.phase is phase else None

    return wait_until(reached, timeout, what=f"{table} {phase}")  # type: ignore[no-any-return]


def _equal(target: Target, dsn: str, table: str, columns: list[str]) -> None:
    src = source_rows(dsn, f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")
    assert target.rows(table, columns) == src


def _data_columns(target: Target, table: str) -> list[str]:
    return [c for c in target.columns(table) if not c.lower().startswith("_etl_")]


def _names(target: Target, *names: str) -> list[str]:
    return [n.upper() if target.type == "snowflake" else n for n in names]


def test_add_and_drop_column_propagate_while_streaming(settings: Settings, source_dsn: str, target: Target) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, code varchar(10))",
        "INSERT INTO items SELECT g, 'item ' || g, g, 'c' || g FROM generate_series(1, 50) g",
        "CREATE TABLE other (id int PRIMARY KEY, v text)",
        "INSERT INTO other VALUES (1, 'one')",
    )
    add_pipeline(settings, source_dsn, target, "public.items,public.other")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        _wait_phase(settings, runner.spec.id, "public.items", TablePhase.READY)
        _wait_phase(settings, runner.spec.id, "public.other", TablePhase.READY)

        # changes before and after the DDL inside one transaction and in the same batch
        run_sql(
            source_dsn,
            "BEGIN",
            "UPDATE items SET qty = qty + 100 WHERE id <= 5",
            "ALTER TABLE items ADD COLUMN note text, ADD COLUMN score numeric(8,2)",
            "INSERT INTO items VALUES (51, 'new', 1, 'c51', 'a note', 1.25)",
            "COMMIT",
            "UPDATE items SET note = 'later ' || id WHERE id % 10 = 0",
            "INSERT INTO other VALUES (2, 'two')",
        )
        wait_caught_up(source_dsn, slot)
        assert _data_columns(target, "items") == _names(target, "id", "name", "qty", "code", "note", "score")
        _equal(target, source_dsn, "items", ["id", "name", "qty", "code", "note", "score"])

        run_sql(
            source_dsn,
            "ALTER TABLE items DROP COLUMN qty",
            "ALTER TABLE items ALTER COLUMN code TYPE varchar(20)",  # same destination type: goes on
            "UPDATE items SET name = name || '!', code = 'longer code ' || id WHERE id % 3 = 0",
            "DELETE FROM items WHERE id % 7 = 0",
        )
        wait_caught_up(source_dsn, slot)
        assert _data_columns(target, "items") == _names(target, "id", "name", "code", "note", "score")
        _equal(target, source_dsn, "items", ["id", "name", "code", "note", "score"])

        # a drop and an add at once: the surviving columns keep their values
        run_sql(
            source_dsn,
            "ALTER TABLE items DROP COLUMN note, ADD COLUMN tags jsonb",
            "UPDATE items SET tags = '{\"k\": 1}' WHERE id < 4",
        )
        wait_caught_up(source_dsn, slot)
        assert _data_columns(target, "items") == _names(target, "id", "name", "code", "score", "tags")
        _equal(target, source_dsn, "items", ["id", "name", "code", "score"])
        _equal(target, source_dsn, "other", ["id", "v"])
        assert _state(settings, runner.spec.id, "public.items").phase is TablePhase.READY  # type: ignore[union-attr]
        assert any("schema changed on the source (added note, score)" in e.message for e in engine.events)


def test_rename_and_type_change_stop_only_their_table(settings: Settings, source_dsn: str, target: Target) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE a (id int PRIMARY KEY, v text, w int)",
        "INSERT INTO a SELECT g, 'a' || g, g FROM generate_series(1, 20) g",
        "CREATE TABLE b (id int PRIMARY KEY, n int)",
        "INSERT INTO b SELECT g, g FROM generate_series(1, 20) g",
        "CREATE TABLE c (id int PRIMARY KEY, v text)",
    )
    add_pipeline(settings, source_dsn, target, "public.a,public.b,public.c")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        for table in ("public.a", "public.b", "public.c"):
            _wait_phase(settings, runner.spec.id, table, TablePhase.READY)
        run_sql(
            source_dsn,
            "ALTER TABLE a RENAME COLUMN w TO w2",  # the last column: only its position tells a rename
            "INSERT INTO a VALUES (21, 'a21', 21)",
            "ALTER TABLE b ALTER COLUMN n TYPE bigint",
            "INSERT INTO b VALUES (21, 21)",
            "INSERT INTO c VALUES (1, 'still flowing')",
        )
        st_a = _wait_phase(settings, runner.spec.id, "public.a", TablePhase.ERRORED)
        st_b = _wait_phase(settings, runner.spec.id, "public.b", TablePhase.ERRORED)
        assert st_a.error_kind == ErrorKind.SCHEMA_CHANGE and "renamed to w2" in st_a.reason, st_a
        assert "resync" in st_a.hint and "--table 'public.a'" in st_a.hint
        assert "column n changed type from int4 to int8" in st_b.reason, st_b
        wait_until(lambda: target.rows("c", ["id", "v"]) == [(1, "still flowing")], 60, what="c keeps streaming")
        # the target still has what was replicated before the change, untouched
        assert len(target.rows("a", ["id"])) == 20

        with ConfigRepository(settings.config_db_url) as repo:
            admin.resync_pipeline(repo, settings, "p1", parse_table_list("public.a,public.b"))
        runner = engine.runner("p1")
        _wait_phase(settings, runner.spec.id, "public.a", TablePhase.READY)
        _wait_phase(settings, runner.spec.id, "public.b", TablePhase.READY)
        run_sql(source_dsn, "UPDATE a SET w2 = -w2 WHERE id = 1", "UPDATE b SET n = 1 << 40 WHERE id = 1")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        _equal(target, source_dsn, "a", ["id", "v", "w2"])
        _equal(target, source_dsn, "b", ["id", "n"])


def test_schema_changes_while_the_engine_is_down(settings: Settings, source_dsn: str, target: Target) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE t (id int PRIMARY KEY, a text, b int)",
        "INSERT INTO t SELECT g, 'a' || g, g FROM generate_series(1, 30) g",
    )
    add_pipeline(settings, source_dsn, target, "public.t")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        _wait_phase(settings, runner.spec.id, "public.t", TablePhase.READY)
    # the stream must replay the old-shape changes first, then apply each change of shape
    run_sql(
        source_dsn,
        "UPDATE t SET b = b * 10 WHERE id <= 10",
        "ALTER TABLE t ADD COLUMN c text",
        "UPDATE t SET c = 'c' || id WHERE id > 20",
        "ALTER TABLE t DROP COLUMN b",
        "INSERT INTO t VALUES (31, 'a31', 'c31')",
    )
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_caught_up(source_dsn, slot)
        assert _data_columns(target, "t") == _names(target, "id", "a", "c")
        _equal(target, source_dsn, "t", ["id", "a", "c"])
        assert _state(settings, runner.spec.id, "public.t").phase is TablePhase.READY  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_soft_deletes_keep_rows_flagged(
    settings: Settings,
    source_dsn: str,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch, soft=True)
    run_sql(
        source_dsn,
        "CREATE TABLE s (id int PRIMARY KEY, v text)",
        "INSERT INTO s SELECT g, 'v' || g FROM generate_series(1, 10) g",
    )
    add_pipeline(settings, source_dsn, target, "public.s")
    deleted = "_etl_deleted"

    def flagged() -> list[tuple[Any, ...]]:
        return target.rows("s", ["id", "v", deleted])

    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        _wait_phase(settings, runner.spec.id, "public.s", TablePhase.READY)
        assert flagged() == [(i, f"v{i}", False) for i in range(1, 11)]
        run_sql(
            source_dsn,
            "DELETE FROM s WHERE id <= 3",
            "UPDATE s SET v = 'changed' WHERE id = 4",
            "BEGIN",
            "INSERT INTO s VALUES (100, 'gone in the same batch')",
            "DELETE FROM s WHERE id = 100",
            "COMMIT",
        )
        wait_caught_up(source_dsn, slot)
        expected = [(i, f"v{i}", True) for i in range(1, 4)] + [(4, "changed", False)]
        expected += [(i, f"v{i}", False) for i in range(5, 11)]
        assert flagged() == expected
        run_sql(source_dsn, "INSERT INTO s VALUES (2, 'back')", "TRUNCATE s", "INSERT INTO s VALUES (5, 'after')")
        wait_caught_up(source_dsn, slot)
        rows = flagged()
        assert [r for r in rows if not r[2]] == [(5, "after", False)]
        assert {r[0] for r in rows if r[2]} == {1, 2, 3, 4, 6, 7, 8, 9, 10}
        # what is not flagged is exactly the source
        assert target.rows("s", ["id", "v"], where=f"NOT {deleted}") == source_rows(
            source_dsn, "SELECT id, v FROM s ORDER BY 1"
        )
