"""The stream: pgoutput changes decoded, batched, handed to the apply worker, then acknowledged.

A change is applied when its transaction's commit LSN is at or past both its table's snapshot LSN
(the copy holds the earlier ones) and the destination's checkpoint (the destination holds those
already). A checkpoint is acknowledged to PostgreSQL only once the apply worker reports it
durable (I1); while idle, the end of a transaction with nothing to apply is acknowledged so the
slot advances (I5). A table that stops (its values refused, its shape changed unsafely) stops alone.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import cast

from engine.batching.batcher import Batcher, Op, PendingBatch, changes_since
from engine.batching.limits import BatchLimits
from engine.decoding import pgoutput
from engine.decoding.pgoutput import BEGIN_SIZE, COMMIT_SIZE, UNCHANGED_TOAST
from engine.decoding.tuples import skip_tuple
from engine.destinations.base import Destination
from engine.errors import PIPELINE_PLACEHOLDER, ErrorKind, EtlError, RetryPolicy, TableError
from engine.identifiers import TableName
from engine.metrics import METRICS
from engine.pipeline.activity import EventKind
from engine.pipeline.apply_worker import ApplyWorker, BatchApplier
from engine.pipeline.heartbeat import Heartbeat
from engine.pipeline.key_change import fill_unchanged, key_changed
from engine.pipeline.schema_change import evolve, same_columns
from engine.pipeline.session import SessionContext
from engine.pipeline.side_copy import MAX_HELD_BYTES, SideCopy
from engine.source import catalog
from engine.source.catalog import TableSchema
from engine.source.link import SourceLink
from engine.source.schema_cache import SchemaCache
from engine.source.stream import ReplicationStream
from engine.state.table_state import TablePhase, TableState, finished_copy

__all__ = ["StreamPhase"]

log = logging.getLogger("etl.pipeline")

_NEVER = 1 << 64  # a commit LSN no change reaches
AddChange = Callable[[TableSchema, Op, int, int, bytes, int], None]  # Batcher.add
TEND_SECONDS = 0.5  # how often copy requests are taken and copies beside the stream looked after
WATCH_SECONDS = 5.0  # how often the catalog is asked for dropped tables and changed partitions
_begin_final_lsn = pgoutput.BEGIN_FINAL_LSN.unpack_from
_commit_end_lsn = pgoutput.COMMIT_END_LSN.unpack_from


class StreamPhase:
    """One streaming session over a started replication stream, with all its state.

    :meth:`run` is the loop. It handles Insert, Update and Delete inline, with the attributes it
    needs bound to locals: that is the hot path, one pass per change. The rarer messages go to
    ``on_begin``, ``on_commit``, ``on_relation`` and ``on_truncate``; an empty read goes to
    ``on_idle``. :meth:`flush` hands the batch to the apply worker; :meth:`settle` acknowledges
    what it made durable.
    """

    def __init__(
        self,
        ctx: SessionContext,
        stream: ReplicationStream,
        schemas: dict[TableName, TableSchema],
        destination: Destination,
        *,
        limits: BatchLimits,
        schema_cache: SchemaCache,
        link: SourceLink,
        heartbeat: Heartbeat | None,
        published: Iterable[TableName] = (),
    ) -> None:
        self._ctx = ctx
        self._stats = ctx.stats
        self._stream = stream
        self._schemas = schemas  # the shape each streamed table has at the destination
        self._limits = limits
        self._schema_cache = schema_cache
        self._link = link
        self._heartbeat = heartbeat
        self._decode = pgoutput.Decoder(1).decode
        self._batcher = Batcher(limits)
        # relid → (schema, apply changes committed at or after this LSN, where its changes go:
        # the batch, or the held changes of a table copying beside the stream)
        self._active: dict[int, tuple[TableSchema, int, AddChange]] = {}
        self._min_lsn = {t: (ctx.store.get(t) or TableState(TablePhase.READY)).snapshot_lsn for t in schemas}
        self._applied_before = ctx.stats.checkpoint_lsn  # transactions before this are in the destination already
        # the transaction being read (run() keeps copies in locals)
        self._commit_lsn = 0
        self._skip_tx = False
        self._idle_ack = 0  # end of a transaction that brought nothing to apply
        self._last_commit: bytes | None = None  # the latest Commit message, for its timestamp
        self._commit_times: deque[tuple[int, float]] = deque()  # (batch checkpoint, its commit time), in flight
        self._received = METRICS.bytes.labels(ctx.spec.name)
        # Conversion and destination writes run on their own thread, so decoding the stream
        # overlaps with writing the previous batch; at most two batches wait (backpressure).
        self._worker = ApplyWorker(BatchApplier(ctx, destination), ctx.spec.name)
        self._submitted = 0  # batches handed to the worker, and of those, completed
        self._completed = 0
        # tables copying beside the stream, and those copied whose held changes are being applied:
        # (the batch that holds them, table, snapshot LSN, rows copied)
        self._copies: dict[TableName, SideCopy] = {}
        self._handoffs: deque[tuple[int, TableName, int, int]] = deque()
        self._waiting: set[TableName] = set()  # asked for while a copy of the same table still runs
        self._stopped: dict[TableName, TableError] = {}  # stopped while copying: recorded again at its end
        self._published = set(published)  # the tables the publication holds
        self._last_tend = 0.0
        self._partitioned: dict[int, bool] = {}  # by table oid, asked once
        self._last_watch = time.monotonic()

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Stream until the runner is asked to stop; then write and acknowledge what is pending."""
        stopping = self._ctx.stop.is_set
        publish = self._ctx.publish
        read = self._stream.read_nowait
        decode = self._decode
        batcher = self._batcher
        active = self._active
        link = self._link
        worker = self._worker
        flush, settle, tend = self.flush, self.settle, self.tend_copies
        on_idle, on_begin, on_commit = self.on_idle, self.on_begin, self.on_commit
        on_relation, on_truncate = self.on_relation, self.on_truncate
        max_rows = self._limits.max_rows
        relid_at = pgoutput.DML_RELID.unpack_from
        INSERT, UPDATE, DELETE, NEW = ord("I"), ord("U"), ord("D"), ord("N")
        BEGIN, COMMIT, RELATION, TRUNCATE = ord("B"), ord("C"), ord("R"), ord("T")
        commit_lsn, skip_tx, ordinal = self._commit_lsn, self._skip_tx, 0
        last_check = time.monotonic()
        counter = 0
        worker.start()
        try:
            while not stopping():
                msg = read()
                if msg is None:
                    on_idle()
                    continue
                payload = msg.payload
                kind = payload[0]
                if kind in (INSERT, UPDATE, DELETE):
                    if skip_tx:
                        continue
                    entry = active.get(relid_at(payload)[0])
                    if entry is None or commit_lsn < entry[1]:
                        continue
                    schema = entry[0]
                    add = entry[2]  # the batch's add, or a copying table's held changes
                    marker = payload[5]
                    if kind == INSERT:
                        if marker != NEW:
                            raise pgoutput.PgOutputError("Insert", 5, f"expected 'N', got {chr(marker)!r}")
                        add(schema, Op.INSERT, commit_lsn, ordinal, payload, 6)
                    elif kind == DELETE:
                        add(schema, Op.DELETE, commit_lsn, ordinal, payload, 6)  # key of the old tuple
                    elif marker == NEW:  # an UPDATE without an old tuple: the key did not change
                        add(schema, Op.UPDATE, commit_lsn, ordinal, payload, 6)
                    else:
                        new_at = skip_tuple(payload, 6) + 1
                        update = cast(pgoutput.Update, decode(payload))
                        if update.old is not None and key_changed(schema, update.old, update.new):
                            # the key changed: the old key goes, the new one is written in full
                            add(schema, Op.DELETE, commit_lsn, ordinal, payload, 6)
                            ordinal += 1
                            if UNCHANGED_TOAST in update.new:
                                # no row under the new key holds the values the update left alone
                                payload, new_at = fill_unchanged(link, schema, update, payload), 6
                        add(schema, Op.UPDATE, commit_lsn, ordinal, payload, new_at)
                    ordinal += 1
                    if batcher.rows >= max_rows:
                        flush()
                    counter += 1
                    if counter >= 2048:
                        counter = 0
                        now = time.monotonic()
                        if now - last_check >= 0.25:
                            last_check = now
                            settle()
                            if batcher.should_flush(now):
                                flush()
                            tend()
                            publish()
                    continue
                if kind == BEGIN:
                    on_begin(payload)
                    commit_lsn, skip_tx, ordinal = self._commit_lsn, self._skip_tx, 0
                    continue
                if kind == COMMIT:
                    on_commit(payload)
                    continue
                if kind == RELATION:
                    on_relation(payload)
                    continue
                if kind == TRUNCATE:
                    ordinal = on_truncate(payload, ordinal)
                    continue
                decode(payload)  # Origin, Type, Message: validated, nothing to apply
            # graceful stop: drain what is pending
            if not batcher.empty:
                self._received.inc(batcher.pending_bytes)
                self._submit(batcher.take())
        finally:
            self._call_off_copies()
            worker.finish()
        settle()
        if self._idle_ack > self._stats.acked_lsn and batcher.empty:
            self._ack(self._idle_ack)

    # ---- the rarer messages ------------------------------------------------------------------
    def on_begin(self, payload: bytes) -> None:
        # reads the one field it needs; the decoder checks the rest of an unusual Begin
        if len(payload) == BEGIN_SIZE:
            self._commit_lsn = _begin_final_lsn(payload)[0]
        else:
            self._commit_lsn = cast(pgoutput.Begin, self._decode(payload)).final_lsn
        self._skip_tx = self._commit_lsn < self._applied_before

    def on_commit(self, payload: bytes) -> None:
        if len(payload) == COMMIT_SIZE:
            end_lsn: int = _commit_end_lsn(payload)[0]
        else:
            end_lsn = cast(pgoutput.Commit, self._decode(payload)).end_lsn
        self._stats.received_lsn = end_lsn
        self._last_commit = payload
        batcher = self._batcher
        if batcher.empty:
            self._idle_ack = end_lsn
        else:
            batcher.commit(end_lsn)
            if batcher.should_flush():
                self.flush()

    def on_relation(self, payload: bytes) -> None:
        rel = cast(pgoutput.Relation, self._decode(payload))
        stale = self._skip_tx  # describes changes the destination already holds
        if self._follow(rel, stale) and not self._batcher.empty:
            self.flush()  # a batch holds one shape per table: the destination reshapes between batches

    def on_truncate(self, payload: bytes, ordinal: int) -> int:
        """Queue the truncation of every applied table it names; returns the next ordinal."""
        trunc = cast(pgoutput.Truncate, self._decode(payload))
        if self._skip_tx:
            return ordinal
        commit_lsn = self._commit_lsn
        for relid in trunc.relids:
            entry = self._active.get(relid)
            if entry is not None and commit_lsn >= entry[1]:
                held = self._copies.get(entry[0].table)
                (held.held if held is not None else self._batcher).truncate(entry[0], commit_lsn, ordinal)
                ordinal += 1
        return ordinal

    def on_idle(self) -> None:
        """Nothing more to read right now: write, acknowledge or wait, as fits."""
        self.settle()
        batcher, worker, stream, stats = self._batcher, self._worker, self._stream, self._stats
        if not batcher.empty and (worker.idle or batcher.should_flush()):
            # nothing more to read right now and the writer is free: write what we have
            # rather than wait out the fill time (latency), but let batches grow while
            # the writer is busy (throughput)
            self.flush()
        elif batcher.empty and worker.idle:
            stats.caught_up_at = time.time()
            if self._idle_ack > stats.acked_lsn:
                self._ack(self._idle_ack)
            # Caught up with what the server sent: tables copied before this point
            # stream normally. (Their snapshot LSN filter stays in force either way.)
            self._promote_ready(max(stats.acked_lsn, stream.server_wal_end))
            if self._heartbeat is not None:
                self._heartbeat.beat()
        stats.received_lsn = max(stats.received_lsn, stream.server_wal_end)
        self.tend_copies()
        self._ctx.publish()
        if batcher.empty or not batcher.should_flush():
            stream.wait(0.1)

    # ---- batches -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Hand the batch to the apply worker (waits while two are pending), then settle."""
        batcher = self._batcher
        self._received.inc(batcher.pending_bytes)  # per batch, not per change: the batcher already sums them
        pending = batcher.take()
        # once per batch, not per commit: the batch's checkpoint is normally the latest commit's end
        last_commit = self._last_commit
        if (
            pending.checkpoint is not None
            and last_commit is not None
            and len(last_commit) == COMMIT_SIZE
            and _commit_end_lsn(last_commit)[0] == pending.checkpoint
        ):
            self._commit_times.append((pending.checkpoint, pgoutput.commit_unix_time(last_commit)))
        self._submit(pending)
        self.settle()

    def _submit(self, pending: PendingBatch) -> None:
        self._worker.submit(pending)
        self._submitted += 1

    def settle(self) -> None:
        """Acknowledge, in order, what the worker has made durable."""
        stats, commit_times = self._stats, self._commit_times
        for result in self._worker.completed():
            self._completed += 1
            for table in result.failed:
                self._unroute(table)
            if result.checkpoint is not None:
                stats.checkpoint_lsn = result.checkpoint
                self._ack(result.checkpoint)
                while commit_times and commit_times[0][0] <= result.checkpoint:
                    stats.applied_commit_at = commit_times.popleft()[1]
                self._promote_ready(result.checkpoint)
        while self._handoffs and self._handoffs[0][0] <= self._completed:
            _, table, snapshot_lsn, rows = self._handoffs.popleft()
            self._copied(table, snapshot_lsn, rows)

    def _ack(self, lsn: int) -> None:
        self._stream.ack(lsn)
        self._stats.acked_lsn = lsn
        if lsn > self._stats.acked_high:
            self._stats.acked_high = lsn

    # ---- tables ------------------------------------------------------------------------------
    def _promote_ready(self, lsn: int) -> None:
        ctx = self._ctx
        for table, st in ctx.store.tables().items():
            if st.phase is TablePhase.FINISHED_COPY and lsn >= st.snapshot_lsn:
                ctx.store.set(table, st.moved(TablePhase.READY))
                ctx.event(EventKind.TABLE, f"table {table}: ready (streaming)", table)
                ctx.publish(force=True)

    def _follow(self, rel: pgoutput.Relation, stale: bool) -> bool:
        """Follow the shape the stream announces; True when it changed (ADD/DROP COLUMN).
        ``stale``: the message belongs to a transaction the destination already holds."""
        ctx = self._ctx
        active = self._active
        table = TableName(rel.namespace, rel.name)
        schema = self._schemas.get(table)
        st = ctx.store.get(table)
        if schema is None or (st is not None and st.phase is TablePhase.ERRORED):
            active.pop(rel.relid, None)
            return False
        since = self._min_lsn.get(table, 0)
        if stale or self._commit_lsn < since:
            # Changes the copy or the destination already holds: their shape may predate the
            # target's. They are skipped; the schema change that led to the target's shape
            # brings another Relation message before any change that is applied.
            active[rel.relid] = (schema, since if same_columns(schema, rel) else _NEVER, self._sink(table))
            return False
        link = self._link
        cache = self._schema_cache
        try:
            new, change = evolve(
                schema,
                rel,
                lambda name, oid, typmod: cache.column_type(link.conn, oid, typmod, table, name),
                lambda: cache.attnums(link.conn, rel.relid),
                ctx.spec.name,
            )
        except TableError as exc:
            active.pop(rel.relid, None)
            ctx.table_error(table, exc)
            copy = self._copies.get(table)
            if copy is not None:  # its copy is called off; its end records the error again
                copy.cancel()
                self._stopped[table] = exc
                self._waiting.discard(table)
            return False
        active[rel.relid] = (new, since, self._sink(table))
        if change is None:
            return False
        self._schemas[table] = new
        copy = self._copies.get(table)
        if copy is not None and not copy.cancelled:
            # its copy has the old shape: copy it again with the new one
            copy.cancel()
            self._waiting.add(table)
        cache.remember(new)
        ctx.event(EventKind.TABLE, f"table {table}: schema changed on the source ({change.describe()})", table)
        return True

    # ---- tables copied beside the stream ----------------------------------------------------
    def _sink(self, table: TableName) -> AddChange:
        copy = self._copies.get(table)
        return copy.held.add if copy is not None else self._batcher.add

    def _route(self, table: TableName, since: int, schema: TableSchema | None = None) -> None:
        """Send ``table``'s changes where they now belong (its copy's held changes, or the batch),
        read with ``schema`` when given."""
        sink = self._sink(table)
        for relid, entry in list(self._active.items()):
            if entry[0].table == table:
                self._active[relid] = (schema or entry[0], since, sink)

    def _unroute(self, table: TableName) -> None:
        """``table``'s changes are no longer read (it stopped)."""
        for relid, entry in list(self._active.items()):
            if entry[0].table == table:
                del self._active[relid]

    def tend_copies(self) -> None:
        """Take the copy requests; start, watch and hand over the copies beside the stream."""
        now = time.monotonic()
        if now - self._last_tend < TEND_SECONDS:
            return
        self._last_tend = now
        for table, copy in list(self._copies.items()):
            if not copy.is_alive():
                self._copy_ended(copy)
            elif copy.held.pending_bytes > MAX_HELD_BYTES:
                copy.cancel()
                raise EtlError(
                    f"table {table}: its changes during its copy beside the stream passed "
                    f"{MAX_HELD_BYTES // (1024 * 1024)} MiB",
                    "the session starts again and copies the table before streaming; nothing is lost",
                    kind=ErrorKind.INTERNAL,
                    retry=RetryPolicy.TIMED,
                )
        if now - self._last_watch >= WATCH_SECONDS:
            self._last_watch = now
            self._watch_dropped()
            self._watch_partitions()
        wanted = set(self._ctx.requests.take()) | self._waiting
        self._waiting = set()
        for table in sorted(wanted):
            if table in self._copies:
                self._waiting.add(table)  # a copy of it still ends: start the next one after it
            else:
                self._start_copy(table)

    def _start_copy(self, table: TableName) -> None:
        ctx = self._ctx
        if table not in ctx.spec.pipeline.tables and table not in ctx.requests.adopted:
            ctx.event(EventKind.TABLE, f"table {table}: not replicated by this pipeline; copy request ignored")
            return
        conn = self._link.conn
        try:
            schema = self._schema_cache.describe(conn, table)
            catalog.check_select_privilege(conn, table)
            # a partition beside its parent would hold its rows twice (as at a session's start)
            catalog.check_partition_of(conn, table, set(ctx.spec.pipeline.tables) | ctx.requests.adopted)
        except TableError as exc:
            ctx.table_error(table, exc)
            return
        if table not in self._published:
            pub = ctx.spec.pipeline.publication_name
            refused = catalog.ensure_publication(conn, pub, self._published | {table})
            if table in refused:
                ctx.table_error(table, refused[table])
                return
            self._published.add(table)
        # Whatever of the table's changes the batch and the worker hold lands before the copy
        # starts, so no MERGE into it runs beside the copy; from now on its changes are held.
        if not self._batcher.empty:
            self.flush()
        while not self._worker.idle:
            self.settle()
            time.sleep(0.005)
        self.settle()
        self._worker.readmit(table)  # it may have stopped earlier in this session
        ctx.store.set(table, TableState(TablePhase.DATA_SYNC))  # before any Relation of it is followed
        self._schemas[table] = schema
        self._min_lsn[table] = 0
        copy = SideCopy(ctx, schema)
        self._copies[table] = copy
        self._route(table, 0)
        # The stream announced the table before (a stopped table's entry is gone) or announces it
        # before its first change: either way its changes are held from now on.
        self._active[schema.oid] = (schema, 0, copy.held.add)
        ctx.event(EventKind.TABLE, f"table {table}: copying beside the stream; the other tables go on", table)
        copy.start()

    def _copy_ended(self, copy: SideCopy) -> None:
        table = copy.table
        del self._copies[table]
        stopped = self._stopped.pop(table, None)
        if stopped is not None:
            # the copy thread may have written data_sync over the error meanwhile
            self._ctx.table_error(table, stopped)
        if copy.error is not None:
            raise copy.error  # the session ends; the table, still in data_sync, is copied at the next one
        st = self._ctx.store.get(table)
        if copy.cancelled or copy.rows is None or st is None or st.phase is TablePhase.ERRORED:
            # called off (copied again next), or stopped by its own fault (recorded) while it
            # copied: its held changes go
            if copy.cancelled:
                self._route(table, _NEVER)  # to the batch, skipped until its next copy routes it
            else:
                self._unroute(table)
            return
        # The copy chose the types of its unbounded numeric columns (recorded in its state): its
        # held changes and later ones are converted with those, as the copy was.
        chosen = self._schema_cache.typed(copy.schema)
        self._schemas[table] = chosen
        # The changes committed at or after the copy's snapshot follow it, as one batch; later
        # ones go to the batch as for any table. The table is finished_copy once they are durable.
        held = changes_since(copy.held.take(), copy.snapshot_lsn, chosen)
        self._min_lsn[table] = copy.snapshot_lsn
        self._route(table, copy.snapshot_lsn, chosen)
        self._submit(held)
        self._handoffs.append((self._submitted, table, copy.snapshot_lsn, copy.rows))

    def _copied(self, table: TableName, snapshot_lsn: int, rows: int) -> None:
        st = self._ctx.store.get(table)
        if st is None or st.phase is not TablePhase.DATA_SYNC:
            return  # stopped meanwhile (its held changes were refused): recorded already
        self._ctx.store.set(table, finished_copy(st, snapshot_lsn, rows))  # keeps the column types it chose
        self._ctx.publish(force=True)

    def _call_off_copies(self) -> None:
        """The session ends: copies beside the stream stop; their tables stay in data_sync and are
        copied at the next session's start."""
        for copy in self._copies.values():
            copy.cancel()
        for copy in self._copies.values():
            copy.join(timeout=300)
            if copy.is_alive():  # stuck in a call that does not look at its cancel flag
                log.warning("copy of %s beside the stream did not end in 300 s; going on without it", copy.table)
        self._copies.clear()

    # ---- what the stream does not say --------------------------------------------------------
    def _watch_dropped(self) -> None:
        """A table dropped on the source sends nothing more (pgoutput has no DROP): it stops, loud,
        rather than look as if it streamed (its rows stay at the destination)."""
        ctx = self._ctx
        watched = {t: s for t, s in self._schemas.items() if t not in self._copies}
        if not watched:
            return
        present = catalog.existing_oids(self._link.conn, (s.oid for s in watched.values()))
        for table, schema in sorted(watched.items()):
            st = ctx.store.get(table)
            if schema.oid in present or st is None or not st.phase.streams:
                continue
            self._unroute(table)
            self._published.discard(table)  # PostgreSQL took it out with the drop: a resync adds it back
            ctx.table_error(
                table,
                TableError(
                    str(table),
                    f"table {table} was dropped on the source while it streamed (its rows stay at the destination)",
                    f"if it was created again, copy it: etl-tui pipeline resync {PIPELINE_PLACEHOLDER} --table "
                    f"'{table}'; else remove it from the pipeline's tables",
                    kind=ErrorKind.TABLE_MISSING,
                    retry=RetryPolicy.MANUAL,
                ),
            )

    def _watch_partitions(self) -> None:
        """Copy a partitioned table again when its partitions changed in a way PostgreSQL does not
        stream: a partition attached with rows it held before, or one detached or dropped (its
        rows stay at the destination otherwise). A partition created empty needs nothing."""
        ctx, conn = self._ctx, self._link.conn
        for table, schema in sorted(self._schemas.items()):
            partitioned = self._partitioned.get(schema.oid)
            if partitioned is None:
                partitioned = self._partitioned[schema.oid] = catalog.is_partitioned(conn, schema.oid)
            st = ctx.store.get(table)
            if not partitioned or st is None or not st.phase.streams or table in self._copies:
                continue
            current = catalog.partition_leaves(conn, schema.oid)
            known = frozenset(st.partitions) if st.partitions is not None else current
            gone = known - current
            joined = current - known
            older = [leaf for leaf in joined if catalog.holds_rows_from_before_attach(conn, schema.oid, leaf)]
            if gone or older:
                why = (
                    f"{len(gone)} partition(s) detached or dropped (their rows would stay at the destination)"
                    if gone
                    else f"{len(older)} partition(s) attached with rows written before (PostgreSQL does not send them)"
                )
                ctx.event(EventKind.TABLE, f"table {table}: {why}: copying it again beside the stream", table)
                ctx.requests.add([table])
            elif st.partitions is None or known != current:
                ctx.store.set(table, replace(st, partitions=tuple(sorted(current))))
