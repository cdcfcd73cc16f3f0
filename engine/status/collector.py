"""The status collector: one thread that turns the engine's state into a :class:`Board`
about once a second, so the console only ever reads an immutable value and never does I/O.

Each cycle it merges:

- the config (desired state) — re-read from the config DB every ``config_interval`` seconds, at
  once after :meth:`Collector.refresh_config` or a reconcile of the manager, and otherwise reused,
  so the console adds a few small queries every couple of seconds and no more;
- the runners (actual state, table phases, counts, batches, copy progress) — read in memory;
- each source's replication slots, WAL rate and the alerts — the latest readings of the
  :class:`~engine.monitoring.wal_monitor.WalMonitor` (which polls the sources on threads of its own, so a
  source that hangs never holds up a cycle here);
- table phases of pipelines without a runner, and a PING — from Redis;
- the events the runners emit, alert notifications, and those :meth:`Collector.record` adds
  (console actions).

Any of the config DB, a source or Redis may be down: the board says so in its health rows and
publishing goes on. The config DB, when it failed, is tried again with a growing delay.

Measures:

- rows/s: the growth of the pipeline's applied-row total (streamed and copied rows written to
  the destination) between two cycles, divided by the time between them; the last 60 are kept.
- lag bytes: the source's WAL position minus the slot's ``confirmed_flush_lsn`` (what a restart
  replays); when the slot cannot be read, what the runner received minus what it confirmed.
- lag seconds: ``RunnerView.lag_seconds`` — now minus the later of the commit time of the last
  transaction durable at the destination and the last moment the runner had nothing pending.
  Every change still pending was committed after both, so this bounds its wait: about 0 while
  caught up, growing while the destination falls behind or the source is unreachable. (Comparing
  ``confirmed_flush_lsn`` with the WAL end instead would count WAL of other databases as lag.)

Each pipeline's values are built by :mod:`engine.status.pipeline_view`, as ``etl-tui status``
builds them; the rates and histories kept across cycles are what only this collector adds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import psycopg
import redis

from engine.config.destination_options import destination_config, unset_env_vars
from engine.config.models import Destination, DestinationType, PipelineSpec, Source
from engine.config.repository import ConfigRepository
from engine.errors import ConfigError, ErrorKind, EtlError
from engine.identifiers import TableName
from engine.monitoring.alerts import Alert, AlertStatus, Severity
from engine.monitoring.reconnect import Backoff
from engine.monitoring.slot_poller import SourceReading
from engine.monitoring.wal_monitor import WalMonitor
from engine.pipeline.activity import EventKind, RunnerEvent, RunnerView
from engine.pipeline.hosting import PipelineHost
from engine.state.store import PipelineState
from engine.state.table_state import TableState
from engine.status.board import Board, BoardFeed, EventView, HealthView, PipelineView, SlotView
from engine.status.pipeline_view import pipeline_view, slot_reading, slot_view

log = logging.getLogger("etl.collector")

RATE_SAMPLES = 60
LAG_SAMPLES = 120
MAX_RECONNECT_DELAY = 15.0

_DESTINATION_KINDS = (ErrorKind.DESTINATION, ErrorKind.DESTINATION_BUSY)


def event_view(event: RunnerEvent) -> EventView:
    level = {EventKind.ERROR: "error", EventKind.RETRY: "warning"}.get(event.kind, "info")
    return EventView(event.at, level, event.kind, event.message, event.pipeline, event.table)


def alert_event(alert: Alert) -> EventView:
    """An alert notification as a line of the event log."""
    if alert.status is AlertStatus.RESOLVED:
        return EventView(alert.at, "info", EventKind.ALERT, f"resolved {alert.rule}: {alert.summary}", alert.pipeline)
    level = "error" if alert.severity is Severity.CRITICAL else "warning"
    what = f"still firing {alert.rule} (reminder {alert.repeat})" if alert.repeat else f"firing {alert.rule}"
    return EventView(alert.at, level, EventKind.ALERT, f"{what}: {alert.summary}", alert.pipeline)


class _ConfigLink:
    """The collector's connection to the config DB and the last config it read (its thread only)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.repo: ConfigRepository | None = None
        self.retry = Backoff(MAX_RECONNECT_DELAY)
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
        manager: PipelineHost,
        config_db_url: str,
        redis_client: redis.Redis,
        feed: BoardFeed,
        *,
        interval: float = 1.0,
        events_limit: int = 1000,
        config_interval: float = 2.0,
        monitor: WalMonitor | None = None,
    ) -> None:
        """``monitor``: the engine's WAL monitor, started and stopped by its owner. Without one the
        collector runs a monitor of its own that only reads the slots (no alerts)."""
        super().__init__(name="status-collector", daemon=True)
        self._manager = manager
        self._redis = redis_client
        self._feed = feed
        self._interval = interval
        self._config_interval = config_interval
        self._stop_event = threading.Event()
        self._events: deque[EventView] = deque(maxlen=events_limit)
        self._events_lock = threading.Lock()
        self._config_stale = threading.Event()
        self._owns_monitor = monitor is None
        self._monitor = monitor or WalMonitor(config_db_url, interval=interval, config_interval=config_interval)
        # below: touched by the collector's thread only
        self._config = _ConfigLink(config_db_url)
        self._history_seq: dict[int, tuple[int, int]] = {}  # pipeline id → (source id, seq) last sampled
        self._rates: dict[int, deque[float]] = {}
        self._last_total: dict[int, tuple[float, int]] = {}
        self._lag_history: dict[int, deque[int]] = {}
        self._health_was: dict[str, bool] = {}
        self._seen_reconcile = 0.0
        manager.add_listener(self._on_runner_event)
        self._monitor.add_listener(self._on_alert)

    # ---- inputs from other threads ------------------------------------------------------------
    def record(self, event: EventView) -> None:
        """Add an event (e.g. a console action) to the log the boards carry."""
        with self._events_lock:
            self._events.append(event)

    def refresh_config(self) -> None:
        """Re-read the config DB in the next cycle (after an edit)."""
        self._config_stale.set()

    def _on_runner_event(self, event: RunnerEvent) -> None:
        self.record(event_view(event))

    def _on_alert(self, alert: Alert) -> None:
        self.record(alert_event(alert))

    # ---- thread --------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self._manager.remove_listener(self._on_runner_event)
        self._monitor.remove_listener(self._on_alert)
        if self.is_alive():
            self.join(timeout)
        if self._owns_monitor:
            self._monitor.stop()

    def run(self) -> None:
        if self._owns_monitor and not self._monitor.is_alive():
            self._monitor.start()
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

    # ---- one cycle -----------------------------------------------------------------------------
    def collect(self) -> Board:
        """Build and publish one board (the collector's thread, or a test, calls this)."""
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
            self._monitor.refresh_config()  # so a new or edited pipeline's slot is watched at once
        cfg = self._config
        if cfg.ever_loaded:
            specs, sources, destinations = cfg.specs, cfg.sources, cfg.destinations
        else:
            specs = list(self._manager.running_specs().values())
            sources, destinations = _unique_sources(specs), unique_destinations(specs)
        runners = {r.spec.id: r for r in self._manager.runners.values()}
        views = {pid: r.view() for pid, r in runners.items()}
        now = time.time()

        redis_ok, redis_detail = self._ping_redis()
        wal = self._monitor.latest()
        readings = wal.sources

        pipelines: list[PipelineView] = []
        slots: list[SlotView] = []
        for spec in specs:
            view = views.get(spec.id)
            reading = readings.get(spec.source.id)
            slots.append(slot_view(spec, reading, self._lag_samples(spec, reading)))
            pipelines.append(
                self._pipeline_view(spec, view, self._stored_tables(spec, view, redis_ok), reading, now, now_mono)
            )

        health = [self._config_health()]
        # a source the monitor has not read yet gets no row (rather than a false alarm at start)
        health += [
            HealthView(f'source "{s.name}"', r.ok, r.detail)
            for s in sorted(sources, key=lambda s: s.name)
            if (r := readings.get(s.id)) is not None
        ]
        health.append(HealthView("Redis", redis_ok, redis_detail))
        health += destination_health(destinations, specs, views)
        self._note_health_changes(health, now)

        with self._events_lock:
            events = tuple(self._events)
        board = Board(
            taken_at=now,
            health=tuple(health),
            pipelines=tuple(pipelines),
            slots=tuple(slots),
            events=events,
            alerts=wal.firing,
            alert_history=wal.history,
            alert_delivery=wal.delivery,
        )
        self._feed.publish(board)
        self._forget_gone({s.id for s in specs})
        return board

    # ---- parts ---------------------------------------------------------------------------------
    def _ping_redis(self) -> tuple[bool, str]:
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return False, f"cannot reach Redis: {exc}"
        return True, ""

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

    def _lag_samples(self, spec: PipelineSpec, reading: SourceReading | None) -> tuple[int, ...]:
        """The slot's confirmed lag history, with ``reading``'s sample added if it is a new one."""
        history = self._lag_history.setdefault(spec.id, deque(maxlen=LAG_SAMPLES))
        row = slot_reading(spec, reading)
        if row is not None and row.confirmed_lag_bytes is not None:
            assert reading is not None
            sample = (reading.source_id, reading.seq)
            if self._history_seq.get(spec.id) != sample:
                history.append(row.confirmed_lag_bytes)  # one sample per reading, however often we look
                self._history_seq[spec.id] = sample
        return tuple(history)

    def _pipeline_view(
        self,
        spec: PipelineSpec,
        view: RunnerView | None,
        stored: Mapping[TableName, TableState],
        reading: SourceReading | None,
        now: float,
        now_mono: float,
    ) -> PipelineView:
        activity = view.activity if view is not None else None
        if activity is None:
            found = self._manager.activity(spec.id)  # no runner now: what earlier runners did
            activity = found.view() if found is not None else None
        rates = self._rates.setdefault(spec.id, deque(maxlen=RATE_SAMPLES))
        total = activity.rows_total if activity is not None else 0
        previous = self._last_total.get(spec.id)
        if previous is not None:
            elapsed = now_mono - previous[0]
            if elapsed > 0:
                rates.append(max(0.0, (total - previous[1]) / elapsed))
        self._last_total[spec.id] = (now_mono, total)
        return pipeline_view(
            spec,
            view,
            stored,
            slot_reading(spec, reading),
            now=now,
            activity=activity,
            rows_per_second=tuple(rates),
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
        return HealthView("config DB", True, pipeline_count(len(cfg.specs)))

    def _note_health_changes(self, health: list[HealthView], now: float) -> None:
        """A component going down or coming back is an event too (the first look only if down)."""
        for h in health:
            was = self._health_was.get(h.component)
            self._health_was[h.component] = h.ok
            if was == h.ok or (was is None and h.ok):
                continue
            if h.ok:
                self.record(EventView(now, "info", EventKind.STATE, f"{h.component} is reachable again"))
            else:
                self.record(EventView(now, "warning", EventKind.ERROR, f"{h.component} unavailable: {h.detail}"))

    def _forget_gone(self, ids: set[int]) -> None:
        for store in (self._rates, self._last_total, self._lag_history, self._history_seq):
            for pid in [pid for pid in store if pid not in ids]:
                del store[pid]


def destination_health(
    destinations: Iterable[Destination], specs: list[PipelineSpec], views: Mapping[int, RunnerView]
) -> list[HealthView]:
    """A health row per destination: the error of a pipeline writing to it, else what can be seen
    of it without connecting (its folder, its Snowflake secrets)."""
    out = []
    for dest in sorted(destinations, key=lambda d: d.name):
        name = f'destination "{dest.name}"'
        failed = [
            err
            for s in specs
            if s.destination.id == dest.id
            and (view := views.get(s.id)) is not None
            and (err := view.last_error) is not None
            and err.kind in _DESTINATION_KINDS
        ]
        if failed:
            out.append(HealthView(name, False, failed[0].reason))
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


def _unique_sources(specs: list[PipelineSpec]) -> list[Source]:
    return list({s.source.id: s.source for s in specs}.values())


def unique_destinations(specs: list[PipelineSpec]) -> list[Destination]:
    return list({s.destination.id: s.destination for s in specs}.values())


def pipeline_count(n: int) -> str:
    """The config DB's health detail: how many pipelines it holds."""
    return f"{n} pipeline{'s' if n != 1 else ''}"
