"""The WAL monitor: every few seconds, each source's replication slots and WAL position, and the
alerts they raise.

One poller thread per configured source keeps its own connection (short connect and statement
timeouts, TCP keepalives, reconnects with a growing delay), so a source that hangs or is gone only
stalls its own readings. Each reading is a frozen :class:`SourceReading`:

- the source's WAL position (``pg_current_wal_lsn()``, or the receive position on a standby);
- per slot of the configured pipelines: active / active_pid, wal_status, safe_wal_size, and the lag
  in bytes from ``confirmed_flush_lsn`` (what a restart replays) and ``restart_lsn`` (what the
  source keeps);
- the source's WAL growth rate: bytes/s between successive positions, smoothed over ~30 s;
- per slot, the predicted seconds until ``safe_wal_size`` runs out (None when unbounded, or when
  nothing eats into it).

The monitor's own thread reads the config DB (every pipeline, paused ones too: their slots hold
WAL as well), starts and stops pollers, feeds the latest readings to :class:`~engine.monitoring.alerts.AlertRules`,
records and sends the notifications, sets the slot and WAL metrics, and publishes a frozen
:class:`WalView` that the console's collector reads — so the console does not poll the
sources a second time. Nothing here ever waits on a webhook or blocks replication.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

import psycopg
import redis
from prometheus_client import Gauge
from psycopg.conninfo import make_conninfo

from engine.config.models import PipelineSpec, PipelineStatus, Source
from engine.config.repository import ConfigRepository
from engine.errors import EtlError
from engine.metrics import METRICS, Metrics
from engine.monitoring.alerts import (
    Alert,
    AlertLog,
    AlertRules,
    AlertStatus,
    DeliveryStats,
    Severity,
    SlotObservation,
    WebhookSender,
)
from engine.postgres_errors import classify_connect_error
from engine.runtime.manager import Manager
from engine.settings import AlertThresholds, Settings
from engine.source.connection import source_conninfo

log = logging.getLogger("etl.wal_monitor")

CONNECT_TIMEOUT_SECONDS = 3
QUERY_TIMEOUT_MS = 3000
MAX_RECONNECT_DELAY = 30.0
GROWTH_HORIZON_SECONDS = 30.0
# restart_lsn of a healthy slot moves in jumps (at running-xacts records), so its retained WAL is a
# sawtooth: smooth it over longer than the jumps are apart
RETAINED_HORIZON_SECONDS = 120.0
WAL_STATUSES = ("reserved", "extended", "unreserved", "lost")

LagSeconds = Callable[[int], float | None]
"""The lag age of a pipeline (by id) as its runner measures it; None without a runner."""

# One round trip per source: the WAL position even when none of the slots exists yet.
_SLOTS_SQL = """
SELECT w.lsn, s.slot_name, s.active, s.active_pid, {wal_status},
       (s.confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, (s.restart_lsn - '0/0'::pg_lsn)::bigint, {safe_wal_size}
FROM (SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END
              - '0/0'::pg_lsn)::bigint AS lsn) w
LEFT JOIN pg_replication_slots s ON s.slot_name = ANY(%s)
"""


@dataclass(frozen=True)
class SlotReading:
    slot: str
    exists: bool
    active: bool = False
    active_pid: int | None = None
    wal_status: str | None = None  # None before PostgreSQL 13
    confirmed_lsn: int | None = None
    confirmed_lag_bytes: int | None = None
    restart_lag_bytes: int | None = None
    safe_wal_size: int | None = None  # None: max_slot_wal_keep_size = -1 (unbounded)
    exhaustion_seconds: float | None = None


@dataclass(frozen=True)
class SourceReading:
    source_id: int
    source: str
    ok: bool
    detail: str  # health: the server version and slots found, or why it cannot be read
    at: float  # epoch seconds
    seq: int  # grows with every reading of this source: tells a fresh reading from a repeated one
    wal_lsn: int | None = None
    growth_bytes_per_second: float | None = None
    slots: Mapping[str, SlotReading] = field(default_factory=dict)  # every watched slot, found or not


@dataclass(frozen=True)
class WalView:
    """The monitor's latest view: readings by source id and the state of alerting."""

    taken_at: float = 0.0
    sources: Mapping[int, SourceReading] = field(default_factory=dict)
    firing: tuple[Alert, ...] = ()
    history: tuple[Alert, ...] = ()  # newest last
    delivery: DeliveryStats | None = None  # None: no ALERT_WEBHOOK_URL
    alerting: bool = False


