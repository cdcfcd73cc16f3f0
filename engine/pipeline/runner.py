"""One pipeline, run in its own thread: copy what needs copying, then stream.

The runner's loop is: decode → batch → (when the batch is full or old enough) land + MERGE +
checkpoint in one destination transaction → cache the checkpoint in Redis → acknowledge it to
PostgreSQL. Nothing is acknowledged before it is durable at the destination (I1); replays are
harmless because the MERGE is keyed and ordered (I2). Failures are classified: transient ones are
retried with backoff and say when; the others wait for the operator (I6).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, cast

import psycopg
import redis
from psycopg import sql

from engine.batching.batcher import Batch, Batcher, FailedTable, Op, PendingBatch, RowsStep
from engine.batching.limits import BatchLimits
from engine.config.models import PipelineSpec
from engine.decoding import pgoutput
from engine.decoding.pgoutput import UNCHANGED_TOAST
from engine.decoding.tuples import encode_tuple, skip_tuple
from engine.decoding.typemap import ValueConversionError
from engine.destinations.base import Destination
from engine.destinations.factory import open_destination
from engine.errors import ErrorKind, EtlError, RetryPolicy, TableError
from engine.identifiers import TableName
from engine.metrics import METRICS, bind_pipeline
from engine.pipeline.activity import (
    EventKind,
    PipelineActivity,
    RunnerEvent,
    RunnerState,
    RunnerView,
    lag_seconds,
)
from engine.pipeline.heartbeat import Heartbeat
from engine.pipeline.schema_change import evolve, same_columns
from engine.source import catalog
from engine.source.catalog import ColumnSchema, ColumnSignature, TableSchema
from engine.source.connection import connect_source
from engine.source.copy import copy_table, estimate_rows
from engine.source.lsn import format_lsn
from engine.source.schema_cache import SchemaCache
from engine.source.stream import ReplicationStream
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState

log = logging.getLogger("etl.pipeline")

_RELID = struct.Struct("!I")  # the relation id after the message type byte
_LSN = struct.Struct("!Q")  # Begin's final LSN at offset 1, Commit's end LSN at offset 10
_COMMIT_TS = struct.Struct("!q")  # Commit's timestamp at offset 18: microseconds since 2000-01-01 UTC
_PG_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds

MAX_BACKOFF_SECONDS = 60.0
# After this many failed attempts in a row a transient error stops retrying (I6: no endless loop).
MAX_TIMED_ATTEMPTS = 20


@dataclass
class _Stats:
    applied: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0, "copy": 0})
    flushes: int = 0
    last_flush_seconds: float = 0.0
    received_lsn: int = 0


class PipelineRunner(threading.Thread):
    def __init__(
        self,
        spec: PipelineSpec,
        redis_client: redis.Redis,
        *,
        limits: BatchLimits | None = None,
        on_event: Callable[[RunnerEvent], None] | None = None,
        activity: PipelineActivity | None = None,
        schema_cache: SchemaCache | None = None,
        heartbeat_seconds: float = 0.0,
    ) -> None:
        super().__init__(name=f"pipeline-{spec.name}", daemon=True)
        self.spec = spec
        self._schema_cache = schema_cache or SchemaCache(spec.source.id)
        self._heartbeat = Heartbeat(spec, heartbeat_seconds, self._event) if heartbeat_seconds > 0 else None
        self._catalog = _CatalogLink(spec)  # closed at the end of each streaming session
        self._redis = redis_client
        self._limits = limits or BatchLimits()
        self._on_event = on_event
        self._stop_event = threading.Event()
        self.state = RunnerState.STARTING
        self.last_error: EtlError | None = None
        self.next_retry_at: float | None = None
        self.stats = _Stats()
        self._store = PipelineState(redis_client, spec.id, pipeline=spec.name)
        self._acked = 0
        self._checkpoint = 0
        self._last_status = 0.0
        self.activity = activity or PipelineActivity()
        self._tables_loaded = False  # the store's cache is filled: view() may read it
        # for the lag estimate (RunnerView.lag_seconds); plain floats, written by the stream thread
        self._applied_commit_at: float | None = None
        self._caught_up_at: float | None = None
        self._lag_exported = False  # etl_replication_lag_seconds has a series for this pipeline

    # ---- control -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask for a graceful stop: pending changes are flushed and acknowledged first."""
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def _event(self, kind: EventKind, message: str, table: TableName | None = None) -> None:
        level = logging.WARNING if kind in (EventKind.ERROR, EventKind.RETRY) else logging.INFO
        log.log(level, message, extra={"pipeline": self.spec.name, "table": str(table) if table else None})
        if self._on_event is not None:
            self._on_event(RunnerEvent(time.time(), self.spec.name, kind, message, str(table) if table else None))

    def _set_state(self, state: RunnerState) -> None:
        if state is not self.state:
            self.state = state
            self._event(EventKind.STATE, f"pipeline {self.spec.name}: {state}")
        self._publish(force=True)

    # ---- main loop ---------------------------------------------------------------------------
    def run(self) -> None:
        bind_pipeline(self.spec.name)  # copies run on this thread
        attempts = 0
        while not self._stop_event.is_set():
            try:
                self._session()
                break  # a session returns only when asked to stop
            except EtlError as exc:
                err = exc
            except Exception as exc:  # a bug or an unforeseen driver error: still reported, never silent
                log.error("pipeline %s: unexpected error\n%s", self.spec.name, traceback.format_exc())
                err = EtlError(
                    f"unexpected {type(exc).__name__}: {exc}",
                    "retrying with backoff; if it persists, report it with the log",
                    kind=ErrorKind.INTERNAL,
                    retry=RetryPolicy.TIMED,
                )
            attempts += 1
            self.last_error = err
            METRICS.errors.labels(self.spec.name, str(err.kind)).inc()
            if err.retry is RetryPolicy.TIMED and attempts < MAX_TIMED_ATTEMPTS:
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(attempts, 8))
                self.next_retry_at = time.time() + delay
                self._event(EventKind.RETRY, f"pipeline {self.spec.name}: {err} — retry {attempts} in {delay:.0f}s")
                self._set_state(RunnerState.RETRYING)
                self._stop_event.wait(delay)
                continue
            self.next_retry_at = None
            self._event(EventKind.ERROR, f"pipeline {self.spec.name}: {err}")
            self._set_state(RunnerState.ERRORED)
            # Waits for the operator: a config change or `pipeline start` restarts the runner.
            while not self._stop_event.wait(1.0):
                self._publish()
            break
        self.next_retry_at = None
        self._set_state(RunnerState.STOPPED)

    def _session(self) -> None:
        spec = self.spec
        what = f'source "{spec.source.name}"'
        self._set_state(RunnerState.STARTING)
        self._tables_loaded = False  # load() refills the cache in place: view() must not read it meanwhile
        self._store.load()
        self._tables_loaded = True
        destination = open_destination(spec.destination)
        with connect_source(spec.source.dsn, what) as conn:
            catalog.check_wal_level(conn, spec.source.name)
            catalog.check_replication_role(conn, spec.source.name)
            schemas = self._resolve_tables(conn)
            catalog.ensure_publication(conn, spec.pipeline.publication_name, schemas.keys())
            self._ensure_slot(conn, destination)
            kept = {t: s for t, s in schemas.items() if not self._needs_copy(t)}
            schemas.update(self._applied_shapes(conn, kept, destination))
        to_copy = [t for t, s in schemas.items() if self._needs_copy(t)]
        if to_copy:
            self._set_state(RunnerState.COPYING)
            self._copy_tables({t: schemas[t] for t in to_copy}, destination)
            if self._stop_event.is_set():
                return
        streaming = {t: s for t, s in schemas.items() if self._phase(t).streams}
        destination.prepare(streaming.values())
        self._checkpoint = destination.checkpoint(spec.id) or 0
        self._store.set_checkpoint(self._checkpoint)
        self.last_error = None
        self._stream(streaming, destination)

    # ---- tables --------------------------------------------------------------------------------
    def _phase(self, table: TableName) -> TablePhase:
        st = self._store.get(table)
        return st.phase if st else TablePhase.INIT

    def _needs_copy(self, table: TableName) -> bool:
        st = self._store.get(table)
        return st is None or st.phase in (TablePhase.INIT, TablePhase.DATA_SYNC, TablePhase.ERRORED)

    def _table_error(self, table: TableName, err: EtlError) -> None:
        prev = self._store.get(table) or TableState(TablePhase.INIT)
        self._store.set(table, prev.errored(err))
        METRICS.errors.labels(self.spec.name, str(err.kind)).inc()
        self._event(EventKind.ERROR, f"table {table}: {err}", table)
        self._publish(force=True)

    def _resolve_tables(self, conn: psycopg.Connection) -> dict[TableName, TableSchema]:
        configured = set(self.spec.pipeline.tables)
        gone = [t for t in self._store.tables() if t not in configured]
        if gone:
            self._store.forget(gone)
        schemas: dict[TableName, TableSchema] = {}
        for table in self.spec.pipeline.tables:
            try:
                schema = self._schema_cache.describe(conn, table)
                catalog.check_select_privilege(conn, table)
            except TableError as exc:
                self._table_error(table, exc)
                continue
            st = self._store.get(table)
            if st is not None and st.phase is TablePhase.ERRORED:
                # A restart is the retry: the table missed changes while errored, so it is copied again.
                self._event(EventKind.TABLE, f"table {table}: retrying after error ({st.reason})", table)
                self._store.set(table, TableState(TablePhase.INIT))
            schemas[table] = schema
        return schemas

    def _applied_shapes(
        self, conn: psycopg.Connection, schemas: dict[TableName, TableSchema], destination: Destination
    ) -> dict[TableName, TableSchema]:
        """The shape each already-copied table has at the destination. After a schema change
        made while the engine was down, that differs from today's catalog: the stream replays
        changes of the old shape first and announces the change when it reaches it."""
        shapes: dict[TableName, TableSchema] = {}
        for table, sigs in destination.recorded_columns(schemas).items():
            current = schemas[table]
            if sigs == current.signature:
                continue
            try:
                columns = tuple(self._column_from(conn, table, sig, current) for sig in sigs)
            except EtlError as exc:
                self._table_error(table, exc)
                continue
            shapes[table] = TableSchema(table, current.oid, columns, current.replica_identity)
        return shapes

    def _column_from(
        self, conn: psycopg.Connection, table: TableName, sig: ColumnSignature, current: TableSchema
    ) -> ColumnSchema:
        for col in current.columns:
            if col.signature == sig:
                return col
        try:
            ctype = self._schema_cache.column_type(conn, sig.type_oid, sig.typmod, table, sig.name)
        except (LookupError, ValueError) as exc:
            raise TableError(
                str(table),
                f"table {table}: the type of its replicated column {sig.name} (oid {sig.type_oid}) is gone: {exc}",
                f"resync the table: etl-tui pipeline resync {self.spec.name} --table '{table}'",
                kind=ErrorKind.SCHEMA_CHANGE,
                retry=RetryPolicy.MANUAL,
            ) from exc
        return ColumnSchema(sig.name, sig.type_oid, sig.typmod, ctype, sig.is_key, sig.attnum)

    def _ensure_slot(self, conn: psycopg.Connection, destination: Destination) -> None:
        spec = self.spec
        slot = spec.pipeline.slot_name
        info = catalog.slot_info(conn, slot)
        marker = self._store.slot_marker()
        creating = f"creating:{slot}"
        if marker == creating:
            # a crash came between creating the slot and recording it: finish that step (the slot,
            # if it was made, has never been read from)
            marker = None
            if info is not None:
                self._adopt_new_slot(destination)
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
            self._store.set_slot_marker(creating)
            stream = ReplicationStream(spec.source.dsn, f'source "{spec.source.name}"')
            try:
                created = stream.create_slot(slot)
            finally:
                stream.close()
            self._adopt_new_slot(destination)
            self._event(EventKind.STATE, f"created replication slot {slot} at {format_lsn(created.consistent_point)}")
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

    def _adopt_new_slot(self, destination: Destination) -> None:
        """A new slot: every table is copied again and the old checkpoint means nothing."""
        destination.forget(self.spec.id)
        for table in self.spec.pipeline.tables:
            st = self._store.get(table)
            if st is None or st.phase is not TablePhase.ERRORED:
                self._store.set(table, TableState(TablePhase.INIT))
        self._store.set_slot_marker(self.spec.pipeline.slot_name)

    def _copy_tables(self, schemas: dict[TableName, TableSchema], destination: Destination) -> None:
        """Copy ``schemas`` at one exported snapshot; the stream applies changes committed after it."""
        spec = self.spec
        what = f'source "{spec.source.name}"'
        sync = ReplicationStream(spec.source.dsn, what, application_name="etl-tui table sync")
        try:
            created = sync.create_slot(
                f"etl_sync_{spec.id}_{int(time.time() * 1000)}", temporary=True, export_snapshot=True
            )
            with connect_source(spec.source.dsn, what) as conn:
                for table, schema in schemas.items():
                    if self._stop_event.is_set():
                        return
                    self._store.set(table, TableState(TablePhase.DATA_SYNC))
                    self._event(EventKind.TABLE, f"table {table}: copying", table)
                    started = time.monotonic()
                    try:
                        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(created.snapshot)))
                        estimate = estimate_rows(conn, schema)
                        self.activity.copy_progress(table, 0, estimate)
                        meter = _CopyMeter(self.spec.name, table)

                        def progress(
                            n: int, table: TableName = table, estimate: int = estimate, meter: _CopyMeter = meter
                        ) -> None:
                            self.activity.copy_progress(table, n, max(estimate, n))
                            meter.progress(n, estimate)
                            self._publish()

                        batches = copy_table(conn, schema)
                        try:
                            rows = destination.copy_table(schema, batches, progress)
                        finally:
                            batches.close()  # a copy stopped midway must end its COPY before ROLLBACK
                        conn.execute("COMMIT")
                        meter.done()
                    except EtlError as exc:
                        self.activity.copy_ended(table, None)
                        conn.execute("ROLLBACK")
                        if isinstance(exc, TableError) or exc.kind in (ErrorKind.VALUE_CONVERSION,):
                            self._table_error(table, exc)
                            continue
                        raise
                    except ValueConversionError as exc:
                        self.activity.copy_ended(table, None)
                        conn.execute("ROLLBACK")
                        self._table_error(table, _conversion_error(table, exc))
                        continue
                    except BaseException:
                        self.activity.copy_ended(table, None)
                        raise
                    self.activity.copy_ended(table, rows)
                    self.stats.applied["copy"] += rows
                    self._store.add_counters({(table, "copy"): rows})
                    self._store.set(
                        table,
                        TableState(TablePhase.FINISHED_COPY, snapshot_lsn=created.consistent_point, rows_copied=rows),
                    )
                    secs = time.monotonic() - started
                    self._event(
                        EventKind.TABLE,
                        f"table {table}: copied {rows} rows in {secs:.1f}s"
                        f" at snapshot {format_lsn(created.consistent_point)}",
                        table,
                    )
        finally:
            sync.close()  # drops the temporary slot

    # ---- streaming -----------------------------------------------------------------------------
    def _stream(self, schemas: dict[TableName, TableSchema], destination: Destination) -> None:
        spec = self.spec
        stream = ReplicationStream(spec.source.dsn, f'source "{spec.source.name}"')
        try:
            stream.start(spec.pipeline.slot_name, spec.pipeline.publication_name)
            self._acked = 0
            self._set_state(RunnerState.STREAMING)
            self._stream_loop(stream, schemas, destination)
        finally:
            stream.close()
            if self._heartbeat is not None:
                self._heartbeat.close()
            self._catalog.close()  # opened again on first use by the next session

    def _stream_loop(
        self, stream: ReplicationStream, schemas: dict[TableName, TableSchema], destination: Destination
    ) -> None:
        decode = pgoutput.Decoder(1).decode
        batcher = Batcher(self._limits)
        # relid → (schema, apply changes committed at or after this LSN)
        active: dict[int, tuple[TableSchema, int]] = {}
        min_lsn = {t: (self._store.get(t) or TableState(TablePhase.READY)).snapshot_lsn for t in schemas}
        commit_lsn = 0
        ordinal = 0
        skip_tx = False
        idle_ack = 0  # end of a transaction that brought nothing to apply
        applied_before = self._checkpoint  # transactions before this are in the destination already
        read = stream.read_nowait
        max_rows = self._limits.max_rows
        INSERT, UPDATE, DELETE, NEW = ord("I"), ord("U"), ord("D"), ord("N")
        relid_at = _RELID.unpack_from
        lsn_at = _LSN.unpack_from
        BEGIN, COMMIT, RELATION, TRUNCATE = ord("B"), ord("C"), ord("R"), ord("T")
        last_check = time.monotonic()
        counter = 0
        last_commit: bytes | None = None  # the latest Commit message, for its timestamp
        commit_times: deque[tuple[int, float]] = deque()  # (batch checkpoint, its commit time), in flight
        # Conversion and destination writes run on their own thread, so decoding the stream
        # overlaps with writing the previous batch; at most two batches wait (backpressure).
        worker = _ApplyWorker(self, destination)
        worker.start()

        def settle() -> None:
            """Acknowledge, in order, what the worker has made durable."""
            for result in worker.completed():
                for table in result.failed:
                    for relid, (schema, _) in list(active.items()):
                        if schema.table == table:
                            del active[relid]
                if result.checkpoint is not None:
                    self._checkpoint = result.checkpoint
                    stream.ack(result.checkpoint)
                    self._acked = result.checkpoint
                    while commit_times and commit_times[0][0] <= result.checkpoint:
                        self._applied_commit_at = commit_times.popleft()[1]
                    self._promote_ready(result.checkpoint)

        received = METRICS.bytes.labels(self.spec.name)

        def flush() -> None:
            received.inc(batcher.pending_bytes)  # per batch, not per change: the batcher already sums them
            pending = batcher.take()
            # once per batch, not per commit: the batch's checkpoint is normally the latest commit's end
            if (
                pending.checkpoint is not None
                and last_commit is not None
                and len(last_commit) == 26
                and lsn_at(last_commit, 10)[0] == pending.checkpoint
            ):
                ts = _COMMIT_TS.unpack_from(last_commit, 18)[0] / 1_000_000 + _PG_EPOCH
                commit_times.append((pending.checkpoint, ts))
            worker.submit(pending)
            settle()

        try:
            while not self._stop_event.is_set():
                msg = read()
                if msg is None:
                    settle()
                    if not batcher.empty and (worker.idle or batcher.should_flush()):
                        # nothing more to read right now and the writer is free: write what we have
                        # rather than wait out the fill time (latency), but let batches grow while
                        # the writer is busy (throughput)
                        flush()
                    elif batcher.empty and worker.idle:
                        self._caught_up_at = time.time()
                        if idle_ack > self._acked:
                            stream.ack(idle_ack)
                            self._acked = idle_ack
                        # Caught up with what the server sent: tables copied before this point
                        # stream normally. (Their snapshot LSN filter stays in force either way.)
                        self._promote_ready(max(self._acked, stream.server_wal_end))
                        if self._heartbeat is not None:
                            self._heartbeat.beat()
                    self.stats.received_lsn = max(self.stats.received_lsn, stream.server_wal_end)
                    self._publish()
                    if batcher.empty or not batcher.should_flush():
                        stream.wait(0.1)
                    continue
                payload = msg.payload
                kind = payload[0]
                if kind in (INSERT, UPDATE, DELETE):
                    if skip_tx:
                        continue
                    entry = active.get(relid_at(payload, 1)[0])
                    if entry is None or commit_lsn < entry[1]:
                        continue
                    schema = entry[0]
                    marker = payload[5]
                    if kind == INSERT:
                        if marker != NEW:
                            raise pgoutput.PgOutputError("Insert", 5, f"expected 'N', got {chr(marker)!r}")
                        batcher.add(schema, Op.INSERT, commit_lsn, ordinal, payload, 6)
                    elif kind == DELETE:
                        batcher.add(schema, Op.DELETE, commit_lsn, ordinal, payload, 6)  # key of the old tuple
                    elif marker == NEW:  # an UPDATE without an old tuple: the key did not change
                        batcher.add(schema, Op.UPDATE, commit_lsn, ordinal, payload, 6)
                    else:
                        new_at = skip_tuple(payload, 6) + 1
                        update = cast(pgoutput.Update, decode(payload))
                        if update.old is not None and _key_changed(schema, update.old, update.new):
                            # the key changed: the old key goes, the new one is written in full
                            batcher.add(schema, Op.DELETE, commit_lsn, ordinal, payload, 6)
                            ordinal += 1
                            if UNCHANGED_TOAST in update.new:
                                # no row under the new key holds the values the update left alone
                                payload, new_at = self._fill_unchanged(schema, update, payload), 6
                        batcher.add(schema, Op.UPDATE, commit_lsn, ordinal, payload, new_at)
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
                            self._publish()
                    continue
                if kind == BEGIN:
                    # the hot path reads the one field it needs; the decoder checks the rest
                    commit_lsn = lsn_at(payload, 1)[0] if len(payload) == 21 else decode(payload).final_lsn  # type: ignore[union-attr]
                    ordinal = 0
                    skip_tx = commit_lsn < applied_before
                    continue
                if kind == COMMIT:
                    end_lsn = lsn_at(payload, 10)[0] if len(payload) == 26 else decode(payload).end_lsn  # type: ignore[union-attr]
                    self.stats.received_lsn = end_lsn
                    last_commit = payload
                    if batcher.empty:
                        idle_ack = end_lsn
                    else:
                        batcher.commit(end_lsn)
                        if batcher.should_flush():
                            flush()
                    continue
                if kind == RELATION:
                    rel = cast(pgoutput.Relation, decode(payload))
                    stale = skip_tx  # describes changes the destination already holds
                    if self._on_relation(rel, schemas, active, min_lsn, commit_lsn, stale) and not batcher.empty:
                        flush()  # a batch holds one shape per table: the destination reshapes between batches
                    continue
                if kind == TRUNCATE:
                    trunc = cast(pgoutput.Truncate, decode(payload))
                    if skip_tx:
                        continue
                    for relid in trunc.relids:
                        entry = active.get(relid)
                        if entry is not None and commit_lsn >= entry[1]:
                            batcher.truncate(entry[0], commit_lsn, ordinal)
                            ordinal += 1
                    continue
                decode(payload)  # Origin, Type, Message: validated, nothing to apply
            # graceful stop: drain what is pending
            if not batcher.empty:
                received.inc(batcher.pending_bytes)
                worker.submit(batcher.take())
        finally:
            worker.finish()
        settle()
        if idle_ack > self._acked and batcher.empty:
            stream.ack(idle_ack)
            self._acked = idle_ack

    def _on_relation(
        self,
        rel: pgoutput.Relation,
        schemas: dict[TableName, TableSchema],
        active: dict[int, tuple[TableSchema, int]],
        min_lsn: dict[TableName, int],
        commit_lsn: int,
        stale: bool,
    ) -> bool:
        """Follow the shape the stream announces; True when it changed (ADD/DROP COLUMN).
        ``stale``: the message belongs to a transaction the destination already holds."""
        table = TableName(rel.namespace, rel.name)
        schema = schemas.get(table)
        if schema is None or self._phase(table) is TablePhase.ERRORED:
            active.pop(rel.relid, None)
            return False
        since = min_lsn.get(table, 0)
        if stale or commit_lsn < since:
            # Changes the copy or the destination already holds: their shape may predate the
            # target's. They are skipped; the schema change that led to the target's shape
            # brings another Relation message before any change that is applied.
            active[rel.relid] = (schema, since if same_columns(schema, rel) else _NEVER)
            return False
        link = self._catalog
        try:
            new, change = evolve(
                schema,
                rel,
                lambda name, oid, typmod: self._schema_cache.column_type(link.conn, oid, typmod, table, name),
                lambda: self._schema_cache.attnums(link.conn, rel.relid),
                self.spec.name,
            )
        except TableError as exc:
            active.pop(rel.relid, None)
            self._table_error(table, exc)
            return False
        active[rel.relid] = (new, since)
        if change is None:
            return False
        schemas[table] = new
        self._schema_cache.remember(new)
        self._event(EventKind.TABLE, f"table {table}: schema changed on the source ({change.describe()})", table)
        return True

    def _fill_unchanged(self, schema: TableSchema, update: pgoutput.Update, payload: bytes) -> bytes:
        """An UPDATE that changed the key and left TOASTed values alone: take those values from
        the old row when the server sent it whole (REPLICA IDENTITY FULL), else read them from the
        source by the new key. A value read now may be newer than this change; the changes after
        it are applied next, so the target ends the same as the source. Returns an UPDATE message
        with every value present."""
        values: list[bytes | None] = []
        missing: list[int] = []
        full_old = update.old_kind is pgoutput.OldTupleKind.OLD and update.old is not None
        for i, value in enumerate(update.new):
            before = update.old[i] if full_old and update.old is not None else UNCHANGED_TOAST
            if value is not UNCHANGED_TOAST:
                values.append(value)
            elif before is not UNCHANGED_TOAST:
                values.append(before)
            else:
                values.append(None)
                missing.append(i)
        if missing:
            cols = [schema.columns[i] for i in missing]
            keys = [(c, update.new[i]) for i, c in enumerate(schema.columns) if c.is_key]
            query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in cols),
                sql.Identifier(schema.table.schema, schema.table.name),
                sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c.name)) for c, _ in keys),
            )
            params = [v.decode() if isinstance(v, bytes) else v for _, v in keys]
            row = self._catalog.conn.execute(query, params).fetchone()
            if row is not None:  # else the row is gone by now: its later changes remove it too
                for i, value in zip(missing, row, strict=True):
                    values[i] = None if value is None else str(value).encode()
        return payload[:5] + b"N" + encode_tuple(values)

    def _apply(self, batch: Batch, destination: Destination) -> Batch:
        """Apply ``batch``; returns it as applied, with every table whose values were refused
        (by the decoder or by the destination) left out and listed in ``failed``."""
        for failed in batch.failed:
            # Recorded before the checkpoint moves past the table's changes, so a restart re-copies it.
            self._table_error(failed.table, _conversion_error(failed.table, failed.error))
        started = time.monotonic()
        while True:
            if not batch.steps and batch.checkpoint is None:
                return batch
            try:
                destination.apply(self.spec.id, batch)
                break
            except ValueConversionError as exc:
                # A destination checks every value before it sends anything (e.g. Snowflake's
                # year range): only that table stops, the rest of the batch is applied.
                table = next((s.schema.table for s in batch.steps if str(s.schema.table) == exc.table), None)
                if table is None:
                    raise
                self._table_error(table, _conversion_error(table, exc))
                batch = replace(
                    batch,
                    steps=tuple(s for s in batch.steps if s.schema.table != table),
                    failed=(*batch.failed, FailedTable(table, exc)),
                )
        seconds = time.monotonic() - started
        self.stats.last_flush_seconds = seconds
        self.stats.flushes += 1
        if batch.checkpoint is not None:
            self._store.set_checkpoint(batch.checkpoint)
        counts: dict[tuple[TableName, str], int] = {}
        rows = [(step.schema.table, step.counts) for step in batch.steps if isinstance(step, RowsStep)]
        for table, ops in rows:
            for op, n in ops.items():
                self.stats.applied[op] += n
                key = (table, {"I": "insert", "U": "update", "D": "delete"}[op])
                counts[key] = counts.get(key, 0) + n
        self.activity.record_batch(time.time(), rows, seconds, batch.checkpoint)
        name = self.spec.name
        METRICS.batches.labels(name).inc()
        METRICS.batch_flush.labels(name).observe(seconds)
        for (table, operation), n in counts.items():
            METRICS.rows.labels(name, str(table), operation).inc(n)
        self._store.add_counters(counts)
        return batch

    def _promote_ready(self, lsn: int) -> None:
        for table, st in self._store.tables().items():
            if st.phase is TablePhase.FINISHED_COPY and lsn >= st.snapshot_lsn:
                self._store.set(table, st.moved(TablePhase.READY))
                self._event(EventKind.TABLE, f"table {table}: ready (streaming)", table)
                self._publish(force=True)

    # ---- status ---------------------------------------------------------------------------------
    def view(self) -> RunnerView:
        """The runner's state for the console; cheap, no I/O, callable from any thread."""
        # dict() copies the store's cache atomically under the GIL (its values are frozen); before
        # the session's first load there is nothing to read without I/O.
        tables = MappingProxyType(self._store.tables()) if self._tables_loaded else MappingProxyType({})
        return RunnerView(
            state=self.state,
            tables=tables,
            activity=self.activity.view(),
            last_error=self.last_error,
            next_retry_at=self.next_retry_at,
            acked_lsn=self._acked or None,
            received_lsn=self.stats.received_lsn or None,
            applied_commit_at=self._applied_commit_at,
            caught_up_at=self._caught_up_at,
        )

    def snapshot(self) -> dict[str, Any]:
        tables = {}
        progress = self.activity.view().copy_progress
        for table, st in self._store.tables().items():
            entry: dict[str, Any] = {"phase": str(st.phase), "rows_copied": st.rows_copied}
            if st.phase is TablePhase.ERRORED:
                entry.update(reason=st.reason, hint=st.hint, kind=st.error_kind, retry_policy=str(st.retry_policy))
            if table in progress:
                done, total = progress[table]
                entry.update(copied=done, estimate=total)
            tables[str(table)] = entry
        err = self.last_error
        return {
            "pipeline": self.spec.name,
            "pipeline_id": self.spec.id,
            "state": str(self.state),
            "tables": tables,
            "confirmed_lsn": format_lsn(self._acked) if self._acked else None,
            "checkpoint_lsn": format_lsn(self._checkpoint) if self._checkpoint else None,
            "received_lsn": format_lsn(self.stats.received_lsn) if self.stats.received_lsn else None,
            "applied": dict(self.stats.applied),
            "flushes": self.stats.flushes,
            "last_flush_seconds": round(self.stats.last_flush_seconds, 4),
            "last_error": None
            if err is None
            else {
                "kind": str(err.kind),
                "reason": err.reason,
                "hint": err.hint,
                "retry_policy": str(err.retry),
            },
            "next_retry_at": self.next_retry_at,
            "published_at": time.time(),
        }

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 1.0:
            return
        self._last_status = now
        self._export_lag()
        try:
            self._store.publish_status(self.snapshot())
        except EtlError as exc:  # status is best effort; replication must not stop for it
            log.debug("status publish failed: %s", exc)

    def _export_lag(self) -> None:
        lag = lag_seconds(self.state, self._applied_commit_at, self._caught_up_at, time.time())
        labels = (self.spec.name, self.spec.pipeline.slot_name)
        if lag is not None:
            METRICS.lag_seconds.labels(*labels).set(lag)
            self._lag_exported = True
        elif self._lag_exported:  # not streaming: no lag to speak of, rather than a stale one
            METRICS.lag_seconds.remove(*labels)
            self._lag_exported = False


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


