"""The alert rules on a fake clock, the notification schema, and webhook delivery (no services)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.metrics import Metrics
from engine.monitoring.alert_log import AlertLog
from engine.monitoring.alerts import Alert, AlertRules, AlertStatus, Rule, Severity, SlotObservation, iso_time
from engine.monitoring.slot_poller import GrowthRate, exhaustion_seconds
from engine.monitoring.webhook import WebhookSender
from engine.settings import AlertThresholds, load_settings

MiB = 1024**2
T0 = 1_782_907_200.0

# only the lag rule unless a test turns others on
LAG_ONLY = AlertThresholds(
    lag_bytes=100 * MiB, lag_seconds=0, inactive_seconds=0, exhaustion_seconds=0, repeat_seconds=60
)


def obs(**changes: Any) -> SlotObservation:
    base = SlotObservation(
        source="shop", pipeline="p1", slot="etl_p1", should_run=True, readable=True, active=True, wal_status="reserved"
    )
    return replace(base, **changes)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def test_lag_fires_repeats_and_resolves_with_hysteresis() -> None:
    rules, clock = AlertRules(LAG_ONLY), Clock()
    assert rules.evaluate([obs(lag_bytes=50 * MiB)], clock.now) == []
    fired = rules.evaluate([obs(lag_bytes=120 * MiB)], clock.tick(2))
    assert len(fired) == 1
    a = fired[0]
    assert (a.status, a.rule, a.severity, a.value, a.threshold, a.unit) == (
        AlertStatus.FIRING,
        Rule.LAG_BYTES,
        Severity.WARNING,
        120 * MiB,
        100 * MiB,
        "bytes",
    )
    assert a.started_at == a.at == T0 + 2 and a.repeat == 0
    assert "120.0 MiB behind" in a.summary and "threshold 100.0 MiB" in a.summary
    # still above, before the repeat interval: nothing new; the firing view follows the value
    assert rules.evaluate([obs(lag_bytes=130 * MiB)], clock.tick(30)) == []
    assert rules.firing()[0].value == 130 * MiB
    # between the resolve bar (80 MiB) and the threshold: not clear, no flapping
    assert rules.evaluate([obs(lag_bytes=90 * MiB)], clock.tick(10)) == []
    assert rules.evaluate([obs(lag_bytes=95 * MiB)], clock.tick(10)) == []
    # the repeat interval passed since the last notification: a reminder, same start
    again = rules.evaluate([obs(lag_bytes=95 * MiB)], clock.tick(12))
    assert [(n.status, n.repeat, n.started_at, n.value) for n in again] == [(AlertStatus.FIRING, 1, T0 + 2, 95 * MiB)]
    assert "reminder 1" in again[0].text
    # below the bar once: not yet resolved (two clear readings needed); a reading above resets that
    assert rules.evaluate([obs(lag_bytes=10 * MiB)], clock.tick(2)) == []
    assert rules.evaluate([obs(lag_bytes=90 * MiB)], clock.tick(2)) == []
    assert rules.evaluate([obs(lag_bytes=10 * MiB)], clock.tick(2)) == []
    resolved = rules.evaluate([obs(lag_bytes=0)], clock.tick(2))
    assert [(n.status, n.rule, n.started_at, n.value) for n in resolved] == [
        (AlertStatus.RESOLVED, Rule.LAG_BYTES, T0 + 2, 0)
    ]
    assert resolved[0].text.startswith("[RESOLVED] pipeline p1:") and "back to normal" in resolved[0].text
    assert rules.firing() == ()
    # it may fire again later, as a new alert
    refired = rules.evaluate([obs(lag_bytes=200 * MiB)], clock.tick(5))
    assert refired[0].started_at == clock.now and refired[0].repeat == 0


def test_unreadable_slot_keeps_its_state() -> None:
    rules, clock = AlertRules(LAG_ONLY), Clock()
    rules.evaluate([obs(lag_bytes=120 * MiB)], clock.now)
    for _ in range(5):  # the source is unreachable: neither resolved nor repeated early
        assert rules.evaluate([obs(readable=False, lag_bytes=None)], clock.tick(2)) == []
    assert [a.rule for a in rules.firing()] == [Rule.LAG_BYTES]


def test_a_removed_pipeline_resolves_its_alerts() -> None:
    rules, clock = AlertRules(LAG_ONLY), Clock()
    rules.evaluate([obs(lag_bytes=120 * MiB), obs(pipeline="p2", slot="etl_p2", lag_bytes=1)], clock.now)
    out = rules.evaluate([obs(pipeline="p2", slot="etl_p2", lag_bytes=1)], clock.tick(2))
    assert [(a.status, a.pipeline, a.value) for a in out] == [(AlertStatus.RESOLVED, "p1", None)]
    assert "no longer monitored" in out[0].summary


def test_paused_pipeline_inactive_slot_is_expected_but_its_lag_alerts() -> None:
    t = replace(LAG_ONLY, inactive_seconds=30)
    rules, clock = AlertRules(t), Clock()
    paused = obs(should_run=False, active=False, lag_bytes=10 * MiB)
    for _ in range(30):
        assert rules.evaluate([paused], clock.tick(2)) == []
    out = rules.evaluate([replace(paused, lag_bytes=500 * MiB)], clock.tick(2))
    assert [a.rule for a in out] == [Rule.LAG_BYTES]
    assert "pipeline start p1" in out[0].hint  # the hint says what a paused pipeline needs


def test_inactive_slot_of_a_running_pipeline() -> None:
    t = replace(LAG_ONLY, inactive_seconds=30)
    rules, clock = AlertRules(t), Clock()
    assert rules.evaluate([obs(active=False)], clock.now) == []
    assert rules.evaluate([obs(active=False)], clock.tick(20)) == []
    out = rules.evaluate([obs(active=False)], clock.tick(12))
    assert [(a.rule, a.value, a.threshold, a.unit) for a in out] == [(Rule.SLOT_INACTIVE, 32.0, 30, "seconds")]
    # a pause is the operator's choice: the alert goes (after two readings)
    assert rules.evaluate([obs(active=False, should_run=False)], clock.tick(2)) == []
    assert [a.status for a in rules.evaluate([obs(active=False, should_run=False)], clock.tick(2))] == [
        AlertStatus.RESOLVED
    ]
    # started again: the inactive time counts from now, not from the pause
    assert rules.evaluate([obs(active=False)], clock.tick(2)) == []
    assert rules.evaluate([obs(active=False)], clock.tick(20)) == []


def test_wal_status_and_exhaustion_are_critical() -> None:
    t = replace(LAG_ONLY, exhaustion_seconds=3600)
    rules, clock = AlertRules(t), Clock()
    assert rules.evaluate([obs(wal_status="extended", exhaustion_seconds=7200.0)], clock.now) == []
    out = rules.evaluate([obs(wal_status="unreserved", exhaustion_seconds=600.0)], clock.tick(2))
    by_rule = {a.rule: a for a in out}
    assert set(by_rule) == {Rule.WAL_STATUS, Rule.WAL_EXHAUSTION}
    assert all(a.severity is Severity.CRITICAL for a in out)
    assert by_rule[Rule.WAL_STATUS].value == "unreserved" and by_rule[Rule.WAL_STATUS].threshold is None
    assert by_rule[Rule.WAL_EXHAUSTION].value == 600.0 and "10m 00s" in by_rule[Rule.WAL_EXHAUSTION].summary
    # exhaustion clears only well above its threshold (lower is worse): 4000 s is not enough
    lost = obs(wal_status="lost", exhaustion_seconds=4000.0)
    # unreserved → lost is news: notified at once, with the hint that now applies
    update = rules.evaluate([lost], clock.tick(2))
    assert [(a.rule, a.value, a.repeat) for a in update] == [(Rule.WAL_STATUS, "lost", 1)]
    assert "resync the pipeline" in update[0].hint and "was removed" in update[0].summary
    assert rules.evaluate([lost], clock.tick(2)) == []
    unbounded = obs(wal_status="lost", exhaustion_seconds=None)
    rules.evaluate([unbounded], clock.tick(2))
    assert [a.rule for a in rules.evaluate([unbounded], clock.tick(2))] == [Rule.WAL_EXHAUSTION]
    assert [a.rule for a in rules.firing()] == [Rule.WAL_STATUS]  # lost stays lost


def test_lag_seconds_from_the_runner() -> None:
    t = replace(LAG_ONLY, lag_bytes=0, lag_seconds=60)
    rules, clock = AlertRules(t), Clock()
    assert [a.rule for a in rules.evaluate([obs(readable=False, lag_seconds=61.0)], clock.now)] == [
        Rule.LAG_SECONDS
    ]  # the runner knows its lag even when the slot cannot be read
    assert rules.evaluate([obs(lag_seconds=None)], clock.tick(2)) == []  # no runner figure: unchanged
    assert rules.evaluate([obs(lag_seconds=None)], clock.tick(2)) == []
    paused = obs(lag_seconds=None, should_run=False)
    rules.evaluate([paused], clock.tick(2))
    assert [a.status for a in rules.evaluate([paused], clock.tick(2))] == [AlertStatus.RESOLVED]


def test_a_zero_threshold_turns_a_rule_off() -> None:
    rules = AlertRules(replace(LAG_ONLY, lag_bytes=0))
    assert rules.evaluate([obs(lag_bytes=10**12)], T0) == []


def test_restore_neither_repeats_nor_loses_an_alert() -> None:
    first, clock = AlertRules(LAG_ONLY), Clock()
    fired = first.evaluate([obs(lag_bytes=120 * MiB)], clock.now)
    after_restart = AlertRules(LAG_ONLY)
    after_restart.restore(Alert.from_payload(a.payload()) for a in fired)  # type: ignore[misc]
    assert after_restart.evaluate([obs(lag_bytes=120 * MiB)], clock.tick(2)) == []
    after_restart.evaluate([obs(lag_bytes=0)], clock.tick(2))
    out = after_restart.evaluate([obs(lag_bytes=0)], clock.tick(2))
    assert [(a.status, a.started_at) for a in out] == [(AlertStatus.RESOLVED, T0)]


def test_payload_schema() -> None:
    rules = AlertRules(LAG_ONLY)
    alert = rules.evaluate([obs(lag_bytes=120 * MiB)], T0)[0]
    payload = alert.payload()
    assert set(payload) == {
        "text",
        "status",
        "rule",
        "severity",
        "source",
        "pipeline",
        "slot",
        "value",
        "threshold",
        "unit",
        "started_at",
        "at",
        "repeat",
        "hint",
        "summary",
        "id",
        "version",
    }
    assert payload["text"].startswith("[FIRING] warning · pipeline p1: slot etl_p1 on source shop is 120.0 MiB")
    assert payload["started_at"] == payload["at"] == iso_time(T0) == "2026-07-01T12:00:00Z"
    assert (payload["status"], payload["rule"], payload["id"], payload["version"]) == (
        "firing",
        "lag_bytes",
        "lag_bytes/shop/etl_p1",
        1,
    )
    assert json.loads(json.dumps(payload)) == payload
    assert Alert.from_payload(payload) == alert
    assert Alert.from_payload({"status": "firing"}) is None


def test_alert_log_keeps_a_bounded_history_without_redis() -> None:
    log = AlertLog(None, limit=3)
    rules, clock = AlertRules(LAG_ONLY), Clock()
    for i in range(5):
        slots = [obs(slot=f"s{j}", lag_bytes=120 * MiB) for j in range(i + 1)]
        for alert in rules.evaluate(slots, clock.tick(1)):
            log.record(alert)
    log.flush()  # no Redis: a no-op
    assert [a.slot for a in log.history()] == ["s2", "s3", "s4"]


def test_growth_rate_and_exhaustion() -> None:
    rate = GrowthRate(horizon=30.0)
    assert rate.observe(0, 0.0) is None
    assert rate.observe(2_000, 2.0) == 1000.0  # the first step is taken as it is
    for i in range(2, 200):  # then smoothed towards a steady 500 B/s
        rate.observe(2_000 + (i - 1) * 1000, 2.0 * i)
    assert rate.rate is not None and 480 < rate.rate < 520
    assert exhaustion_seconds(None, 1000.0, active=False, retained_growth=None) is None  # unbounded
    assert exhaustion_seconds(0, 1000.0, active=False, retained_growth=None) is None  # already out
    assert exhaustion_seconds(10_000, 1000.0, active=False, retained_growth=None) == 10.0
    assert exhaustion_seconds(10_000, -5.0, active=False, retained_growth=None) is None  # shrinking
    # a reader that keeps up never runs out; one falling behind at 100 B/s does
    assert exhaustion_seconds(10_000, 1000.0, active=True, retained_growth=0.0) is None
    assert exhaustion_seconds(10_000, 1000.0, active=True, retained_growth=100.0) == 100.0


def test_alert_settings_from_the_environment() -> None:
    env = {"CONFIG_DB_URL": "postgresql://x@h/db"}
    s = load_settings(env, dotenv=False)
    assert s.alerts == AlertThresholds() and s.alert_webhook_url is None and s.wal_monitor_interval == 2.0
    s = load_settings(
        {
            **env,
            "ALERT_LAG_BYTES": "1000",
            "ALERT_LAG_SECONDS": "0",
            "ALERT_INACTIVE_SECONDS": "5",
            "ALERT_EXHAUSTION_SECONDS": "60",
            "ALERT_REPEAT_SECONDS": "2",
            "WAL_MONITOR_INTERVAL_MS": "500",
            "ALERT_WEBHOOK_URL": "https://hooks.example/services/T0/B0/secret",
        },
        dotenv=False,
    )
    assert (s.alerts.lag_bytes, s.alerts.lag_seconds, s.alerts.inactive_seconds) == (1000, 0, 5)
    assert (s.alerts.exhaustion_seconds, s.alerts.repeat_seconds, s.wal_monitor_interval) == (60, 2, 0.5)
    assert "secret" not in repr(s)
    for bad in ({"ALERT_LAG_BYTES": "-1"}, {"ALERT_REPEAT_SECONDS": "soon"}, {"ALERT_WEBHOOK_URL": "file:///etc"}):
        with pytest.raises(ConfigError):
            load_settings({**env, **bad}, dotenv=False)


# ---- delivery ---------------------------------------------------------------------------------------
class Receiver:
    """A local webhook receiver answering ``codes`` in turn (then 200), recording JSON bodies."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = codes
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.close()


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sender_retries_then_delivers(receiver: Receiver) -> None:
    receiver.codes = [500, 503]
    metrics = Metrics()
    sender = WebhookSender(receiver.url, backoff=0.05, attempts=3, metrics=metrics)
    sender.start()
    try:
        assert sender.offer({"text": "hello", "id": "x"})
        _wait(lambda: sender.stats().delivered == 1)
        assert len(receiver.bodies) == 3 and receiver.bodies[-1] == {"text": "hello", "id": "x"}
        stats = sender.stats()
        port = receiver.server.server_address[1]
        assert (stats.failed, stats.dropped, stats.target) == (0, 0, f"http://127.0.0.1:{port}")  # never the token
        assert metrics.registry.get_sample_value("etl_alert_webhook_deliveries_total", {"result": "ok"}) == 1
    finally:
        sender.stop()


