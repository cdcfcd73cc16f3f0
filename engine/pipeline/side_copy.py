"""A table copied beside the stream: a resync, or a retry after its cause was fixed, while the
pipeline's other tables keep streaming and the slot keeps advancing for them.

The stream phase hands such a table to a :class:`SideCopy`. The copy runs on a thread of its own,
at the snapshot of a temporary slot of its own, into a destination connection of its own. Until
it is done, the stream keeps the table's changes in the copy's own :class:`Batcher` instead of
the batch; when it is done, the changes committed at or after the copy's snapshot go to the apply
worker as one batch, and the table streams as any other. While the table is in ``data_sync`` the
slot may pass its held changes: a crash before the table is ``finished_copy`` copies it again.
"""

from __future__ import annotations

import logging
import threading

from engine.batching.batcher import Batcher
from engine.destinations.factory import open_destination
from engine.identifiers import TableName
from engine.metrics import bind_pipeline
from engine.pipeline.copy_phase import CopyCancelled, copy_one, sync_slot_name
from engine.pipeline.session import SessionContext
from engine.source.catalog import TableSchema
from engine.source.connection import connect_source
from engine.source.stream import ReplicationStream

__all__ = ["MAX_HELD_BYTES", "SideCopy"]

log = logging.getLogger("etl.pipeline")

# The changes a table may gather while it copies beside the stream (payload bytes). Past it, the
# session starts again and copies the table before streaming, as at a start.
MAX_HELD_BYTES = 256 * 1024 * 1024


class SideCopy(threading.Thread):
    """One table's copy beside the stream. :attr:`held` gathers the table's changes meanwhile;
    once the thread ends, :attr:`rows` and :attr:`snapshot_lsn` say what was copied (rows None:
    the table's own fault stopped it and is recorded), or :attr:`error` what stopped it."""

    def __init__(self, ctx: SessionContext, schema: TableSchema) -> None:
        super().__init__(name=f"copy-{ctx.spec.name}-{schema.table}", daemon=True)
        self._ctx = ctx
        self.schema = schema
        self.held = Batcher()
        self._cancel = threading.Event()
        self.rows: int | None = None
        self.snapshot_lsn = 0
        self.error: BaseException | None = None

    @property
    def table(self) -> TableName:
        return self.schema.table

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Call the copy off; it ends after its current chunk (the table stays in ``data_sync``)."""
        self._cancel.set()

    def run(self) -> None:
        ctx = self._ctx
        spec = ctx.spec
        bind_pipeline(spec.name)
        what = f'source "{spec.source.name}"'
        sync = ReplicationStream(spec.source.dsn, what, application_name="etl-tui table sync")
        try:
            destination = open_destination(spec.destination)
            try:
                created = sync.create_slot(sync_slot_name(spec.id), temporary=True, export_snapshot=True)
                if self._cancel.is_set():
                    return
                with connect_source(spec.source.dsn, what) as conn:
                    self.rows = copy_one(
                        ctx,
                        conn,
                        created.snapshot,
                        created.consistent_point,
                        self.schema,
                        destination,
                        self._cancel.is_set,
                    )
                self.snapshot_lsn = created.consistent_point
            finally:
                destination.close()
        except CopyCancelled:
            pass
        except BaseException as exc:  # handed to the stream thread, which ends the session
            log.debug("copy of %s beside the stream failed", self.table, exc_info=True)
            self.error = exc
        finally:
            sync.close()  # drops the temporary slot