@dataclass(frozen=True)
class _Applied:
    checkpoint: int | None
    failed: tuple[TableName, ...]


class _ApplyWorker(threading.Thread):
    """Converts pending batches to Arrow and writes them to the destination, in order."""

    def __init__(self, runner: PipelineRunner, destination: Destination, max_pending: int = 2) -> None:
        super().__init__(name=f"apply-{runner.spec.name}", daemon=True)
        self._runner = runner
        self._destination = destination
        self._queue: queue.Queue[PendingBatch | None] = queue.Queue(maxsize=max_pending)
        self._done: deque[_Applied] = deque()
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

    def completed(self) -> list[_Applied]:
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
        bind_pipeline(self._runner.spec.name)  # destination writes run on this thread
        while True:
            pending = self._queue.get()
            if pending is None or self.error is not None:
                return
            try:
                batch = self._runner._apply(pending.build(frozenset(self._errored)), self._destination)
                failed = tuple(f.table for f in batch.failed)
                self._errored.update(failed)
                self._done.append(_Applied(batch.checkpoint, failed))
            except BaseException as exc:  # handed to the stream thread, which restarts the session
                self.error = exc


_NEVER = 1 << 64  # a commit LSN no change reaches


class _CatalogLink:
    """A plain connection to the source, opened on first use during a streaming session: for the
    rare lookups the stream needs (a new column's type and position, values a key change left
    out), kept for the session so a bulk key change does not open one per row."""

    def __init__(self, spec: PipelineSpec) -> None:
        self._spec = spec
        self._stack = ExitStack()
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            what = f'source "{self._spec.source.name}"'
            self._conn = self._stack.enter_context(connect_source(self._spec.source.dsn, what))
        return self._conn

    def close(self) -> None:
        self._stack.close()
        self._conn = None


def _key_changed(schema: TableSchema, old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    return any(old[i] != new[i] for i, c in enumerate(schema.columns) if c.is_key)


def _conversion_error(table: TableName, exc: Exception) -> EtlError:
    return EtlError(
        str(exc) if str(table) in str(exc) else f"table {table}: {exc}",
        getattr(exc, "hint", "") or "fix or exclude the value at the source, then retry the table",
        kind=ErrorKind.VALUE_CONVERSION,
        retry=RetryPolicy.MANUAL,
    )