class GrowthRate:
    """An exponentially smoothed rate (per second) of a value read at irregular times; the weight
    of each step depends on its length, so a late reading counts for the time it covers."""

    def __init__(self, horizon: float) -> None:
        self._horizon = horizon
        self._last: tuple[float, int] | None = None
        self.rate: float | None = None

    def observe(self, value: int, at: float) -> float | None:
        if self._last is not None:
            then, before = self._last
            elapsed = at - then
            if elapsed <= 0:
                return self.rate
            step = (value - before) / elapsed
            weight = 1 - math.exp(-elapsed / self._horizon)
            self.rate = step if self.rate is None else self.rate + weight * (step - self.rate)
        self._last = (at, value)
        return self.rate


def exhaustion_seconds(
    safe_wal_size: int | None, wal_growth: float | None, *, active: bool, retained_growth: float | None
) -> float | None:
    """Seconds until ``safe_wal_size`` runs out: at the source's WAL rate for a slot nobody reads,
    and at the rate its retained WAL grows for one that is read (a reader that keeps up never runs
    out, whatever the WAL rate). None when unbounded, already out, or not shrinking."""
    if safe_wal_size is None or safe_wal_size <= 0 or wal_growth is None:
        return None
    rate = wal_growth if not active else min(wal_growth, retained_growth or 0.0)
    if rate < 1.0:  # below a byte a second: nothing eats into it
        return None
    return safe_wal_size / rate


class Backoff:
    """When a failed connection may be tried again: 1 s, then doubling up to ``cap``."""

    def __init__(self, cap: float = MAX_RECONNECT_DELAY) -> None:
        self.next_at = 0.0
        self.delay = 1.0
        self._cap = cap

    def failed(self, now: float) -> None:
        self.next_at = now + self.delay
        self.delay = min(self.delay * 2, self._cap)

    def succeeded(self) -> None:
        self.next_at, self.delay = 0.0, 1.0


def _connect_options() -> dict[str, int]:
    """Keepalives so a source that vanishes (no FIN) is noticed in seconds, not hours."""
    options = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
    if psycopg.pq.version() >= 120000:  # tcp_user_timeout came in libpq 12
        options["tcp_user_timeout"] = 10_000
    return options


