"""Alerts on replication slots: the alert values and the rules that raise and resolve them.

:class:`AlertRules` turns each round of slot observations (from the WAL monitor) into
notifications: an alert *fires* when its condition is met, is *repeated* every ``repeat_seconds``
while it lasts, and is *resolved* once the condition has been clear for ``resolve_readings``
consecutive readings. Numeric rules clear only past a lower bar (``resolve_fraction`` of the
threshold; for time-to-exhaustion, where lower is worse, the threshold divided by it), so a value
hovering around the threshold does not flap. A threshold of 0 turns its rule off.

Rules (one alert per rule and slot):

- ``lag_bytes`` — WAL written since the slot's ``confirmed_flush_lsn`` above the threshold. A paused
  pipeline alerts too: its slot still holds the WAL back.
- ``lag_seconds`` — the runner's lag age (``RunnerView.lag_seconds``) above the threshold.
- ``slot_inactive`` — no process reads the slot for longer than the threshold while its pipeline
  should run (an inactive slot of a paused pipeline is expected).
- ``wal_status`` — ``unreserved`` (PostgreSQL may remove WAL the slot needs) or ``lost``.
- ``wal_exhaustion`` — the predicted time until ``safe_wal_size`` runs out below the threshold.

Every notification is a JSON object (:meth:`Alert.payload`, schema version 1), POSTed to the
webhook by :mod:`engine.monitoring.webhook` and kept in Redis by :mod:`engine.monitoring.alert_log`::

    {
      "text": "[FIRING] warning · pipeline p1: slot etl_p1 on source shop is 1.2 GiB behind ...",
      "status": "firing",               # firing | resolved
      "rule": "lag_bytes",              # lag_bytes | lag_seconds | slot_inactive | wal_status | wal_exhaustion
      "severity": "warning",            # warning | critical
      "source": "shop", "pipeline": "p1", "slot": "etl_p1",
      "value": 1288490188,              # bytes or seconds (see unit); wal_status: the status; null if unknown
      "threshold": 1073741824,          # same unit; null for wal_status
      "unit": "bytes",                  # bytes | seconds | "" (wal_status)
      "started_at": "2026-07-01T11:58:00Z",   # when the alert fired (UTC, ISO 8601)
      "at": "2026-07-01T12:00:00Z",           # when this notification was made
      "repeat": 0,                      # 0 when it fires, then 1, 2, … for each reminder
      "hint": "what to do about it",
      "summary": "slot etl_p1 on source shop is 1.2 GiB behind (threshold 1.0 GiB)",  # text without extras
      "id": "lag_bytes/shop/etl_p1",    # stable for the alert's whole life: group on it
      "version": 1
    }

``text`` is what Slack-compatible receivers (Slack, Mattermost, Rocket.Chat, Teams workflows)
show; generic receivers read the other fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from engine.settings import AlertThresholds
from engine.units import format_bytes, format_seconds

SCHEMA_VERSION = 1


class Rule(StrEnum):
    LAG_BYTES = "lag_bytes"
    LAG_SECONDS = "lag_seconds"
    SLOT_INACTIVE = "slot_inactive"
    WAL_STATUS = "wal_status"
    WAL_EXHAUSTION = "wal_exhaustion"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class SlotObservation:
    """What the rules see of one pipeline's slot in one round."""

    source: str
    pipeline: str
    slot: str
    should_run: bool
    """The pipeline's desired state is start (a paused pipeline's slot is expected to be idle)."""
    readable: bool
    """A fresh reading of the slot exists this round; when False the slot rules keep their state."""
    exists: bool = True
    active: bool = False
    wal_status: str | None = None
    lag_bytes: int | None = None
    exhaustion_seconds: float | None = None
    lag_seconds: float | None = None
    """From the pipeline's runner; None when it has none or cannot tell."""


