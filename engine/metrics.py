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
from contextlib import suppress
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from engine.errors import ConfigError
from engine.state.table_state import TablePhase

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "Metrics",
    "MetricsServer",
    "bind_pipeline",
    "observe_write",
    "parse_addr",
    "start_metrics_server",
]

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
            "Time spent in one destination step (phase: landing, merge, or copy: a whole initial copy)",
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

    def set_table_phase(self, pipeline: str, table: str, phase: TablePhase) -> None:
        """1 for ``phase``, 0 for every other phase, so a query by phase never sees two at once."""
        for each in TablePhase:
            self.table_phase.labels(pipeline, table, each.value).set(1 if each is phase else 0)

    def forget_table(self, pipeline: str, table: str) -> None:
        """The table left the pipeline: its phase series go (its counters stay, they are history)."""
        for each in TablePhase:
            _remove(self.table_phase, (pipeline, table, each.value))

    def forget_pipeline(self, pipeline: str) -> None:
        """Drop every series of a removed pipeline, so dashboards stop showing it."""
        for metric in self.registry_metrics():
            names: tuple[str, ...] = metric._labelnames
            if "pipeline" not in names:
                continue
            found = {
                tuple(sample.labels[n] for n in names)
                for family in metric.collect()
                for sample in family.samples
                if sample.labels.get("pipeline") == pipeline
            }
            for values in found:
                _remove(metric, values)

    def registry_metrics(self) -> list[MetricWrapperBase]:
        return [m for m in vars(self).values() if isinstance(m, MetricWrapperBase)]


def _remove(metric: MetricWrapperBase, values: tuple[str, ...]) -> None:
    with suppress(KeyError):  # older clients raise for a series that does not exist
        metric.remove(*values)


METRICS = Metrics()

# The names as queried in Prometheus (counters with their ``_total``), in the README's order.
METRIC_NAMES = (
    "etl_up",
    "etl_rows_replicated_total",
    "etl_replicated_bytes_total",
    "etl_batches_total",
    "etl_batch_flush_seconds",
    "etl_destination_write_seconds",
    "etl_redis_operation_seconds",
    "etl_errors_total",
    "etl_table_phase",
    "etl_copy_rows_total",
    "etl_copy_progress_ratio",
    "etl_replication_lag_bytes",
    "etl_replication_lag_seconds",
    "etl_slot_active",
    "etl_slot_wal_status",
    "etl_slot_safe_wal_size_bytes",
    "etl_wal_growth_bytes_per_second",
    "etl_slot_wal_exhaustion_seconds",
    "etl_alerts_firing",
    "etl_alert_webhook_deliveries_total",
)

# The pipeline whose work the current thread measures: a runner binds its threads, so a
# destination (shared code, no pipeline in its calls) can label its timings.
_bound = threading.local()


def bind_pipeline(pipeline: str | None) -> None:
    """Label what this thread measures with ``pipeline`` (None: measure nothing)."""
    _bound.pipeline = pipeline


def observe_write(destination: str, phase: str, seconds: float) -> None:
    """One destination step of the bound pipeline; outside a runner (CLI, tools) nothing is recorded."""
    pipeline: str | None = getattr(_bound, "pipeline", None)
    if pipeline is not None:
        METRICS.destination_write.labels(pipeline, destination, phase).observe(seconds)


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
