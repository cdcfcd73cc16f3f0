"""One pipeline, run in its own thread: copy what needs copying, then stream.

The runner's loop is: decode → batch → (when the batch is full or old enough) land + MERGE +
checkpoint in one destination transaction → cache the checkpoint in Redis → acknowledge it to
PostgreSQL. Nothing is acknowledged before it is durable at the destination (I1); replays are
harmless because the MERGE is keyed and ordered (I2). Failures are classified: transient ones are
retried with backoff and say when; the others wait for the operator (I6).

This module owns the thread: its sessions with their retries, its state and events, the tables it
replicates, and the status it publishes. One session, in phases: ensure the slot (:mod:`.slot`),
copy the tables that need it (:mod:`.copy_phase`), then stream (:mod:`.stream_phase`) while the
apply worker writes each batch (:mod:`.apply_worker`). The phases share :mod:`.session`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import traceback
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import psycopg
import redis

from engine.batching.limits import BatchLimits
from engine.config.models import PipelineSpec
from engine.destinations.base import Destination
from engine.destinations.factory import open_destination
from engine.errors import ErrorKind, EtlError, RetryPolicy, TableError, UnsupportedTypeError
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
from engine.pipeline.copy_phase import copy_tables
from engine.pipeline.heartbeat import Heartbeat
from engine.pipeline.session import CopyRequests, RunnerStats, SessionContext
from engine.pipeline.slot import ensure_slot
from engine.pipeline.stream_phase import StreamPhase
from engine.pipeline.view_codec import encode_view
from engine.source import catalog
from engine.source.catalog import ColumnSchema, ColumnSignature, TableSchema
from engine.source.connection import connect_source
from engine.source.link import SourceLink
from engine.source.schema_cache import SchemaCache
from engine.source.stream import ReplicationStream
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState

log = logging.getLogger("etl.pipeline")

MAX_BACKOFF_SECONDS = 60.0
# After this many failed attempts in a row a transient error stops retrying (I6: no endless loop).
MAX_TIMED_ATTEMPTS = 20


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
        # the stream's rare lookups; closed at the end of each streaming session
        self._link = SourceLink(spec.source.dsn, f'source "{spec.source.name}"')
        self._limits = limits or BatchLimits()
        self._on_event = on_event
        self._stop_event = threading.Event()
        self.state = RunnerState.STARTING
        self.last_error: EtlError | None = None
        self.next_retry_at: float | None = None
        self.stats = RunnerStats()
        self._store = PipelineState(redis_client, spec.id, pipeline=spec.name)
        self._schema_cache = self._schema_cache.for_pipeline(spec.pipeline, self._store.get)  # its column types
        self._last_status = 0.0
        self.activity = activity or PipelineActivity()
        self._tables_loaded = False  # the store's cache is filled: view() may read it
        self._lag_exported = False  # etl_replication_lag_seconds has a series for this pipeline
        self._ctx = SessionContext(
            spec=spec,
            store=self._store,
            activity=self.activity,
            stats=self.stats,
            stop=self._stop_event,
            event=self._event,
            table_error=self._table_error,
            publish=self._publish,
            requests=CopyRequests(self._store),
        )

    # ---- control -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask for a graceful stop: pending changes are flushed and acknowledged first."""
        self._stop_event.set()

    def retry_errored_tables(self) -> bool:
        """Copy this runner's errored tables again beside its stream (an operator's `pipeline
        start` after fixing a cause). False when it is not streaming: then a restart is the retry."""
        if self.state is not RunnerState.STREAMING:
            return False
        errored = [t for t, st in self._store.tables().items() if st.phase is TablePhase.ERRORED]
        self._ctx.requests.add(errored)
        return True

    def adopt_tables(self, spec: PipelineSpec, added: set[TableName]) -> bool:
        """Take ``spec``, which adds ``added`` to this runner's tables, without a restart: they are
        copied beside the stream. False when it is not streaming: then a restart takes the spec."""
        if self.state is not RunnerState.STREAMING:
            return False
        self.spec = spec
        self._ctx = dataclasses.replace(self._ctx, spec=spec)  # the next sessions
        self._ctx.requests.adopt(added)  # this one
        return True

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
            reached = self.stats.acked_high
            try:
                self._session()
                break  # a session returns only when asked to stop
            except EtlError as exc:
                err = exc
                if exc.kind is ErrorKind.PROTOCOL:  # its hint asks for the log: keep where it was raised
                    log.error("pipeline %s: %s\n%s", self.spec.name, exc.reason, traceback.format_exc())
            except Exception as exc:  # a bug or an unforeseen driver error: still reported, never silent
                log.error("pipeline %s: unexpected error\n%s", self.spec.name, traceback.format_exc())
                err = EtlError(
                    f"unexpected {type(exc).__name__}: {exc}",
                    "retrying with backoff; if it persists, report it with the log",
                    kind=ErrorKind.INTERNAL,
                    retry=RetryPolicy.TIMED,
                )
            if self.stats.acked_high > reached:
                # the session moved the slot past anything acknowledged before it failed: a new
                # run of faults starts (I6 counts faults in a row; a session that fails again
                # before getting further still counts, so a lasting fault stops in the end)
                attempts = 0
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
            refused = catalog.ensure_publication(conn, spec.pipeline.publication_name, schemas.keys())
            for table, exc in refused.items():  # a table the role may not publish stops alone
                self._table_error(table, exc)
                del schemas[table]
            published = set(schemas)
            ensure_slot(self._ctx, conn, destination)
            kept = {t: s for t, s in schemas.items() if not self._needs_copy(t)}
            schemas.update(self._applied_shapes(conn, kept, destination))
        to_copy = [t for t, s in schemas.items() if self._needs_copy(t)]
        if to_copy:
            self._set_state(RunnerState.COPYING)
            copy_tables(self._ctx, {t: schemas[t] for t in to_copy}, destination)
            if self._stop_event.is_set():
                return
        streaming = {t: self._schema_cache.typed(s) for t, s in schemas.items() if self._phase(t).streams}
        for table, exc in destination.prepare(streaming.values()).items():  # a table's own fault stops it alone
            self._table_error(table, exc)
            del streaming[table]
        self.stats.checkpoint_lsn = destination.checkpoint(spec.id) or 0
        self._store.set_checkpoint(self.stats.checkpoint_lsn)
        self.last_error = None
        self._stream(streaming, destination, published)

    def _stream(
        self, schemas: dict[TableName, TableSchema], destination: Destination, published: set[TableName]
    ) -> None:
        spec = self.spec
        stream = ReplicationStream(spec.source.dsn, f'source "{spec.source.name}"')
        try:
            stream.start(spec.pipeline.slot_name, spec.pipeline.publication_name)
            self.stats.acked_lsn = 0
            self._set_state(RunnerState.STREAMING)
            StreamPhase(
                self._ctx,
                stream,
                schemas,
                destination,
                limits=self._limits,
                schema_cache=self._schema_cache,
                link=self._link,
                heartbeat=self._heartbeat,
                published=published,
            ).run()
        finally:
            stream.close()
            if self._heartbeat is not None:
                self._heartbeat.close()
            self._link.close()  # opened again on first use by the next session

    # ---- tables --------------------------------------------------------------------------------
    def _phase(self, table: TableName) -> TablePhase:
        st = self._store.get(table)
        return st.phase if st else TablePhase.INIT

    def _needs_copy(self, table: TableName) -> bool:
        st = self._store.get(table)
        return st is None or st.phase in (TablePhase.INIT, TablePhase.DATA_SYNC, TablePhase.ERRORED)

    def _table_error(self, table: TableName, err: EtlError) -> None:
        err = err.for_pipeline(self.spec.name)  # a destination or the catalog knows it by its id only
        prev = self._store.get(table) or TableState(TablePhase.INIT)
        self._store.set(table, prev.errored(err))
        METRICS.errors.labels(self.spec.name, str(err.kind)).inc()
        self._event(EventKind.ERROR, f"table {table}: {err}", table)
        self._publish(force=True)

    def _resolve_tables(self, conn: psycopg.Connection) -> dict[TableName, TableSchema]:
        configured = set(self.spec.pipeline.tables)
        for table in self._ctx.requests.take():  # asked for while no session streamed: copied now
            if table in configured:
                self._store.set(table, TableState(TablePhase.INIT))
        gone = [t for t in self._store.tables() if t not in configured]
        if gone:
            self._store.forget(gone)
        schemas: dict[TableName, TableSchema] = {}
        for table in self.spec.pipeline.tables:
            try:
                schema = self._schema_cache.describe(conn, table)
                catalog.check_select_privilege(conn, table)
                catalog.check_partition_of(conn, table, configured)
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
        except (LookupError, UnsupportedTypeError) as exc:
            # the table's recorded shape can no longer be read: a schema change to resync, not a type problem
            why = exc.reason if isinstance(exc, UnsupportedTypeError) else exc
            raise TableError(
                str(table),
                f"table {table}: the type of its replicated column {sig.name} (oid {sig.type_oid}) is gone: {why}",
                f"resync the table: etl-tui pipeline resync {self.spec.name} --table '{table}'",
                kind=ErrorKind.SCHEMA_CHANGE,
                retry=RetryPolicy.MANUAL,
            ) from exc
        return ColumnSchema(sig.name, sig.type_oid, sig.typmod, ctype, sig.is_key, sig.attnum)

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
            acked_lsn=self.stats.acked_lsn or None,
            received_lsn=self.stats.received_lsn or None,
            applied_commit_at=self.stats.applied_commit_at,
            caught_up_at=self.stats.caught_up_at,
        )

    def status_payload(self) -> dict[str, Any]:
        """The runner's view as published through Redis (schema in engine.pipeline.view_codec)."""
        return encode_view(self.view(), self.spec.name, time.time())

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 1.0:
            return
        self._last_status = now
        self._export_lag()
        try:
            self._store.publish_status(self.status_payload())
        except EtlError as exc:  # status is best effort; replication must not stop for it
            log.debug("status publish failed: %s", exc)

    def _export_lag(self) -> None:
        lag = lag_seconds(self.state, self.stats.applied_commit_at, self.stats.caught_up_at, time.time())
        labels = (self.spec.name, self.spec.pipeline.slot_name)
        if lag is not None:
            METRICS.lag_seconds.labels(*labels).set(lag)
            self._lag_exported = True
        elif self._lag_exported:  # not streaming: no lag to speak of, rather than a stale one
            METRICS.lag_seconds.remove(*labels)
            self._lag_exported = False
