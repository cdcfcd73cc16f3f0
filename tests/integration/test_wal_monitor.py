"""The WAL monitor on real servers: slot readings, alerts to a local webhook receiver (fired,
repeated, resolved), a receiver that hangs or fails, a source that hangs, and `etl-tui status`."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from engine.config.models import PipelineStatus
from engine.config.repository import ConfigRepository
from engine.identifiers import parse_table_list
from engine.metrics import METRICS
from engine.monitoring.slot_poller import SourceReading
from engine.monitoring.wal_monitor import WalMonitor
from engine.monitoring.webhook import WebhookSender
from engine.settings import AlertThresholds, Settings
from engine.status.board import BoardFeed
from engine.status.collector import Collector
from engine.status.report import alert_lines, collect_alerts, collect_status
from tests.integration.harness import EngineThread, duck_rows, source_rows, wait_caught_up, wait_until
from tests.integration.scenarios import configure, setup_items

KiB = 1024


class Receiver:
    """A webhook receiver in a thread. ``mode``: ok (200), error (500), hang (no answer until
    released)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.in_flight = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.requests += 1
                receiver.in_flight += 1
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    if receiver.mode == "hang":
                        receiver.release.wait(60)
                        return  # the sender gave up long ago
                    if receiver.mode == "error":
                        self.send_response(500)
                        self.end_headers()
                        return
                    receiver.bodies.append(body)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    receiver.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/canary-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, status: str, rule: str = "lag_bytes") -> list[dict[str, Any]]:
        return [b for b in list(self.bodies) if b["status"] == status and b["rule"] == rule]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _set_status(settings: Settings, status: PipelineStatus) -> None:
    with ConfigRepository(settings.config_db_url) as repo:
        repo.set_pipeline_status("p1", status)


def _slot(monitor: WalMonitor, slot: str) -> Any:
    for reading in monitor.latest().sources.values():
        if reading.ok and slot in reading.slots:
            return reading.slots[slot]
    return None


def _write_wal(dsn: str, rows: int, start: int = 100_000) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (id, name, qty, price) SELECT g, repeat('x', 100), 1, 1 FROM generate_series(%s, %s) g",
            (start, start + rows - 1),
        )


