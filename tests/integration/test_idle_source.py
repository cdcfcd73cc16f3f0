"""A slot must not hold WAL back when its pipeline has nothing to apply: not when the only
traffic is in another database of the server, and not when the only changes are to an errored
table (I5)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from engine.config.models import DestinationType
from engine.config.repository import ConfigRepository
from engine.embedded.postgres import EmbeddedPostgres
from engine.identifiers import parse_table_list
from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, current_wal, duck_rows, slot_confirmed, table_phase, wait_until


def _configure(settings: Settings, dsn: str, duck: str, tables: str) -> None:
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("duck", DestinationType.DUCKDB, {"path": duck})
        repo.add_pipeline("p1", "src", "duck", parse_table_list(tables))


def test_traffic_elsewhere_on_the_server_lets_the_slot_advance(
    settings: Settings, source_dsn: str, pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE quiet (id int PRIMARY KEY, v text)")
        conn.execute("CREATE TABLE busy_but_unpublished (id serial PRIMARY KEY, v text)")
    other = "busy_elsewhere"
    pg.create_database(other)
    try:
        _configure(settings, source_dsn, f"{tmp_path}/o.duckdb", "public.quiet")
        with EngineThread(settings) as engine:
            runner = engine.runner("p1")
            slot = runner.spec.pipeline.slot_name
            wait_until(lambda: table_phase(settings, runner.spec.id, "public.quiet") == TablePhase.READY, 60)
            start = slot_confirmed(source_dsn, slot) or 0
            with psycopg.connect(pg.dsn(other), autocommit=True) as conn:
                conn.execute("CREATE TABLE noise (id serial PRIMARY KEY, v text)")
                for _ in range(20):
                    conn.execute("INSERT INTO noise (v) SELECT repeat('x', 500) FROM generate_series(1, 200)")
            with psycopg.connect(source_dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO busy_but_unpublished (v) SELECT 'y' FROM generate_series(1, 1000)")
            target = current_wal(source_dsn)
            assert target > start
            # nothing for this pipeline to apply, yet its slot follows the server
            wait_until(lambda: (slot_confirmed(source_dsn, slot) or 0) >= target, 60, what="idle slot to advance")
    finally:
        pg.drop_database(other)


def test_an_errored_table_never_pins_the_slot(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE good (id int PRIMARY KEY, v text)")
        conn.execute("CREATE TABLE keyless (id int, v text)")  # errored: no key
    duck = tmp_path / "o.duckdb"
    _configure(settings, source_dsn, str(duck), "public.good,public.keyless")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.good") == TablePhase.READY, 60)
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.keyless") == TablePhase.ERRORED, 60)
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            for i in range(50):
                conn.execute("INSERT INTO keyless VALUES (%s, 'k')", (i,))
        target = current_wal(source_dsn)
        wait_until(lambda: (slot_confirmed(source_dsn, slot) or 0) >= target, 60, what="slot past the errored table")
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO good VALUES (1, 'still replicated')")
        wait_until(lambda: duck_rows(duck, "SELECT id, v FROM main.good") == [(1, "still replicated")], 60)


def test_the_heartbeat_writes_wal_in_the_slots_database(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE quiet (id int PRIMARY KEY, v text)")
    _configure(settings, source_dsn, str(tmp_path / "o.duckdb"), "public.quiet")
    with EngineThread(settings, heartbeat=0.3) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.quiet") == TablePhase.READY, 60)
        before = current_wal(source_dsn)
        # nobody writes anything: the WAL grows only by the heartbeats, and the slot follows
        wait_until(lambda: (slot_confirmed(source_dsn, slot) or 0) > before, 30, what="slot past a heartbeat")
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE '%pg_logical_emit_message(false, ''etl-tui/heartbeat''%'"
            ).fetchone()
        assert row is not None and row[0] == 1
