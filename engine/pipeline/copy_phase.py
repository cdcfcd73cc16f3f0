"""The initial copy: tables copied at the exported snapshot of a temporary slot.

Each table is read in one REPEATABLE READ transaction set to that snapshot and ends
``finished_copy`` at the slot's consistent point; the stream then applies only the changes
committed after it (the runner's snapshot LSN filter), so nothing is missed or applied twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from engine.destinations.base import Destination
from engine.errors import TableError
from engine.identifiers import TableName
from engine.metrics import METRICS
from engine.pipeline.activity import EventKind
from engine.pipeline.session import SessionContext
from engine.source import catalog
from engine.source.catalog import TableSchema
from engine.source.connection import connect_source
from engine.source.copy import copy_table, estimate_rows
from engine.source.lsn import format_lsn
from engine.source.numeric_scale import choose_types, chosen_types
from engine.source.stream import ReplicationStream
from engine.state.table_state import TablePhase, TableState, finished_copy

__all__ = ["CopyCancelled", "copy_one", "copy_tables", "sync_slot_name"]


def copy_tables(ctx: SessionContext, schemas: dict[TableName, TableSchema], destination: Destination) -> None:
    """Copy ``schemas`` at one exported snapshot; the stream applies changes committed after it.
    A table whose copy fails for its own reasons ends errored and the others go on; a stop
    request ends the copy between tables."""
    spec = ctx.spec
    what = f'source "{spec.source.name}"'
    sync = ReplicationStream(spec.source.dsn, what, application_name="etl-tui table sync")
    try:
        created = sync.create_slot(sync_slot_name(spec.id), temporary=True, export_snapshot=True)
        with connect_source(spec.source.dsn, what) as conn:
            for table, schema in schemas.items():
                if ctx.stop.is_set():
                    return
                rows = copy_one(ctx, conn, created.snapshot, created.consistent_point, schema, destination)
                if rows is not None:
                    ctx.store.set(
                        table,
                        finished_copy(ctx.store.get(table), created.consistent_point, rows),
                    )
    finally:
        sync.close()  # drops the temporary slot


def sync_slot_name(pipeline_id: int) -> str:
    """A temporary slot for one copy (dropped when its connection closes)."""
    return f"etl_sync_{pipeline_id}_{time.time_ns() // 1000}"


def copy_one(
    ctx: SessionContext,
    conn: psycopg.Connection,
    snapshot: str | None,
    consistent_point: int,
    schema: TableSchema,
    destination: Destination,
    cancelled: Callable[[], bool] | None = None,
) -> int | None:
    """Copy one table at ``snapshot`` into ``destination``; returns the rows copied, or None when
    the table's own fault stopped it (recorded: errored). The table is left in ``data_sync``: the
    caller records what comes next. Other errors propagate; ``cancelled`` is asked after each
    chunk and ends the copy with :class:`CopyCancelled`."""
    spec, store, activity = ctx.spec, ctx.store, ctx.activity
    table = schema.table
    if snapshot is None:  # a slot created to export one always has it
        raise ValueError(f"no exported snapshot to copy {table} at")
    store.set(table, TableState(TablePhase.DATA_SYNC))
    ctx.event(EventKind.TABLE, f"table {table}: copying", table)
    started = time.monotonic()
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        # a role under row-level security gets an error, never a silently filtered copy
        conn.execute("SET LOCAL row_security = off")
        schema = choose_types(conn, schema, spec.pipeline)  # unbounded numeric: measured at this snapshot
        # the partitions this snapshot holds: the stream copies again when one leaves, or joins
        # with rows PostgreSQL never sends
        leaves = catalog.partition_leaves(conn, schema.oid) if catalog.is_partitioned(conn, schema.oid) else None
        store.set(
            table,
            TableState(
                TablePhase.DATA_SYNC,
                column_types=chosen_types(schema),
                partitions=None if leaves is None else tuple(sorted(leaves)),
            ),
        )
        if cancelled is not None and cancelled():  # before the destination replaces anything
            raise CopyCancelled(table)
        estimate = estimate_rows(conn, schema)
        activity.copy_progress(table, 0, estimate)
        meter = _CopyMeter(spec.name, table)

        def progress(n: int) -> None:
            if cancelled is not None and cancelled():
                raise CopyCancelled(table)
            activity.copy_progress(table, n, max(estimate, n))
            meter.progress(n, estimate)
            ctx.publish()

        batches = copy_table(conn, schema)
        try:
            rows = destination.copy_table(schema, batches, progress)
        finally:
            batches.close()  # a copy stopped midway must end its COPY before ROLLBACK
        conn.execute("COMMIT")
        meter.done()
    except TableError as exc:
        activity.copy_ended(table, None)
        conn.execute("ROLLBACK")
        ctx.table_error(table, exc)
        return None
    except BaseException:
        activity.copy_ended(table, None)
        with contextlib.suppress(psycopg.Error):  # a broken connection: the error below says why
            conn.execute("ROLLBACK")
        raise
    activity.copy_ended(table, rows)
    ctx.stats.applied["copy"] += rows
    store.add_counters({(table, "copy"): rows})
    secs = time.monotonic() - started
    ctx.event(
        EventKind.TABLE,
        f"table {table}: copied {rows} rows in {secs:.1f}s at snapshot {format_lsn(consistent_point)}",
        table,
    )
    return rows


class CopyCancelled(Exception):
    """A copy beside the stream was called off (its session ends, or its table changed shape)."""

    def __init__(self, table: TableName) -> None:
        super().__init__(f"copy of {table} cancelled")
        self.table = table


class _CopyMeter:
    """The copy metrics of one table copy, fed by the destination's progress callback (per chunk)."""

    def __init__(self, pipeline: str, table: TableName) -> None:
        self._rows = METRICS.copy_rows.labels(pipeline, str(table))
        self._ratio = METRICS.copy_progress.labels(pipeline, str(table))
        self._rows.inc(0)  # the series exists from the start, even for an empty table
        self._ratio.set(0)
        self._counted = 0

    def progress(self, rows: int, estimate: int) -> None:
        self._rows.inc(rows - self._counted)
        self._counted = rows
        self._ratio.set(rows / max(estimate, rows, 1))

    def done(self) -> None:
        self._ratio.set(1)