def test_lag_alert_fires_repeats_resolves_and_shows_in_status(
    settings: Settings, source_dsn: str, tmp_path: Path, receiver: Receiver
) -> None:
    setup_items(source_dsn, 100)
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    s = replace(
        settings,
        alert_webhook_url=receiver.url,
        alerts=AlertThresholds(
            lag_bytes=256 * KiB, lag_seconds=0, inactive_seconds=2, exhaustion_seconds=0, repeat_seconds=2
        ),
        wal_monitor_interval=0.3,
    )
    client = redis.Redis.from_url(settings.redis_url)
    board = BoardFeed()
    with EngineThread(s) as engine:
        monitor = WalMonitor.from_settings(s, engine.manager)
        collector = Collector(engine.manager, s.config_db_url, client, board, interval=0.3, monitor=monitor)
        monitor.start()
        collector.start()
        try:
            slot = engine.runner("p1").spec.pipeline.slot_name
            wait_caught_up(source_dsn, slot)
            wait_until(lambda: (r := _slot(monitor, slot)) is not None and r.active, 30, what="slot read, active")
            reading = _slot(monitor, slot)
            assert reading.wal_status == "reserved" and reading.confirmed_lag_bytes is not None
            assert reading.safe_wal_size is None and reading.exhaustion_seconds is None  # unbounded by default

            # paused: the slot goes idle (expected, no alert) while WAL piles up behind it (alerts)
            _set_status(s, PipelineStatus.PAUSE)
            wait_until(lambda: not _slot(monitor, slot).active, 30, what="slot inactive")
            _write_wal(source_dsn, 20_000)
            fired = wait_until(lambda: receiver.of("firing"), 30, what="a firing notification")[0]
            assert fired["text"].startswith("[FIRING] warning · pipeline p1: slot " + slot)
            assert (fired["status"], fired["rule"], fired["severity"]) == ("firing", "lag_bytes", "warning")
            assert (fired["source"], fired["pipeline"], fired["slot"]) == ("src", "p1", slot)
            assert fired["value"] > fired["threshold"] == 256 * KiB and fired["unit"] == "bytes"
            assert fired["started_at"] == fired["at"] and fired["started_at"].endswith("Z")
            assert "pipeline start p1" in fired["hint"] and fired["repeat"] == 0
            assert fired["id"] == f"lag_bytes/src/{slot}" and fired["version"] == 1
            growth = wait_until(
                lambda: next(iter(monitor.latest().sources.values())).growth_bytes_per_second, 10, what="a WAL rate"
            )
            assert growth > 0

            # still firing after the repeat interval: a reminder of the same alert
            repeated = wait_until(lambda: [b for b in receiver.of("firing") if b["repeat"] >= 1], 15, what="re-alert")
            first_at = time.mktime(time.strptime(fired["at"], "%Y-%m-%dT%H:%M:%SZ"))
            again_at = time.mktime(time.strptime(repeated[0]["at"], "%Y-%m-%dT%H:%M:%SZ"))
            assert repeated[0]["started_at"] == fired["started_at"] and again_at - first_at >= 2
            assert not receiver.of("firing", "slot_inactive"), "a paused pipeline's idle slot is expected"

            # seen by `etl-tui status` (another process, through Redis) and by the console
            alerts = collect_alerts(client)
            assert [a["rule"] for a in alerts["firing"]] == ["lag_bytes"] and alerts["error"] is None
            with ConfigRepository(s.config_db_url) as repo:
                status = collect_status(repo, client)
            assert [a.rule for a in status.alerts if a.pipeline == "p1"] == ["lag_bytes"]
            text = "\n".join(alert_lines(status))
            assert "alerts firing: 1" in text and "lag_bytes · pipeline p1" in text and "FIRING" in text
            snap = wait_until(lambda: (b := board.latest()).alerts and b, 10, what="alerts on the board")
            assert snap.alerts[0].rule == "lag_bytes" and snap.alert_delivery is not None
            assert any(e.kind == "alert" and e.level == "warning" and e.pipeline == "p1" for e in snap.events)
            slot_view = next(v for v in snap.slots if v.pipeline == "p1")
            assert slot_view.wal_growth_bytes_per_second is not None

            # started again: it catches up and the alert resolves
            _set_status(s, PipelineStatus.START)
            resolved = wait_until(lambda: receiver.of("resolved"), 60, what="a resolved notification")[0]
            assert resolved["started_at"] == fired["started_at"] and resolved["text"].startswith("[RESOLVED]")
            assert resolved["value"] <= 0.8 * 256 * KiB
            wait_caught_up(source_dsn, slot)
            assert duck_rows(duck, "SELECT count(*) FROM main.items") == source_rows(
                source_dsn, "SELECT count(*) FROM items"
            )
            alerts = collect_alerts(client)
            assert alerts["firing"] == []
            newest = alerts["history"][0]
            assert (newest["status"], newest["rule"]) == ("resolved", "lag_bytes")
            assert {a["status"] for a in alerts["history"]} == {"firing", "resolved"}
            with ConfigRepository(s.config_db_url) as repo:
                text = "\n".join(alert_lines(collect_status(repo, client)))
            assert "alerts firing: none" in text and "RESOLVED" in text
            wait_until(lambda: not board.latest().alerts, 10, what="no alert on the board")
            assert monitor.latest().delivery.delivered == len(receiver.bodies)  # type: ignore[union-attr]
            assert "canary-token" not in repr(s) and "canary-token" not in monitor.latest().delivery.target  # type: ignore[union-attr]
        finally:
            collector.stop()
            monitor.stop()


