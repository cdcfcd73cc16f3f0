"""Readings of one source's replication slots and WAL position, and the thread that takes them.

One :class:`SourcePoller` per configured source keeps its own connection (short connect and
statement timeouts, TCP keepalives, reconnects with a growing delay), so a source that hangs or is
gone only stalls its own readings. Each reading is a frozen :class:`SourceReading`:

- the source's WAL position (``pg_current_wal_lsn()``, or the receive position on a standby);
- per slot of the configured pipelines: active / active_pid, wal_status, safe_wal_size, and the lag
  in bytes from ``confirmed_flush_lsn`` (what a restart replays) and ``restart_lsn`` (what the
  source keeps);
- the source's WAL growth rate: bytes/s between successive positions, smoothed over ~30 s
  (:class:`GrowthRate`);
- per slot, the predicted seconds until ``safe_wal_size`` runs out (:func:`exhaustion_seconds`;
  None when unbounded, or when nothing eats into it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import psycopg
from psycopg.conninfo import make_conninfo

from engine.config.models import Source
from engine.errors import EtlError
from engine.monitoring.reconnect import Backoff
from engine.postgres_errors import classify_connect_error
from engine.source.connection import source_conninfo

log = logging.getLogger("etl.wal_monitor")

CONNECT_TIMEOUT_SECONDS = 3
QUERY_TIMEOUT_MS = 3000
GROWTH_HORIZON_SECONDS = 30.0
# restart_lsn of a healthy slot moves in jumps (at running-xacts records), so its retained WAL is a
# sawtooth: smooth it over longer than the jumps are apart
RETAINED_HORIZON_SECONDS = 120.0

# One round trip per source: the WAL position even when none of the slots exists yet.
_SLOTS_SQL = """
SELECT w.lsn, s.slot_name, s.active, s.active_pid, {wal_status},
       (s.confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, (s.restart_lsn - '0/0'::pg_lsn)::bigint, {safe_wal_size}
FROM (SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END
              - '0/0'::pg_lsn)::bigint AS lsn) w
