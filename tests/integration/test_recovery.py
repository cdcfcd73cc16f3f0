"""Crash recovery and bounded memory, with the engine as a separate `etl-tui --no-ui` process."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import psutil
import psycopg
import redis

from engine.settings import Settings
from engine.state import keys
from engine.state.store import read_counters
from engine.state.table_state import TablePhase
from tests.integration.harness import (
    EngineThread,
    duck_rows,
    engine_process,
    slot_confirmed,
    source_rows,
    table_phase,
    wait_caught_up,
    wait_until,
)
from tests.integration.scenarios import DUCK_ITEMS_SQL, ITEMS_SQL, configure, setup_items


def _pipeline(settings: Settings) -> tuple[int, str]:
    from engine.config.repository import ConfigRepository

    with ConfigRepository(settings.config_db_url) as repo:
        p = repo.get_pipeline("p1")
        return p.id, p.slot_name


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    setup_items(source_dsn, 20_000)
    duck = tmp_path / "out.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    pid, slot = _pipeline(settings)
    stop = threading.Event()
    rnd = random.Random(7)

    def writer() -> None:
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            next_id = 100_000
            while not stop.is_set():
                with conn.transaction():
                    for _ in range(rnd.randint(1, 40)):
                        conn.execute("INSERT INTO items (id, name, qty, price) VALUES (%s, 'w', 1, 2.5)", (next_id,))
                        next_id += 1
                    conn.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (rnd.randint(1, 20_000),))
                    if rnd.random() < 0.3:
                        conn.execute("DELETE FROM items WHERE id = %s", (rnd.randint(1, 20_000),))

    log = tmp_path / "engine.log"
    t = threading.Thread(target=writer)
    try:
        with engine_process(settings, log_path=log) as proc:
            wait_until(lambda: table_phase(settings, pid, "public.items") == TablePhase.READY, 60, what="ready")
            copied_before = read_counters(redis.Redis.from_url(settings.redis_url), pid)["public.items|copy"]
            t.start()
            # let several batches land, then kill without any chance to drain
            time.sleep(3.0)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        time.sleep(1.0)  # writes continue while the engine is down
        with engine_process(settings, log_path=log):
            time.sleep(2.0)
            stop.set()
            t.join()
            wait_caught_up(source_dsn, slot, timeout=90)
            got = duck_rows(duck, DUCK_ITEMS_SQL)
            want = source_rows(source_dsn, ITEMS_SQL)
            assert len({r[0] for r in got}) == len(got), "duplicate keys in the target"
            assert got == want
        counters = read_counters(redis.Redis.from_url(settings.redis_url), pid)
        assert counters["public.items|copy"] == copied_before, "a ready table must not be copied again"
        assert counters.get("public.items|insert", 0) > 0
    finally:
        stop.set()
        if t.is_alive():
            t.join()


def _peak_rss_while(proc_pid: int, until: threading.Event) -> list[int]:
    samples: list[int] = []
    p = psutil.Process(proc_pid)

    def sample() -> None:
        while not until.is_set():
            try:
                samples.append(p.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    return samples


def _big_transaction(dsn: str, first: int, rows: int) -> None:
    """Insert ``rows`` rows in one transaction."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO items (id, name, qty, price) SELECT g, repeat('x', 40) || g, g %% 100, g * 0.01 "
            "FROM generate_series(%s, %s) g",
            (first, first + rows - 1),
        )
        conn.commit()


def _watch_slot(
    dsn: str, slot: str, client: redis.Redis, pid: int, until: threading.Event, samples: list[tuple[int, int]]
) -> None:
    """Sample (slot confirmed_flush_lsn, checkpoint durable at the destination) until told to stop."""
    from engine.state import keys

    while not until.is_set():
        confirmed = slot_confirmed(dsn, slot) or 0
        durable = int(client.get(keys.checkpoint(pid)) or 0)  # read after the slot: never older
        samples.append((confirmed, durable))
        time.sleep(0.05)


