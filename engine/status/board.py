"""The status board: the one shape of the engine's status, read by the console and printed by
``etl-tui status``.

The engine's threads never share mutable state with the console: a collector builds one
:class:`Board` from the runners, the config DB, the sources' slots and Redis about once a second,
and swaps it into the :class:`BoardFeed`; the console only ever reads the latest board.
``etl-tui status`` builds the same values from what the runners published through Redis
(:mod:`engine.status.report`), and ``--json`` prints them field by field. Both build a
pipeline's values with :mod:`engine.status.pipeline_view`. Everything here is a frozen value,
safe to hand between threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum

from engine.monitoring.alerts import Alert, AlertStatus, Rule, Severity
from engine.monitoring.webhook import DeliveryStats
from engine.pipeline.activity import EventKind

# The console reads the engine's values from here only, the alert and event types included.
__all__ = [
    "Alert",
    "AlertStatus",
    "BatchView",
    "Board",
    "BoardFeed",
    "BoardMode",
    "ConfigView",
    "DeliveryStats",
    "DestinationConfigView",
    "ErrorView",
    "EventKind",
    "EventView",
    "HealthView",
    "PipelineConfigView",
    "PipelineView",
    "RedisKeyView",
    "Rule",
    "Severity",
    "SlotView",
    "SourceConfigView",
    "TableView",
]


class BoardMode(StrEnum):
    LIVE = "live"
    PAUSED = "paused"  # the console froze its refresh (space)
    READ_ONLY = "read-only"


@dataclass(frozen=True)
class ErrorView:
    kind: str
    reason: str
    hint: str
    retry_policy: str  # none | manual | timed
    next_retry_at: float | None = None  # epoch seconds, for a live countdown


@dataclass(frozen=True)
class TableView:
    name: str  # as PostgreSQL prints it: public."Order Items"
    phase: str  # TablePhase value
    rows_copied: int = 0
    copy_total: int | None = None  # estimate while copying
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    last_event_at: float | None = None
    error: ErrorView | None = None


@dataclass(frozen=True)
class BatchView:
    at: float
    pipeline: str
    rows: int
    tables: int
    write_seconds: float  # destination write latency (land + MERGE + checkpoint)
    checkpoint_lsn: str | None


@dataclass(frozen=True)
class PipelineView:
    name: str
    source: str
    destination: str  # name
    destination_target: str  # e.g. duckdb:/path/file.duckdb
    desired: str  # start | pause
    actual: str  # RunnerState value; without a runner "stopped" (console) or "not running" (etl-tui status)
    tables: tuple[TableView, ...] = ()
    rows_per_second: tuple[float, ...] = ()  # one sample a second, oldest first, at most 60
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    confirmed_lsn: str | None = None
    last_error: ErrorView | None = None
    batches: tuple[BatchView, ...] = ()  # the latest N, newest last
    slot: str = ""  # the replication slot's name
    publication: str = ""  # the publication's name on the source
    source_dsn: str = ""  # the source's DSN, password masked

    @property
    def tables_by_phase(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tables:
            out[t.phase] = out.get(t.phase, 0) + 1
        return out


@dataclass(frozen=True)
class SlotView:
    pipeline: str
    slot: str
    source: str
    active: bool
    active_pid: int | None
    wal_status: str | None
    confirmed_lag_bytes: int | None
    restart_lag_bytes: int | None
    safe_wal_size: int | None
    lag_history: tuple[int, ...] = ()  # confirmed lag, one sample per poll, oldest first
    exists: bool = True
    error: str | None = None
    wal_growth_bytes_per_second: float | None = None  # the source's WAL rate, smoothed
    exhaustion_seconds: float | None = None  # until safe_wal_size runs out at that rate (None: never)

    @property
    def warning(self) -> str | None:
        if self.error:
            return self.error
        if not self.exists:
            return "slot missing"
        if self.wal_status == "lost":
            return "slot lost: WAL needed was removed; resync the pipeline"
        if self.wal_status == "unreserved":
            return "slot at risk: WAL beyond max_slot_wal_keep_size"
        if not self.active:
            return "slot inactive: WAL accumulates"
        return None


@dataclass(frozen=True)
class HealthView:
    component: str  # "config DB", 'source "shop"', "Redis", 'destination "local"'
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class EventView:
    at: float
    level: str  # info | warning | error
    kind: EventKind
    message: str
    pipeline: str | None = None
    table: str | None = None


@dataclass(frozen=True)
class Board:
    taken_at: float
    health: tuple[HealthView, ...] = ()
    pipelines: tuple[PipelineView, ...] = ()
    slots: tuple[SlotView, ...] = ()
    events: tuple[EventView, ...] = ()  # newest last
    alerts: tuple[Alert, ...] = ()  # firing now, oldest first
    alert_history: tuple[Alert, ...] = ()  # notifications (fired, repeated, resolved), newest last
    alert_delivery: DeliveryStats | None = None  # None: no ALERT_WEBHOOK_URL

    def pipeline(self, name: str) -> PipelineView | None:
        return next((p for p in self.pipelines if p.name == name), None)


@dataclass
class BoardFeed:
    """The one place boards are exchanged: the collector publishes, readers take the latest."""

    _latest: Board = field(default_factory=lambda: Board(taken_at=0.0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, board: Board) -> None:
        with self._lock:
            self._latest = board

    def latest(self) -> Board:
        with self._lock:
            return self._latest


@dataclass(frozen=True)
class RedisKeyView:
    key: str
    type: str  # string | hash | list | set | zset | stream
    ttl_seconds: int | None  # None: no expiry
    preview: str  # at most ~200 characters


@dataclass(frozen=True)
class SourceConfigView:
    name: str
    dsn_redacted: str


@dataclass(frozen=True)
class DestinationConfigView:
    name: str
    type: str
    target: str  # duckdb:/path
    options: tuple[tuple[str, str], ...]  # e.g. (("path", ...), ("schema", "main"), ("landing_schema", ...))


@dataclass(frozen=True)
class PipelineConfigView:
    name: str
    source: str
    destination: str
    status: str  # start | pause
    tables: tuple[str, ...]
    applied: bool  # the running engine runs exactly this definition (False: pending)
    column_types: tuple[str, ...] = ()  # overrides as --column-type takes them: public.orders.amount=text


@dataclass(frozen=True)
class ConfigView:
    sources: tuple[SourceConfigView, ...] = ()
    destinations: tuple[DestinationConfigView, ...] = ()
    pipelines: tuple[PipelineConfigView, ...] = ()
