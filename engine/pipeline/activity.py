"""What a pipeline runner reports: its state, its events, and the activity the console shows.

Values here cross threads (the runner writes, the status collector and the metrics read), so they
are frozen, or guarded by one small lock (:class:`PipelineActivity`). :class:`RunnerView` also
crosses processes: the runner publishes it through Redis (:mod:`engine.pipeline.view_codec`) for
``etl-tui status``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from engine.batching.batcher import Op
from engine.errors import EtlError
from engine.identifiers import TableName
from engine.state.table_state import TableState

__all__ = [
    "ActivityView",
    "AppliedBatch",
    "EventKind",
    "PipelineActivity",
    "RunnerEvent",
    "RunnerState",
    "RunnerView",
    "TableActivity",
    "lag_seconds",
]


class RunnerState(StrEnum):
    STARTING = "starting"
    COPYING = "copying"
    STREAMING = "streaming"
    RETRYING = "retrying"
    ERRORED = "errored"
    STOPPED = "stopped"


class EventKind(StrEnum):
    """What an event of the log is about (runner events, console actions, health, alerts)."""

    STATE = "state"  # a pipeline or component changed state
    TABLE = "table"  # a table's phase or shape changed
    ERROR = "error"  # something stopped and waits for the operator
    RETRY = "retry"  # something failed and is retried on its own
    CONFIG = "config"  # the configuration was changed from the console
    ALERT = "alert"  # a WAL monitor alert fired, repeated or resolved


@dataclass(frozen=True)
class RunnerEvent:
    at: float
    pipeline: str
    kind: EventKind
    message: str
    table: str | None = None


@dataclass(frozen=True)
class TableActivity:
    """Changes applied to one table by this process (all runners of the pipeline so far)."""

    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    last_event_at: float | None = None  # when the destination last took a change of the table


@dataclass(frozen=True)
class AppliedBatch:
    at: float
    rows: int
    tables: int
    write_seconds: float  # destination.apply: land + MERGE + checkpoint
    checkpoint: int | None


@dataclass(frozen=True)
class ActivityView:
    """A consistent copy of :class:`PipelineActivity`, safe to keep and hand around."""

    tables: Mapping[TableName, TableActivity]
    copy_progress: Mapping[TableName, tuple[int, int]]  # table being copied → (rows so far, estimate)
    batches: tuple[AppliedBatch, ...]  # newest last
    rows_applied: int  # streamed rows written to the destination
    rows_copied: int  # rows copied, including the copies in progress

    @property
    def rows_total(self) -> int:
        return self.rows_applied + self.rows_copied


class PipelineActivity:
    """What a pipeline did in this process: per-table change counts, the latest batches, row
    totals and copy progress. The manager keeps one per pipeline so the numbers survive a runner
    restart; the runner's threads write it (once per batch or copy chunk, never per change) and
    the status collector reads it, so one small lock guards it."""

    def __init__(self, max_batches: int = 50) -> None:
        self._lock = threading.Lock()
        self._tables: dict[TableName, TableActivity] = {}
        self._progress: dict[TableName, tuple[int, int]] = {}
        self._batches: deque[AppliedBatch] = deque(maxlen=max_batches)
        self._rows_applied = 0
        self._rows_copied = 0

    def record_batch(
        self,
        at: float,
        counts: Iterable[tuple[TableName, Mapping[Op, int]]],
        write_seconds: float,
        checkpoint: int | None,
    ) -> None:
        with self._lock:
            rows = 0
            tables: set[TableName] = set()
            for table, ops in counts:
                old = self._tables.get(table) or TableActivity()
                i, u, d = ops.get(Op.INSERT, 0), ops.get(Op.UPDATE, 0), ops.get(Op.DELETE, 0)
                self._tables[table] = TableActivity(old.inserts + i, old.updates + u, old.deletes + d, at)
                rows += i + u + d
                tables.add(table)
            self._rows_applied += rows
            self._batches.append(AppliedBatch(at, rows, len(tables), write_seconds, checkpoint))

    def copy_progress(self, table: TableName, done: int, estimate: int) -> None:
        with self._lock:
            self._progress[table] = (done, estimate)

    def copy_ended(self, table: TableName, rows: int | None) -> None:
        """The copy of ``table`` finished with ``rows`` rows, or failed (None)."""
        with self._lock:
            self._progress.pop(table, None)
            if rows is not None:
                self._rows_copied += rows

    def view(self) -> ActivityView:
        with self._lock:
            return ActivityView(
                tables=MappingProxyType(dict(self._tables)),
                copy_progress=MappingProxyType(dict(self._progress)),
                batches=tuple(self._batches),
                rows_applied=self._rows_applied,
                rows_copied=self._rows_copied + sum(done for done, _ in self._progress.values()),
            )


@dataclass(frozen=True)
class RunnerView:
    """The runner's side of the status, read without blocking the runner: in process by the
    console's collector, and decoded from Redis by ``etl-tui status``."""

    state: RunnerState
    tables: Mapping[TableName, TableState]  # phases as the runner knows them (empty before it loaded them)
    activity: ActivityView
    last_error: EtlError | None
    next_retry_at: float | None
    acked_lsn: int | None  # confirmed to the source in this session
    received_lsn: int | None
    applied_commit_at: float | None  # source commit time of the latest transaction durable at the destination
    caught_up_at: float | None  # last moment everything received was durable at the destination

    def lag_seconds(self, now: float) -> float | None:
        """How long the oldest change not yet at the destination may have waited, at most.

        Every change still pending was committed after the latest transaction made durable and
        after the last moment the runner had nothing pending, so ``now`` minus the later of those
        bounds its age: about 0 while caught up, growing while the destination falls behind."""
        return lag_seconds(self.state, self.applied_commit_at, self.caught_up_at, now)


def lag_seconds(
    state: RunnerState, applied_commit_at: float | None, caught_up_at: float | None, now: float
) -> float | None:
    if state is not RunnerState.STREAMING and state is not RunnerState.RETRYING:
        return None
    since = max(applied_commit_at or 0.0, caught_up_at or 0.0)
    return max(0.0, now - since) if since else None