class SourcePoller(threading.Thread):
    """Reads one source's slots every ``interval`` seconds on a connection of its own."""

    def __init__(self, source: Source, interval: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name=f"wal-monitor {source.name}", daemon=True)
        self.source = source
        self._interval = interval
        self._clock = clock
        self._stop_event = threading.Event()
        self._slots: tuple[str, ...] = ()
        self._conn: psycopg.Connection | None = None
        self._server_version = 0
        self._backoff = Backoff()
        self._seq = 0
        self._growth = GrowthRate(GROWTH_HORIZON_SECONDS)
        self._retained: dict[str, GrowthRate] = {}
        self._failure: tuple[str, float] | None = None
        self._latest: SourceReading | None = None
        self._lock = threading.Lock()

    def watch(self, slots: Sequence[str]) -> None:
        self._slots = tuple(sorted(set(slots)))

    def latest(self) -> SourceReading | None:
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                started = time.monotonic()
                try:
                    reading = self.poll()
                except Exception:  # a bug must not silence the source: log it, read again later
                    log.exception("reading the slots of source %s failed", self.source.name)
                    reading = self._reading(False, "internal error reading the slots (see the log)")
                with self._lock:
                    self._latest = reading
                self._stop_event.wait(max(0.05, self._interval - (time.monotonic() - started)))
        finally:
            self._close()

    def poll(self) -> SourceReading:
        now_mono = time.monotonic()
        if self._conn is None and now_mono < self._backoff.next_at and self._failure is not None:
            return self._reading(False, self._failure[0])  # still waiting to reconnect
        slots = self._slots
        try:
            if self._conn is None:
                conninfo = make_conninfo(source_conninfo(self.source.dsn, "etl-tui wal monitor"), **_connect_options())
                self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
                self._conn.execute(f"SET statement_timeout = {QUERY_TIMEOUT_MS}")
                self._server_version = int(self._conn.info.server_version)
            newer = self._server_version >= 130000  # wal_status and safe_wal_size came in PostgreSQL 13
            query = _SLOTS_SQL.format(
                wal_status="s.wal_status" if newer else "NULL::text",
                safe_wal_size="s.safe_wal_size" if newer else "NULL::bigint",
            )
            rows = self._conn.execute(query, (list(slots),)).fetchall()
        except (psycopg.Error, EtlError) as exc:
            self._close()
            self._backoff.failed(time.monotonic())
            if isinstance(exc, EtlError):
                reason = exc.reason
            else:
                reason = classify_connect_error(exc, f'source "{self.source.name}"', self.source.dsn).reason
            self._failure = (reason, self._clock())
            return self._reading(False, reason)
        self._backoff.succeeded()
        self._failure = None
        at = self._clock()
        wal = _int(rows[0][0])
        growth = self._growth.observe(wal, at) if wal is not None else self._growth.rate
        found = {str(r[1]): r for r in rows if r[1] is not None}
        readings: dict[str, SlotReading] = {}
        for name in slots:
            r = found.get(name)
            if r is None:
                readings[name] = SlotReading(name, exists=False)
                self._retained.pop(name, None)
                continue
            confirmed, restart, safe = _int(r[5]), _int(r[6]), _int(r[7])
            confirmed_lag = max(0, wal - confirmed) if wal is not None and confirmed is not None else None
            restart_lag = max(0, wal - restart) if wal is not None and restart is not None else None
            retained = self._retained.setdefault(name, GrowthRate(RETAINED_HORIZON_SECONDS))
            retained_growth = retained.observe(restart_lag, at) if restart_lag is not None else retained.rate
            readings[name] = SlotReading(
                slot=name,
                exists=True,
                active=bool(r[2]),
                active_pid=r[3],
                wal_status=r[4],
                confirmed_lsn=confirmed,
                confirmed_lag_bytes=confirmed_lag,
                restart_lag_bytes=restart_lag,
                safe_wal_size=safe,
                exhaustion_seconds=exhaustion_seconds(safe, growth, active=bool(r[2]), retained_growth=retained_growth),
            )
        for name in [n for n in self._retained if n not in readings]:
            del self._retained[name]
        major = self._server_version // 10000
        detail = f"PostgreSQL {major}, {sum(s.exists for s in readings.values())}/{len(slots)} slot(s)"
        return self._reading(True, detail, at=at, wal=wal, growth=growth, slots=readings)

    def _reading(
        self,
        ok: bool,
        detail: str,
        *,
        at: float | None = None,
        wal: int | None = None,
        growth: float | None = None,
        slots: Mapping[str, SlotReading] | None = None,
    ) -> SourceReading:
        self._seq += 1
        return SourceReading(
            source_id=self.source.id,
            source=self.source.name,
            ok=ok,
            detail=detail,
            at=self._clock() if at is None else at,
            seq=self._seq,
            wal_lsn=wal,
            growth_bytes_per_second=growth,
            slots=MappingProxyType(dict(slots or {})),
        )

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def runner_lag_seconds(manager: Manager) -> LagSeconds:
    """The lag age of each pipeline as its runner in ``manager`` measures it."""

    def lag(pipeline_id: int) -> float | None:
        runner = manager.runners.get(pipeline_id)
        return runner.view().lag_seconds(time.time()) if runner is not None else None

    return lag