def test_large_transaction_memory_does_not_grow_with_size(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 10)
    duck = tmp_path / "out.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    pid, slot = _pipeline(settings)
    peaks = {}
    client = redis.Redis.from_url(settings.redis_url)
    with engine_process(settings, log_path=tmp_path / "engine.log") as proc:
        wait_until(lambda: table_phase(settings, pid, "public.items") == TablePhase.READY, 60, what="ready")
        first = 1_000
        # 1M rows fill the pipeline many times over (batches of 100k, a few in flight)
        for rows in (1_000_000, 3_000_000):
            done = threading.Event()
            samples = _peak_rss_while(proc.pid, done)
            started = time.monotonic()
            _big_transaction(source_dsn, first, rows)
            slot_samples: list[tuple[int, int]] = []
            watcher = threading.Thread(target=_watch_slot, args=(source_dsn, slot, client, pid, done, slot_samples))
            watcher.start()
            wait_caught_up(source_dsn, slot, timeout=300)
            done.set()
            watcher.join()
            # I1: the slot never confirmed the transaction's commit before it was durable at the
            # destination (the server may confirm up to the commit's start, which replays it whole).
            commit_end = int(client.get(keys.checkpoint(pid)) or 0)
            early = [(c, d) for c, d in slot_samples if d < commit_end <= c]
            assert not early, f"slot confirmed {early[0][0]} >= commit end {commit_end} while durable {early[0][1]}"
            assert len(slot_samples) > 5
            peaks[rows] = (max(samples), time.monotonic() - started)
            first += rows
        got = duck_rows(duck, "SELECT count(*), sum(id) FROM main.items")
        want = source_rows(source_dsn, "SELECT count(*), sum(id) FROM items")
        assert got[0][0] == want[0][0] and int(got[0][1]) == int(want[0][1])
    small, big = peaks[1_000_000][0], peaks[3_000_000][0]
    mib = 1 << 20
    print(
        f"peak RSS: 1M-row tx {small / mib:.0f} MiB ({peaks[1_000_000][1]:.1f}s), "
        f"3M-row tx {big / mib:.0f} MiB ({peaks[3_000_000][1]:.1f}s)"
    )
    # Three times the rows must not mean noticeably more memory: batches are cut by rows and bytes.
    assert big < small * 1.15 + 32 * mib, f"peak RSS grew from {small / mib:.0f} MiB to {big / mib:.0f} MiB"


def test_crash_between_creating_the_slot_and_recording_it_recovers(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    """A crash right after CREATE_REPLICATION_SLOT leaves a slot the state store only knows as
    being created: the next start adopts it and copies, instead of reporting lost state."""
    setup_items(source_dsn, 200)
    duck = tmp_path / "out.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    pid, slot = _pipeline(settings)
    source_rows(source_dsn, f"SELECT 1 FROM pg_create_logical_replication_slot('{slot}', 'pgoutput')")
    client = redis.Redis.from_url(settings.redis_url)
    client.set(keys.slot(pid), f"creating:{slot}")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: table_phase(settings, pid, "public.items") == TablePhase.READY, 60, what="ready")
        assert runner.last_error is None
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items (id, name, qty, price) VALUES (5000, 'after', 1, 1)")
        wait_caught_up(source_dsn, slot)
        assert duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL)
    assert client.get(keys.slot(pid)) == slot.encode()


def test_state_store_flushed_under_a_live_slot_is_a_loud_error(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    setup_items(source_dsn, 50)
    configure(settings, source_dsn, tmp_path / "out.duckdb", "public.items")
    pid, _ = _pipeline(settings)
    with EngineThread(settings) as engine:
        wait_until(lambda: table_phase(settings, pid, "public.items") == TablePhase.READY, 60, what="ready")
    redis.Redis.from_url(settings.redis_url).flushall()
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: runner.last_error is not None and runner.next_retry_at is None, 30, what="error")
        assert runner.last_error is not None
        assert runner.last_error.kind == "state_lost"
        assert "etl-tui pipeline resync p1" in runner.last_error.hint


def test_faults_count_in_a_row_not_over_the_runners_life(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    """The walsender is terminated (pg_terminate_backend) three times, each after the pipeline
    streamed again and moved its slot: every retry is the first of its run, with the shortest
    backoff, so faults spread over a long life never add up to a permanent stop."""
    from engine.pipeline.activity import EventKind, RunnerState

    setup_items(source_dsn, 10)
    duck = tmp_path / "f.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    _, slot = _pipeline(settings)
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        for i in range(3):
            wait_until(
                lambda: (
                    runner.state is RunnerState.STREAMING
                    and source_rows(source_dsn, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'")
                    == [(True,)]
                ),
                60,
                what="streaming",
            )
            with psycopg.connect(source_dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO items (id, name, qty, price) VALUES (%s, 'new', 1, 1)", (1000 + i,))
            wait_caught_up(source_dsn, slot)
            with psycopg.connect(source_dsn, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                )
            wait_until(lambda i=i: len([e for e in engine.events if e.kind is EventKind.RETRY]) == i + 1, 30)
        retries = [e.message for e in engine.events if e.kind is EventKind.RETRY]
        assert all(" retry 1 in " in m for m in retries), retries
        wait_until(lambda: duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL), 60, what="equal")
