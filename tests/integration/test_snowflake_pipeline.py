"""The engine replicating into Snowflake (fakesnow in server mode, real connector), end to end:
hard deletes, TRUNCATE, unchanged TOAST values, and a connection lost at the worst moments —
after the landing COPY but before the MERGE, and after the MERGE but before the checkpoint —
with nothing lost and nothing duplicated afterwards."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from snowflake.connector import errors as sf_errors

from engine.config.repository import ConfigRepository
from engine.destinations.snowflake import connection
from engine.destinations.snowflake.connection import SnowflakeConfig
from engine.identifiers import parse_table_list
from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, run_sql, source_rows, table_phase, wait_caught_up, wait_until
from tests.integration.targets import SnowflakeTarget, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COLUMNS = ["id", "name", "qty", "big"]


class Faults:
    """Fail the first statement matching ``pattern`` once armed, as a lost connection would."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        self.armed = threading.Event()
        self.fired = 0
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def check(self, statement: str) -> None:
        if not self.armed.is_set():
            return
        with self._lock:
            self.seen.append(statement)
            if self.fired == 0 and self.pattern.search(statement):
                self.fired += 1
                raise sf_errors.OperationalError(msg="connection reset by peer (injected)", errno=250001)


class _Cursor:
    def __init__(self, cursor: Any, faults: Faults) -> None:
        self._cursor = cursor
        self._faults = faults

    def execute(self, statement: str, *args: Any, **kwargs: Any) -> Any:
        self._faults.check(statement)
        return self._cursor.execute(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _Connection:
    def __init__(self, conn: Any, faults: Faults) -> None:
        self._conn = conn
        self._faults = faults

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor(), self._faults)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _install(monkeypatch: pytest.MonkeyPatch, faults: Faults) -> None:
    real = connection.connect

    def connect(config: SnowflakeConfig) -> Any:
        return _Connection(real(config), faults)

    monkeypatch.setattr(connection, "connect", connect)


def _setup(settings: Settings, dsn: str, target: SnowflakeTarget) -> None:
    run_sql(
        dsn,
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int, big text)",
        # EXTERNAL: stored out of line uncompressed, so an UPDATE that leaves it alone sends it as
        # an unchanged-TOAST placeholder
        "ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL",
        "INSERT INTO items SELECT g, 'item ' || g, g, repeat(md5(g::text), 100) FROM generate_series(1, 200) g",
    )
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("sf", target.type, target.config())
        repo.add_pipeline("p1", "src", "sf", parse_table_list("public.items"))


def _assert_equal(target: SnowflakeTarget, dsn: str) -> None:
    got = target.rows("items", COLUMNS)
    assert len({r[0] for r in got}) == len(got), "duplicate keys in the target"
    assert got == source_rows(dsn, f"SELECT {', '.join(COLUMNS)} FROM items ORDER BY 1")


@pytest.mark.parametrize(
    "crash_at",
    [
        pytest.param(r"^MERGE INTO", id="after-copy-into-landing-before-merge"),
        pytest.param(r"^INSERT INTO .*_ETL_CHECKPOINTS", id="after-merge-before-checkpoint"),
    ],
)
def test_a_crash_loses_and_duplicates_nothing(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    crash_at: str,
) -> None:
    faults = Faults(crash_at)
    _install(monkeypatch, faults)
    target = make_target("snowflake", tmp_path, request, monkeypatch)
    assert isinstance(target, SnowflakeTarget)
    _setup(settings, source_dsn, target)
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.items") == TablePhase.READY, 90)
        faults.armed.set()
        run_sql(
            source_dsn,
            "UPDATE items SET qty = qty + 1000 WHERE id % 3 = 0",  # big unchanged: a TOAST placeholder
            "UPDATE items SET big = 'small now', name = 'changed' WHERE id % 5 = 0",
            "DELETE FROM items WHERE id % 7 = 0",
            "INSERT INTO items SELECT g, 'new ' || g, g, repeat(md5(g::text), 80) FROM generate_series(201, 260) g",
            "BEGIN",
            "INSERT INTO items VALUES (-1, 'short-lived', 1, 'x')",
            "UPDATE items SET qty = 2 WHERE id = -1",
            "DELETE FROM items WHERE id = -1",
            "COMMIT",
        )
        wait_until(lambda: faults.fired == 1, 60, what="the injected failure")
        # the failure came where intended: after the landing load, and (second case) after a MERGE
        before = faults.seen[: next(i for i, s in enumerate(faults.seen) if faults.pattern.search(s))]
        assert any(s.startswith("COPY INTO") for s in before), faults.seen
        if "CHECKPOINTS" in crash_at:
            assert any(s.startswith("MERGE INTO") for s in before), faults.seen
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name, timeout=90)
        _assert_equal(target, source_dsn)
        assert any(e.kind == "retry" and "injected" in e.message for e in engine.events)


def test_truncate_and_deletes_between_changes(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_target("snowflake", tmp_path, request, monkeypatch)
    assert isinstance(target, SnowflakeTarget)
    _setup(settings, source_dsn, target)
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.items") == TablePhase.READY, 90)
        _assert_equal(target, source_dsn)
        run_sql(
            source_dsn,
            "BEGIN",
            "DELETE FROM items WHERE id <= 50",
            "INSERT INTO items VALUES (1000, 'before truncate', 1, 'b')",
            "TRUNCATE items",
            "INSERT INTO items VALUES (1001, 'after truncate', 2, 'a')",
            "COMMIT",
            "INSERT INTO items VALUES (1002, 'later', 3, repeat('z', 5000))",
            "UPDATE items SET qty = 30 WHERE id = 1002",
        )
        wait_caught_up(source_dsn, slot)
        _assert_equal(target, source_dsn)
        assert [r[0] for r in target.rows("items", ["id"])] == [1001, 1002]
