"""The pipelines' replication slots (active, extended, inactive, lost) and the alerts they raised."""

from __future__ import annotations

import math
from dataclasses import replace

from engine.status.board import Alert, AlertStatus, Rule, SlotView
from engine.status.board import Severity as AlertSeverity
from etl_tui.scenes.clock import FIXED_NOW, GiB, MiB


def slots() -> tuple[SlotView, ...]:
    return (
        SlotView(
            "shop_sync",
            "etl_shop_sync_1",
            "shop",
            True,
            4411,
            "reserved",
            int(4.1 * MiB),
            18 * MiB,
            int(9.8 * GiB),
            lag_history=tuple(int((3 + 2 * math.sin(i / 4)) * MiB) for i in range(60)),
            wal_growth_bytes_per_second=1.5 * MiB,
        ),
        SlotView(
            "billing_sync",
            "etl_billing_sync_2",
            "billing",
            True,
            4420,
            "extended",
            220 * MiB,
            260 * MiB,
            int(1.2 * GiB),
            lag_history=tuple((150 + i) * MiB for i in range(60)),
            wal_growth_bytes_per_second=2.0 * MiB,
            exhaustion_seconds=int(1.2 * GiB) / (2.0 * MiB),
        ),
        SlotView(
            "crm_sync",
            "etl_crm_sync_3",
            "crm",
            False,
            None,
            "reserved",
            38 * MiB,
            52 * MiB,
            int(3.9 * GiB),
            lag_history=tuple(int((20 + i * 0.3) * MiB) for i in range(60)),
            wal_growth_bytes_per_second=0.2 * MiB,
            exhaustion_seconds=int(3.9 * GiB) / (0.2 * MiB),
        ),
        SlotView(
            "legacy_sync",
            "etl_legacy_sync_4",
            "shop",
            False,
            None,
            "lost",
            None,
            None,
            -int(0.4 * GiB),
            wal_growth_bytes_per_second=1.5 * MiB,
        ),
    )


def alerts(now: float = FIXED_NOW) -> tuple[tuple[Alert, ...], tuple[Alert, ...]]:
    """Firing alerts and the notifications so far (newest last), matching the slots above."""
    lost = Alert(
        AlertStatus.FIRING,
        Rule.WAL_STATUS,
        AlertSeverity.CRITICAL,
        "shop",
        "legacy_sync",
        "etl_legacy_sync_4",
        "lost",
        None,
        "",
        now - 540,
        now - 540,
        "slot etl_legacy_sync_4 on source shop has wal_status lost: the WAL it needs was removed",
        "the slot cannot be used any more: resync the pipeline (etl-tui pipeline resync legacy_sync)",
    )
    running_out = Alert(
        AlertStatus.FIRING,
        Rule.WAL_EXHAUSTION,
        AlertSeverity.CRITICAL,
        "billing",
        "billing_sync",
        "etl_billing_sync_2",
        614.4,
        3600,
        "seconds",
        now - 200,
        now - 200,
        "slot etl_billing_sync_2 on source billing will run out of safe WAL in about 10m 14s at the current WAL "
        "rate (threshold 1h 00m)",
        "start or speed up the pipeline, or raise max_slot_wal_keep_size on the source",
    )
    behind = Alert(
        AlertStatus.FIRING,
        Rule.LAG_BYTES,
        AlertSeverity.WARNING,
        "billing",
        "billing_sync",
        "etl_billing_sync_2",
        220 * MiB,
        200 * MiB,
        "bytes",
        now - 130,
        now - 130,
        "slot etl_billing_sync_2 on source billing is 220.0 MiB behind (threshold 200.0 MiB)",
        "the pipeline is slower than the source or failing: look at its last error (etl-tui status)",
    )
    slow = Alert(
        AlertStatus.FIRING,
        Rule.LAG_SECONDS,
        AlertSeverity.WARNING,
        "shop",
        "shop_sync",
        "etl_shop_sync_1",
        640.0,
        600,
        "seconds",
        now - 900,
        now - 900,
        "changes have waited up to 10m 40s for the destination (threshold 10m 00s)",
        "the destination falls behind or its writes fail: look at the pipeline's last error (etl-tui status)",
    )
    recovered = replace(
        slow,
        status=AlertStatus.RESOLVED,
        value=2.0,
        at=now - 780,
        summary="lag age on slot etl_shop_sync_1 (source shop) is back to normal (2s) after 2m 00s",
    )
    return (lost, running_out, behind), (slow, recovered, lost, running_out, behind)
