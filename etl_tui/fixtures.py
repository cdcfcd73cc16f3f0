"""Deterministic demo data for the console: snapshot tests, pilot tests and the screenshots.

Four pipelines cover what an operator meets: one streaming, one copying, one retrying on a timer
with an errored table, one whose slot was lost. The clock is fixed, so countdowns and ages render
the same on every run.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.errors import ErrorKind, EtlError
from engine.monitoring.alerts import Alert, AlertStatus, DeliveryStats, Rule
from engine.monitoring.alerts import Severity as AlertSeverity
from engine.pipeline.activity import EventKind
from engine.preflight import Check, CheckReport, Finding, PipelineReport, Severity, SourceReport
from engine.status.board import (
    BatchView,
    Board,
    ConfigView,
    DestinationConfigView,
    ErrorView,
    EventView,
    HealthView,
    PipelineConfigView,
    PipelineView,
    RedisKeyView,
    SlotView,
    SourceConfigView,
    TableView,
)

FIXED_NOW = 1_782_907_200.0  # 2026-07-01 12:00:00 UTC
MiB = 1024**2
GiB = 1024**3


def fixed_clock() -> float:
    return FIXED_NOW


def _series(n: int, f: Callable[[int], float]) -> tuple[float, ...]:
    return tuple(round(max(0.0, f(i)), 1) for i in range(n))


def _lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:08X}"


def _batches(pipeline: str, count: int, base_rows: int, base_write: float, lsn: int) -> tuple[BatchView, ...]:
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
                checkpoint_lsn=_lsn(lsn + i * 40_960),
            )
        )
    return tuple(out)


def board(now: float = FIXED_NOW) -> Board:
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
        confirmed_lsn=_lsn(0x1_A2B3_C4D0),
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
                "catchup",
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
        confirmed_lsn=_lsn(0x2_0F00_1000),
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
        confirmed_lsn=_lsn(0x0_7C11_2040),
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
        confirmed_lsn=_lsn(0x0_1200_0000),
        last_error=ErrorView(
            kind=ErrorKind.SLOT.value,
            reason="replication slot etl_legacy_sync_4 was invalidated: the WAL it needed was removed",
            hint="resync the pipeline (every table is copied again): etl-tui pipeline resync legacy_sync",
            retry_policy="none",
        ),
    )
    slots = (
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
        pipelines=(shop, billing, crm, legacy),
        slots=slots,
        events=events(now),
        alerts=firing,
        alert_history=history,
        alert_delivery=DeliveryStats("https://hooks.slack.com", delivered=5, failed=1),
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


def redis_keys() -> list[RedisKeyView]:
    pipelines = {1: "shop_sync", 2: "billing_sync", 3: "crm_sync", 4: "legacy_sync"}
    keys = []
    for pid, name in pipelines.items():
        prefix = f"etl:pipeline:{pid}:"
        keys += [
            RedisKeyView(
                prefix + "tables",
                "hash",
                None,
                '{"public.orders": {"phase": "ready", "snapshot_lsn": "1/2A000000"}, …}'
                if pid == 1
                else f"{{… {name} table phases …}}",
            ),
            RedisKeyView(prefix + "checkpoint", "string", None, _lsn(0x1_A2B3_C4D0 + pid)),
            RedisKeyView(prefix + "slot", "string", None, f"etl_{name}_{pid}"),
            RedisKeyView(prefix + "status", "string", 30, f'{{"pipeline": "{name}", "state": "…", "at": …}}'),
            RedisKeyView(
                prefix + "counters", "hash", None, '{"public.orders|insert": "48210", …}' if pid == 1 else "{…}"
            ),
        ]
    return keys


def config() -> ConfigView:
    return ConfigView(
        sources=(
            SourceConfigView("shop", "postgresql://replicator:****@db.internal:5432/shop"),
            SourceConfigView("billing", "host=billing.internal port=5432 dbname=billing user=replicator password=****"),
            SourceConfigView("crm", "postgresql://etl:****@crm-db:5432/crm"),
            SourceConfigView("reports", "postgresql://etl:****@reports-db:5432/reports"),
        ),
        destinations=(
            DestinationConfigView(
                "local",
                "duckdb",
                "duckdb:./shop.duckdb",
                (("path", "./shop.duckdb"), ("schema", "main"), ("landing_schema", "etl_landing")),
            ),
            DestinationConfigView(
                "warehouse",
                "duckdb",
                "duckdb:/srv/warehouse.duckdb",
                (("path", "/srv/warehouse.duckdb"), ("schema", "analytics"), ("landing_schema", "etl_landing")),
            ),
            DestinationConfigView(
                "snowflake",
                "snowflake",
                "snowflake:myorg-analytics/ANALYTICS.PUBLIC",
                (
                    ("schema", "PUBLIC"),
                    ("landing_schema", "ETL_LANDING"),
                    ("account", "myorg-analytics"),
                    ("database", "ANALYTICS"),
                    ("loader", "copy"),
                    ("private_key_file", "/etc/etl-tui/snowflake_key.p8"),
                    ("private_key_passphrase_env", "SNOWFLAKE_KEY_PASSPHRASE"),
                    ("user", "ETL_LOADER"),
                    ("warehouse", "LOAD_WH"),
                ),
            ),
        ),
        pipelines=(
            PipelineConfigView(
                "shop_sync",
                "shop",
                "local",
                "start",
                ("public.orders", "public.order_items", "public.customers", 'public."Order Items"'),
                True,
            ),
            PipelineConfigView(
                "billing_sync",
                "billing",
                "warehouse",
                "start",
                ("public.invoices", "public.payments", "public.ledger", "public.refunds"),
                True,
            ),
            PipelineConfigView(
                "crm_sync", "crm", "warehouse", "start", ("public.contacts", "public.deals", "public.notes"), True
            ),
            PipelineConfigView("legacy_sync", "shop", "local", "start", ("public.audit_log",), True),
            PipelineConfigView("reports_sync", "reports", "warehouse", "start", ("public.daily_totals",), False),
        ),
    )


def check_report(now: float = FIXED_NOW) -> CheckReport:
    """Pre-flight findings that match the board's story: crm out of WAL senders, legacy_sync's slot
    lost, crm's public.deals without a key, the reports source unreachable."""
    sev, chk = Severity, Check

    def ok(check: Check, subject: str, found: str) -> Finding:
        return Finding(sev.OK, check, subject, found)

    def server(database: str, role: str, version: str, senders: Finding, slots: str) -> tuple[Finding, ...]:
        return (
            ok(chk.CONNECTION, f"database {database}", f'connected as role "{role}" (PostgreSQL {version})'),
            ok(chk.WAL_LEVEL, "wal_level", "wal_level = logical"),
            ok(chk.REPLICATION_ROLE, f"role {role}", f"role {role} has REPLICATION"),
            ok(chk.REPLICATION_SLOTS, "max_replication_slots", slots),
            senders,
        )

    def table(name: str, key: str, rows: int, size: str) -> Finding:
        found = (
            f"{name}: table, key ({key}) from the primary key, readable, all types supported, ~{rows:,} rows, {size}"
        )
        return ok(chk.TABLE, name, found)

    def estimate(tables: int, rows: int, size: str, took: str) -> Finding:
        return Finding(
            sev.INFO,
            chk.COPY_ESTIMATE,
            "initial copy",
            f"{tables} table(s), ~{rows:,} rows, {size}: {took} at 360k rows/s",
            "an estimate from pg_table_size and reltuples, at the initial copy rate measured into DuckDB on a "
            "2-core VM (README, Performance); wide rows, large values, a busy source or Snowflake take longer",
        )

    every_slot = "every pipeline's slot exists; a table resync needs 1 more (temporary) while it copies"
    shop = SourceReport(
        "shop",
        "postgresql://replicator:****@db.internal:5432/shop",
        server(
            "shop",
            "replicator",
            "16.4",
            ok(chk.WAL_SENDERS, "max_wal_senders", "max_wal_senders = 10, 1 in use, 9 free; 1 needed (legacy_sync)"),
            f"max_replication_slots = 10, 2 in use, 8 free; {every_slot}",
        ),
        (
            PipelineReport(
                "shop_sync",
                "local",
                "duckdb:./shop.duckdb",
                (
                    ok(chk.SLOT, "slot etl_shop_sync_1", "slot etl_shop_sync_1 exists, active, wal_status = reserved"),
                    ok(
                        chk.PUBLICATION,
                        "publication etl_pub_1_9f2c",
                        "etl_pub_1_9f2c publishes insert, update, delete and truncate of exactly the pipeline's "
                        "4 table(s)",
                    ),
                    table("public.orders", "id", 182_400, "41.2 MiB"),
                    Finding(
                        sev.INFO,
                        chk.UNCHANGED_TOAST,
                        "public.orders",
                        "notes (text), payload (jsonb) may be stored out of line (TOAST): an UPDATE that leaves such "
                        "a value alone sends it as 'unchanged' and the target keeps its value; when that UPDATE also "
                        "changes the key, the engine reads the value from the source (one query per such row)",
                        "nothing to do; REPLICA IDENTITY FULL sends the old row whole and saves that query, at the "
                        "cost of more WAL",
                    ),
                    table("public.order_items", "order_id, line", 611_050, "88.0 MiB"),
                    Finding(
                        sev.WARNING,
                        chk.ROW_SECURITY,
                        "public.customers",
                        "row-level security is on for public.customers and role replicator does not bypass it: the "
                        "initial copy would miss the rows its policies hide, while later changes to them still arrive",
                        "ALTER ROLE replicator BYPASSRLS; (as a superuser), or "
                        "ALTER TABLE public.customers DISABLE ROW LEVEL SECURITY;",
                    ),
                    table('public."Order Items"', "id", 5_000, "1.1 MiB"),
                    estimate(4, 838_568, "142.9 MiB", "about 2 s"),
                    ok(chk.DESTINATION, "destination local", "DuckDB file shop.duckdb exists and is writable"),
                ),
            ),
            PipelineReport(
                "legacy_sync",
                "local",
                "duckdb:./shop.duckdb",
                (
                    Finding(
                        sev.BLOCKER,
                        chk.SLOT,
                        "slot etl_legacy_sync_4",
                        "slot etl_legacy_sync_4 was invalidated (wal_status = lost): the WAL it needed is gone",
                        "etl-tui pipeline resync legacy_sync (new slot, every table copied again); "
                        "consider raising max_slot_wal_keep_size",
                    ),
                    table("public.audit_log", "id", 9_800_000, "2.1 GiB"),
                    estimate(1, 9_800_000, "2.1 GiB", "about 27 s"),
                    ok(chk.DESTINATION, "destination local", "DuckDB file shop.duckdb exists and is writable"),
                ),
            ),
        ),
    )
    billing = SourceReport(
        "billing",
        "host=billing.internal port=5432 dbname=billing user=replicator password=****",
        server(
            "billing",
            "replicator",
            "15.8",
            ok(
                chk.WAL_SENDERS,
                "max_wal_senders",
                "max_wal_senders = 10, 1 in use, 9 free; every pipeline already streams",
            ),
            f"max_replication_slots = 10, 1 in use, 9 free; {every_slot}",
        ),
        (
            PipelineReport(
                "billing_sync",
                "warehouse",
                "duckdb:/srv/warehouse.duckdb",
                (
                    ok(
                        chk.SLOT,
                        "slot etl_billing_sync_2",
                        "slot etl_billing_sync_2 exists, active, wal_status = extended",
                    ),
                    Finding(
                        sev.WARNING,
                        chk.PUBLICATION,
                        "publication etl_pub_2_41aa",
                        "etl_pub_2_41aa lacks public.refunds",
                        "the engine fixes it when the pipeline starts: ALTER PUBLICATION etl_pub_2_41aa ADD TABLE "
                        "public.refunds;",
                    ),
                    table("public.invoices", "id", 1_204_332, "310.5 MiB"),
                    table("public.payments", "id", 1_000_000, "201.7 MiB"),
                    table("public.ledger", "entry_id", 2_400_000, "655.0 MiB"),
                    table("public.refunds", "id", 31_870, "6.2 MiB"),
                    estimate(4, 4_636_202, "1.1 GiB", "about 13 s"),
                    ok(
                        chk.DESTINATION,
                        "destination warehouse",
                        "DuckDB file /srv/warehouse.duckdb exists and is writable",
                    ),
                ),
            ),
        ),
    )
    crm = SourceReport(
        "crm",
        "postgresql://etl:****@crm-db:5432/crm",
        server(
            "crm",
            "etl",
            "14.12",
            Finding(
                sev.BLOCKER,
                chk.WAL_SENDERS,
                "max_wal_senders",
                "max_wal_senders = 10, 10 in use, 0 free; 1 needed (crm_sync)",
                "stop replication clients nobody needs (SELECT pid, application_name FROM pg_stat_replication;) or "
                "ALTER SYSTEM SET max_wal_senders = 12; then restart PostgreSQL (this setting needs a restart)",
            ),
            f"max_replication_slots = 10, 4 in use, 6 free; {every_slot}",
        ),
        (
            PipelineReport(
                "crm_sync",
                "warehouse",
                "duckdb:/srv/warehouse.duckdb",
                (
                    ok(chk.SLOT, "slot etl_crm_sync_3", "slot etl_crm_sync_3 exists, inactive, wal_status = reserved"),
                    ok(
                        chk.PUBLICATION,
                        "publication etl_pub_3_77d0",
                        "etl_pub_3_77d0 publishes insert, update, delete and truncate of exactly the pipeline's "
                        "2 table(s)",
                    ),
                    table("public.contacts", "id", 88_000, "19.4 MiB"),
                    Finding(
                        sev.BLOCKER,
                        chk.REPLICA_IDENTITY,
                        "public.deals",
                        "public.deals has no primary key or replica identity index: changes cannot be matched by key",
                        "ALTER TABLE public.deals ADD PRIMARY KEY (…); or, on NOT NULL columns, CREATE UNIQUE INDEX … "
                        "ON public.deals (…); then ALTER TABLE public.deals REPLICA IDENTITY USING INDEX …;",
                    ),
                    table("public.notes", "id", 12_500, "3.0 MiB"),
                    estimate(2, 100_500, "22.4 MiB", "under a second"),
                    ok(
                        chk.DESTINATION,
                        "destination warehouse",
                        "DuckDB file /srv/warehouse.duckdb exists and is writable",
                    ),
                ),
            ),
        ),
    )
    reports = SourceReport(
        "reports",
        "postgresql://etl:****@reports-db:5432/reports",
        (
            Finding(
                sev.BLOCKER,
                chk.CONNECTION,
                "source reports",
                'source "reports" (postgresql://etl:****@reports-db:5432/reports): cannot connect: connection to '
                'server at "reports-db" (10.0.4.12), port 5432 failed: Connection refused',
                "check that the server is running and reachable from this host (host, port, firewall)",
            ),
        ),
        (
            PipelineReport(
                "reports_sync",
                "warehouse",
                "duckdb:/srv/warehouse.duckdb",
                (
                    ok(
                        chk.DESTINATION,
                        "destination warehouse",
                        "DuckDB file /srv/warehouse.duckdb exists and is writable",
                    ),
                ),
            ),
        ),
    )
    return CheckReport((shop, billing, crm, reports), checked_at=now - 4.0, seconds=1.3)


