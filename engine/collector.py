"""The status collector: one thread that turns the engine's state into a :class:`BoardSnapshot`
about once a second, so the console only ever reads an immutable value and never does I/O.

Each cycle it merges:

- the config (desired state) — re-read from the config DB every ``config_interval`` seconds, at
  once after :meth:`Collector.refresh_config` or a reconcile of the manager, and otherwise reused,
  so the console adds a few small queries every couple of seconds and no more;
- the runners (actual state, table phases, counts, batches, copy progress) — read in memory;
- each source's replication slots — one query per source on a connection kept open;
- table phases of pipelines without a runner, and a PING — from Redis;
- the events the runners emit, and those :meth:`Collector.record` adds (console actions).

Any of the config DB, a source or Redis may be down: the snapshot says so in its health rows and
publishing goes on. A source or the config DB that failed is tried again with a growing delay,
so an unreachable host (a connect timeout) does not hold up every cycle.

Measures:

- rows/s: the growth of the pipeline's applied-row total (streamed and copied rows written to
  the destination) between two cycles, divided by the time between them; the last 60 are kept.
- lag bytes: the source's WAL position minus the slot's ``confirmed_flush_lsn`` (what the source
  keeps for us); when the slot cannot be read, what the runner received minus what it confirmed.
- lag seconds: ``RunnerView.lag_seconds`` — now minus the later of the commit time of the last
  transaction durable at the destination and the last moment the runner had nothing pending.
  Every change still pending was committed after both, so this bounds its wait: about 0 while
  caught up, growing while the destination falls behind or the source is unreachable. (Comparing
  ``confirmed_flush_lsn`` with the WAL end instead would count WAL of other databases as lag.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from engine.config.destination_options import destination_config, unset_env_vars
from engine.config.models import Destination, DestinationType, PipelineSpec, Source
from engine.config.repository import ConfigRepository
from engine.errors import ConfigError, ErrorKind, EtlError, RetryPolicy
from engine.identifiers import TableName
from engine.manager import Manager
from engine.pipeline.runner import ActivityView, RunnerEvent, RunnerState, RunnerView
from engine.postgres_errors import classify_connect_error
from engine.source.connection import source_conninfo
from engine.source.lsn import format_lsn
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from engine.status_board import (
    BatchView,
    BoardSnapshot,
    ErrorView,
    EventView,
    HealthView,
    PipelineView,
    SlotView,
    StatusBoard,
    TableView,
)

log = logging.getLogger("etl.collector")

RATE_SAMPLES = 60
LAG_SAMPLES = 120
CONNECT_TIMEOUT_SECONDS = 3  # a slow host delays one cycle by at most this, then backs off
QUERY_TIMEOUT_MS = 3000
MAX_RECONNECT_DELAY = 15.0

_DESTINATION_KINDS = (ErrorKind.DESTINATION, ErrorKind.DESTINATION_BUSY)

# One round trip per source: the WAL position even when none of the slots exists yet.
_SLOTS_SQL = """
SELECT w.lsn, s.slot_name, s.active, s.active_pid, {wal_status},
       (s.confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, (s.restart_lsn - '0/0'::pg_lsn)::bigint, {safe_wal_size}
FROM (SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END
              - '0/0'::pg_lsn)::bigint AS lsn) w
