"""End to end on real servers: copy while writes arrive, then inserts, updates, deletes, truncate."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from engine.config.models import PipelineStatus
from engine.config.repository import ConfigRepository
from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import (
    EngineThread,
    duck_rows,
    slot_confirmed,
    source_rows,
    table_phase,
    wait_caught_up,
    wait_until,
)
from tests.integration.scenarios import DUCK_ITEMS_SQL, ITEMS_SQL, configure, setup_items


def test_copy_with_concurrent_inserts_then_cdc(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 50_000)
    duck = tmp_path / "out.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    stop = threading.Event()
    inserted = []

    def writer() -> None:
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            i = 1_000_000
            while not stop.is_set():
                conn.execute("INSERT INTO items (id, name, qty, price) VALUES (%s, %s, 1, 9.99)", (i, f"live {i}"))
                inserted.append(i)
                i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        with EngineThread(settings) as engine:
            runner = engine.runner("p1")
            wait_until(
                lambda: table_phase(settings, runner.spec.id, "public.items") == TablePhase.READY,
                60,
                what="items ready",
            )
            stop.set()
            t.join()
            assert len(inserted) > 10, "the writer should have kept inserting during the copy"
            with psycopg.connect(source_dsn, autocommit=True) as conn:
                conn.execute("UPDATE items SET qty = qty + 1000, name = name || ' (upd)' WHERE id % 7 = 0")
                conn.execute("DELETE FROM items WHERE id % 11 = 0")
                with conn.transaction():  # several changes to one key inside one transaction
                    conn.execute("INSERT INTO items (id, name, qty, price) VALUES (-1, 'a', 1, 1)")
                    conn.execute("UPDATE items SET qty = 2 WHERE id = -1")
                    conn.execute("UPDATE items SET qty = 3, name = 'b' WHERE id = -1")
                    conn.execute("DELETE FROM items WHERE id = -1")
                    conn.execute("INSERT INTO items (id, name, qty, price) VALUES (-1, 'c', 4, 4)")
            wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
            assert duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL)

            with psycopg.connect(source_dsn, autocommit=True) as conn:
                with conn.transaction():
                    conn.execute("INSERT INTO items (id, name, qty, price) VALUES (-2, 'before truncate', 1, 1)")
                    conn.execute("TRUNCATE items")
                    conn.execute("INSERT INTO items (id, name, qty, price) VALUES (-3, 'after truncate', 1, 1)")
                conn.execute("INSERT INTO items (id, name, qty, price) VALUES (-4, 'later', 1, 1)")
            wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
            got = duck_rows(duck, DUCK_ITEMS_SQL)
            assert got == source_rows(source_dsn, ITEMS_SQL)
            assert [r[0] for r in got] == [-4, -3]
    finally:
        stop.set()
        t.join()


def test_empty_table_copies_then_streams(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 0)
    duck = tmp_path / "out.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        # with no writes at all the table still reaches `ready` (keepalives carry the position)
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.items") == TablePhase.READY, 60)
        assert duck_rows(duck, "SELECT count(*) FROM main.items") == [(0,)]
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items (id, name, qty, price) VALUES (1, 'first', 1, 1)")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        assert duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL)


def test_pause_stops_the_slot_and_start_resumes(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 100)
    duck = tmp_path / "out.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.items") == TablePhase.READY, 60)
        wait_caught_up(source_dsn, slot)
        with ConfigRepository(settings.config_db_url) as repo:
            repo.set_pipeline_status("p1", PipelineStatus.PAUSE)
        wait_until(lambda: not engine.manager.runners, 30, what="runner to stop")
        paused_at = slot_confirmed(source_dsn, slot)
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            for i in range(200, 260):
                conn.execute("INSERT INTO items (id, name, qty, price) VALUES (%s, 'while paused', 1, 1)", (i,))
        import time

        time.sleep(2.0)
        assert slot_confirmed(source_dsn, slot) == paused_at, "a paused pipeline must not consume the slot"
        assert len(duck_rows(duck, "SELECT * FROM main.items WHERE id >= 200")) == 0
        with ConfigRepository(settings.config_db_url) as repo:
            repo.set_pipeline_status("p1", PipelineStatus.START)
        runner = engine.runner("p1")
        wait_caught_up(source_dsn, slot)
        assert duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL)
        assert (slot_confirmed(source_dsn, slot) or 0) > (paused_at or 0)
