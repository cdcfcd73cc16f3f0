"""Operator commands on a real engine: migrate, graceful SIGTERM, resync, remove, and the demo."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psycopg
import pytest
import redis

from engine.config.migrations import migrations_dir
from engine.config.repository import ConfigRepository
from engine.settings import Settings
from engine.source.lsn import parse_lsn
from engine.state.store import read_status
from engine.state.table_state import TablePhase
from etl_tui.cli import main
from tests.integration.harness import (
    EngineThread,
    current_wal,
    duck_rows,
    engine_process,
    slot_confirmed,
    source_rows,
    table_phase,
    wait_until,
)
from tests.integration.scenarios import DUCK_ITEMS_SQL, ITEMS_SQL, configure, setup_items

ROOT = Path(__file__).resolve().parents[2]


def _env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)


def test_migrate_applies_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(settings, monkeypatch)
    every = sorted(f.stem for f in migrations_dir().glob("*.sql"))
    assert every[:3] == ["001_create_tables", "002_snowflake_destinations", "003_pipeline_column_types"]
    assert main(["migrate"]) == 0
    assert f"applied {len(every)} migration(s): {', '.join(every)}" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out


def test_sigterm_drains_pending_changes_and_exits_zero(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 1000)
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    with ConfigRepository(settings.config_db_url) as repo:
        p = repo.get_pipeline("p1")
    client = redis.Redis.from_url(settings.redis_url)
    with engine_process(settings, log_path=tmp_path / "engine.log") as proc:
        wait_until(lambda: table_phase(settings, p.id, "public.items") == TablePhase.READY, 60, what="ready")
        # a reader holds the DuckDB file, so the engine receives the changes but cannot write them yet
        reader = duckdb.connect(str(duck), read_only=True)
        try:
            with psycopg.connect(source_dsn, autocommit=True) as conn:
                conn.execute("UPDATE items SET qty = qty + 1")
            end = current_wal(source_dsn)

            def received() -> bool:
                status = read_status(client, p.id) or {}
                return parse_lsn(status.get("received_lsn") or "0/0") >= end - 1024

            wait_until(received, 30, what="changes received")
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert proc.poll() is None, "the engine must not exit with changes it has not written"
        finally:
            reader.close()  # the pending batch can be written now
        assert proc.wait(60) == 0
    assert "engine stopped cleanly" in (tmp_path / "engine.log").read_text()
    assert duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL)
    info = source_rows(source_dsn, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{p.slot_name}'")
    assert info == [(False,)]
    assert (slot_confirmed(source_dsn, p.slot_name) or 0) > 0


def test_resync_table_and_pipeline_then_remove(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _env(settings, monkeypatch)
    setup_items(source_dsn, 300)
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    client = redis.Redis.from_url(settings.redis_url)
    with ConfigRepository(settings.config_db_url) as repo:
        p = repo.get_pipeline("p1")
    with EngineThread(settings) as engine:
        wait_until(lambda: table_phase(settings, p.id, "public.items") == TablePhase.READY, 60, what="ready")
        copied = [e for e in engine.events if "copied 300 rows" in e.message]
        assert len(copied) == 1
        # a table resync copies that table again, keeping the slot
        assert main(["pipeline", "resync", "p1", "--table", "public.items"]) == 0
        assert "will be copied again" in capsys.readouterr().out
        wait_until(lambda: len([e for e in engine.events if "copied 300 rows" in e.message]) == 2, 60, what="recopy")
        wait_until(lambda: table_phase(settings, p.id, "public.items") == TablePhase.READY, 60, what="ready again")
        assert slot_confirmed(source_dsn, p.slot_name) is not None
        # a full resync drops the slot (explicitly, visibly) and starts over
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM items WHERE id <= 100")
        assert main(["pipeline", "resync", "p1"]) == 0
        assert "slot dropped and state cleared" in capsys.readouterr().out
        wait_until(lambda: len([e for e in engine.events if "copied 200 rows" in e.message]) == 1, 60, what="full")
        wait_until(lambda: duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL), 30, what="equal")
        # remove: the runner stops, the slot and publication go, and so do the state keys
        assert main(["pipeline", "remove", "p1"]) == 0
        out = capsys.readouterr().out
        assert f"slot {p.slot_name} dropped" in out and "state store keys removed" in out
        wait_until(lambda: not engine.manager.runners, 30, what="runner gone")
    assert source_rows(source_dsn, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{p.slot_name}'") == []
    assert source_rows(source_dsn, f"SELECT 1 FROM pg_publication WHERE pubname = '{p.publication_name}'") == []
    assert list(client.scan_iter(match=f"etl:pipeline:{p.id}:*")) == []


def test_demo_runs_headless_until_ctrl_c_and_ends_with_equal_tables(tmp_path: Path) -> None:
    """What a new user runs first: `etl-tui demo --no-ui`, stopped with Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "etl_tui.cli", "demo", "--no-ui", "--rate", "100", "--dir", str(tmp_path / "demo")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("CONFIG_DB_URL", "REDIS_URL")},
    )
    try:
        time.sleep(10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "streaming" in out and "4 ready" in out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("public.")]
    assert len(lines) == 4 and all(ln.endswith("equal") for ln in lines), out
    assert (tmp_path / "demo" / "shop.duckdb").exists()
    # the closing hint is a command that works with what the install brings
    hint = next(ln for ln in out.splitlines() if "look inside with: " in ln).split("look inside with: ", 1)[1]
    assert hint.startswith("python -c ")
    shown = subprocess.run(
        [sys.executable, *shlex.split(hint)[1:]], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert "customer_id" in shown.stdout, shown.stdout


def test_headless_engine_never_loads_the_console(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    """`etl-tui --no-ui` running a real pipeline keeps textual (and rich) out of sys.modules."""
    setup_items(source_dsn, 10)
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    code = (
        "import os, signal, sys, threading, time\n"
        "from etl_tui.cli import main\n"
        "def watch():\n"
        "    time.sleep(4)\n"
        "    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "    print('LOADED', loaded, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        "sys.exit(main(['--no-ui']))\n"
    )
    env = dict(os.environ, CONFIG_DB_URL=settings.config_db_url, REDIS_URL=settings.redis_url)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED []" in result.stdout
    assert "streaming" in result.stderr  # it really ran the pipeline
