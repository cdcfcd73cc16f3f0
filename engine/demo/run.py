"""`etl-tui demo`: a throwaway PostgreSQL and Redis, a shop database under a live workload, and a
pipeline into a local DuckDB file — nothing to install or configure."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg

from engine.batching.limits import BatchLimits
from engine.config.models import DestinationType
from engine.config.repository import ConfigRepository
from engine.demo.shop import DEMO_TABLES, ShopWorkload, create_shop
from engine.embedded.postgres import EmbeddedPostgres
from engine.embedded.redis import EmbeddedRedis
from engine.identifiers import parse_table_list, quote_ident
from engine.runtime.manager import Manager
from engine.runtime.service import engine_services
from engine.settings import Settings
from engine.source import catalog
from engine.source.connection import connect_source
from engine.state.store import connect_redis

PIPELINE = "shop_to_duckdb"


def _say(text: str) -> None:
    print(text, flush=True)


def _progress_line(manager: Manager, source_dsn: str, started: float, workload: ShopWorkload) -> str:
    runners = list(manager.runners.values())
    if not runners:
        return "waiting for the pipeline to start…"
    r = runners[0]
    view = r.view()
    phases: dict[str, int] = {}
    for st in view.tables.values():
        phases[str(st.phase)] = phases.get(str(st.phase), 0) + 1
    counts = list(view.activity.tables.values())
    inserts, updates, deletes = (
        sum(c.inserts for c in counts),
        sum(c.updates for c in counts),
        sum(c.deletes for c in counts),
    )
    lag = "-"
    try:
        with connect_source(source_dsn, "demo source") as conn:
            info = catalog.slot_info(conn, r.spec.pipeline.slot_name)
        if info and info.confirmed_flush_lsn is not None:
            lag = f"{(info.current_wal_lsn - info.confirmed_flush_lsn) / 1024:.1f} KiB"
    except Exception:
        pass
    elapsed = time.monotonic() - started
    tables = ", ".join(f"{n} {k}" for k, n in sorted(phases.items()))
    line = (
        f"[{elapsed:5.0f}s] {view.state:<9} tables: {tables} | copied {view.activity.rows_copied} | "
        f"applied +{inserts} ~{updates} -{deletes} | workload {workload.transactions} tx | slot lag {lag}"
    )
    err = view.last_error
    if err is not None:
        line += f"\n        error: {err.reason} (hint: {err.hint})"
    return line


def _compare(duck_path: Path, source_dsn: str) -> list[str]:
    lines = []
    with psycopg.connect(source_dsn) as src, duckdb.connect(str(duck_path), read_only=True) as dst:
        for t in parse_table_list(",".join(DEMO_TABLES)):
            row = src.execute(f"SELECT count(*) FROM {t.sql}").fetchone()
            n_src = int(row[0]) if row else 0
            got = dst.execute(f"SELECT count(*) FROM main.{quote_ident(t.target_name())}").fetchone()
            n_dst = int(got[0]) if got else 0
            mark = "equal" if n_src == n_dst else "DIFFERENT"
            lines.append(f"  {t!s:<22} source {n_src:>7}  duckdb {n_dst:>7}  {mark}")
    return lines


@dataclass(frozen=True)
class DemoEnvironment:
    settings: Settings
    source_dsn: str
    duck_path: Path
    workload: ShopWorkload


@contextmanager
def demo_environment(
    workdir: str | Path = ".etl-tui-demo", *, rate: float = 200.0, say: Callable[[str], None] = _say
) -> Iterator[DemoEnvironment]:
    """Throwaway servers, the seeded shop, its pipeline and a running workload; all torn down
    on exit (the DuckDB file stays)."""
    work = Path(workdir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    duck_path = work / "shop.duckdb"
    for stale in (duck_path, duck_path.with_name(duck_path.name + ".wal")):
        stale.unlink(missing_ok=True)  # a fresh source each run: start the destination afresh too
    say("etl-tui demo: starting a throwaway PostgreSQL (wal_level=logical) and Redis…")
    with EmbeddedPostgres() as pg, EmbeddedRedis() as rds:
        say(f"  PostgreSQL {pg.version} on 127.0.0.1:{pg.port}, Redis on 127.0.0.1:{rds.port}")
        pg.create_database("shop")
        pg.create_database("etl_config")
        source_dsn = pg.dsn("shop")
        create_shop(source_dsn)
        say("  seeded database 'shop': customers, products, orders, \"Order Items\"")
        settings = Settings(
            config_db_url=pg.dsn("etl_config"), redis_url=rds.url, batch=BatchLimits(max_fill_seconds=0.5)
        )
        with ConfigRepository(settings.config_db_url) as repo:
            repo.add_source("shop", source_dsn)
            repo.add_destination("local", DestinationType.DUCKDB, {"path": str(duck_path), "schema": "main"})
            repo.add_pipeline(PIPELINE, "shop", "local", parse_table_list(",".join(DEMO_TABLES)))
        say(f"  pipeline {PIPELINE}: shop → {duck_path}")
        workload = ShopWorkload(source_dsn, rate=rate)
        workload.start()
        say(f"  live workload: ~{rate:.0f} transactions/s (orders placed, paid, shipped, cancelled)")
        try:
            yield DemoEnvironment(settings, source_dsn, duck_path, workload)
        finally:
            workload.stop()
            workload.join()


def run_demo(
    stop: threading.Event,
    *,
    workdir: str | Path = ".etl-tui-demo",
    duration: float | None = None,
    rate: float = 200.0,
    print_every: float = 2.0,
) -> None:
    """The headless demo: progress lines until Ctrl-C (or ``duration``), then a comparison."""
    with demo_environment(workdir, rate=rate) as env:
        source_dsn, workload, duck_path = env.source_dsn, env.workload, env.duck_path
        _say("Replicating. Press Ctrl-C to stop." + (f" (stopping after {duration:.0f}s)" if duration else ""))
        manager = Manager(
            env.settings.config_db_url,
            connect_redis(env.settings.redis_url),
            limits=env.settings.batch,
            poll_interval=2.0,
        )
        engine_stop = threading.Event()
        engine = threading.Thread(target=manager.run, args=(engine_stop,), name="manager", daemon=True)
        engine.start()
        services = ExitStack()  # /metrics and the WAL monitor, as in a real deployment
        services.enter_context(engine_services(env.settings, manager))
        started = time.monotonic()
        try:
            while not stop.wait(print_every):
                _say(_progress_line(manager, source_dsn, started, workload))
                if workload.error is not None:
                    _say(f"  workload stopped: {workload.error}")
                    workload.error = None
                if duration is not None and time.monotonic() - started >= duration:
                    break
        finally:
            workload.stop()
            workload.join()
            # let the pipeline catch up with the last writes (also after Ctrl-C) before draining
            _say("Workload stopped; letting the pipeline catch up…")
            target = _wal_insert_lsn(source_dsn)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _caught_up(manager, source_dsn, target):
                time.sleep(0.25)
            final = _progress_line(manager, source_dsn, started, workload)
            engine_stop.set()
            engine.join()
            services.close()
        _say(final)
        _say("Stopped. Source and DuckDB row counts:")
        try:
            for line in _compare(duck_path, source_dsn):
                _say(line)
        except duckdb.Error as exc:
            _say(f"  cannot read {duck_path}: {exc}")
        _say(f"The DuckDB file stays at {duck_path}; look inside with: {peek_command(duck_path)}")


def peek_command(duck_path: Path) -> str:
    """A shell command that shows a few replicated rows, with only what the install brings (the
    duckdb Python package; the duckdb CLI is a separate download)."""
    code = (
        f"import duckdb; duckdb.connect({json.dumps(str(duck_path))}, read_only=True)"
        '.sql("SELECT * FROM orders ORDER BY id LIMIT 5").show()'
    )
    return f"python -c {shlex.quote(code)}"


def _wal_insert_lsn(source_dsn: str) -> int:
    with connect_source(source_dsn, "demo source") as conn:
        row = conn.execute("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").fetchone()
    return int(row[0]) if row else 0


def _caught_up(manager: Manager, source_dsn: str, target: int) -> bool:
    """The slot has confirmed everything written before ``target``: every commit is durable."""
    runners = list(manager.runners.values())
    if not runners:
        return True
    with connect_source(source_dsn, "demo source") as conn:
        info = catalog.slot_info(conn, runners[0].spec.pipeline.slot_name)
    return info is not None and (info.confirmed_flush_lsn or 0) >= target
