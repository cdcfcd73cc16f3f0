"""The scenario most integration tests start from: an ``items`` table on the source, and one
pipeline from it to a DuckDB file, configured the way an operator would."""

from __future__ import annotations

from pathlib import Path

import psycopg

from engine.config.models import DestinationType
from engine.config.repository import ConfigRepository
from engine.identifiers import parse_table_list
from engine.settings import Settings

ITEMS_SQL = "SELECT id, name, qty, price, updated_at FROM items ORDER BY id"
DUCK_ITEMS_SQL = "SELECT id, name, qty, price, updated_at FROM main.items ORDER BY id"


def setup_items(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), "
            "updated_at timestamptz DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO items (id, name, qty, price) SELECT g, 'item ' || g, g %% 100, g * 1.25 "
            "FROM generate_series(1, %s) g",
            (rows,),
        )


def configure(settings: Settings, source_dsn: str, duck: Path, tables: str, name: str = "p1") -> None:
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("duck", DestinationType.DUCKDB, {"path": str(duck)})
        repo.add_pipeline(name, "src", "duck", parse_table_list(tables))