@dataclass(frozen=True)
class Alert:
    """One notification (or, in :meth:`AlertRules.firing`, the current state of a firing alert)."""

    status: AlertStatus
    rule: Rule
    severity: Severity
    source: str
    pipeline: str
    slot: str
    value: float | str | None
    threshold: float | str | None
    unit: str
    started_at: float  # epoch seconds
    at: float
    summary: str
    """What is wrong (or that it is over), without the pipeline's name and the hint."""
    hint: str
    repeat: int = 0

    @property
    def key(self) -> str:
        return alert_key(self.rule, self.source, self.slot)

    @property
    def text(self) -> str:
        """The human sentence receivers show."""
        if self.status is AlertStatus.RESOLVED:
            return f"[RESOLVED] pipeline {self.pipeline}: {self.summary}"
        again = f" (still firing, reminder {self.repeat})" if self.repeat else ""
        return f"[FIRING] {self.severity} · pipeline {self.pipeline}: {self.summary}{again}. Hint: {self.hint}"

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "status": str(self.status),
            "rule": str(self.rule),
            "severity": str(self.severity),
            "source": self.source,
            "pipeline": self.pipeline,
            "slot": self.slot,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "started_at": iso_time(self.started_at),
            "at": iso_time(self.at),
            "repeat": self.repeat,
            "hint": self.hint,
            "summary": self.summary,
            "id": self.key,
            "version": SCHEMA_VERSION,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Alert | None:
        """The alert a payload describes (None when it is not one of ours)."""
        try:
            return cls(
                status=AlertStatus(data["status"]),
                rule=Rule(data["rule"]),
                severity=Severity(data["severity"]),
                source=str(data["source"]),
                pipeline=str(data["pipeline"]),
                slot=str(data["slot"]),
                value=data.get("value"),
                threshold=data.get("threshold"),
                unit=str(data.get("unit", "")),
                started_at=parse_iso_time(data["started_at"]),
                at=parse_iso_time(data["at"]),
                summary=str(data.get("summary", "")),
                hint=str(data.get("hint", "")),
                repeat=int(data.get("repeat", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def alert_key(rule: Rule, source: str, slot: str) -> str:
    return f"{rule}/{source}/{slot}"


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def format_value(value: float | str | None, unit: str) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, str):
        return value
    return format_bytes(value) if unit == "bytes" else format_seconds(value) if unit == "seconds" else str(value)


# ---- rules ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Measure:
    """One rule applied to one observation."""

    fire: bool
    clear: bool
    value: float | str | None
    threshold: float | str | None


_UNITS = {
    Rule.LAG_BYTES: "bytes",
    Rule.LAG_SECONDS: "seconds",
    Rule.SLOT_INACTIVE: "seconds",
    Rule.WAL_STATUS: "",
    Rule.WAL_EXHAUSTION: "seconds",
}
_TITLES = {
    Rule.LAG_BYTES: "lag in bytes",
    Rule.LAG_SECONDS: "lag age",
    Rule.SLOT_INACTIVE: "inactive slot",
    Rule.WAL_STATUS: "wal_status",
    Rule.WAL_EXHAUSTION: "WAL exhaustion forecast",
}


def _severity(rule: Rule) -> Severity:
    # losing the slot means copying every table again; lag only means waiting
    return Severity.CRITICAL if rule in (Rule.WAL_STATUS, Rule.WAL_EXHAUSTION) else Severity.WARNING


def _summary(rule: Rule, o: SlotObservation, value: float | str | None, threshold: float | str | None) -> str:
    where = f"slot {o.slot} on source {o.source}"
    unit = _UNITS[rule]
    limit = f"threshold {format_value(threshold, unit)}"
    if rule is Rule.LAG_BYTES:
        return f"{where} is {format_value(value, unit)} behind ({limit})"
    if rule is Rule.LAG_SECONDS:
        waited = format_value(value, unit)
        return f"changes have waited up to {waited} for the destination ({limit})"
    if rule is Rule.SLOT_INACTIVE:
        return f"{where} has had no reader for {format_value(value, unit)} ({limit})"
    if rule is Rule.WAL_STATUS:
        why = "the WAL it needs was removed" if value == "lost" else "it holds more WAL than max_slot_wal_keep_size"
        return f"{where} has wal_status {value}: {why}"
    return f"{where} will run out of safe WAL in about {format_value(value, unit)} at the current WAL rate ({limit})"


def _hint(rule: Rule, o: SlotObservation, value: float | str | None) -> str:
    p = o.pipeline
    if rule is Rule.LAG_BYTES:
        if not o.should_run:
            return f"the pipeline is paused and its slot keeps WAL on the source: start it (etl-tui pipeline start {p})"
        return "the pipeline is slower than the source or failing: look at its last error (etl-tui status)"
    if rule is Rule.LAG_SECONDS:
        return "the destination falls behind or its writes fail: look at the pipeline's last error (etl-tui status)"
    if rule is Rule.SLOT_INACTIVE:
        return "no engine reads the slot: check that etl-tui runs and the pipeline's last error; the source keeps WAL"
    if rule is Rule.WAL_STATUS:
        if value == "lost":
            return f"the slot cannot be used any more: resync the pipeline (etl-tui pipeline resync {p})"
        return "start or speed up the pipeline now, or raise max_slot_wal_keep_size, before PostgreSQL removes the WAL"
    return (
        "start or speed up the pipeline, or raise max_slot_wal_keep_size on the source: once safe WAL runs out "
        "the slot is lost and every table must be copied again"
    )


@dataclass
class _Firing:
    """A firing alert (mutable: the monitor's thread only)."""

    alert: Alert  # as last notified
    value: float | str | None
    updated_at: float
    clear_readings: int = 0


class AlertRules:
    """The rules' state machine. Not thread-safe: one thread (the WAL monitor's) drives it; tests
    drive it with their own clock through ``now``."""

    def __init__(self, thresholds: AlertThresholds) -> None:
        self.thresholds = thresholds
        self._firing: dict[str, _Firing] = {}
        self._inactive_since: dict[tuple[str, str], float] = {}

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Take over alerts that were firing before a restart, so they are not announced twice
        and are resolved once their condition is gone."""
        for alert in alerts:
            if alert.status is AlertStatus.FIRING and alert.key not in self._firing:
                self._firing[alert.key] = _Firing(alert, alert.value, alert.at)

    def firing(self) -> tuple[Alert, ...]:
        """Every firing alert with its latest value, oldest first."""
        out = [replace(f.alert, value=f.value, at=f.updated_at) for f in self._firing.values()]
        return tuple(sorted(out, key=lambda a: (a.started_at, a.key)))

    def evaluate(self, observations: Iterable[SlotObservation], now: float) -> list[Alert]:
        """Apply every rule to one round of observations (every configured slot, readable or
        not); returns the notifications to send. Alerts of slots no longer observed (their
        pipeline was removed) are resolved."""
        out: list[Alert] = []
        seen: set[str] = set()
        watched: set[tuple[str, str]] = set()
        for o in observations:
            watched.add((o.source, o.slot))
            for rule in Rule:
                key = alert_key(rule, o.source, o.slot)
                seen.add(key)
                measure = self._measure(rule, o, now)
                if measure is not None:
                    self._step(key, rule, o, measure, now, out)
        for key in [k for k in self._firing if k not in seen]:
            gone = self._firing.pop(key)
            out.append(
                replace(
                    gone.alert,
                    status=AlertStatus.RESOLVED,
                    value=None,
                    at=now,
                    summary=f"{_TITLES[gone.alert.rule]} on slot {gone.alert.slot} (source {gone.alert.source}): "
                    "no longer monitored (the pipeline was removed or its slot replaced)",
                    repeat=0,
                )
            )
        for where in [w for w in self._inactive_since if w not in watched]:
            del self._inactive_since[where]
        return out

    def _measure(self, rule: Rule, o: SlotObservation, now: float) -> _Measure | None:
        """None: this rule cannot tell this round (off, or nothing to judge by)."""
        t = self.thresholds
        f = t.resolve_fraction
        if rule is Rule.LAG_SECONDS:
            if not t.lag_seconds:
                return None
            if o.lag_seconds is None:
                # a paused pipeline has no lag age (its growing lag in bytes still alerts);
                # a running one that cannot tell keeps its state
                return _Measure(False, True, None, t.lag_seconds) if not o.should_run else None
            return _Measure(
                o.lag_seconds > t.lag_seconds, o.lag_seconds <= t.lag_seconds * f, o.lag_seconds, t.lag_seconds
            )
        if not o.readable or not o.exists:
            return None
        if rule is Rule.LAG_BYTES:
            if not t.lag_bytes or o.lag_bytes is None:
                return None
            return _Measure(o.lag_bytes > t.lag_bytes, o.lag_bytes <= t.lag_bytes * f, o.lag_bytes, t.lag_bytes)
        if rule is Rule.SLOT_INACTIVE:
            where = (o.source, o.slot)
            if o.active or not o.should_run:
                self._inactive_since.pop(where, None)
                return _Measure(False, True, 0.0, t.inactive_seconds) if t.inactive_seconds else None
            since = self._inactive_since.setdefault(where, now)
            if not t.inactive_seconds:
                return None
            idle = round(now - since, 1)
            return _Measure(idle > t.inactive_seconds, False, idle, t.inactive_seconds)
        if rule is Rule.WAL_STATUS:
            if o.wal_status is None:
                return None  # before PostgreSQL 13
            bad = o.wal_status in ("unreserved", "lost")
            return _Measure(bad, not bad, o.wal_status, None)
        if not t.exhaustion_seconds:
            return None
        left = o.exhaustion_seconds
        if left is None:  # unbounded, or not shrinking
            return _Measure(False, True, None, t.exhaustion_seconds)
        left = round(left, 1)
        return _Measure(left < t.exhaustion_seconds, left >= t.exhaustion_seconds / f, left, t.exhaustion_seconds)

    def _step(self, key: str, rule: Rule, o: SlotObservation, m: _Measure, now: float, out: list[Alert]) -> None:
        current = self._firing.get(key)
        if current is None:
            if not m.fire:
                return
            alert = Alert(
                status=AlertStatus.FIRING,
                rule=rule,
                severity=_severity(rule),
                source=o.source,
                pipeline=o.pipeline,
                slot=o.slot,
                value=m.value,
                threshold=m.threshold,
                unit=_UNITS[rule],
                started_at=now,
                at=now,
                summary=_summary(rule, o, m.value, m.threshold),
                hint=_hint(rule, o, m.value),
            )
            self._firing[key] = _Firing(alert, m.value, now)
            out.append(alert)
            return
        current.value, current.updated_at = m.value, now
        if m.clear:
            current.clear_readings += 1
            if current.clear_readings >= self.thresholds.resolve_readings:
                del self._firing[key]
                last = current.alert
                out.append(
                    replace(
                        last,
                        status=AlertStatus.RESOLVED,
                        pipeline=o.pipeline,
                        value=m.value,
                        at=now,
                        summary=f"{_TITLES[rule]} on slot {o.slot} (source {o.source}) is back "
                        f"to normal ({format_value(m.value, last.unit)}) after {format_seconds(now - last.started_at)}",
                        repeat=0,
                    )
                )
            return
        current.clear_readings = 0
        repeat = self.thresholds.repeat_seconds
        # unreserved → lost changes what to do (wait no longer: resync): say so at once
        changed = rule is Rule.WAL_STATUS and m.value != current.alert.value
        if changed or (repeat and now - current.alert.at >= repeat):
            alert = replace(
                current.alert,
                pipeline=o.pipeline,
                value=m.value,
                at=now,
                summary=_summary(rule, o, m.value, m.threshold),
                hint=_hint(rule, o, m.value),
                repeat=current.alert.repeat + 1,
            )
            current.alert = alert
            out.append(alert)
