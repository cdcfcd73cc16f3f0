"""The apply path: batches written to the destination on a thread of their own, in order.

The stream thread submits pending batches; the :class:`ApplyWorker` builds each (Arrow
conversion) and hands it to a :class:`BatchApplier`, which lands it, MERGEs it and moves the
checkpoint in one destination transaction, then records it. The stream thread acknowledges a
checkpoint to PostgreSQL only after the worker reports it applied (I1). A table whose values or
statements the destination refuses stops alone: it is recorded errored, then the batch is
written again without it, so the checkpoint never passes its changes unrecorded.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from engine.batching.batcher import Batch, PendingBatch, RowsStep
from engine.destinations.base import Destination
from engine.errors import DestinationTableError, ValueConversionError
from engine.identifiers import TableName
from engine.metrics import METRICS, bind_pipeline
from engine.pipeline.session import SessionContext

__all__ = ["Applied", "ApplyWorker", "BatchApplier"]

_OPERATIONS = {"I": "insert", "U": "update", "D": "delete"}


class BatchApplier:
    """Applies one batch to the destination and records it: the runner's stats, its activity,
    the metrics, and the state store's checkpoint and row counters."""

    def __init__(self, ctx: SessionContext, destination: Destination) -> None:
        self._ctx = ctx
        self._destination = destination

    def apply(self, batch: Batch) -> Applied:
        """Apply ``batch``; returns its checkpoint and every table left out of it because its
        values or statements were refused (by the decoder or by the destination)."""
        ctx = self._ctx
        failed = [f.table for f in batch.failed]
        for refused in batch.failed:
            # Recorded before the checkpoint moves past the table's changes, so a restart re-copies it.
            ctx.table_error(refused.table, refused.error)
        started = time.monotonic()
        while True:
            if not batch.steps and batch.checkpoint is None:
                return Applied(batch.checkpoint, tuple(failed))
            try:
                self._destination.apply(ctx.spec.id, batch)
                break
            except (ValueConversionError, DestinationTableError) as exc:
                # A value the destination cannot hold (checked before anything is sent, e.g.
                # Snowflake's year range), or a statement it refused for one table (its DDL or
                # MERGE): only that table stops, and the batch is written again without it
                # (a MERGE that ran outside a transaction replays harmlessly, I2).
                table = next((s.schema.table for s in batch.steps if str(s.schema.table) == exc.table), None)
                if table is None:
                    raise
                ctx.table_error(table, exc)  # which names this pipeline in its hint's command
                failed.append(table)
                batch = replace(batch, steps=tuple(s for s in batch.steps if s.schema.table != table))
        seconds = time.monotonic() - started
        stats = ctx.stats
        stats.last_flush_seconds = seconds
        stats.flushes += 1
        if batch.checkpoint is not None:
            ctx.store.set_checkpoint(batch.checkpoint)
        counts: dict[tuple[TableName, str], int] = {}
        rows = [(step.schema.table, step.counts) for step in batch.steps if isinstance(step, RowsStep)]
        for table, ops in rows:
            for op, n in ops.items():
                stats.applied[op] += n
                key = (table, _OPERATIONS[op])
                counts[key] = counts.get(key, 0) + n
        ctx.activity.record_batch(time.time(), rows, seconds, batch.checkpoint)
        name = ctx.spec.name
        METRICS.batches.labels(name).inc()
        METRICS.batch_flush.labels(name).observe(seconds)
        for (table, operation), n in counts.items():
            METRICS.rows.labels(name, str(table), operation).inc(n)
        ctx.store.add_counters(counts)
        return Applied(batch.checkpoint, tuple(failed))


@dataclass(frozen=True)
class Applied:
    """One batch the worker applied: its checkpoint (None: no commit ended in it) and the tables
    it stopped."""

    checkpoint: int | None
    failed: tuple[TableName, ...]


class ApplyWorker(threading.Thread):
    """Converts pending batches to Arrow and writes them to the destination, in order."""

    def __init__(self, applier: BatchApplier, pipeline: str, max_pending: int = 2) -> None:
        super().__init__(name=f"apply-{pipeline}", daemon=True)
        self._applier = applier
        self._pipeline = pipeline
        self._queue: queue.Queue[PendingBatch | None] = queue.Queue(maxsize=max_pending)
        self._done: deque[Applied] = deque()
        self._in_flight = 0
        self._errored: set[TableName] = set()
        self.error: BaseException | None = None

    @property
    def idle(self) -> bool:
        return self._in_flight == 0

    def submit(self, pending: PendingBatch) -> None:
        self._in_flight += 1
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(pending, timeout=0.2)
                return
            except queue.Full:
                continue

    def readmit(self, table: TableName) -> None:
        """Write ``table``'s changes again (it stopped in this session, and is copied anew). Called
        while the worker is idle, so no batch is being built meanwhile."""
        self._errored.discard(table)

    def completed(self) -> list[Applied]:
        self._raise_if_failed()
        out = []
        while self._done:
            out.append(self._done.popleft())
            self._in_flight -= 1
        return out

    def finish(self) -> None:
        """Write what was submitted, then stop (also after a failure: nothing more is written)."""
        while self.is_alive():
            try:
                self._queue.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self.join()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        bind_pipeline(self._pipeline)  # destination writes run on this thread
        while True:
            pending = self._queue.get()
            if pending is None or self.error is not None:
                return
            try:
                applied = self._applier.apply(pending.build(frozenset(self._errored)))
                self._errored.update(applied.failed)
                self._done.append(applied)
            except BaseException as exc:  # handed to the stream thread, which restarts the session
                self.error = exc
