"""The four pipelines of the scenes: one streaming, one copying (a table copying, one catching up
after its copy, one queued), one retrying on a timer with an errored table, one whose slot was lost."""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.errors import ErrorKind
from engine.status.board import BatchView, ErrorView, PipelineView, TableView
from etl_tui.scenes.clock import FIXED_NOW, MiB, lsn


def _series(n: int, f: Callable[[int], float]) -> tuple[float, ...]:
    return tuple(round(max(0.0, f(i)), 1) for i in range(n))


def _batches(pipeline: str, count: int, base_rows: int, base_write: float, first_lsn: int) -> tuple[BatchView, ...]:
    out = []
    for i in range(count):
        at = FIXED_NOW - (count - i) * 4.0
        rows = int(base_rows * (1 + 0.35 * math.sin(i * 1.3)))
        out.append(
            BatchView(
                at=at,
                pipeline=pipeline,
                rows=rows,
                tables=1 + i % 3,
                write_seconds=round(base_write * (1 + 0.5 * math.sin(i * 0.9 + 1)), 3),
                checkpoint_lsn=lsn(first_lsn + i * 40_960),
            )
        )
    return tuple(out)


def pipelines(now: float = FIXED_NOW) -> tuple[PipelineView, ...]:
    shop = PipelineView(
        name="shop_sync",
        source="shop",
        destination="local",
        destination_target="duckdb:./shop.duckdb",
        desired="start",
        actual="streaming",
        tables=(
            TableView(
                "public.orders",
                "ready",
                rows_copied=182_400,
                inserts=48_210,
                updates=12_877,
                deletes=312,
                last_event_at=now - 1.2,
            ),
            TableView(
                "public.order_items",
                "ready",
                rows_copied=611_050,
                inserts=131_904,
                updates=4_551,
                deletes=980,
                last_event_at=now - 1.2,
            ),
            TableView(
                "public.customers", "ready", rows_copied=40_118, inserts=1_204, updates=3_310, last_event_at=now - 14.0
            ),
            TableView(
                'public."Order Items"', "ready", rows_copied=5_000, inserts=220, updates=14, last_event_at=now - 95.0
            ),
        ),
        rows_per_second=_series(60, lambda i: 1150 + 260 * math.sin(i / 5) + 90 * math.sin(i / 1.7)),
        lag_bytes=int(4.1 * MiB),
        lag_seconds=1.8,
        confirmed_lsn=lsn(0x1_A2B3_C4D0),
        batches=_batches("shop_sync", 12, 4_800, 0.12, 0x1_A2B0_0000),
    )
    billing = PipelineView(
        name="billing_sync",
        source="billing",
        destination="warehouse",
        destination_target="duckdb:/srv/warehouse.duckdb",
        desired="start",
        actual="copying",
        tables=(
            TableView(
                "public.invoices", "ready", rows_copied=1_204_332, inserts=8_120, updates=2_041, last_event_at=now - 3.0
            ),
            TableView(
                "public.payments", "data_sync", rows_copied=620_000, copy_total=1_000_000, last_event_at=now - 1.0
            ),
            TableView(
                "public.ledger",
                "finished_copy",
                rows_copied=2_400_000,
                copy_total=2_400_000,
                inserts=3_420,
                last_event_at=now - 2.0,
            ),
            TableView("public.refunds", "init"),
        ),
        rows_per_second=_series(60, lambda i: 38_000 + 6_000 * math.sin(i / 7) + (i % 5) * 400),
        lag_bytes=220 * MiB,
        lag_seconds=552.0,
        confirmed_lsn=lsn(0x2_0F00_1000),
        batches=_batches("billing_sync", 10, 50_000, 0.85, 0x2_0E00_0000),
    )
    crm_retry = ErrorView(
        kind=ErrorKind.SOURCE_SETTINGS.value,
        reason='source "crm" refused the replication connection: all max_wal_senders (10) are in use',
        hint="raise max_wal_senders on crm-db (needs a restart) or stop an unused replication client",
        retry_policy="timed",
        next_retry_at=now + 12.0,
    )
    crm = PipelineView(
        name="crm_sync",
        source="crm",
        destination="warehouse",
        destination_target="duckdb:/srv/warehouse.duckdb",
        desired="start",
        actual="retrying",
        tables=(
            TableView(
                "public.contacts",
                "ready",
                rows_copied=88_000,
                inserts=410,
                updates=2_980,
                deletes=12,
                last_event_at=now - 48.0,
            ),
            TableView(
                "public.deals",
                "errored",
                rows_copied=0,
                error=ErrorView(
                    kind=ErrorKind.NO_REPLICA_IDENTITY.value,
                    reason="public.deals has no primary key and no replica identity index",
                    hint="ALTER TABLE public.deals ADD PRIMARY KEY (id); or "
                    "ALTER TABLE public.deals REPLICA IDENTITY USING INDEX <unique index>",
                    retry_policy="manual",
                ),
            ),
            TableView("public.notes", "ready", rows_copied=12_500, inserts=95, updates=40, last_event_at=now - 50.0),
        ),
        rows_per_second=_series(60, lambda i: 140 + 40 * math.sin(i / 3) if i < 45 else 0.0),
        lag_bytes=38 * MiB,
        lag_seconds=46.0,
        confirmed_lsn=lsn(0x0_7C11_2040),
        last_error=crm_retry,
        batches=_batches("crm_sync", 6, 300, 0.05, 0x0_7C00_0000),
    )
    legacy = PipelineView(
        name="legacy_sync",
        source="shop",
        destination="local",
        destination_target="duckdb:./shop.duckdb",
        desired="start",
        actual="errored",
        tables=(
            TableView(
                "public.audit_log", "ready", rows_copied=9_800_000, inserts=51_000, last_event_at=now - 86_400.0 * 2
            ),
        ),
        rows_per_second=_series(60, lambda i: 0.0),
        lag_bytes=None,
        confirmed_lsn=lsn(0x0_1200_0000),
        last_error=ErrorView(
            kind=ErrorKind.SLOT.value,
            reason="replication slot etl_legacy_sync_4 was invalidated: the WAL it needed was removed",
            hint="resync the pipeline (every table is copied again): etl-tui pipeline resync legacy_sync",
            retry_policy="none",
        ),
    )
    return shop, billing, crm, legacy
