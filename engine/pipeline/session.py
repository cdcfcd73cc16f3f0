"""What the phases of a runner's session share: its counters and positions, and how they report.

A session is one connected attempt of :class:`~engine.pipeline.runner.PipelineRunner`: ensure the
slot (:mod:`.slot`), copy what needs copying (:mod:`.copy_phase`), then stream
(:mod:`.stream_phase`) while the apply worker writes batches (:mod:`.apply_worker`). The runner
hands each phase one :class:`SessionContext` rather than itself, so a phase sees only this.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from engine.config.models import PipelineSpec
from engine.errors import EtlError
from engine.identifiers import TableName
from engine.pipeline.activity import EventKind, PipelineActivity
from engine.state.store import PipelineState

__all__ = ["CopyRequests", "EventSink", "Publisher", "RunnerStats", "SessionContext", "TableErrorSink"]


@dataclass
class RunnerStats:
    """What the runner counted and where its stream stands. The counters are written by the
    thread that copies or applies, the positions by the stream thread; view() reads
    them from any thread (plain ints and floats: each read is atomic under the GIL)."""

    applied: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0, "copy": 0})
    flushes: int = 0
    last_flush_seconds: float = 0.0
    received_lsn: int = 0
    acked_lsn: int = 0  # confirmed to PostgreSQL
    acked_high: int = 0  # the furthest LSN confirmed over the runner's life (sessions progress past it)
    checkpoint_lsn: int = 0  # durable at the destination
    # for the lag estimate (RunnerView.lag_seconds)
    applied_commit_at: float | None = None
    caught_up_at: float | None = None


class CopyRequests:
    """The tables to copy again: asked through the state store (``etl-tui pipeline resync
    --table``, the console's retry), or in-process by the runner's host (``pipeline start`` of a
    streaming pipeline retries its errored tables; ``pipeline edit --tables`` adds tables)."""

    def __init__(self, store: PipelineState) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._local: set[TableName] = set()
        # tables added to the pipeline while it streams (a session's spec predates them)
        self.adopted: frozenset[TableName] = frozenset()

    def add(self, tables: set[TableName] | list[TableName]) -> None:
        with self._lock:
            self._local.update(tables)

    def adopt(self, tables: set[TableName] | list[TableName]) -> None:
        """Tables added to the pipeline: copied beside the stream, then streamed."""
        with self._lock:
            self.adopted = self.adopted | set(tables)
            self._local.update(tables)

    def take(self) -> list[TableName]:
        with self._lock:
            local, self._local = self._local, set()
        return sorted(local | set(self._store.take_copy_requests()))


class EventSink(Protocol):
    def __call__(self, kind: EventKind, message: str, table: TableName | None = None) -> None: ...


class TableErrorSink(Protocol):
    def __call__(self, table: TableName, err: EtlError) -> None: ...


class Publisher(Protocol):
    def __call__(self, force: bool = False) -> None: ...


@dataclass(frozen=True)
class SessionContext:
    """The runner's pieces a phase may use; the same for every session of one runner."""

    spec: PipelineSpec
    store: PipelineState
    activity: PipelineActivity
    stats: RunnerStats
    stop: threading.Event  # set when the runner is asked to stop
    event: EventSink  # log and forward an event
    table_error: TableErrorSink  # stop one table: recorded, counted, reported
    publish: Publisher  # the status, at most once a second unless forced
    requests: CopyRequests  # tables to copy again, beside the stream