def test_sender_gives_up_counts_and_never_blocks_the_caller(receiver: Receiver) -> None:
    receiver.codes = [500] * 10
    metrics = Metrics()
    sender = WebhookSender(receiver.url, backoff=0.05, attempts=2, queue_size=2, metrics=metrics)
    started = time.monotonic()
    # not started yet: the queue fills and the rest is dropped, at once
    results = [sender.offer({"id": str(i)}) for i in range(5)]
    assert time.monotonic() - started < 0.5
    assert results == [True, True, False, False, False] and sender.stats().dropped == 3
    sender.start()
    try:
        _wait(lambda: sender.stats().failed == 2)
        assert len(receiver.bodies) == 4  # two attempts each
        assert metrics.registry.get_sample_value("etl_alert_webhook_deliveries_total", {"result": "failed"}) == 2
        assert metrics.registry.get_sample_value("etl_alert_webhook_deliveries_total", {"result": "dropped"}) == 3
    finally:
        sender.stop()


def test_sender_does_not_retry_a_refused_payload(receiver: Receiver) -> None:
    receiver.codes = [400]
    sender = WebhookSender(receiver.url, backoff=0.05, attempts=3, metrics=Metrics())
    sender.start()
    try:
        sender.offer({"id": "x"})
        _wait(lambda: sender.stats().failed == 1)
        assert len(receiver.bodies) == 1
    finally:
        sender.stop()
