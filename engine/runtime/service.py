"""Run the engine headless until told to stop (SIGTERM/SIGINT → graceful drain)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from engine.batching.limits import BatchLimits
from engine.config.repository import ConfigRepository
from engine.errors import EtlError
from engine.metrics import METRICS, start_metrics_server
from engine.monitoring.wal_monitor import WalMonitor
from engine.pipeline.activity import RunnerEvent
from engine.runtime.manager import Manager
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
    return Manager(
        settings.config_db_url,
        client,
        limits=limits,
        poll_interval=poll_interval,
        on_event=on_event,
        heartbeat_seconds=settings.heartbeat_seconds,
    )


@contextmanager
def engine_services(
    settings: Settings,
    manager: Manager,
    *,
    monitor: WalMonitor | None = None,
    on_problem: Callable[[EtlError], None] | None = None,
) -> Iterator[WalMonitor]:
    """What runs beside the pipelines, in the console and headless alike: the /metrics endpoint
    and the WAL monitor with its alerts (``monitor``, or one built from the settings). A metrics
    port already in use is reported (logged, and passed to ``on_problem``) and replication runs
    on without the endpoint."""
    server = None
    try:
        server = start_metrics_server(settings.metrics_addr)
    except EtlError as exc:
        log.error("%s (hint: %s)", exc.reason, exc.hint)
        if on_problem is not None:
            on_problem(exc)
    monitor = monitor or WalMonitor.from_settings(settings, manager)
    monitor.start()
    METRICS.up.set(1)
    try:
        yield monitor
    finally:
        METRICS.up.set(0)
        monitor.stop()
        if server is not None:
            server.close()


def run_headless(settings: Settings, stop: threading.Event) -> None:
    manager = build_manager(settings, limits=settings.batch)
    with engine_services(settings, manager):
        log.info("engine started; config DB and Redis reachable; waiting for pipelines")
        manager.run(stop)
    log.info("engine stopped cleanly")
