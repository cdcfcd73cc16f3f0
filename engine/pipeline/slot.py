"""The pipeline's own replication slot: create it, adopt a new one, or refuse one that cannot be trusted.

The state store records which slot the pipeline's checkpoint belongs to (its slot marker). A slot
and a marker that disagree mean changes could be skipped or applied twice, so the pipeline stops
and waits for a resync instead of guessing; the slot is never dropped or made again silently (I4).
"""

from __future__ import annotations

import psycopg

from engine.destinations.base import Destination
from engine.errors import ErrorKind, EtlError, RetryPolicy
from engine.pipeline.activity import EventKind
from engine.pipeline.session import SessionContext
from engine.source import catalog
from engine.source.lsn import format_lsn
from engine.source.stream import ReplicationStream
from engine.state.table_state import TablePhase, TableState

__all__ = ["ensure_slot"]


def ensure_slot(ctx: SessionContext, conn: psycopg.Connection, destination: Destination) -> None:
    """Make sure the pipeline's slot exists and is the one its state store knows; a slot made
    now is adopted (every table is copied again)."""
    spec = ctx.spec
    store = ctx.store
    slot = spec.pipeline.slot_name
    info = catalog.slot_info(conn, slot)
    marker = store.slot_marker()
    creating = f"creating:{slot}"
    if marker == creating:
        # a crash came between creating the slot and recording it: finish that step (the slot,
        # if it was made, has never been read from)
        marker = None
        if info is not None:
            _adopt_new_slot(ctx, destination)
            return
    if info is None:
        if marker is not None:
            raise EtlError(
                f"replication slot {slot} of pipeline {spec.name} disappeared from the source; changes made "
                "since it was dropped cannot be recovered",
                f"resync the pipeline (copies every table again): etl-tui pipeline resync {spec.name}",
                kind=ErrorKind.SLOT,
                retry=RetryPolicy.MANUAL,
            )
        store.set_slot_marker(creating)
        stream = ReplicationStream(spec.source.dsn, f'source "{spec.source.name}"')
        try:
            created = stream.create_slot(slot)
        finally:
            stream.close()
        _adopt_new_slot(ctx, destination)
        ctx.event(EventKind.STATE, f"created replication slot {slot} at {format_lsn(created.consistent_point)}")
        return
    if marker is None:
        raise EtlError(
            f"the state store has no record of pipeline {spec.name}, but its slot {slot} exists "
            "(Redis was flushed or replaced); continuing could skip or duplicate data",
            f"resync the pipeline (copies every table again): etl-tui pipeline resync {spec.name}",
            kind=ErrorKind.STATE_LOST,
            retry=RetryPolicy.MANUAL,
        )
    if info.wal_status == "lost":
        raise EtlError(
            f"replication slot {slot} was invalidated by the server (wal_status=lost): the WAL it needed is gone",
            f"resync the pipeline: etl-tui pipeline resync {spec.name}; consider raising max_slot_wal_keep_size",
            kind=ErrorKind.SLOT,
            retry=RetryPolicy.MANUAL,
        )


def _adopt_new_slot(ctx: SessionContext, destination: Destination) -> None:
    """A new slot: every table is copied again and the old checkpoint means nothing."""
    destination.forget(ctx.spec.id)
    for table in ctx.spec.pipeline.tables:
        st = ctx.store.get(table)
        if st is None or st.phase is not TablePhase.ERRORED:
            ctx.store.set(table, TableState(TablePhase.INIT))
    ctx.store.set_slot_marker(ctx.spec.pipeline.slot_name)
