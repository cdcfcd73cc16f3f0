"""``etl-tui status``: the engine's status as a :class:`~engine.status.board.Board`, read from
another process, and its text and JSON forms.

:func:`collect_status` builds the same values the console shows, from what the engine leaves
where another process can read it: the desired state from the config DB, each runner's view as
published through Redis (decoded by :mod:`engine.pipeline.view_codec`), table phases from the
state store, one reading of each source's slots (the WAL monitor's reading code), and the alerts
the WAL monitor recorded in Redis. A pipeline whose view is missing or older than
``STALE_AFTER_SECONDS`` is ``not running``. What only the process hosting the engine knows is
left empty: the event log, rows/s and lag histories, and webhook delivery counts.

``etl-tui status --json`` prints :func:`board_json`: the board's fields by name, alerts as their
webhook payloads (:mod:`engine.monitoring.alerts`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any

import redis

from engine.config.models import PipelineSpec, Source
from engine.config.repository import ConfigRepository
from engine.errors import EtlError
from engine.identifiers import TableName
from engine.monitoring.alert_log import read_alerts
from engine.monitoring.alerts import Alert, format_value, iso_time
from engine.monitoring.slot_poller import SourcePoller, SourceReading
from engine.pipeline.activity import RunnerView
from engine.pipeline.view_codec import fresh_view
from engine.state.store import PipelineState, read_counters, read_status
from engine.state.table_state import TableState
from engine.status.board import Board, HealthView, PipelineView, SlotView, TableView
from engine.status.collector import destination_health, pipeline_count, unique_destinations
from engine.status.pipeline_view import pipeline_view, slot_reading, slot_view
from engine.units import format_bytes

__all__ = ["STALE_AFTER_SECONDS", "alert_lines", "board_json", "collect_alerts", "collect_status", "status_lines"]

# A view older than this means no engine is publishing for the pipeline.
STALE_AFTER_SECONDS = 15.0
NOT_RUNNING = "not running"


def collect_status(
    repo: ConfigRepository, client: redis.Redis | None, *, redis_error: str | None = None, now: float | None = None
) -> Board:
    """The board ``etl-tui status`` shows. ``client``: None when Redis could not be reached
    (``redis_error`` says why); what comes from Redis is then unknown."""
    now = time.time() if now is None else now
    specs = repo.load_specs()
    health = [HealthView("config DB", True, pipeline_count(len(specs)))]
    readings = _read_sources(specs)
    health += [
        HealthView(f'source "{r.source}"', r.ok, r.detail) for r in sorted(readings.values(), key=lambda r: r.source)
    ]
    redis_problem = None if client is not None else (redis_error or "not connected")

    views: dict[int, RunnerView] = {}
    pipelines: list[PipelineView] = []
    slots: list[SlotView] = []
    for spec in specs:
        view: RunnerView | None = None
        actual = NOT_RUNNING
        stored: Mapping[TableName, TableState] = {}
        counters: dict[str, int] = {}
        if client is not None:
            try:
                view, actual = _published_view(client, spec, now)
                stored = PipelineState(client, spec.id).load()
                counters = read_counters(client, spec.id)
            except EtlError as exc:  # this pipeline's keys cannot be read: Redis itself answers
                health.append(HealthView(f'state of pipeline "{spec.name}"', False, exc.reason))
        if not stored and view is not None:
            stored = view.tables  # the state store could not be read: the runner's copy of it
        if view is not None:
            views[spec.id] = view
        reading = readings.get(spec.source.id)
        slots.append(slot_view(spec, reading))
        built = pipeline_view(spec, view, stored, slot_reading(spec, reading), now=now, without_runner=actual)
        pipelines.append(_with_totals(built, counters))

    firing: tuple[Alert, ...] = ()
    history: tuple[Alert, ...] = ()
    if client is not None:
        alerts = collect_alerts(client)
        redis_problem = redis_problem or alerts["error"]
        firing = _alerts(alerts["firing"])
        history = tuple(reversed(_alerts(alerts["history"])))  # Redis keeps them newest first
    health.append(HealthView("Redis", redis_problem is None, redis_problem or ""))
    health += destination_health(unique_destinations(specs), specs, views)
    return Board(
        taken_at=now,
        health=tuple(health),
        pipelines=tuple(pipelines),
        slots=tuple(slots),
        alerts=firing,
        alert_history=history,
    )


def collect_alerts(client: redis.Redis, limit: int = 20) -> dict[str, Any]:
    """The firing alerts and the latest ``limit`` notifications (newest first), as the webhook
    payloads (schema in :mod:`engine.monitoring.alerts`); ``error`` says why they could not be read."""
    try:
        found = read_alerts(client, limit)
    except redis.RedisError as exc:
        return {
            "firing": [],
            "firing_updated_at": None,
            "history": [],
            "error": f"cannot read alerts from Redis: {exc}",
        }
    return {**found, "error": None}


# ---- reading -----------------------------------------------------------------------------------
def _read_sources(specs: list[PipelineSpec]) -> dict[int, SourceReading]:
    """One reading of each source's slots (one connection per source, with short timeouts)."""
    slots: dict[int, list[str]] = {}
    sources: dict[int, Source] = {}
    for spec in specs:
        sources[spec.source.id] = spec.source
        slots.setdefault(spec.source.id, []).append(spec.pipeline.slot_name)
    readings: dict[int, SourceReading] = {}
    for source_id, source in sources.items():
        poller = SourcePoller(source, interval=0.0)  # polled here, once, without its thread
        poller.watch(slots[source_id])
        try:
            readings[source_id] = poller.poll()
        finally:
            poller.close()
    return readings