LEFT JOIN pg_replication_slots s ON s.slot_name = ANY(%s)
"""


def event_view(event: RunnerEvent) -> EventView:
    level = {"error": "error", "retry": "warning"}.get(event.kind, "info")
    return EventView(event.at, level, event.kind, event.message, event.pipeline, event.table)


@dataclass(frozen=True)
class _SlotRow:
    active: bool
    active_pid: int | None
    wal_status: str | None
    confirmed: int | None
    restart: int | None
    safe_wal_size: int | None


@dataclass(frozen=True)
class _SourcePoll:
    ok: bool
    detail: str
    wal_lsn: int | None = None
    slots: Mapping[str, _SlotRow] = field(default_factory=dict)


class _Reconnecting:
    """When a failed connection may be tried again: 1 s, then doubling up to a cap."""

    def __init__(self) -> None:
        self.next_at = 0.0
        self.delay = 1.0

    def failed(self, now: float) -> None:
        self.next_at = now + self.delay
        self.delay = min(self.delay * 2, MAX_RECONNECT_DELAY)

    def succeeded(self) -> None:
        self.next_at, self.delay = 0.0, 1.0


class _SourceLink:
    """The collector's own connection to one source (its thread only)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.conn: psycopg.Connection | None = None
        self.server_version = 0
        self.retry = _Reconnecting()
        self.last: _SourcePoll = _SourcePoll(False, "not polled yet")

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    def poll(self, slots: list[str], now: float) -> _SourcePoll:
        if self.conn is None and now < self.retry.next_at:
            return self.last  # still backing off: report the last failure
        what = f'source "{self.source.name}"'
        try:
            if self.conn is None:
                self.conn = psycopg.connect(
                    source_conninfo(self.source.dsn, "etl-tui console"),
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                )
                self.conn.execute(f"SET statement_timeout = {QUERY_TIMEOUT_MS}")
                self.server_version = int(self.conn.info.server_version)
            newer = self.server_version >= 130000  # wal_status and safe_wal_size came in PostgreSQL 13
            query = _SLOTS_SQL.format(
                wal_status="s.wal_status" if newer else "NULL::text",
                safe_wal_size="s.safe_wal_size" if newer else "NULL::bigint",
            )
            rows = self.conn.execute(query, (slots,)).fetchall()
        except psycopg.Error as exc:
            self.close()
            self.retry.failed(now)
            reason = classify_connect_error(exc, what, self.source.dsn).reason
            self.last = _SourcePoll(False, reason)
            return self.last
        self.retry.succeeded()
        found = {
            str(r[1]): _SlotRow(bool(r[2]), r[3], r[4], _int(r[5]), _int(r[6]), _int(r[7]))
            for r in rows
            if r[1] is not None
        }
        major = self.server_version // 10000
        self.last = _SourcePoll(True, f"PostgreSQL {major}, {len(found)}/{len(slots)} slot(s)", _int(rows[0][0]), found)
        return self.last


