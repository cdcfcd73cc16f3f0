"""Delivery of alert notifications to ``ALERT_WEBHOOK_URL``.

Deliveries go through a bounded queue and one sender thread (a timeout per request, a few retries
with backoff); when the queue is full the notification is dropped and counted, so a slow or dead
receiver never holds up the engine. The webhook URL is a secret (Slack puts a token in it): it is
never logged, only its host.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.metrics import METRICS, Metrics

log = logging.getLogger("etl.alerts")


@dataclass(frozen=True)
class DeliveryStats:
    """Webhook deliveries since the engine started."""

    target: str  # the receiver's host (the URL itself may hold a token)
    delivered: int = 0
    failed: int = 0  # gave up after the retries
    dropped: int = 0  # the queue was full
    queued: int = 0


@dataclass
class _Counts:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0


def webhook_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


class WebhookSender(threading.Thread):
    """POSTs notifications to the webhook from its own thread, so no caller ever waits on it."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 100,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 1.0,
        metrics: Metrics = METRICS,
    ) -> None:
        super().__init__(name="alert-webhook", daemon=True)
        self._url = url
        self.target = webhook_target(url)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=queue_size)
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._metrics = metrics
        self._stop_event = threading.Event()
        self._counts = _Counts()
        self._lock = threading.Lock()

    def offer(self, payload: dict[str, Any]) -> bool:
        """Queue a notification; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self._count("dropped")
            log.warning("alert webhook queue full: notification %s dropped", payload.get("id"))
            return False
        return True

    def stats(self) -> DeliveryStats:
        with self._lock:
            c = self._counts
            return DeliveryStats(self.target, c.delivered, c.failed, c.dropped, self._queue.qsize())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                payload = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._deliver(payload)

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        error = ""
        for attempt in range(self._attempts):
            if attempt and self._stop_event.wait(self._backoff * 2 ** (attempt - 1)):
                break
            error = self._post(body)
            if not error:
                self._count("delivered")
                return
            if error.startswith("HTTP 4") and not error.startswith("HTTP 429"):
                break  # the receiver refuses this payload: trying again will not help
        self._count("failed")
        log.warning(
            "alert webhook to %s failed (%s): notification %s not delivered", self.target, error, payload.get("id")
        )

    def _post(self, body: bytes) -> str:
        """'' on success, else what went wrong (never the URL)."""
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "etl-tui"}
        )
        try:
            # the settings accept only http(s) URLs, so urlopen never reads a local file here
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return f"{type(reason).__name__}: {reason}"
        return ""

    def _count(self, result: str) -> None:
        with self._lock:
            setattr(self._counts, result, getattr(self._counts, result) + 1)
        self._metrics.webhook_deliveries.labels(result="ok" if result == "delivered" else result).inc()
