"""What the engine reported in the scenes' last ten minutes, oldest first."""

from __future__ import annotations

from engine.status.board import EventKind, EventView
from etl_tui.scenes.clock import FIXED_NOW


def events(now: float = FIXED_NOW) -> tuple[EventView, ...]:
    raw: list[tuple[float, str, str, str, str | None, str | None]] = [
        (610, "info", "state", "engine started: 4 pipelines configured", None, None),
        (605, "info", "state", "streaming from 1/A2A00000", "shop_sync", None),
        (600, "info", "state", "copying 4 tables", "billing_sync", None),
        (598, "info", "table", "copy finished: 1.2M rows in 41s", "billing_sync", "public.invoices"),
        (
            540,
            "error",
            "alert",
            "firing wal_status: slot etl_legacy_sync_4 is lost",
            "legacy_sync",
            None,
        ),
        (539, "info", "state", "stopped: needs a resync", "legacy_sync", None),
        (420, "info", "config", "pipeline reports_sync added (pending: source unreachable)", "reports_sync", None),
        (400, "warning", "state", 'source "reports" unreachable: connection refused', None, None),
        (360, "info", "table", "copy started (~2.4M rows)", "billing_sync", "public.ledger"),
        (
            300,
            "error",
            "table",
            "public.deals has no primary key and no replica identity index",
            "crm_sync",
            "public.deals",
        ),
        (240, "info", "table", "copy finished: 2.4M rows in 3m 58s", "billing_sync", "public.ledger"),
        (238, "info", "table", "catching up from 2/0E000000", "billing_sync", "public.ledger"),
        (200, "info", "table", "copy started (~1.0M rows)", "billing_sync", "public.payments"),
        (130, "warning", "alert", "slot etl_billing_sync_2 lag above 200 MiB", "billing_sync", None),
        (95, "info", "config", "pipeline shop_sync: batch_max_rows 5000 → 10000", "shop_sync", None),
        (60, "warning", "retry", "replication connection refused: max_wal_senders reached", "crm_sync", None),
        (58, "info", "retry", "retry 1 in 2s", "crm_sync", None),
        (40, "warning", "retry", "replication connection refused: max_wal_senders reached", "crm_sync", None),
        (38, "info", "retry", "retry 2 in 4s", "crm_sync", None),
        (15, "warning", "retry", "replication connection refused: max_wal_senders reached", "crm_sync", None),
        (12, "info", "retry", "retry 3 in 8s … then every 30s", "crm_sync", None),
        (3, "info", "state", "batch of 5.6k rows applied up to 1/A2B3C4D0", "shop_sync", None),
    ]
    return tuple(
        EventView(now - age, level, EventKind(kind), msg, pipeline, table)
        for age, level, kind, msg, pipeline, table in raw
    )
