"""The initial copy: tables copied at the exported snapshot of a temporary slot.

Each table is read in one REPEATABLE READ transaction set to that snapshot and ends
``finished_copy`` at the slot's consistent point; the stream then applies only the changes
committed after it (the runner's snapshot LSN filter), so nothing is missed or applied twice.
"""

from __future__ import annotations

import time

from psycopg import sql

from engine.destinations.base import Destination
from engine.errors import EtlError, TableError
from engine.identifiers import TableName
from engine.metrics import METRICS
from engine.pipeline.activity import EventKind
from engine.pipeline.session import SessionContext
from engine.source.catalog import TableSchema
from engine.source.connection import connect_source
from engine.source.copy import copy_table, estimate_rows
from engine.source.lsn import format_lsn
from engine.source.stream import ReplicationStream
from engine.state.table_state import TablePhase, TableState

__all__ = ["copy_tables"]


def copy_tables(ctx: SessionContext, schemas: dict[TableName, TableSchema], destination: Destination) -> None:
    """Copy ``schemas`` at one exported snapshot; the stream applies changes committed after it.
    A table whose copy fails for its own reasons ends errored and the others go on; a stop
    request ends the copy between tables."""
    spec = ctx.spec
    store = ctx.store
    activity = ctx.activity
    what = f'source "{spec.source.name}"'
    sync = ReplicationStream(spec.source.dsn, what, application_name="etl-tui table sync")
    try:
        created = sync.create_slot(
            f"etl_sync_{spec.id}_{int(time.time() * 1000)}", temporary=True, export_snapshot=True
        )
        with connect_source(spec.source.dsn, what) as conn:
            for table, schema in schemas.items():
                if ctx.stop.is_set():
                    return
                store.set(table, TableState(TablePhase.DATA_SYNC))
                ctx.event(EventKind.TABLE, f"table {table}: copying", table)
                started = time.monotonic()
                try:
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(created.snapshot)))
                    # a role under row-level security gets an error, never a silently filtered copy
                    conn.execute("SET LOCAL row_security = off")
                    estimate = estimate_rows(conn, schema)
                    activity.copy_progress(table, 0, estimate)
                    meter = _CopyMeter(spec.name, table)

                    def progress(
                        n: int, table: TableName = table, estimate: int = estimate, meter: _CopyMeter = meter
                    ) -> None:
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
                except EtlError as exc:
                    activity.copy_ended(table, None)
                    conn.execute("ROLLBACK")
                    if isinstance(exc, TableError):
                        ctx.table_error(table, exc)
                        continue
                    raise
                except BaseException:
                    activity.copy_ended(table, None)
                    raise
                activity.copy_ended(table, rows)
                ctx.stats.applied["copy"] += rows
                store.add_counters({(table, "copy"): rows})
                store.set(
                    table,
                    TableState(TablePhase.FINISHED_COPY, snapshot_lsn=created.consistent_point, rows_copied=rows),
                )
                secs = time.monotonic() - started
                ctx.event(
                    EventKind.TABLE,
                    f"table {table}: copied {rows} rows in {secs:.1f}s"
                    f" at snapshot {format_lsn(created.consistent_point)}",
                    table,
                )
    finally:
        sync.close()  # drops the temporary slot


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