@pytest.mark.parametrize("mode", ["hang", "error"])
def test_a_stuck_or_failing_receiver_never_slows_replication(
    mode: str, settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    receiver = Receiver(mode)
    setup_items(source_dsn, 100)
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    thresholds = AlertThresholds(lag_bytes=1, lag_seconds=0, inactive_seconds=0, exhaustion_seconds=0, repeat_seconds=1)
    failed_before = METRICS.registry.get_sample_value("etl_alert_webhook_deliveries_total", {"result": "failed"}) or 0
    sender = WebhookSender(receiver.url, timeout=1.0, attempts=2, backoff=0.2, queue_size=2)
    try:
        with EngineThread(settings) as engine:
            monitor = WalMonitor(
                settings.config_db_url,
                thresholds=thresholds,
                sender=sender,
                redis_client=redis.Redis.from_url(settings.redis_url),
                reconciled=lambda: engine.manager.last_reconcile,
                interval=0.3,
            )
            monitor.start()
            try:
                slot = engine.runner("p1").spec.pipeline.slot_name
                wait_caught_up(source_dsn, slot)
                _set_status(settings, PipelineStatus.PAUSE)
                wait_until(lambda: (r := _slot(monitor, slot)) is not None and not r.active, 30, what="paused")
                _write_wal(source_dsn, 50_000)
                wait_until(lambda: receiver.requests >= 1, 30, what="the receiver reached")
                if mode == "hang":
                    assert receiver.in_flight >= 1

                started = time.monotonic()
                _set_status(settings, PipelineStatus.START)
                wait_caught_up(source_dsn, slot, timeout=60)
                caught_up_in = time.monotonic() - started
                # 50k rows take a few seconds; a sender that blocked the engine would add its
                # timeouts and retries for every notification on top
                assert caught_up_in < 30, f"caught up in {caught_up_in:.1f}s"
                if mode == "hang":
                    assert receiver.in_flight >= 1, "the receiver was still stuck while the pipeline caught up"

                wait_until(lambda: sender.stats().failed >= 1, 30, what="a failed delivery counted")
                stats = monitor.latest().delivery
                assert stats is not None and stats.delivered == 0 and stats.failed >= 1
                failed = METRICS.registry.get_sample_value("etl_alert_webhook_deliveries_total", {"result": "failed"})
                assert failed is not None and failed >= failed_before + 1
                # the alerts were recorded all the same
                history = collect_alerts(redis.Redis.from_url(settings.redis_url))["history"]
                assert any(a["status"] == "firing" and a["rule"] == "lag_bytes" for a in history)
            finally:
                monitor.stop()
    finally:
        receiver.close()


def test_a_hanging_source_does_not_hold_up_the_others(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    """A 'server' that accepts connections and never answers: its poller waits out its connect
    timeout while the other source is read every interval."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                accepted.append(silent.accept()[0])
        except OSError:  # closed at the end of the test
            pass

    threading.Thread(target=accept, daemon=True).start()
    setup_items(source_dsn, 10)
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("silent", f"postgresql://app:pw@127.0.0.1:{port}/db")
        repo.add_pipeline("p2", "silent", "duck", parse_table_list("public.items"), PipelineStatus.PAUSE)
    monitor = WalMonitor(settings.config_db_url, interval=0.3)
    monitor.start()
    try:
        good: list[SourceReading] = []

        def sample() -> bool:
            readings = {r.source: r for r in monitor.latest().sources.values()}
            if "src" in readings and (not good or good[-1].seq != readings["src"].seq):
                good.append(readings["src"])
            return "silent" in readings

        wait_until(sample, 30, interval=0.05, what="the silent source reported")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            sample()
            time.sleep(0.05)
        silent_reading = next(r for r in monitor.latest().sources.values() if r.source == "silent")
        assert not silent_reading.ok and ":pw@" not in silent_reading.detail
        assert all(r.ok for r in good) and len(good) >= 6  # ~10 readings in 3 s, whatever the other does
        gaps = [b.at - a.at for a, b in itertools.pairwise(good)]
        assert max(gaps) < 2.0
    finally:
        monitor.stop()
        silent.close()
        for conn in accepted:
            conn.close()
