"""Run the engine headless until told to stop (SIGTERM/SIGINT → graceful drain)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from engine.batching.limits import BatchLimits
from engine.config.repository import ConfigRepository
from engine.manager import Manager
from engine.pipeline.runner import RunnerEvent
from engine.settings import Settings
from engine.state.store import connect_redis

log = logging.getLogger("etl")


def install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: draining in-flight batches, then exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def build_manager(
    settings: Settings,
    *,
    limits: BatchLimits | None = None,
    poll_interval: float = 5.0,
    on_event: Callable[[RunnerEvent], None] | None = None,
) -> Manager:
    # Fail fast and clearly on a bad config DB or Redis before any thread starts.
    ConfigRepository(settings.config_db_url).close()  # also applies pending migrations
    client = connect_redis(settings.redis_url)
    return Manager(settings.config_db_url, client, limits=limits, poll_interval=poll_interval, on_event=on_event)


def run_headless(settings: Settings, stop: threading.Event) -> None:
    manager = build_manager(settings, limits=settings.batch)
    log.info("engine started; config DB and Redis reachable; waiting for pipelines")
    manager.run(stop)
    log.info("engine stopped cleanly")