def _published_view(client: redis.Redis, spec: PipelineSpec, now: float) -> tuple[RunnerView | None, str]:
    """The runner's view if one was published recently, else None and ``actual`` to show instead."""
    try:
        return fresh_view(read_status(client, spec.id), now, STALE_AFTER_SECONDS), NOT_RUNNING
    except ValueError:
        return None, "unknown"  # something publishes, in a form this version cannot read


def _with_totals(p: PipelineView, counters: Mapping[str, int]) -> PipelineView:
    """Each table's changes as the totals kept in Redis (``etl:pipeline:{id}:counters``): they
    outlive the engine's process, whose own counts start again at each restart."""
    if not counters:
        return p

    def total(t: TableView, op: str) -> int:
        return counters.get(f"{t.name}|{op}", 0)

    tables = tuple(
        dataclasses.replace(t, inserts=total(t, "insert"), updates=total(t, "update"), deletes=total(t, "delete"))
        for t in p.tables
    )
    return dataclasses.replace(p, tables=tables)


def _alerts(payloads: list[Any]) -> tuple[Alert, ...]:
    found = (Alert.from_payload(p) for p in payloads if isinstance(p, dict))
    return tuple(a for a in found if a is not None)


# ---- text --------------------------------------------------------------------------------------
def status_lines(board: Board, now: float | None = None) -> list[str]:
    """The board as the text of ``etl-tui status``."""
    now = time.time() if now is None else now
    lines = [f"warning: {h.detail}" for h in board.health if not h.ok and _from_redis(h)]
    if not board.pipelines:
        lines.append("no pipelines; add one with `etl-tui pipeline add`")
    slots = {s.pipeline: s for s in board.slots}
    for p in board.pipelines:
        lines.append(f"{p.name}: {p.source} → {p.destination} ({p.destination_target})")
        lines.append(f"  desired {p.desired}, actual {p.actual}")
        slot = slots.get(p.name)
        if slot is not None:
            lines.append(f"  slot {slot.slot}: {_slot_text(slot, p)}")
        for t in p.tables:
            copying = f" ({t.rows_copied}/{t.copy_total} rows)" if t.copy_total is not None else ""
            lines.append(f"  table {t.name}: {t.phase}{copying}")
            if t.error is not None:
                lines.append(f"    reason: {t.error.reason}")
                lines.append(f"    hint: {t.error.hint}")
        err = p.last_error
        if err is not None:
            lines.append(f"  last error [{err.kind}]: {err.reason}")
            if err.hint:
                lines.append(f"    hint: {err.hint}")
            if err.next_retry_at is not None:
                lines.append(f"    next retry in {max(0, err.next_retry_at - now):.0f}s")
    return lines + alert_lines(board, now)


def _from_redis(h: HealthView) -> bool:
    return h.component == "Redis" or h.component.startswith("state of pipeline ")


def _slot_text(slot: SlotView, p: PipelineView) -> str:
    if slot.error:
        return slot.error
    if not slot.exists:
        return "not created yet"
    active = f"active (pid {slot.active_pid})" if slot.active else "inactive"
    lag = "-" if slot.confirmed_lag_bytes is None else format_bytes(slot.confirmed_lag_bytes)
    return f"{active}, confirmed {p.confirmed_lsn}, lag {lag}, wal_status {slot.wal_status}"


def alert_lines(board: Board, now: float | None = None) -> list[str]:
    """The board's alerts as text lines (none when Redis, where they are kept, cannot be read)."""
    if any(h.component == "Redis" and not h.ok for h in board.health):
        return []
    now = time.time() if now is None else now
    lines = [f"alerts firing: {len(board.alerts)}" if board.alerts else "alerts firing: none"]
    for a in board.alerts:
        since = f"{format_value(max(0.0, now - a.started_at), 'seconds')} ago"
        lines.append(f"  [{a.severity}] {a.rule} · pipeline {a.pipeline} · since {since}: {a.summary or a.text}")
        if a.hint:
            lines.append(f"    hint: {a.hint}")
    if board.alert_history:
        lines.append(f"recent alert notifications (newest first, {len(board.alert_history)}):")
        for a in reversed(board.alert_history):
            at = iso_time(a.at).replace("T", " ").rstrip("Z")
            lines.append(
                f"  {at} {str(a.status).upper():<8} {a.rule} · pipeline {a.pipeline} · {format_value(a.value, a.unit)}"
            )
    return lines


# ---- JSON --------------------------------------------------------------------------------------
def board_json(board: Board) -> dict[str, Any]:
    """The board as JSON-ready values: every dataclass field by its name, tuples as lists, enums
    as their values, alerts as their webhook payloads."""
    out = _json(board)
    assert isinstance(out, dict)
    return out


def _json(value: Any) -> Any:
    if isinstance(value, Alert):
        return value.payload()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value
