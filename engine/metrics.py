"""Prometheus metrics of the engine, served at ``METRICS_ADDR`` (default ``[::]:9000``, ``/metrics``).

One :data:`METRICS` object per process holds every metric in its own registry (not the client
library's global one), so what is served is exactly what is listed here and in the README. Names
follow Prometheus conventions: an ``etl_`` prefix, ``_total`` on counters (added by the client),
base units in the name (``_seconds``, ``_bytes``).
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from engine.errors import ConfigError

__all__ = ["METRICS", "Metrics", "MetricsServer", "parse_addr", "start_metrics_server"]

log = logging.getLogger("etl.metrics")

# A *_created series per counter doubles the output and nobody graphs it.
disable_created_metrics()

# Flushes and writes range from a few milliseconds (a small batch into DuckDB) to minutes (a big
# MERGE in Snowflake).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.up = Gauge("etl_up", "1 while the engine runs", registry=r)
        # ---- replication ----------------------------------------------------------------------
        self.rows = Counter(
            "etl_rows_replicated",
            "Changes applied at the destination (operation: insert, update, delete)",
            ["pipeline", "table", "operation"],
            registry=r,
        )
        self.bytes = Counter(
            "etl_replicated_bytes", "Bytes of change data received from the source", ["pipeline"], registry=r
        )
        self.batches = Counter("etl_batches", "Batches applied at the destination", ["pipeline"], registry=r)
        self.batch_flush = Histogram(
            "etl_batch_flush_seconds",
            "Time to apply one batch at the destination (land, merge, checkpoint)",
            ["pipeline"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.destination_write = Histogram(
            "etl_destination_write_seconds",
            "Time spent in one destination step (phase: landing, merge, copy)",
            ["pipeline", "destination", "phase"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.redis_operation = Histogram(
            "etl_redis_operation_seconds",
            "Duration of state store (Redis) operations",
            ["operation"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.errors = Counter(
            "etl_errors", "Errors by kind (a pipeline or table that failed)", ["pipeline", "kind"], registry=r
        )
        # ---- tables -----------------------------------------------------------------------------
        self.table_phase = Gauge(
            "etl_table_phase",
            "1 for the table's current phase, 0 for the others",
            ["pipeline", "table", "phase"],
            registry=r,
        )
        self.copy_rows = Counter(
            "etl_copy_rows", "Rows written by initial copies and resyncs", ["pipeline", "table"], registry=r
        )
        self.copy_progress = Gauge(
            "etl_copy_progress_ratio",
            "Share of a running copy done (rows so far / estimate)",
            ["pipeline", "table"],
            registry=r,
        )
        # ---- slots and WAL (the WAL monitor) --------------------------------------------------------
        self.lag_bytes = Gauge(
            "etl_replication_lag_bytes",
            "WAL between the server's current position and the slot's (position: confirmed_flush, restart)",
            ["pipeline", "slot", "position"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            "etl_replication_lag_seconds",
            "Age of the oldest change not yet applied at the destination",
            ["pipeline", "slot"],
            registry=r,
        )
        self.slot_active = Gauge("etl_slot_active", "1 when a process reads the slot", ["pipeline", "slot"], registry=r)
        self.slot_wal_status = Gauge(
            "etl_slot_wal_status",
            "1 for the slot's wal_status (reserved, extended, unreserved, lost), 0 for the others",
            ["pipeline", "slot", "status"],
            registry=r,
        )
        self.slot_safe_wal_size = Gauge(
            "etl_slot_safe_wal_size_bytes",
            "WAL that can still be written before the slot is at risk (max_slot_wal_keep_size)",
            ["pipeline", "slot"],
            registry=r,
        )
        self.wal_growth = Gauge(
            "etl_wal_growth_bytes_per_second", "Rate at which the source writes WAL", ["source"], registry=r
        )
        self.wal_exhaustion = Gauge(
            "etl_slot_wal_exhaustion_seconds",
            "Predicted time until safe_wal_size runs out at the current WAL growth rate",
            ["pipeline", "slot"],
            registry=r,
        )
        # ---- alerts ---------------------------------------------------------------------------------
        self.alerts_firing = Gauge(
            "etl_alerts_firing", "1 while an alert is firing", ["source", "slot", "rule"], registry=r
        )
        self.webhook_deliveries = Counter(
            "etl_alert_webhook_deliveries",
            "Alert notifications sent to ALERT_WEBHOOK_URL (result: ok, failed)",
            ["result"],
            registry=r,
        )


METRICS = Metrics()


@dataclass(frozen=True)
class MetricsServer:
    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_addr(addr: str) -> tuple[str, int]:
    """``[::]:9000``, ``0.0.0.0:9000``, ``localhost:9000`` or ``:9000`` → (host, port)."""
    text = addr.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(
            f"METRICS_ADDR={addr!r} is not HOST:PORT", "use e.g. [::]:9000, 0.0.0.0:9000 or 127.0.0.1:9100"
        )
    host = host.strip("[]") or "::"
    return host, int(port_text)


def start_metrics_server(addr: str, metrics: Metrics = METRICS) -> MetricsServer:
    """Serve ``/metrics`` in a background thread; a busy port is a :class:`ConfigError` (the caller
    reports it and the engine runs on without metrics)."""
    host, port = parse_addr(addr)
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"metrics endpoint: port {port} on {host} is already in use (METRICS_ADDR={addr})",
                "set METRICS_ADDR to a free port, e.g. METRICS_ADDR=[::]:9100; replication runs on without metrics",
            ) from None
        raise ConfigError(
            f"metrics endpoint: cannot listen on {host}:{port} ({exc.strerror or exc})",
            "check METRICS_ADDR; replication runs on without metrics",
        ) from None
    metrics.up.set(1)
    served = MetricsServer(host, server.server_address[1], server, thread)
    log.info("metrics at %s", served.url)
    return served
