"""The config DB in the scenes: four sources, three destinations (one Snowflake), five pipelines of
which one is pending (its source is unreachable)."""

from __future__ import annotations

from engine.status.board import ConfigView, DestinationConfigView, PipelineConfigView, SourceConfigView


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
                ("public.orders.amount=decimal(38,12)", 'public."Order Items".note_value=text'),
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