class WalMonitor(threading.Thread):
    """Polls every configured source's slots, evaluates the alert rules, publishes :class:`WalView`.

    ``thresholds`` None: readings only (no alerts). ``webhook_url``: where notifications go (none:
    they are still evaluated and recorded). ``redis_client``: where the alert history is kept for
    ``etl-tui status`` (none: memory only). ``lag_seconds``: the runners' lag age by pipeline id.
    ``reconciled``: when the engine last applied the config (the config is read again when it
    changes, so a pause is known at once; otherwise every ``config_interval`` seconds).
    """

    def __init__(
        self,
        config_db_url: str,
        *,
        thresholds: AlertThresholds | None = None,
        webhook_url: str | None = None,
        redis_client: redis.Redis | None = None,
        lag_seconds: LagSeconds | None = None,
        reconciled: Callable[[], float] | None = None,
        interval: float = 2.0,
        config_interval: float = 10.0,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = METRICS,
        sender: WebhookSender | None = None,
    ) -> None:
        super().__init__(name="wal-monitor", daemon=True)
        self._url = config_db_url
        self._interval = interval
        self._config_interval = config_interval
        self._clock = clock
        self._metrics = metrics
        self._lag_seconds = lag_seconds
        self._reconciled = reconciled
        self._seen_reconcile = 0.0
        self._rules = AlertRules(thresholds) if thresholds is not None else None
        self._log = AlertLog(redis_client) if thresholds is not None else None
        self._closes_redis: redis.Redis | None = None  # a client made for the monitor, closed with it
        self._sender = sender or (WebhookSender(webhook_url, metrics=metrics) if webhook_url else None)
        self._stop_event = threading.Event()
        self._config_stale = threading.Event()
        self._listeners: tuple[Callable[[Alert], None], ...] = ()
        self._latest = WalView(alerting=self._rules is not None)
        self._lock = threading.Lock()
        # below: the monitor's thread only
        self._repo: ConfigRepository | None = None
        self._config_backoff = Backoff()
        self._config_loaded_at: float | None = None  # monotonic
        self._sources: list[Source] = []
        self._specs: list[PipelineSpec] = []
        self._pollers: dict[int, SourcePoller] = {}
        self._evaluated_seq: dict[int, int] = {}
        self._metric_labels: set[tuple[str, str]] = set()
        self._growth_labels: set[str] = set()
        self._firing_labels: set[tuple[str, str, str]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, manager: Manager | None = None, *, redis_client: redis.Redis | None = None
    ) -> WalMonitor:
        """The engine's monitor: thresholds, webhook and interval from the settings, the lag age
        and reconciles of ``manager``'s runners, and a Redis client of its own with short timeouts
        (a stuck Redis delays only the alert history, never replication)."""
        own = redis_client is None
        client = redis_client or redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        url = settings.alert_webhook_url
        if url and urlsplit(url).scheme == "http" and urlsplit(url).hostname not in ("localhost", "127.0.0.1", "::1"):
            log.warning(
                "ALERT_WEBHOOK_URL uses plain http: notifications (and any token in the URL) travel unencrypted"
            )
        monitor = cls(
            settings.config_db_url,
            thresholds=settings.alerts,
            webhook_url=settings.alert_webhook_url,
            redis_client=client,
            lag_seconds=runner_lag_seconds(manager) if manager is not None else None,
            reconciled=(lambda: manager.last_reconcile) if manager is not None else None,
            interval=settings.wal_monitor_interval,
        )
        monitor._closes_redis = client if own else None
        return monitor

    # ---- for other threads ------------------------------------------------------------------
    def latest(self) -> WalView:
        with self._lock:
            return self._latest

    def refresh_config(self) -> None:
        """Read the config DB again in the next round (after an edit or a reconcile)."""
        self._config_stale.set()

    def add_listener(self, listener: Callable[[Alert], None]) -> None:
        """Also send every notification to ``listener`` (from the monitor's thread)."""
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Callable[[Alert], None]) -> None:
        self._listeners = tuple(fn for fn in self._listeners if fn is not listener)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    # ---- thread -------------------------------------------------------------------------------
    def run(self) -> None:
        if self._sender is not None:
            self._sender.start()
        if self._rules is not None and self._log is not None:
            self._rules.restore(self._log.load())
        try:
            while not self._stop_event.is_set():
                started = time.monotonic()
                try:
                    self.cycle()
                except Exception:  # a bug here must not end monitoring: log it, try next round
                    log.exception("WAL monitor round failed")
                self._stop_event.wait(max(0.05, self._interval - (time.monotonic() - started)))
        finally:
            for poller in self._pollers.values():
                poller.stop()
            for poller in self._pollers.values():
                poller.join(1.0)  # a poller stuck in a query is a daemon thread: it ends with the process
            self._pollers.clear()
            if self._repo is not None:
                with contextlib.suppress(psycopg.Error):
                    self._repo.close()
            if self._sender is not None:
                self._sender.stop()
            if self._closes_redis is not None:
                self._closes_redis.close()

    def cycle(self) -> WalView:
        """One round: config, pollers, metrics, alerts; publishes and returns the snapshot."""
        self._load_config()
        self._sync_pollers()
        now = self._clock()
        readings = {sid: r for sid, p in self._pollers.items() if (r := self._fresh_or_stale(p, now)) is not None}
        self._set_metrics(readings)
        # before the config was ever read every slot would look removed, and its alerts resolved
        if self._rules is not None and self._log is not None and self._config_loaded_at is not None:
            notices = self._rules.evaluate(self._observations(readings), now)
            for alert in notices:
                self._notify(alert)
            if notices:
                self._log.set_firing(self._rules.firing())
            self._log.flush()
            self._set_alert_metrics()
        for sid, r in readings.items():
            self._evaluated_seq[sid] = r.seq
        snapshot = WalView(
            taken_at=now,
            sources=MappingProxyType(readings),
            firing=self._rules.firing() if self._rules is not None else (),
            history=self._log.history() if self._log is not None else (),
            delivery=self._sender.stats() if self._sender is not None else None,
            alerting=self._rules is not None,
        )
        with self._lock:
            self._latest = snapshot
        return snapshot

    # ---- parts --------------------------------------------------------------------------------
    def _load_config(self) -> None:
        mono = time.monotonic()
        due = self._config_loaded_at is None or mono - self._config_loaded_at >= self._config_interval
        reconciled = self._reconciled() if self._reconciled is not None else 0.0
        if reconciled != self._seen_reconcile:
            self._seen_reconcile = reconciled
            self._config_stale.set()
        if not (due or self._config_stale.is_set()) or mono < self._config_backoff.next_at:
            return
        self._config_stale.clear()
        try:
            if self._repo is None:
                self._repo = ConfigRepository(self._url)
            self._sources, _, self._specs = self._repo.load_config()
        except (EtlError, psycopg.Error) as exc:
            if self._repo is not None:
                with contextlib.suppress(psycopg.Error):
                    self._repo.close()
                self._repo = None
            self._config_backoff.failed(mono)
            # the last config read stays in use: slots keep being watched while the config DB is away
            log.warning("WAL monitor cannot read the config DB (%s); retry in %.0fs", exc, self._config_backoff.delay)
            return
        self._config_backoff.succeeded()
        self._config_loaded_at = mono

    def _sync_pollers(self) -> None:
        wanted = {s.id: s for s in self._sources}
        for sid in list(self._pollers):
            poller = self._pollers[sid]
            if sid not in wanted or poller.source != wanted[sid]:  # removed, or its DSN or name changed
                poller.stop()
                del self._pollers[sid]
                self._evaluated_seq.pop(sid, None)
        slots: dict[int, list[str]] = {}
        for spec in self._specs:
            slots.setdefault(spec.source.id, []).append(spec.pipeline.slot_name)
        for sid, source in wanted.items():
            existing = self._pollers.get(sid)
            if existing is not None:
                existing.watch(slots.get(sid, []))
                continue
            poller = SourcePoller(source, self._interval, self._clock)
            poller.watch(slots.get(sid, []))
            self._pollers[sid] = poller
            poller.start()

    def _fresh_or_stale(self, poller: SourcePoller, now: float) -> SourceReading | None:
        """The poller's latest reading, or a failure if it has not answered for too long (stuck in
        a query on a half-open connection: its keepalives will end that, meanwhile say so)."""
        reading = poller.latest()
        if reading is None:
            return None
        silent = now - reading.at
        if reading.ok and silent > 3 * self._interval + CONNECT_TIMEOUT_SECONDS + QUERY_TIMEOUT_MS / 1000:
            return SourceReading(
                reading.source_id,
                reading.source,
                False,
                f'source "{reading.source}" has not answered for {silent:.0f}s',
                reading.at,
                reading.seq,
                growth_bytes_per_second=reading.growth_bytes_per_second,
            )
        return reading

    def _observations(self, readings: Mapping[int, SourceReading]) -> list[SlotObservation]:
        out = []
        for spec in self._specs:
            p = spec.pipeline
            reading = readings.get(spec.source.id)
            fresh = reading is not None and reading.ok and reading.seq != self._evaluated_seq.get(spec.source.id)
            slot = reading.slots.get(p.slot_name) if reading is not None and fresh else None
            lag = self._lag_seconds(spec.id) if self._lag_seconds is not None else None
            out.append(
                SlotObservation(
                    source=spec.source.name,
                    pipeline=p.name,
                    slot=p.slot_name,
                    should_run=p.status is PipelineStatus.START,
                    readable=slot is not None,
                    exists=slot.exists if slot is not None else True,
                    active=slot.active if slot is not None else False,
                    wal_status=slot.wal_status if slot is not None else None,
                    lag_bytes=slot.confirmed_lag_bytes if slot is not None else None,
                    exhaustion_seconds=slot.exhaustion_seconds if slot is not None else None,
                    lag_seconds=lag,
                )
            )
        return out

    def _notify(self, alert: Alert) -> None:
        assert self._log is not None
        self._log.record(alert)
        if alert.status is AlertStatus.RESOLVED:
            log.info("alert %s resolved for pipeline %s: %s", alert.rule, alert.pipeline, alert.summary)
        else:
            level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
            log.log(level, "alert %s firing for pipeline %s: %s", alert.rule, alert.pipeline, alert.summary)
        if self._sender is not None:
            self._sender.offer(alert.payload())
        for listener in self._listeners:
            try:
                listener(alert)
            except Exception:  # an observer must never stop alerting
                log.exception("alert listener failed")

    def _set_metrics(self, readings: Mapping[int, SourceReading]) -> None:
        m = self._metrics
        labels: set[tuple[str, str]] = set()
        growth_labels: set[str] = set()
        for reading in readings.values():
            if reading.growth_bytes_per_second is not None:
                m.wal_growth.labels(source=reading.source).set(max(0.0, reading.growth_bytes_per_second))
                growth_labels.add(reading.source)
        for spec in self._specs:
            source_reading = readings.get(spec.source.id)
            slot = (
                source_reading.slots.get(spec.pipeline.slot_name)
                if source_reading is not None and source_reading.ok
                else None
            )
            if slot is None or not slot.exists:
                continue  # unknown: stale series are removed below rather than left at old values
            key = (spec.pipeline.name, slot.slot)
            labels.add(key)
            pl = {"pipeline": key[0], "slot": key[1]}
            _set_or_remove(m.lag_bytes, slot.confirmed_lag_bytes, **pl, position="confirmed_flush")
            _set_or_remove(m.lag_bytes, slot.restart_lag_bytes, **pl, position="restart")
            m.slot_active.labels(**pl).set(1 if slot.active else 0)
            for status in WAL_STATUSES:
                m.slot_wal_status.labels(**pl, status=status).set(1 if slot.wal_status == status else 0)
            _set_or_remove(m.slot_safe_wal_size, slot.safe_wal_size, **pl)
            _set_or_remove(m.wal_exhaustion, slot.exhaustion_seconds, **pl)
        for pipeline, slot_name in self._metric_labels - labels:
            pl = {"pipeline": pipeline, "slot": slot_name}
            for position in ("confirmed_flush", "restart"):
                _set_or_remove(m.lag_bytes, None, **pl, position=position)
            _set_or_remove(m.slot_active, None, **pl)
            for status in WAL_STATUSES:
                _set_or_remove(m.slot_wal_status, None, **pl, status=status)
            _set_or_remove(m.slot_safe_wal_size, None, **pl)
            _set_or_remove(m.wal_exhaustion, None, **pl)
        for source in self._growth_labels - growth_labels:
            _set_or_remove(m.wal_growth, None, source=source)
        self._metric_labels, self._growth_labels = labels, growth_labels

    def _set_alert_metrics(self) -> None:
        assert self._rules is not None
        now_firing = {(a.source, a.slot, str(a.rule)) for a in self._rules.firing()}
        for source, slot, rule in now_firing | self._firing_labels:
            self._metrics.alerts_firing.labels(source=source, slot=slot, rule=rule).set(
                1 if (source, slot, rule) in now_firing else 0
            )
        self._firing_labels |= now_firing


def _set_or_remove(gauge: Gauge, value: float | None, **labels: str) -> None:
    """Set the series, or remove it when the value is unknown (absent beats a stale number).
    ``labels`` in the gauge's label order: remove() takes them by position."""
    if value is None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels.values())
        return
    gauge.labels(**labels).set(value)


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
