"""The alert history: the last notifications in memory and in Redis, and the firing set that
``etl-tui status`` reads from another process (:func:`read_alerts`)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis

from engine.monitoring.alerts import Alert, iso_time
from engine.state import keys

log = logging.getLogger("etl.alerts")

HISTORY_LIMIT = 200


class AlertLog:
    """The last notifications, in memory and in Redis (``etl:alerts:history``, newest first,
    capped), and the firing set (``etl:alerts:firing``) that ``etl-tui status`` reads.

    Redis being away never stops alerting: what could not be written is kept (bounded) and
    written when Redis answers again."""

    def __init__(self, client: redis.Redis | None, *, limit: int = HISTORY_LIMIT) -> None:
        self._client = client
        self._limit = limit
        self._history: deque[Alert] = deque(maxlen=limit)
        self._unsaved: deque[str] = deque(maxlen=limit)  # JSON, oldest first
        self._firing_unsaved: list[Alert] | None = None
        self._lock = threading.Lock()
        self._redis_down_logged = False

    def load(self) -> list[Alert]:
        """Read the history back from Redis (after a restart); returns the alerts that were firing."""
        if self._client is None:
            return []
        try:
            raw_history = self._client.lrange(keys.alert_history(), 0, self._limit - 1)
            raw_firing = self._client.get(keys.alert_firing())
        except redis.RedisError as exc:
            log.warning("cannot read the alert history from Redis: %s", exc)
            return []
        loaded = [a for a in (_decode(item) for item in reversed(raw_history)) if a is not None]
        with self._lock:
            self._history.extendleft(reversed(loaded))
        return _decode_firing(raw_firing)

    def record(self, alert: Alert) -> None:
        with self._lock:
            self._history.append(alert)
            self._unsaved.append(json.dumps(alert.payload()))

    def set_firing(self, alerts: Sequence[Alert]) -> None:
        with self._lock:
            self._firing_unsaved = list(alerts)

    def history(self) -> tuple[Alert, ...]:
        """Newest last."""
        with self._lock:
            return tuple(self._history)

    def flush(self) -> None:
        """Write what changed to Redis (the monitor's thread, after each round)."""
        if self._client is None:
            return
        with self._lock:
            pushes = list(self._unsaved)
            firing = self._firing_unsaved
        if not pushes and firing is None:
            return
        try:
            pipe = self._client.pipeline(transaction=True)
            if pushes:
                pipe.lpush(keys.alert_history(), *pushes)
                pipe.ltrim(keys.alert_history(), 0, self._limit - 1)
            if firing is not None:
                if firing:
                    pipe.set(
                        keys.alert_firing(),
                        json.dumps({"updated_at": iso_time(time.time()), "alerts": [a.payload() for a in firing]}),
                    )
                else:
                    pipe.delete(keys.alert_firing())
            pipe.execute()
        except redis.RedisError as exc:
            if not self._redis_down_logged:
                log.warning("cannot record alerts in Redis (kept in memory, written when it is back): %s", exc)
                self._redis_down_logged = True
            return
        self._redis_down_logged = False
        with self._lock:
            for _ in pushes:
                self._unsaved.popleft()
            if self._firing_unsaved is firing:
                self._firing_unsaved = None


def _decode(raw: Any) -> Alert | None:
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return Alert.from_payload(data) if isinstance(data, dict) else None


def _decode_firing(raw: Any) -> list[Alert]:
    if raw is None:
        return []
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return []
    items = data.get("alerts", []) if isinstance(data, dict) else []
    return [a for a in (Alert.from_payload(d) for d in items if isinstance(d, dict)) if a is not None]


def read_alerts(client: redis.Redis, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    """What the engine recorded, for another process (``etl-tui status``): the firing alerts and
    the history (newest first), as the webhook payloads. Raises ``redis.RedisError``."""
    raw_firing = client.get(keys.alert_firing())
    raw_history = client.lrange(keys.alert_history(), 0, limit - 1)
    firing: dict[str, Any] = {}
    if raw_firing is not None:
        with contextlib.suppress(TypeError, ValueError):
            firing = json.loads(raw_firing)
    history = []
    for item in raw_history:
        with contextlib.suppress(TypeError, ValueError):
            history.append(json.loads(item))
    return {"firing": firing.get("alerts", []), "firing_updated_at": firing.get("updated_at"), "history": history}
