"""Running a real engine against the session's PostgreSQL and Redis, and checking what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import psycopg
import redis

from engine.batching.limits import BatchLimits
from engine.config.models import DestinationType
from engine.config.repository import ConfigRepository
from engine.identifiers import parse_table_list
from engine.pipeline.activity import RunnerEvent
from engine.pipeline.runner import PipelineRunner
from engine.runtime.manager import Manager
from engine.settings import Settings
from engine.source.connection import source_conninfo
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase


def wait_until(cond: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # the destination may be mid-write; try again
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


class EngineThread:
    """A Manager running in a thread of the test process."""

    def __init__(
        self, settings: Settings, limits: BatchLimits | None = None, poll: float = 1.0, heartbeat: float = 0.0
    ) -> None:
        self.events: list[RunnerEvent] = []
        self.manager = Manager(
            settings.config_db_url,
            redis.Redis.from_url(settings.redis_url),
            limits=limits or BatchLimits(max_fill_seconds=0.2),
            poll_interval=poll,
            on_event=self.events.append,
            heartbeat_seconds=heartbeat,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.manager.run, args=(self._stop,), daemon=True)

    def __enter__(self) -> EngineThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "engine did not stop within 60s"

    def runner(self, name: str, timeout: float = 30.0) -> PipelineRunner:
        def find() -> PipelineRunner | None:
            return next((r for r in self.manager.runners.values() if r.spec.name == name), None)

        return wait_until(find, timeout, what=f"runner for {name}")  # type: ignore[no-any-return]


@contextmanager
def engine_process(settings: Settings, *args: str, log_path: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``etl-tui --no-ui`` as a separate process (for SIGKILL and memory tests)."""
    env = dict(os.environ, CONFIG_DB_URL=settings.config_db_url, REDIS_URL=settings.redis_url)
    env["METRICS_ADDR"] = settings.metrics_addr
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "etl_tui.cli", "--no-ui", *args], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_path:
            out.close()  # type: ignore[union-attr]


def source_rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(source_conninfo(dsn)) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]  # type: ignore[arg-type]


def duck_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    """Read the DuckDB file the way another process would, while the engine may be running."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [tuple(r) for r in con.execute(query).fetchall()]
    finally:
        con.close()


def slot_confirmed(dsn: str, slot: str) -> int | None:
    rows = source_rows(
        dsn,
        f"SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = '{slot}'",
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def current_wal(dsn: str) -> int:
    """The WAL insert position: past every commit made so far. (pg_current_wal_lsn() is the flush
    position, which trails commits made with synchronous_commit=off.)"""
    return int(source_rows(dsn, "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")[0][0])


def wait_caught_up(source_dsn: str, slot: str, timeout: float = 60) -> None:
    """Until the slot has confirmed everything written so far."""
    target = current_wal(source_dsn)
    wait_until(lambda: (slot_confirmed(source_dsn, slot) or 0) >= target, timeout, what="slot to catch up")


def table_phase(settings: Settings, pipeline_id: int, table: str) -> TablePhase | None:
    state = PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id)
    st = state.load().get(parse_table_list(table)[0])
    return st.phase if st else None


def run_sql(dsn: str, *statements: str) -> None:
    """Run each statement on ``dsn`` in autocommit: a test's schema, data and workload."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


class DestinationLike(Protocol):
    """What a pipeline needs of a test's target (``tests.integration.targets.Target``)."""

    type: DestinationType

    def config(self) -> dict[str, Any]: ...


def add_pipeline(settings: Settings, dsn: str, target: DestinationLike, tables: str, name: str = "p1") -> None:
    """A pipeline ``name`` from source ``src`` (``dsn``, added once) into ``target``, for ``tables``."""
    with ConfigRepository(settings.config_db_url) as repo:
        if not any(s.name == "src" for s in repo.list_sources()):
            repo.add_source("src", dsn)
        repo.add_destination(f"dest_{name}", target.type, target.config())
        repo.add_pipeline(name, "src", f"dest_{name}", parse_table_list(tables))