class _ConfigLink:
    """The collector's connection to the config DB and the last config it read (its thread only)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.repo: ConfigRepository | None = None
        self.retry = _Reconnecting()
        self.loaded_at = 0.0  # monotonic
        self.sources: list[Source] = []
        self.destinations: list[Destination] = []
        self.specs: list[PipelineSpec] = []
        self.error: str | None = None
        self.ever_loaded = False  # until then, what the manager runs stands in for the config

    def close(self) -> None:
        if self.repo is not None:
            with contextlib.suppress(psycopg.Error):
                self.repo.close()
            self.repo = None

    def load(self, now: float) -> None:
        if self.repo is None and now < self.retry.next_at:
            return
        try:
            if self.repo is None:
                # migrating is safe alongside the manager (an advisory lock) and spares a fresh config
                # DB a first failed read
                self.repo = ConfigRepository(self.url)
            self.sources, self.destinations, self.specs = self.repo.load_config()
        except (EtlError, psycopg.Error) as exc:
            self.close()
            self.retry.failed(now)
            self.error = exc.reason if isinstance(exc, EtlError) else f"config DB error: {str(exc).strip()}"
            self.loaded_at = now
            return
        self.retry.succeeded()
        self.error = None
        self.loaded_at = now
        self.ever_loaded = True


class Collector(threading.Thread):
    def __init__(
        self,
        manager: Manager,
        config_db_url: str,
        redis_client: redis.Redis,
        board: StatusBoard,
        *,
        interval: float = 1.0,
        events_limit: int = 1000,
        config_interval: float = 2.0,
    ) -> None:
        super().__init__(name="status-collector", daemon=True)
        self._manager = manager
        self._redis = redis_client
        self._board = board
        self._interval = interval
        self._config_interval = config_interval
        self._stop_event = threading.Event()
        self._events: deque[EventView] = deque(maxlen=events_limit)
        self._events_lock = threading.Lock()
        self._config_stale = threading.Event()
        # below: touched by the collector's thread only
        self._config = _ConfigLink(config_db_url)
        self._sources: dict[int, _SourceLink] = {}
        self._rates: dict[int, deque[float]] = {}
        self._last_total: dict[int, tuple[float, int]] = {}
        self._lag_history: dict[int, deque[int]] = {}
        self._health_was: dict[str, bool] = {}
        self._seen_reconcile = 0.0
        manager.add_listener(self._on_runner_event)

    # ---- inputs from other threads ------------------------------------------------------------
    def record(self, event: EventView) -> None:
        """Add an event (e.g. a console action) to the log the snapshots carry."""
        with self._events_lock:
            self._events.append(event)

    def refresh_config(self) -> None:
        """Re-read the config DB in the next cycle (after an edit)."""
        self._config_stale.set()

    def _on_runner_event(self, event: RunnerEvent) -> None:
        self.record(event_view(event))

    # ---- thread --------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self._manager.remove_listener(self._on_runner_event)
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                started = time.monotonic()
                try:
                    self.collect()
                except Exception:  # a bug here must not end the board: log it, try next cycle
                    log.exception("status collection failed")
                self._stop_event.wait(max(0.05, self._interval - (time.monotonic() - started)))
        finally:
            self._config.close()
            for link in self._sources.values():
                link.close()

    # ---- one cycle -----------------------------------------------------------------------------
    def collect(self) -> BoardSnapshot:
        """Build and publish one snapshot (the collector's thread, or a test, calls this)."""
        now_mono = time.monotonic()
        reconciled = self._manager.last_reconcile
        if (
            self._config_stale.is_set()
            or reconciled != self._seen_reconcile
            or now_mono - self._config.loaded_at >= self._config_interval
        ):
            self._config_stale.clear()
            self._seen_reconcile = reconciled
            self._config.load(now_mono)
        cfg = self._config
        if cfg.ever_loaded:
            specs, sources, destinations = cfg.specs, cfg.sources, cfg.destinations
        else:
            specs = list(self._manager.running_specs().values())
            sources, destinations = _unique_sources(specs), _unique_destinations(specs)
        runners = {r.spec.id: r for r in self._manager.runners.values()}
        views = {pid: r.view() for pid, r in runners.items()}
        now = time.time()

        redis_ok, redis_detail = self._ping_redis()
        polls = self._poll_sources(sources, specs, now_mono)

        pipelines: list[PipelineView] = []
        slots: list[SlotView] = []
        for spec in specs:
            view = views.get(spec.id)
            stored = self._stored_tables(spec, view, redis_ok)
            poll = polls.get(spec.source.id)
            slot = self._slot_view(spec, poll)
            slots.append(slot)
            row = poll.slots.get(spec.pipeline.slot_name) if poll is not None else None
            confirmed = row.confirmed if row is not None else None
            pipelines.append(self._pipeline_view(spec, view, stored, slot, confirmed, now, now_mono))

        health = [self._config_health()]
        health += [
            HealthView(f'source "{s.name}"', p.ok, p.detail)
            for s in sorted(sources, key=lambda s: s.name)
            if (p := polls.get(s.id)) is not None
        ]
        health.append(HealthView("Redis", redis_ok, redis_detail))
        health += self._destination_health(destinations, specs, views)
        self._note_health_changes(health, now)

        with self._events_lock:
            events = tuple(self._events)
        snapshot = BoardSnapshot(
            taken_at=now,
            health=tuple(health),
            pipelines=tuple(pipelines),
            slots=tuple(slots),
            events=events,
        )
        self._board.publish(snapshot)
        self._forget_gone({s.id for s in specs})
        return snapshot

    # ---- parts ---------------------------------------------------------------------------------
    def _ping_redis(self) -> tuple[bool, str]:
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return False, f"cannot reach Redis: {exc}"
        return True, ""

    def _poll_sources(self, sources: Iterable[Source], specs: list[PipelineSpec], now: float) -> dict[int, _SourcePoll]:
        slot_names: dict[int, list[str]] = {}
        for spec in specs:
            slot_names.setdefault(spec.source.id, []).append(spec.pipeline.slot_name)
        polls: dict[int, _SourcePoll] = {}
        wanted = {s.id: s for s in sources}
        for sid in list(self._sources):
            link = self._sources[sid]
            if sid not in wanted or link.source != wanted[sid]:  # removed, or its DSN or name changed
                link.close()
                del self._sources[sid]
        for sid, source in wanted.items():
            link = self._sources.setdefault(sid, _SourceLink(source))
            polls[sid] = link.poll(slot_names.get(sid, []), now)
        return polls

    def _stored_tables(
        self, spec: PipelineSpec, view: RunnerView | None, redis_ok: bool
    ) -> Mapping[TableName, TableState]:
        """Table phases: the runner's cache, else Redis (a paused pipeline), else nothing known."""
        if view is not None and view.tables:
            return view.tables
        if not redis_ok:
            return {}
        try:
            return PipelineState(self._redis, spec.id).load()
        except EtlError:
            return {}

    def _slot_view(self, spec: PipelineSpec, poll: _SourcePoll | None) -> SlotView:
        p = spec.pipeline
        history = self._lag_history.setdefault(spec.id, deque(maxlen=LAG_SAMPLES))
        row = poll.slots.get(p.slot_name) if poll is not None and poll.ok else None
        if row is None:
            unreadable = poll is None or not poll.ok
            return SlotView(
                pipeline=p.name,
                slot=p.slot_name,
                source=spec.source.name,
                active=False,
                active_pid=None,
                wal_status=None,
                confirmed_lag_bytes=None,
                restart_lag_bytes=None,
                safe_wal_size=None,
                lag_history=tuple(history),
                exists=not unreadable,  # unknown when unreadable: the error says why
                error=f"cannot read the slot: {poll.detail if poll else 'not polled yet'}" if unreadable else None,
            )
        wal = poll.wal_lsn if poll is not None else None
        confirmed = max(0, wal - row.confirmed) if wal is not None and row.confirmed is not None else None
        restart = max(0, wal - row.restart) if wal is not None and row.restart is not None else None
        if confirmed is not None:
            history.append(confirmed)
        return SlotView(
            pipeline=p.name,
            slot=p.slot_name,
            source=spec.source.name,
            active=row.active,
            active_pid=row.active_pid,
            wal_status=row.wal_status,
            confirmed_lag_bytes=confirmed,
            restart_lag_bytes=restart,
            safe_wal_size=row.safe_wal_size,
            lag_history=tuple(history),
        )

    def _pipeline_view(
        self,
        spec: PipelineSpec,
        view: RunnerView | None,
        stored: Mapping[TableName, TableState],
        slot: SlotView,
        slot_confirmed: int | None,
        now: float,
        now_mono: float,
    ) -> PipelineView:
        p = spec.pipeline
        activity = view.activity if view is not None else None
        if activity is None:
            found = self._manager.activity(spec.id)  # no runner now: what earlier runners did
            activity = found.view() if found is not None else None
        tables = tuple(_table_view(t, stored.get(t), activity) for t in p.tables)
        rates = self._rates.setdefault(spec.id, deque(maxlen=RATE_SAMPLES))
        total = activity.rows_total if activity is not None else 0
        previous = self._last_total.get(spec.id)
        if previous is not None:
            elapsed = now_mono - previous[0]
            if elapsed > 0:
                rates.append(max(0.0, (total - previous[1]) / elapsed))
        self._last_total[spec.id] = (now_mono, total)

        lag_bytes = slot.confirmed_lag_bytes
        if lag_bytes is None and view is not None and view.received_lsn and view.acked_lsn:
            lag_bytes = max(0, view.received_lsn - view.acked_lsn)
        # the slot's own position when it could be read (what the source will keep), else the runner's
        confirmed = slot_confirmed or (view.acked_lsn if view is not None else None)
        batches: tuple[BatchView, ...] = ()
        if activity is not None:
            batches = tuple(
                BatchView(b.at, p.name, b.rows, b.tables, b.write_seconds, _lsn(b.checkpoint)) for b in activity.batches
            )
        return PipelineView(
            name=p.name,
            source=spec.source.name,
            destination=spec.destination.name,
            destination_target=spec.destination.describe(),
            desired=str(p.status),
            actual=str(view.state) if view is not None else "stopped",
            tables=tables,
            rows_per_second=tuple(rates),
            lag_bytes=lag_bytes,
            lag_seconds=view.lag_seconds(now) if view is not None else None,
            confirmed_lsn=_lsn(confirmed),
            last_error=_runner_error(view) if view is not None else None,
            batches=batches,
        )

    def _config_health(self) -> HealthView:
        cfg = self._config
        if cfg.error is not None:
            return HealthView("config DB", False, cfg.error)
        manager_error = self._manager.config_error
        if manager_error is not None:
            return HealthView("config DB", False, f"engine: {manager_error.reason}")
        if not cfg.ever_loaded:
            return HealthView("config DB", False, "not read yet")
        n = len(cfg.specs)
        return HealthView("config DB", True, f"{n} pipeline{'s' if n != 1 else ''}")

    def _destination_health(
        self, destinations: Iterable[Destination], specs: list[PipelineSpec], views: Mapping[int, RunnerView]
    ) -> list[HealthView]:
        out = []
        for dest in sorted(destinations, key=lambda d: d.name):
            name = f'destination "{dest.name}"'
            failed = [
                views[s.id].last_error
                for s in specs
                if s.destination.id == dest.id
                and s.id in views
                and views[s.id].last_error is not None
                and views[s.id].last_error.kind in _DESTINATION_KINDS  # type: ignore[union-attr]
            ]
            if failed:
                out.append(HealthView(name, False, failed[0].reason))  # type: ignore[union-attr]
                continue
            if dest.type is DestinationType.DUCKDB:
                path = str(dest.config.get("path") or "")
                folder = Path(path).expanduser().absolute().parent
                if not path or not folder.is_dir():
                    out.append(HealthView(name, False, f"folder {folder} does not exist"))
                    continue
            if dest.type is DestinationType.SNOWFLAKE:
                problem = _snowflake_problem(dest)
                if problem is not None:
                    out.append(HealthView(name, False, problem))
                    continue
            out.append(HealthView(name, True, dest.describe()))
        return out

    def _note_health_changes(self, health: list[HealthView], now: float) -> None:
        """A component going down or coming back is an event too (the first look only if down)."""
        for h in health:
            was = self._health_was.get(h.component)
            self._health_was[h.component] = h.ok
            if was == h.ok or (was is None and h.ok):
                continue
            if h.ok:
                self.record(EventView(now, "info", "state", f"{h.component} is reachable again"))
            else:
                self.record(EventView(now, "warning", "error", f"{h.component} unavailable: {h.detail}"))

    def _forget_gone(self, ids: set[int]) -> None:
        for store in (self._rates, self._last_total, self._lag_history):
            for pid in [pid for pid in store if pid not in ids]:
                del store[pid]


def _snowflake_problem(dest: Destination) -> str | None:
    """What would keep a Snowflake destination from connecting that can be seen without
    connecting (its key file, the environment variables of its secrets); the connection itself
    is checked by its pipelines, whose errors the health row shows first."""
    try:
        config = destination_config(dest.type, dest.config, name=dest.name)
    except ConfigError as exc:
        return exc.reason
    unset = unset_env_vars(config)
    return f"${unset[0]} is not set in the engine's environment" if unset else None


def _table_view(table: TableName, st: TableState | None, activity: ActivityView | None) -> TableView:
    counts = activity.tables.get(table) if activity is not None else None
    progress = activity.copy_progress.get(table) if activity is not None else None
    phase = st.phase if st is not None else TablePhase.INIT
    error = None
    if st is not None and st.phase is TablePhase.ERRORED:
        error = ErrorView(
            kind=st.error_kind,
            reason=st.reason,
            hint=st.hint,
            retry_policy=str(st.retry_policy),
            next_retry_at=st.next_retry_at,
        )
    rows_copied = st.rows_copied if st is not None else 0
    copy_total = None
    if progress is not None and phase is TablePhase.DATA_SYNC:
        rows_copied, copy_total = progress
    return TableView(
        name=str(table),
        phase=str(phase),
        rows_copied=rows_copied,
        copy_total=copy_total,
        inserts=counts.inserts if counts else 0,
        updates=counts.updates if counts else 0,
        deletes=counts.deletes if counts else 0,
        last_event_at=counts.last_event_at if counts else None,
        error=error,
    )


def _runner_error(view: RunnerView) -> ErrorView | None:
    err = view.last_error
    if err is None:
        return None
    policy = err.retry
    if view.state is RunnerState.ERRORED and policy is RetryPolicy.TIMED:
        policy = RetryPolicy.MANUAL  # it gave up retrying: the operator's turn
    return ErrorView(
        kind=str(err.kind),
        reason=err.reason,
        hint=err.hint,
        retry_policy=str(policy),
        next_retry_at=view.next_retry_at if policy is RetryPolicy.TIMED else None,
    )


def _unique_sources(specs: list[PipelineSpec]) -> list[Source]:
    return list({s.source.id: s.source for s in specs}.values())


def _unique_destinations(specs: list[PipelineSpec]) -> list[Destination]:
    return list({s.destination.id: s.destination for s in specs}.values())


def _lsn(lsn: int | None) -> str | None:
    return format_lsn(lsn) if lsn else None


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
