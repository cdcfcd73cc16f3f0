"""The pre-flight report in the scenes, matching the board's story: crm out of WAL senders,
legacy_sync's slot lost, crm's public.deals without a key, the reports source unreachable."""

from __future__ import annotations

from engine.preflight import Check, CheckReport, Finding, PipelineReport, Severity, SourceReport
from etl_tui.scenes.clock import FIXED_NOW


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
