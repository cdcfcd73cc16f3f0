"""The status board of the scenes: four pipelines, their slots and alerts, the events, and the
health of every component (one source unreachable)."""

from __future__ import annotations

from engine.status.board import Board, DeliveryStats, HealthView
from etl_tui.scenes.clock import FIXED_NOW
from etl_tui.scenes.events import events
from etl_tui.scenes.pipelines import pipelines
from etl_tui.scenes.slots import alerts, slots


def board(now: float = FIXED_NOW) -> Board:
    firing, history = alerts(now)
    health = (
        HealthView("config DB", True, "postgresql://etl:****@cfg.internal:5432/etl"),
        HealthView('source "shop"', True),
        HealthView('source "billing"', True),
        HealthView('source "crm"', True),
        HealthView('source "reports"', False, "connection refused (reports-db:5432)"),
        HealthView("Redis", True, "redis://cache.internal:6379/0"),
        HealthView('destination "local"', True),
        HealthView('destination "warehouse"', True),
    )
    return Board(
        taken_at=now - 1.0,
        health=health,
        pipelines=pipelines(now),
        slots=slots(),
        events=events(now),
        alerts=firing,
        alert_history=history,
        alert_delivery=DeliveryStats("https://hooks.slack.com", delivered=5, failed=1),
    )