LEFT JOIN pg_replication_slots s ON s.slot_name = ANY(%s)
"""


@dataclass(frozen=True)
class SlotReading:
    slot: str
    exists: bool
    active: bool = False
    active_pid: int | None = None
    wal_status: str | None = None  # None before PostgreSQL 13
    confirmed_lsn: int | None = None
    confirmed_lag_bytes: int | None = None
    restart_lag_bytes: int | None = None
    safe_wal_size: int | None = None  # None: max_slot_wal_keep_size = -1 (unbounded)
    exhaustion_seconds: float | None = None


@dataclass(frozen=True)
class SourceReading:
    source_id: int
    source: str
    ok: bool
    detail: str  # health: the server version and slots found, or why it cannot be read
    at: float  # epoch seconds
    seq: int  # grows with every reading of this source: tells a fresh reading from a repeated one
    wal_lsn: int | None = None
    growth_bytes_per_second: float | None = None
    slots: Mapping[str, SlotReading] = field(default_factory=dict)  # every watched slot, found or not


class GrowthRate:
    """An exponentially smoothed rate (per second) of a value read at irregular times; the weight
    of each step depends on its length, so a late reading counts for the time it covers."""

    def __init__(self, horizon: float) -> None:
        self._horizon = horizon
        self._last: tuple[float, int] | None = None
        self.rate: float | None = None

    def observe(self, value: int, at: float) -> float | None:
        if self._last is not None:
            then, before = self._last
            elapsed = at - then
            if elapsed <= 0:
                return self.rate
            step = (value - before) / elapsed
            weight = 1 - math.exp(-elapsed / self._horizon)
            self.rate = step if self.rate is None else self.rate + weight * (step - self.rate)
        self._last = (at, value)
        return self.rate


def exhaustion_seconds(
    safe_wal_size: int | None, wal_growth: float | None, *, active: bool, retained_growth: float | None
) -> float | None:
    """Seconds until ``safe_wal_size`` runs out: at the source's WAL rate for a slot nobody reads,
    and at the rate its retained WAL grows for one that is read (a reader that keeps up never runs
    out, whatever the WAL rate). None when unbounded, already out, or not shrinking."""
    if safe_wal_size is None or safe_wal_size <= 0 or wal_growth is None:
        return None
    rate = wal_growth if not active else min(wal_growth, retained_growth or 0.0)
    if rate < 1.0:  # below a byte a second: nothing eats into it
        return None
    return safe_wal_size / rate


def _connect_options() -> dict[str, int]:
    """Keepalives so a source that vanishes (no FIN) is noticed in seconds, not hours."""
    options = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
    if psycopg.pq.version() >= 120000:  # tcp_user_timeout came in libpq 12
        options["tcp_user_timeout"] = 10_000
    return options


class SourcePoller(threading.Thread):
    """Reads one source's slots every ``interval`` seconds on a connection of its own."""

    def __init__(self, source: Source, interval: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name=f"wal-monitor {source.name}", daemon=True)
        self.source = source
        self._interval = interval
        self._clock = clock
        self._stop_event = threading.Event()
        self._slots: tuple[str, ...] = ()
        self._conn: psycopg.Connection | None = None
        self._server_version = 0
        self._backoff = Backoff()
        self._seq = 0
        self._growth = GrowthRate(GROWTH_HORIZON_SECONDS)
        self._retained: dict[str, GrowthRate] = {}
        self._failure: tuple[str, float] | None = None
        self._latest: SourceReading | None = None
        self._lock = threading.Lock()

    def watch(self, slots: Sequence[str]) -> None:
        self._slots = tuple(sorted(set(slots)))

    def latest(self) -> SourceReading | None:
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                started = time.monotonic()
                try:
                    reading = self.poll()
                except Exception:  # a bug must not silence the source: log it, read again later
                    log.exception("reading the slots of source %s failed", self.source.name)
                    reading = self._reading(False, "internal error reading the slots (see the log)")
                with self._lock:
                    self._latest = reading
                self._stop_event.wait(max(0.05, self._interval - (time.monotonic() - started)))
        finally:
            self.close()

    def poll(self) -> SourceReading:
        now_mono = time.monotonic()
        if self._conn is None and now_mono < self._backoff.next_at and self._failure is not None:
            return self._reading(False, self._failure[0])  # still waiting to reconnect
        slots = self._slots
        try:
            if self._conn is None:
                conninfo = make_conninfo(source_conninfo(self.source.dsn, "etl-tui wal monitor"), **_connect_options())
                self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
                self._conn.execute(f"SET statement_timeout = {QUERY_TIMEOUT_MS}")
                self._server_version = int(self._conn.info.server_version)
            newer = self._server_version >= 130000  # wal_status and safe_wal_size came in PostgreSQL 13
            query = _SLOTS_SQL.format(
                wal_status="s.wal_status" if newer else "NULL::text",
                safe_wal_size="s.safe_wal_size" if newer else "NULL::bigint",
            )
            rows = self._conn.execute(query, (list(slots),)).fetchall()
        except (psycopg.Error, EtlError) as exc:
            self.close()
            self._backoff.failed(time.monotonic())
            if isinstance(exc, EtlError):
                reason = exc.reason
            else:
                reason = classify_connect_error(exc, f'source "{self.source.name}"', self.source.dsn).reason
            self._failure = (reason, self._clock())
            return self._reading(False, reason)
        self._backoff.succeeded()
        self._failure = None
        at = self._clock()
        wal = _int(rows[0][0])
        growth = self._growth.observe(wal, at) if wal is not None else self._growth.rate
        found = {str(r[1]): r for r in rows if r[1] is not None}
        readings: dict[str, SlotReading] = {}
        for name in slots:
            r = found.get(name)
            if r is None:
                readings[name] = SlotReading(name, exists=False)
                self._retained.pop(name, None)
                continue
            confirmed, restart, safe = _int(r[5]), _int(r[6]), _int(r[7])
            confirmed_lag = max(0, wal - confirmed) if wal is not None and confirmed is not None else None
            restart_lag = max(0, wal - restart) if wal is not None and restart is not None else None
            retained = self._retained.setdefault(name, GrowthRate(RETAINED_HORIZON_SECONDS))
            retained_growth = retained.observe(restart_lag, at) if restart_lag is not None else retained.rate
            readings[name] = SlotReading(
                slot=name,
                exists=True,
                active=bool(r[2]),
                active_pid=r[3],
                wal_status=r[4],
                confirmed_lsn=confirmed,
                confirmed_lag_bytes=confirmed_lag,
                restart_lag_bytes=restart_lag,
                safe_wal_size=safe,
                exhaustion_seconds=exhaustion_seconds(safe, growth, active=bool(r[2]), retained_growth=retained_growth),
            )
        for name in [n for n in self._retained if n not in readings]:
            del self._retained[name]
        major = self._server_version // 10000
        detail = f"PostgreSQL {major}, {sum(s.exists for s in readings.values())}/{len(slots)} slot(s)"
        return self._reading(True, detail, at=at, wal=wal, growth=growth, slots=readings)

    def _reading(
        self,
        ok: bool,
        detail: str,
        *,
        at: float | None = None,
        wal: int | None = None,
        growth: float | None = None,
        slots: Mapping[str, SlotReading] | None = None,
    ) -> SourceReading:
        self._seq += 1
        return SourceReading(
            source_id=self.source.id,
            source=self.source.name,
            ok=ok,
            detail=detail,
            at=self._clock() if at is None else at,
            seq=self._seq,
            wal_lsn=wal,
            growth_bytes_per_second=growth,
            slots=MappingProxyType(dict(slots or {})),
        )

    def close(self) -> None:
        """Close the poller's connection (its thread does at the end; ``etl-tui status``, which
        polls without the thread, once it has read)."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
