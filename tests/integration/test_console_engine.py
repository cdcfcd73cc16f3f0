"""The engine half of the console on real servers: the status collector, the Redis inspector and
the operations the console calls (through the config DB, as the CLI)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis

from engine.config.models import DestinationType, PipelineStatus
from engine.config.repository import ConfigRepository
from engine.embedded.loopback import free_port
from engine.errors import ConfigError
from engine.identifiers import TableName
from engine.runtime.operations import Operations, ReadOnlyError
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from engine.status.board import Board, BoardFeed, PipelineView
from engine.status.collector import Collector
from engine.status.redis_keys import inspect_keys
from tests.integration.harness import EngineThread, duck_rows, wait_caught_up, wait_until
from tests.integration.scenarios import configure, setup_items


def _pipeline(board: BoardFeed, name: str = "p1") -> PipelineView | None:
    return board.latest().pipeline(name)


def _health(snapshot: Board) -> dict[str, bool]:
    return {h.component: h.ok for h in snapshot.health}


def _streaming_and_ready(board: BoardFeed, name: str = "p1") -> bool:
    p = _pipeline(board, name)
    return p is not None and p.actual == "streaming" and bool(p.tables) and all(t.phase == "ready" for t in p.tables)


def test_collector_shows_a_streaming_pipeline(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 200)
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    board = BoardFeed()
    with EngineThread(settings) as engine:
        collector = Collector(
            engine.manager, settings.config_db_url, redis.Redis.from_url(settings.redis_url), board, interval=0.3
        )
        collector.start()
        try:
            wait_until(lambda: _streaming_and_ready(board), 60, what="streaming with the table ready")
            slot = engine.runner("p1").spec.pipeline.slot_name
            wait_caught_up(source_dsn, slot)

            # a steady trickle of single-row transactions for a few seconds, then updates and deletes
            stop = threading.Event()
            inserted: list[int] = []
            rates: list[float] = []

            def writer() -> None:
                with psycopg.connect(source_dsn, autocommit=True) as conn:
                    i = 10_000
                    while not stop.is_set() and len(inserted) < 3000:
                        conn.execute("INSERT INTO items (id, name, qty, price) VALUES (%s, 'live', 1, 1)", (i,))
                        inserted.append(i)
                        i += 1
                        time.sleep(0.001)

            t = threading.Thread(target=writer)
            t.start()
            try:

                def busy() -> bool:
                    p = _pipeline(board)
                    rates.extend(p.rows_per_second[-1:] if p else ())
                    return any(r > 0 for r in rates)

                wait_until(busy, 30, what="rows/s above zero while writing")
            finally:
                stop.set()
                t.join()
            with psycopg.connect(source_dsn, autocommit=True) as conn:
                conn.execute("UPDATE items SET qty = qty + 1 WHERE id <= 50")
                conn.execute("DELETE FROM items WHERE id > 190 AND id <= 200")
            wait_caught_up(source_dsn, slot)

            def counted() -> PipelineView | None:
                p = _pipeline(board)
                t = p.tables[0] if p else None
                ok = t is not None and (t.inserts, t.updates, t.deletes) == (len(inserted), 50, 10)
                return p if ok else None

            p = wait_until(counted, 30, what="counts equal to what was written")
            table = p.tables[0]
            assert table.name == "public.items" and table.phase == "ready" and table.error is None
            assert table.rows_copied == 200 and table.last_event_at is not None
            assert p.source == "src" and p.destination == "duck" and p.destination_target.startswith("duckdb:")
            assert p.desired == "start" and p.last_error is None
            assert p.batches and all(b.pipeline == "p1" and b.write_seconds >= 0 for b in p.batches)
            assert p.batches[-1].checkpoint_lsn is not None and p.batches[-1].tables == 1
            assert p.confirmed_lsn is not None and p.lag_bytes is not None and p.lag_bytes >= 0
            assert p.lag_seconds is not None and p.lag_seconds < 30
            assert 0 < len(p.rows_per_second) <= 60

            snap = board.latest()
            slots = [s for s in snap.slots if s.pipeline == "p1"]
            assert len(slots) == 1
            sv = slots[0]
            assert sv.slot == slot and sv.source == "src" and sv.exists and sv.error is None
            assert sv.active and sv.active_pid is not None and sv.wal_status == "reserved"
            assert sv.confirmed_lag_bytes is not None and sv.restart_lag_bytes is not None
            assert sv.lag_history and len(sv.lag_history) <= 120 and sv.warning is None

            health = _health(snap)
            assert health == {"config DB": True, 'source "src"': True, "Redis": True, 'destination "duck"': True}

            messages = [e.message for e in snap.events if e.pipeline == "p1"]
            assert any("copying" in m for m in messages) and any("copied 200 rows" in m for m in messages)
            assert any("ready" in m for m in messages) and any(m.endswith(": streaming") for m in messages)
            assert {e.kind for e in snap.events} >= {"state", "table"}
            assert len(engine.events) >= len(messages)  # the manager's own on_event still gets them all
            assert snap.taken_at > time.time() - 5
        finally:
            collector.stop()


def test_collector_survives_an_unreachable_source_and_redis(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    dsn = f"postgresql://app:pw@127.0.0.1:{port}/shop?connect_timeout=2"
    configure(settings, dsn, tmp_path / "o.duckdb", "public.items")
    board = BoardFeed()
    down_redis = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, socket_timeout=1)
    with EngineThread(settings) as engine:
        collector = Collector(engine.manager, settings.config_db_url, down_redis, board, interval=0.3)
        collector.start()
        try:

            def retrying() -> PipelineView | None:
                p = _pipeline(board)
                return p if p is not None and p.last_error is not None and p.actual == "retrying" else None

            p = wait_until(retrying, 30, what="the pipeline retrying")
            assert p.last_error is not None
            assert p.last_error.kind == "source_unreachable" and p.last_error.retry_policy == "timed"
            assert p.last_error.next_retry_at is not None and p.last_error.next_retry_at > time.time() - 60
            assert "pw" not in p.last_error.reason.split(f":{port}")[0].split("app:")[-1]  # password masked
            assert [t.phase for t in p.tables] == ["init"]

            snap = board.latest()
            health = _health(snap)
            assert health['source "src"'] is False and health["Redis"] is False
            assert health["config DB"] is True and health['destination "duck"'] is True
            detail = next(h.detail for h in snap.health if h.component == 'source "src"')
            assert "cannot connect" in detail and ":pw@" not in detail
            slot = next(s for s in snap.slots if s.pipeline == "p1")
            assert slot.error is not None and slot.warning is not None
            assert any(e.kind == "retry" and e.level == "warning" for e in snap.events)
            assert any("unavailable" in e.message for e in snap.events)
            # it keeps publishing
            first = snap.taken_at
            wait_until(lambda: board.latest().taken_at > first + 0.5, 10, what="further snapshots")
        finally:
            collector.stop()


def test_collector_publishes_with_everything_down(tmp_path: Path) -> None:
    from engine.runtime.manager import Manager

    dead_pg = f"postgresql://postgres@127.0.0.1:{free_port()}/cfg?connect_timeout=1"
    dead_redis = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, socket_timeout=1)
    manager = Manager(dead_pg, dead_redis)  # never run: no runners, as when the engine cannot start
    board = BoardFeed()
    collector = Collector(manager, dead_pg, dead_redis, board)
    started = time.monotonic()
    snap = collector.collect()
    assert time.monotonic() - started < 5
    assert board.latest() is snap and snap.pipelines == ()
    assert _health(snap) == {"config DB": False, "Redis": False}
    again = collector.collect()  # the config DB is tried again later (backoff), the board still moves on
    assert again.taken_at >= snap.taken_at and _health(again)["config DB"] is False


def test_inspector_scans_and_previews_without_keys(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    state = PipelineState(client, 7)
    state.set(TableName("public", "items"), TableState(TablePhase.READY, rows_copied=42))
    state.set(TableName("public", "Order Items"), TableState(TablePhase.DATA_SYNC))
    state.set_checkpoint(123456)
    state.publish_status({"pipeline": "p", "state": "streaming", "blob": "x" * 500}, ttl_seconds=30)
    state.add_counters({(TableName("public", "items"), "insert"): 5})
    client.set("etl:binary", b"\xff\x00\xfe\x80 raw")
    client.rpush("etl:list", "a", "b")
    pipe = client.pipeline(transaction=False)
    for i in range(10_000):
        pipe.set(f"other:{i}", i)
    pipe.execute()
    client.config_resetstat()

    keys = {k.key: k for k in inspect_keys(client)}
    assert set(keys) == {
        "etl:pipeline:7:tables",
        "etl:pipeline:7:checkpoint",
        "etl:pipeline:7:status",
        "etl:pipeline:7:counters",
        "etl:binary",
        "etl:list",
    }
    tables = keys["etl:pipeline:7:tables"]
    assert tables.type == "hash" and tables.ttl_seconds is None
    assert tables.preview.startswith('["public", "Order Items"]={"phase":"data_sync"')
    assert len(tables.preview) <= 200
    assert keys["etl:pipeline:7:checkpoint"].preview == "123456"
    status = keys["etl:pipeline:7:status"]
    assert status.type == "string" and status.ttl_seconds is not None and 0 < status.ttl_seconds <= 30
    assert len(status.preview) <= 200 and status.preview.endswith("…")
    assert keys["etl:pipeline:7:counters"].preview == "public.items|insert=5"
    assert keys["etl:binary"].preview.startswith("\\xff\\x00\\xfe")
    assert keys["etl:list"].type == "list" and keys["etl:list"].preview == "a, b"
    assert [k.key for k in inspect_keys(client, "etl:pipeline:*", limit=2)] == sorted(
        [k.key for k in inspect_keys(client, "etl:pipeline:*", limit=2)]
    )
    assert len(inspect_keys(client, "etl:pipeline:*", limit=2)) == 2

    stats = client.info("commandstats")
    assert "cmdstat_keys" not in stats, "the inspector must never run KEYS"
    assert stats["cmdstat_scan"]["calls"] >= 10  # 10k keys, at most 1000 per SCAN call
    assert client.dbsize() == 10_006  # nothing written


def _ops_settings(settings: Settings) -> Settings:
    from engine.batching.limits import BatchLimits

    return Settings(
        settings.config_db_url, settings.redis_url, settings.metrics_addr, batch=BatchLimits(max_fill_seconds=0.2)
    )


def _slot_active(board: BoardFeed, name: str = "p1") -> bool | None:
    slot = next((s for s in board.latest().slots if s.pipeline == name), None)
    return slot.active if slot is not None and slot.error is None and slot.exists else None


def test_operations_pause_start_retry_and_delete(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 100)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE nokey (id int NOT NULL, v text)")
        conn.execute("INSERT INTO nokey SELECT g, 'v' FROM generate_series(1, 10) g")
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items,public.nokey")
    with ConfigRepository(settings.config_db_url) as repo:
        p = repo.get_pipeline("p1")
    with Operations(_ops_settings(settings), interval=0.3) as ops:
        board = ops.feed

        def phases() -> dict[str, str]:
            pv = _pipeline(board)
            return {t.name: t.phase for t in pv.tables} if pv else {}

        wait_until(lambda: phases() == {"public.items": "ready", "public.nokey": "errored"}, 60, what="phases")
        nokey = next(t for t in _pipeline(board).tables if t.name == "public.nokey")  # type: ignore[union-attr]
        assert nokey.error is not None and nokey.error.kind == "no_replica_identity"
        assert "PRIMARY KEY" in nokey.error.hint and nokey.error.retry_policy == "manual"
        wait_until(lambda: _slot_active(board) is True, 30, what="slot active")

        # pause: the manager stops the runner and the slot goes inactive; start resumes
        ops.pause_pipeline("p1")
        wait_until(lambda: _pipeline(board).actual == "stopped", 30, what="stopped")  # type: ignore[union-attr]
        wait_until(lambda: _slot_active(board) is False, 30, what="slot inactive")
        view = ops.config().pipelines[0]
        assert view.status == "pause" and view.applied
        pv = _pipeline(board)
        assert pv is not None and pv.desired == "pause"
        assert phases() == {"public.items": "ready", "public.nokey": "errored"}  # read from Redis now
        ops.start_pipeline("p1")
        wait_until(lambda: _pipeline(board).actual == "streaming", 30, what="streaming again")  # type: ignore[union-attr]
        wait_until(lambda: _slot_active(board) is True, 30, what="slot active again")
        wait_until(lambda: ops.config().pipelines[0].applied, 30, what="applied")

        # retry: only an errored table; after the cause is fixed it is copied and streams
        with pytest.raises(Exception, match="not errored"):
            ops.retry_table("p1", "public.items")
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE nokey ADD PRIMARY KEY (id)")
        ops.retry_table("p1", "public.nokey")
        wait_until(lambda: phases() == {"public.items": "ready", "public.nokey": "ready"}, 60, what="retried")
        wait_until(lambda: _pipeline(board).tables[1].rows_copied == 10, 10, what="copied")  # type: ignore[union-attr]

        config_events = [e.message for e in board.latest().events if e.kind == "config"]
        assert any("pause requested" in m for m in config_events)
        assert any("start requested" in m for m in config_events)
        assert any("public.nokey: retry requested" in m for m in config_events)

        # delete: the runner stops, the slot and the state go
        ops.delete_pipeline("p1")
        wait_until(lambda: _pipeline(board) is None, 30, what="pipeline gone from the board")
        assert ops.config().pipelines == ()
        wait_until(
            lambda: any("p1 deleted" in e.message for e in board.latest().events if e.kind == "config"),
            10,
            what="the deletion in the events",
        )
    with psycopg.connect(source_dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (p.slot_name,)).fetchall() == []
    assert list(redis.Redis.from_url(settings.redis_url).scan_iter(match=f"etl:pipeline:{p.id}:*")) == []


def test_operations_edit_pipeline_goes_pending_then_applied(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    setup_items(source_dsn, 50)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE other (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO other SELECT g, 'v' || g FROM generate_series(1, 30) g")
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    with ConfigRepository(settings.config_db_url) as repo:
        slot = repo.get_pipeline("p1").slot_name
    with Operations(_ops_settings(settings), interval=0.3) as ops:
        wait_until(lambda: _streaming_and_ready(ops.feed), 60, what="streaming")
        assert ops.config().pipelines[0].applied
        # hold the manager's reconcile, so "pending" is observed for sure
        with ops.manager._lock:
            ops.save_pipeline("p2", "src", "duck", 'public.items, public."other"', original="p1")
            pending = ops.config().pipelines[0]
            assert pending.name == "p2" and pending.tables == ("public.items", "public.other")
            assert not pending.applied
        wait_until(lambda: ops.config().pipelines[0].applied, 30, what="applied")
        wait_until(lambda: _streaming_and_ready(ops.feed, "p2"), 60, what="both tables ready")
        with ConfigRepository(settings.config_db_url) as repo:
            assert repo.get_pipeline("p2").slot_name == slot  # a rename keeps the slot
        edits = [e.message for e in ops.feed.latest().events if e.kind == "config"]
        assert any("renamed from p1" in m and "tables added: public.other" in m for m in edits)
        # another destination: every table is copied there again, then streams
        ops.save_destination("duck2", "duckdb", {"path": str(tmp_path / "two.duckdb")})
        ops.save_pipeline("p2", "src", "duck2", "public.items,public.other", original="p2")
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO other VALUES (31, 'after the switch')")
        wait_until(lambda: ops.config().pipelines[0].applied, 30, what="applied")
        wait_until(lambda: _streaming_and_ready(ops.feed, "p2"), 60, what="ready in the new destination")
        wait_caught_up(source_dsn, slot)
        assert duck_rows(tmp_path / "two.duckdb", "SELECT count(*) FROM main.items") == [(50,)]
        assert duck_rows(tmp_path / "two.duckdb", "SELECT count(*), max(v) FROM main.other") == [(31, "v9")]
        # moving a pipeline to another source would orphan its slot: refused
        with ConfigRepository(settings.config_db_url) as repo:
            repo.add_source("elsewhere", source_dsn)
        with pytest.raises(Exception, match="replication slot lives on the old source"):
            ops.save_pipeline("p2", "elsewhere", "duck", "public.items", original="p2")


def test_operations_masks_passwords_and_keeps_the_stored_dsn(settings: Settings, tmp_path: Path) -> None:
    ops = Operations(settings)  # not started: edits only need the config DB
    try:
        ops.save_source("src", "postgresql://app:s3cret-one@db.example:5432/shop")
        ops.save_destination("d", "duckdb", {"path": str(tmp_path / "x.duckdb")})
        ops.save_pipeline("p", "src", "d", "public.a")
        ops.save_source("shop", None, original="src")  # rename, the form left the masked DSN alone
        with ConfigRepository(settings.config_db_url) as repo:
            assert repo.get_source("shop").dsn == "postgresql://app:s3cret-one@db.example:5432/shop"
        ops.save_source("shop", "postgresql://app:s3cret-two@db.example:5432/shop", original="shop")
        with ConfigRepository(settings.config_db_url) as repo:
            assert repo.get_source("shop").dsn.endswith("s3cret-two@db.example:5432/shop")
        view = ops.config()
        assert [(s.name, s.dsn_redacted) for s in view.sources] == [
            ("shop", "postgresql://app:****@db.example:5432/shop")
        ]
        assert view.pipelines[0].source == "shop"
        assert view.destinations[0].options == (
            ("path", str(tmp_path / "x.duckdb")),
            ("schema", "main"),
            ("landing_schema", "etl_landing"),
        )
        # a destination in use keeps its place (its tables and checkpoint are there); another one may move
        with pytest.raises(ConfigError, match="used by pipeline"):
            ops.save_destination("d", "duckdb", {"path": str(tmp_path / "y.duckdb")}, original="d")
        ops.save_destination("d", "duckdb", {"path": str(tmp_path / "x.duckdb"), "landing_schema": "l2"}, original="d")
        ops.save_destination("spare", "duckdb", {"path": str(tmp_path / "z.duckdb")})
        moved = {"path": str(tmp_path / "y.duckdb"), "schema": "analytics"}
        ops.save_destination("spare", "duckdb", moved, original="spare")
        snap = ops.collector.collect()
        text = " ".join(e.message for e in snap.events)
        assert "s3cret" not in text and "****" in text
        assert 'source "shop" edited: renamed from "src"' in text
        assert "schema main → analytics" in text and "landing_schema etl_landing → l2" in text
        assert all(e.kind == "config" for e in snap.events if "edited" in e.message)
    finally:
        ops.stop()


def test_readonly_refuses_every_action_and_changes_nothing(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    with ConfigRepository(settings.config_db_url) as repo:
        repo.set_pipeline_status("p1", PipelineStatus.PAUSE)

    def state() -> tuple[object, ...]:
        with ConfigRepository(settings.config_db_url) as repo:
            return (repo.list_sources(), repo.list_destinations(), repo.list_pipelines())

    before = state()
    ops = Operations(settings, readonly=True)
    try:
        assert ops.readonly
        actions = [
            lambda: ops.start_pipeline("p1"),
            lambda: ops.pause_pipeline("p1"),
            lambda: ops.retry_table("p1", "public.items"),
            lambda: ops.resync_table("p1", "public.items"),
            lambda: ops.save_source("new", "postgresql://x@h/db"),
            lambda: ops.save_source("src", None, original="src"),
            lambda: ops.delete_source("src"),
            lambda: ops.save_destination("new", str(DestinationType.DUCKDB), {"path": "x.duckdb"}),
            lambda: ops.delete_destination("duck"),
            lambda: ops.save_pipeline("new", "src", "duck", "public.items"),
            lambda: ops.save_pipeline("p1", "src", "duck", "public.items,public.b", original="p1"),
            lambda: ops.delete_pipeline("p1"),
        ]
        for action in actions:
            with pytest.raises(ReadOnlyError) as info:
                action()
            assert info.value.kind == "config" and "read-only" in info.value.reason
        assert state() == before
        assert ops.config().pipelines[0].status == "pause"  # reading is allowed
        assert ops.collector.collect().events == ()  # nothing was recorded as done
        assert list(redis.Redis.from_url(settings.redis_url).scan_iter(match="etl:*")) == []
    finally:
        ops.stop()
