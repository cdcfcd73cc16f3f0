"""What `etl-tui status` (and later the console) shows: desired state from the config DB,
actual state from the runners' published snapshots, slot positions from each source, and the
alerts the engine's WAL monitor recorded in Redis."""

from __future__ import annotations

import time
from typing import Any

import redis

from engine.config.repository import ConfigRepository
from engine.errors import EtlError
from engine.monitoring.alerts import format_value, parse_iso_time, read_alerts
from engine.source import catalog
from engine.source.connection import connect_source
from engine.source.lsn import format_lsn
from engine.state.store import PipelineState, read_counters, read_status

# A snapshot older than this means no engine is publishing for the pipeline.
STALE_AFTER_SECONDS = 15.0


def collect_status(repo: ConfigRepository, client: redis.Redis | None) -> list[dict[str, Any]]:
    specs = repo.load_specs()
    slots: dict[int, dict[str, Any]] = {}
    by_source: dict[int, list[Any]] = {}
    for spec in specs:
        by_source.setdefault(spec.source.id, []).append(spec)
    for group in by_source.values():
        source = group[0].source
        try:
            with connect_source(source.dsn, f'source "{source.name}"', application_name="etl-tui status") as conn:
                for spec in group:
                    info = catalog.slot_info(conn, spec.pipeline.slot_name)
                    if info is None:
                        slots[spec.id] = {"exists": False}
                        continue
                    confirmed = info.confirmed_flush_lsn
                    slots[spec.id] = {
                        "exists": True,
                        "active": info.active,
                        "active_pid": info.active_pid,
                        "wal_status": info.wal_status,
                        "confirmed_flush_lsn": format_lsn(confirmed) if confirmed is not None else None,
                        "lag_bytes": (info.current_wal_lsn - confirmed) if confirmed is not None else None,
                        "retained_bytes": (info.current_wal_lsn - info.restart_lsn)
                        if info.restart_lsn is not None
                        else None,
                    }
        except EtlError as exc:
            for spec in group:
                slots[spec.id] = {"error": exc.reason, "hint": exc.hint}
    alerts = collect_alerts(client) if client is not None else None
    firing = (alerts or {}).get("firing", [])
    result = []
    for spec in specs:
        p = spec.pipeline
        published = None
        tables: dict[str, Any] = {}
        counters: dict[str, int] = {}
        state_error = None
        if client is not None:
            try:
                published = read_status(client, p.id)
                store = PipelineState(client, p.id)
                tables = {
                    str(t): {
                        "phase": str(s.phase),
                        **(
                            {"reason": s.reason, "hint": s.hint, "retry_policy": str(s.retry_policy)}
                            if s.reason
                            else {}
                        ),
                    }
                    for t, s in store.load().items()
                }
                counters = read_counters(client, p.id)
            except EtlError as exc:
                state_error = exc.reason
        actual = "not running"
        if published is not None and published.get("age_seconds", 1e9) <= STALE_AFTER_SECONDS:
            actual = published.get("state", "unknown")
            # progress comes from the runner; phase, reason and hint from the state store, which is
            # written first and so is never older than the snapshot
            for name, entry in (published.get("tables") or {}).items():
                progress = {k: v for k, v in entry.items() if k in ("rows_copied", "copied", "estimate")}
                tables.setdefault(name, {}).update(progress)
        for t in p.tables:
            tables.setdefault(str(t), {"phase": "init"})
        result.append(
            {
                "pipeline": p.name,
                "source": spec.source.name,
                "source_dsn": spec.source.dsn_redacted,
                "destination": spec.destination.name,
                "destination_target": spec.destination.describe(),
                "desired": str(p.status),
                "actual": actual,
                "slot": p.slot_name,
                "publication": p.publication_name,
                "slot_state": slots.get(spec.id, {}),
                "tables": tables,
                "counters": counters,
                "last_error": (published or {}).get("last_error"),
                "next_retry_at": (published or {}).get("next_retry_at"),
                "state_store_error": state_error,
                "alerts": [a for a in firing if a.get("pipeline") == p.name or a.get("slot") == p.slot_name],
            }
        )
    return result


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


def alert_lines(alerts: dict[str, Any] | None, now: float | None = None) -> list[str]:
    """``collect_alerts`` as text lines for `etl-tui status`."""
    if alerts is None:
        return []
    if alerts.get("error"):
        return [f"alerts: {alerts['error']}"]
    now = time.time() if now is None else now
    firing, history = alerts.get("firing", []), alerts.get("history", [])
    lines = [f"alerts firing: {len(firing)}" if firing else "alerts firing: none"]
    for a in firing:
        since = _ago(a, "started_at", now)
        lines.append(
            f"  [{a.get('severity')}] {a.get('rule')} · pipeline {a.get('pipeline')} · since {since}"
            f": {a.get('summary') or a.get('text')}"
        )
        if a.get("hint"):
            lines.append(f"    hint: {a['hint']}")
    if history:
        lines.append(f"recent alert notifications (newest first, {len(history)}):")
        for a in history:
            value = format_value(a.get("value"), str(a.get("unit", "")))
            lines.append(
                f"  {str(a.get('at', '?')).replace('T', ' ').rstrip('Z')} {str(a.get('status', '?')).upper():<8} "
                f"{a.get('rule')} · pipeline {a.get('pipeline')} · {value}"
            )
    return lines


def _ago(alert: dict[str, Any], field: str, now: float) -> str:
    try:
        seconds = max(0.0, now - parse_iso_time(str(alert[field])))
    except (KeyError, ValueError):
        return "?"
    return f"{format_value(seconds, 'seconds')} ago"