class FixtureBackend:
    """A :class:`~etl_tui.backend.Backend` over the data above that records every action.

    ``gate``: when given, every action waits for it (to prove the UI stays responsive meanwhile).
    ``fail_with``: actions raise it instead of succeeding.
    """

    def __init__(
        self,
        *,
        readonly: bool = False,
        snapshot: Board | None = None,
        gate: threading.Event | None = None,
        fail_with: EtlError | None = None,
    ) -> None:
        self._readonly = readonly
        self.current = snapshot if snapshot is not None else board()
        self.config_view = config()
        self.keys = redis_keys()
        self.gate = gate
        self.fail_with = fail_with
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self._lock = threading.Lock()

    @property
    def readonly(self) -> bool:
        return self._readonly

    def board(self) -> Board:
        return self.current

    def redis_keys(self, match: str = "etl:*", limit: int = 500) -> list[RedisKeyView]:
        return [k for k in self.keys if fnmatch.fnmatchcase(k.key, match)][:limit]

    def config(self) -> ConfigView:
        return self.config_view

    check_runs = 0  # how often run_checks was called

    def run_checks(self, pipeline: str | None = None) -> CheckReport:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.check_runs += 1
        report = check_report()
        if pipeline is None:
            return report
        sources = tuple(
            replace(src, pipelines=tuple(p for p in src.pipelines if p.pipeline == pipeline))
            for src in report.sources
            if any(p.pipeline == pipeline for p in src.pipelines)
        )
        return replace(report, sources=sources)

    def _act(self, name: str, *args: object) -> None:
        if self._readonly:
            raise EtlError(
                "the console is read-only", "start it without --readonly to change anything", kind=ErrorKind.CONFIG
            )
        if self.gate is not None:
            self.gate.wait(timeout=30)
        with self._lock:
            self.calls.append((name, args))
        if self.fail_with is not None:
            raise self.fail_with

    def start_pipeline(self, name: str) -> None:
        self._act("start_pipeline", name)

    def pause_pipeline(self, name: str) -> None:
        self._act("pause_pipeline", name)

    def retry_table(self, pipeline: str, table: str) -> None:
        self._act("retry_table", pipeline, table)

    def resync_table(self, pipeline: str, table: str) -> None:
        self._act("resync_table", pipeline, table)

    def save_source(self, name: str, dsn: str | None, *, original: str | None = None) -> None:
        self._act("save_source", name, dsn, original)

    def delete_source(self, name: str) -> None:
        self._act("delete_source", name)

    def save_destination(self, name: str, type_: str, options: dict[str, str], *, original: str | None = None) -> None:
        self._act("save_destination", name, type_, dict(options), original)

    def delete_destination(self, name: str) -> None:
        self._act("delete_destination", name)

    def save_pipeline(
        self, name: str, source: str, destination: str, tables: str, *, original: str | None = None
    ) -> None:
        self._act("save_pipeline", name, source, destination, tables, original)

    def delete_pipeline(self, name: str) -> None:
        self._act("delete_pipeline", name)

    def with_pipeline(self, name: str, **changes: Any) -> None:
        """Replace fields of one pipeline in the published snapshot (tests of live updates)."""
        pipelines = tuple(replace(p, **changes) if p.name == name else p for p in self.current.pipelines)
        self.current = replace(self.current, pipelines=pipelines)
