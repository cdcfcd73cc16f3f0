"""The WAL monitor: every few seconds, each source's replication slots and WAL position, and the
alerts they raise.

One :class:`~engine.monitoring.slot_poller.SourcePoller` thread per configured source takes the
readings (:class:`~engine.monitoring.slot_poller.SourceReading`: WAL position and growth, and per
slot its lag, wal_status, safe_wal_size and time to exhaustion), so a source that hangs or is gone
only stalls its own readings.

The monitor's own thread reads the config DB (every pipeline, paused ones too: their slots hold
WAL as well), starts and stops pollers, feeds the latest readings to :class:`~engine.monitoring.alerts.AlertRules`,
records (:mod:`engine.monitoring.alert_log`) and sends (:mod:`engine.monitoring.webhook`) the
notifications, sets the slot and WAL metrics, and publishes a frozen :class:`WalView` that the
console's collector reads — so the console does not poll the sources a second time. Nothing here
ever waits on a webhook or blocks replication.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

import psycopg
import redis
from prometheus_client import Gauge

from engine.config.models import PipelineSpec, PipelineStatus, Source
from engine.config.repository import ConfigRepository
from engine.errors import EtlError
from engine.metrics import METRICS, Metrics
from engine.monitoring.alert_log import AlertLog
from engine.monitoring.alerts import Alert, AlertRules, AlertStatus, Severity, SlotObservation
from engine.monitoring.reconnect import Backoff
from engine.monitoring.slot_poller import CONNECT_TIMEOUT_SECONDS, QUERY_TIMEOUT_MS, SourcePoller, SourceReading
from engine.monitoring.webhook import DeliveryStats, WebhookSender
from engine.pipeline.hosting import PipelineHost
from engine.settings import AlertThresholds, Settings

log = logging.getLogger("etl.wal_monitor")

WAL_STATUSES = ("reserved", "extended", "unreserved", "lost")

LagSeconds = Callable[[int], float | None]
"""The lag age of a pipeline (by id) as its runner measures it; None without a runner."""


@dataclass(frozen=True)
class WalView:
    """The monitor's latest view: readings by source id and the state of alerting."""

    taken_at: float = 0.0
    sources: Mapping[int, SourceReading] = field(default_factory=dict)
    firing: tuple[Alert, ...] = ()
    history: tuple[Alert, ...] = ()  # newest last
    delivery: DeliveryStats | None = None  # None: no ALERT_WEBHOOK_URL
    alerting: bool = False


def runner_lag_seconds(host: PipelineHost) -> LagSeconds:
    """The lag age of each pipeline as its runner in ``host`` measures it."""

    def lag(pipeline_id: int) -> float | None:
        runner = host.runners.get(pipeline_id)
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
        cls, settings: Settings, manager: PipelineHost | None = None, *, redis_client: redis.Redis | None = None
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
