"""`etl-tui status` reads back, through a real Redis, the same RunnerView a runner publishes, and
shows it as the board's values (text and JSON)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import psycopg
import pytest
import redis

from engine.config.models import DestinationType, PipelineSpec
from engine.config.repository import ConfigRepository
from engine.errors import ErrorKind, EtlError, RetryPolicy
from engine.identifiers import TableName, parse_table_list
from engine.monitoring.alerts import Alert, AlertStatus, Rule, Severity
from engine.pipeline.activity import ActivityView, AppliedBatch, RunnerState, RunnerView, TableActivity
from engine.pipeline.view_codec import decode_view, encode_view
from engine.settings import Settings
from engine.source.lsn import format_lsn
from engine.state import keys
from engine.state.store import PipelineState, read_status
from engine.state.table_state import TablePhase, TableState
from engine.status.report import board_json, collect_status, status_lines
from etl_tui.cli import main

ITEMS = TableName("public", "items")
ORDER_ITEMS = TableName("public", "Order Items")
NOKEY = TableName("public", "nokey")


def _spec(settings: Settings, source_dsn: str, tmp_path: Path) -> PipelineSpec:
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn + " password=hunter2")  # the server trusts: the password is only shown
        repo.add_destination("duck", DestinationType.DUCKDB, {"path": str(tmp_path / "o.duckdb")})
        repo.add_pipeline("p1", "src", "duck", parse_table_list('public.items,public."Order Items",public.nokey'))
        return repo.load_specs()[0]


def _view(now: float, acked: int | None) -> RunnerView:
    activity = ActivityView(
        tables=MappingProxyType({ITEMS: TableActivity(inserts=5, updates=2, deletes=1, last_event_at=now - 3)}),
        copy_progress=MappingProxyType({ORDER_ITEMS: (400, 1000)}),
        batches=(AppliedBatch(at=now - 3, rows=8, tables=1, write_seconds=0.25, checkpoint=acked),),
        rows_applied=8,
        rows_copied=400,
    )
    return RunnerView(
        state=RunnerState.RETRYING,
        tables=MappingProxyType(
            {ITEMS: TableState(TablePhase.READY, rows_copied=10), ORDER_ITEMS: TableState(TablePhase.DATA_SYNC)}
        ),
        activity=activity,
        last_error=EtlError("destination busy: locked", "close the reader", kind=ErrorKind.DESTINATION_BUSY),
        next_retry_at=now + 30,
        acked_lsn=acked,
        received_lsn=acked + 4096 if acked else None,
        applied_commit_at=now - 2,
        caught_up_at=now - 5,
    )


def _store_tables(client: redis.Redis, spec: PipelineSpec) -> None:
    store = PipelineState(client, spec.id)
    store.set(ITEMS, TableState(TablePhase.READY, rows_copied=10))
    store.set(ORDER_ITEMS, TableState(TablePhase.DATA_SYNC))
    err = EtlError("public.nokey has no primary key", "ALTER TABLE public.nokey ADD PRIMARY KEY (...)")
    store.set(NOKEY, TableState(TablePhase.INIT).errored(err))


def _create_slot(source_dsn: str, slot: str) -> int:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (lsn - '0/0'::pg_lsn)::bigint FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_published_view_reads_back_as_the_runner_view(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    now = time.time()
    view = _view(now, acked=0x16B3748)
    PipelineState(client, 7).publish_status(encode_view(view, "p1", now))
    payload = read_status(client, 7)
    assert payload is not None and payload["pipeline"] == "p1" and payload["published_at"] == now
    assert payload["received_lsn"] == format_lsn(0x16B3748 + 4096)  # LSNs as PostgreSQL prints them
    back = decode_view(payload)
    # an error is not equal to a copy of itself: compare what it says
    assert back.last_error is not None and view.last_error is not None
    assert (back.last_error.kind, back.last_error.reason, back.last_error.hint, back.last_error.retry) == (
        ErrorKind.DESTINATION_BUSY,
        "destination busy: locked",
        "close the reader",
        RetryPolicy.MANUAL,
    )
    assert back.tables[ORDER_ITEMS].phase is TablePhase.DATA_SYNC
    assert back == replace(view, last_error=back.last_error)
    assert back.lag_seconds(now) == view.lag_seconds(now)

    with pytest.raises(ValueError, match="version"):
        decode_view({"state": "streaming"})  # the shape published before the codec
    with pytest.raises(ValueError, match="malformed"):
        decode_view({**payload, "tables": {'public."unclosed': {}}})


def test_status_shows_the_published_view_the_store_and_the_slot(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    spec = _spec(settings, source_dsn, tmp_path)
    client = redis.Redis.from_url(settings.redis_url)
    slot_lsn = _create_slot(source_dsn, spec.pipeline.slot_name)
    _store_tables(client, spec)
    now = time.time()
    PipelineState(client, spec.id).publish_status(encode_view(_view(now, acked=slot_lsn), "p1", now))

    with ConfigRepository(settings.config_db_url) as repo:
        board = collect_status(repo, client, now=now)
    p = board.pipeline("p1")
    assert p is not None
    assert (p.desired, p.actual, p.source, p.destination) == ("start", "retrying", "src", "duck")
    assert (p.slot, p.publication) == (spec.pipeline.slot_name, spec.pipeline.publication_name)
    assert "hunter2" not in p.source_dsn and "****" in p.source_dsn
    assert p.last_error is not None and p.last_error.kind == "destination_busy"
    assert p.last_error.next_retry_at is None  # a manual error is not retried on its own
    assert p.confirmed_lsn == format_lsn(slot_lsn) and p.lag_bytes is not None
    assert p.lag_seconds == pytest.approx(2.0)
    tables = {t.name: t for t in p.tables}
    assert set(tables) == {"public.items", 'public."Order Items"', "public.nokey"}  # the pipeline's, in its order
    assert (tables["public.items"].phase, tables["public.items"].inserts, tables["public.items"].deletes) == (
        "ready",
        5,
        1,
    )
    copying = tables['public."Order Items"']
    assert (copying.phase, copying.rows_copied, copying.copy_total) == ("data_sync", 400, 1000)
    nokey = tables["public.nokey"]
    assert nokey.phase == "errored" and nokey.error is not None
    assert "no primary key" in nokey.error.reason and "ADD PRIMARY KEY" in nokey.error.hint
    assert [(b.rows, b.checkpoint_lsn) for b in p.batches] == [(8, format_lsn(slot_lsn))]
    slot = next(s for s in board.slots if s.pipeline == "p1")
    assert slot.exists and not slot.active and slot.wal_status == "reserved" and slot.error is None
    health = {h.component: h.ok for h in board.health}
    # the runner's error is the destination's: its health row says so, as on the console
    assert health == {"config DB": True, 'source "src"': True, "Redis": True, 'destination "duck"': False}

    text = "\n".join(status_lines(board, now))
    assert "p1: src → duck (duckdb:" in text
    assert "  desired start, actual retrying" in text
    assert f"  slot {spec.pipeline.slot_name}: inactive, confirmed {format_lsn(slot_lsn)}, lag " in text
    assert "wal_status reserved" in text
    assert '  table public."Order Items": data_sync (400/1000 rows)' in text
    assert "  table public.nokey: errored\n    reason: public.nokey has no primary key\n    hint: ALTER TABLE" in text
    assert "  last error [destination_busy]: destination busy: locked\n    hint: close the reader" in text
    assert "alerts firing: none" in text

    data = json.loads(json.dumps(board_json(board)))
    pj = data["pipelines"][0]
    assert (pj["name"], pj["actual"], pj["confirmed_lsn"]) == ("p1", "retrying", format_lsn(slot_lsn))
    assert next(t for t in pj["tables"] if t["name"] == "public.nokey")["error"]["reason"].endswith("primary key")
    assert pj["last_error"]["retry_policy"] == "manual" and pj["slot"] == spec.pipeline.slot_name
    assert data["slots"][0]["wal_status"] == "reserved" and data["alerts"] == []
    assert {h["component"] for h in data["health"]} == set(health)


def test_status_without_a_recent_view_says_not_running(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    spec = _spec(settings, source_dsn, tmp_path)
    client = redis.Redis.from_url(settings.redis_url)
    _store_tables(client, spec)
    with ConfigRepository(settings.config_db_url) as repo:
        nothing = collect_status(repo, client)
        now = time.time()
        PipelineState(client, spec.id).publish_status(encode_view(_view(now - 60, acked=None), "p1", now - 60))
        stale = collect_status(repo, client, now=now)
        client.set(keys.status(spec.id), json.dumps({"pipeline": "p1", "state": "streaming", "published_at": now}))
        unreadable = collect_status(repo, client, now=now)
        down = collect_status(repo, None, redis_error="cannot reach Redis at redis://127.0.0.1:1")
    for board, actual in ((nothing, "not running"), (stale, "not running"), (unreadable, "unknown")):
        p = board.pipeline("p1")
        assert p is not None and p.actual == actual and p.last_error is None and p.lag_seconds is None
        phases = {t.name: t.phase for t in p.tables}  # the state store still tells the phases
        assert phases == {"public.items": "ready", 'public."Order Items"': "data_sync", "public.nokey": "errored"}
    slot = next(s for s in nothing.slots if s.pipeline == "p1")
    assert not slot.exists and slot.error is None  # no slot yet
    assert f"  slot {spec.pipeline.slot_name}: not created yet" in status_lines(nothing)

    p = down.pipeline("p1")
    assert p is not None and p.actual == "not running" and {t.phase for t in p.tables} == {"init"}
    assert [h.detail for h in down.health if h.component == "Redis" and not h.ok] == [
        "cannot reach Redis at redis://127.0.0.1:1"
    ]
    text = status_lines(down)
    assert text[0] == "warning: cannot reach Redis at redis://127.0.0.1:1"
    assert not any(line.startswith("alerts") for line in text)  # unknown, rather than "none"


def test_status_shows_the_alerts_the_monitor_recorded(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    spec = _spec(settings, source_dsn, tmp_path)
    client = redis.Redis.from_url(settings.redis_url)
    now = float(int(time.time()))  # alert times are kept to the second
    slot = spec.pipeline.slot_name
    firing = Alert(
        AlertStatus.FIRING,
        Rule.LAG_BYTES,
        Severity.WARNING,
        "src",
        "p1",
        slot,
        2_000_000,
        1_000_000,
        "bytes",
        now - 120,
        now - 120,
        f"slot {slot} on source src is 1.9 MiB behind",
        "start the pipeline",
    )
    resolved = replace(firing, status=AlertStatus.RESOLVED, rule=Rule.SLOT_INACTIVE, at=now - 60)
    client.set(keys.alert_firing(), json.dumps({"updated_at": "2026-07-01T12:00:00Z", "alerts": [firing.payload()]}))
    client.lpush(keys.alert_history(), json.dumps(firing.payload()), json.dumps(resolved.payload()))
    with ConfigRepository(settings.config_db_url) as repo:
        board = collect_status(repo, client, now=now)
    assert [a.rule for a in board.alerts] == [Rule.LAG_BYTES]
    assert [a.status for a in board.alert_history] == [AlertStatus.FIRING, AlertStatus.RESOLVED]  # newest last
    text = "\n".join(status_lines(board, now))
    assert "alerts firing: 1\n  [warning] lag_bytes · pipeline p1 · since 2m 00s ago: slot " in text
    assert "    hint: start the pipeline" in text
    assert "recent alert notifications (newest first, 2):" in text
    assert text.index("RESOLVED slot_inactive") < text.index("FIRING   lag_bytes · pipeline p1 · 1.9 MiB")
    data = board_json(board)
    assert data["alerts"][0]["id"] == f"lag_bytes/src/{slot}" and data["alerts"][0]["version"] == 1


def test_cli_status_prints_the_board(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _spec(settings, source_dsn, tmp_path)
    client = redis.Redis.from_url(settings.redis_url)
    _store_tables(client, spec)
    now = time.time()
    PipelineState(client, spec.id).publish_status(encode_view(_view(now, acked=None), "p1", now))
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "  desired start, actual retrying" in out and "    reason: public.nokey has no primary key" in out
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {
        "taken_at",
        "health",
        "pipelines",
        "slots",
        "events",
        "alerts",
        "alert_history",
        "alert_delivery",
    }
    p = data["pipelines"][0]
    assert (p["name"], p["desired"], p["actual"]) == ("p1", "start", "retrying")
    assert p["last_error"]["kind"] == "destination_busy" and "hunter2" not in p["source_dsn"]
    assert sorted(t["phase"] for t in p["tables"]) == ["data_sync", "errored", "ready"]
