"""End-to-end throughput benchmark of the engine, each number a ratio to a baseline of the same run.

Run: python benchmarks/run.py [--quick] [--runs 3] [--rows 1000000] [--small-tx 100000]
                              [--transport tcp|unix] [--scenarios a,b,c,d] [--engine-ref REF]
                              [--profile] [--no-warmup] [--keep]

Scenarios, each against a baseline measured in the same run, in fresh tables and pipelines:

  a  CDC, many single-row transactions: the engine (a separate ``etl-tui --no-ui`` process) drains a
     backlog built while its pipeline was paused; the baseline is ``pg_recvlogical`` draining a clone
     of the same slot (``pg_copy_logical_replication_slot``), so both decode the same changes.
  b  CDC, one transaction of ``--rows`` rows: same method, plus the engine's peak RSS compared with
     a transaction a tenth of the size (memory must not grow with transaction size).
  c  Initial copy of a ``--rows`` table: the engine's copy phase against a raw ``COPY … TO STDOUT``
     read and discarded by psycopg 3.
  d  A table resynced while the pipeline streams: one pipeline with a ``--rows`` table ``big`` and a
     table ``small`` that gets one row every 20 ms; the lag of ``small`` while ``big`` is copied
     again (``pipeline resync --table public.big``) against its lag in 5 s without a copy.

Baseline and engine alternate which goes first from run to run; the median of the runs is
reported. Results go to stdout (a table) and ``benchmarks/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import duckdb
import psutil
import psycopg
import redis

from engine.config.models import DestinationType, Pipeline, PipelineStatus
from engine.config.repository import ConfigRepository
from engine.embedded.postgres import EmbeddedPostgres
from engine.embedded.redis import EmbeddedRedis
from engine.identifiers import TableName
from engine.runtime.admin import remove_pipeline
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase

RESULTS_DIR = Path(__file__).resolve().parent / "results"

PG_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "max_wal_size": "4GB",
    "shared_buffers": "512MB",
    "checkpoint_timeout": "30min",
}

TARGETS = {"cdc": 0.8, "copy": 0.3}  # ours / baseline, from the issue
SOURCE_DB = "bench"
CONFIG_DB = "bench_config"
CDC_COLUMNS = ("id", "payload", "n", "ts")

POLL_SECONDS = 0.01
RSS_SAMPLE_SECONDS = 0.05
# pg_recvlogical never exits by itself (its --endpos can be "reached by keepalive" before any
# data): it is done once its output stops growing; the idle wait is not counted.
RECVLOGICAL_IDLE_SECONDS = 1.5
# Only if the byte count never matches the prediction: give up waiting after this much idle time.
RECVLOGICAL_GIVE_UP_SECONDS = 5.0
DRAIN_TIMEOUT = 900.0
MIB = 1 << 20

# scenario d: one row into the small table every 20 ms; the writer runs 1 s before the 5 s
# baseline window opens, and 1 s after the big table is ready again (so the copy window's last
# rows are measured like the others)
WRITE_INTERVAL = 0.02
LAG_SETTLE_SECONDS = 1.0
LAG_BASELINE_SECONDS = 5.0
LAG_AFTER_SECONDS = 1.0
# the columns of d's tables, for the content check: (name, is a timestamp)
BIG_COLUMNS = (("id", False), ("md5", False), ("payload", False), ("n", False), ("ts", True))
SMALL_COLUMNS = (("id", False), ("inserted_at", True), ("note", False))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---- the engine process ---------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Peak RSS of one process over a window, sampled every 50 ms from a thread of this process."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"rss-{pid}", daemon=True)
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = 0

    def _rss(self) -> int:
        try:
            return int(self._proc.memory_info().rss)
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            rss = self._rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def reset(self) -> int:
        """Start a new window; returns the RSS now."""
        rss = self._rss()
        with self._lock:
            self._peak = rss
        return rss

    def peak(self) -> int:
        rss = self._rss()
        with self._lock:
            self._peak = max(self._peak, rss)
            return self._peak

    def stop(self) -> None:
        self._stop.set()


# With --console the engine runs inside the console app (headless driver, 160x45 screen,
# refreshing once a second), to measure what having the console open costs replication.
CONSOLE_HOST = """
import asyncio, logging, signal, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from engine.settings import load_settings
from engine.runtime.operations import Operations
from etl_tui.app import EtlApp

async def main() -> None:
    ops = Operations(load_settings())
    ops.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with EtlApp(ops).run_test(size=(160, 45)):
            await stop.wait()
    finally:
        ops.stop()

asyncio.run(main())
"""
CONSOLE = False  # set by --console


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_env(settings: Settings, source: Path) -> dict[str, str]:
    """The environment of an ``etl-tui`` process of the benchmarked engine (its source snapshot)."""
    env = dict(os.environ, CONFIG_DB_URL=settings.config_db_url, REDIS_URL=settings.redis_url)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), os.environ.get("PYTHONPATH")) if p)
    return env


class Engine:
    """``python -m etl_tui.cli --no-ui`` in its own process, so its memory and CPU are its own."""

    def __init__(self, settings: Settings, workdir: Path, label: str, source: Path) -> None:
        self.log_path = workdir / f"engine-{label}.log"
        self._source = source
        self._settings = settings
        self._workdir = workdir
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.rss: RssSampler | None = None
        self.metrics_port = free_port()

    def start(self) -> Engine:
        env = engine_env(self._settings, self._source)
        # a port of its own: engines of other runs on the box may hold the default one
        env["METRICS_ADDR"] = f"127.0.0.1:{self.metrics_port}"
        self._log = self.log_path.open("wb")
        # cwd is the scratch folder so that no .env of the checkout leaks into the engine's settings
        cmd = (
            [sys.executable, "-c", CONSOLE_HOST]
            if CONSOLE
            else [sys.executable, "-m", "etl_tui.cli", "--no-ui", "--log-level", "INFO"]
        )
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=self._workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)
        self.rss = RssSampler(self.proc.pid)
        self.rss.start()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the engine exited with {self.proc.returncode}; see {self.log_path}:\n{self.tail()}")

    def histogram(self, name: str) -> tuple[float, int] | None:
        """(sum, count) of a histogram on the engine's ``/metrics``, over its labels; None: unreadable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        total, count = 0.0, 0
        for line in text.splitlines():
            metric, _, value = line.rpartition(" ")
            if metric.startswith(f"{name}_sum"):
                total += float(value)
            elif metric.startswith(f"{name}_count"):
                count += int(float(value))
        return total, count

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_listening(self, config_conn: psycopg.Connection) -> None:
        """Until the manager has run LISTEN: a START sent before that would wait for its 5 s poll."""

        def listening() -> bool:
            self.check_alive()
            assert self.ps is not None
            ports = {c.laddr.port for c in self.ps.net_connections(kind="inet") if c.laddr}
            rows = config_conn.execute(
                "SELECT client_port FROM pg_stat_activity"
                " WHERE query ILIKE 'LISTEN %%' AND datname = current_database()"
            ).fetchall()
            unix = any(r[0] == -1 for r in rows)  # a unix-socket client shows port -1
            return unix or any(r[0] in ports for r in rows)

        wait_for(listening, 60, "the engine to listen for config changes")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: flushes and acknowledges what is pending
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.rss is not None:
            self.rss.stop()
        if self._log is not None:
            self._log.close()
            self._log = None


class Profiler:
    """py-spy attached to the engine for one measured window (the numbers of such a run are perturbed)."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = out
        self._proc = subprocess.Popen(
            [exe, "record", "-p", str(pid), "-f", "raw", "-r", "250", "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attaching takes a moment; samples before START are idle threads, not counted

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def _thread_of(frames: list[str]) -> str:
    """Which engine thread a py-spy stack belongs to, from its outer frames."""
    for frame in frames:
        if frame.startswith("ApplyWorker.run "):
            return "apply worker"
        if frame.startswith("PipelineRunner.run "):
            return "pipeline runner (decode, copy)"
    return "other (manager, Arrow/DuckDB helper threads)"


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Where a py-spy raw (collapsed stacks) file spends its samples.

    ``self``: leaf frames as ``function (file:line)``; ``inclusive``: engine functions with their
    callees, by function; ``threads``: share of samples per engine thread.
    """
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0, "self": [], "inclusive": [], "threads": {}}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[_thread_of(frames)] += n
        self_counts[frames[-1]] += n
        functions = {f.rsplit(":", 1)[0] + ")" for f in frames if "(engine/" in f}
        for function in functions:
            incl_counts[function] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": [], "threads": {}}
    # the frames every stack of a thread passes through say nothing about where time goes
    skip = (
        "PipelineRunner.run ",
        "PipelineRunner._session ",
        "PipelineRunner._stream ",
        "ApplyWorker.run ",
        "StreamPhase.run ",
        "run_headless ",
        "Manager.run ",
        "main ",
        "cmd_run ",
    )

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(c / total, 4)) for f, c in counter.most_common() if not f.startswith(skip)][:top]

    return {
        "samples": total,
        "self": shares(self_counts),
        "inclusive": shares(incl_counts),
        "threads": {k: round(v / total, 4) for k, v in threads.most_common()},
    }


# ---- measurements -------------------------------------------------------------------------------
@dataclass
class Drain:
    """One consumer's drain (or copy) of one data set."""

    seconds: float
    rows: int
    cpu_seconds: float | None = None  # of the consumer process
    walsender_cpu_seconds: float | None = None
    rss_before: int | None = None
    peak_rss: int | None = None
    startup_seconds: float | None = None  # engine: START → slot active (or → copy begins)
    end_to_end_seconds: float | None = None  # engine copy: pipeline added → table copied
    bytes: int | None = None
    bytes_expected: int | None = None
    system_busy_before: float | None = None  # all cores, just before the window
    system_busy: float | None = None  # all cores, during the window
    profile: dict[str, Any] | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_second"] = round(self.rate, 1)
        return d


@dataclass
class Measurement:
    scenario: str
    label: str
    rows: int
    transactions: int
    order: list[str]
    ours: Drain | None = None
    baseline: Drain | None = None
    workload_seconds: float | None = None
    verified: bool | None = None
    notes: list[str] = field(default_factory=list)
    lag: SideCopyLag | None = None  # scenario d

    @property
    def ratio(self) -> float | None:
        if self.lag is not None:
            return self.lag.ratio
        if self.ours is None or self.baseline is None or not self.baseline.rate:
            return None
        return self.ours.rate / self.baseline.rate

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "label": self.label,
            "rows": self.rows,
            "transactions": self.transactions,
            "order": self.order,
            "workload_seconds": self.workload_seconds,
            "verified": self.verified,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "ours": None if self.ours is None else self.ours.to_json(),
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "lag": None if self.lag is None else asdict(self.lag),
            "notes": self.notes,
        }


def wait_quiet(limit: float = 0.3, longest: float = 60.0) -> float:
    """Wait (at most ``longest`` s) until the box is mostly idle; returns the last busy fraction seen.

    Other work on a small shared box (a test run, a build) would otherwise be measured as ours.
    """
    deadline = time.monotonic() + longest
    while True:
        busy = psutil.cpu_percent(interval=0.5) / 100
        if busy < limit or time.monotonic() > deadline:
            return busy


class SystemCpu:
    """Busy fraction of all cores over a window (ours plus the server plus anything else running)."""

    def __init__(self) -> None:
        self._start = psutil.cpu_times()

    def busy(self) -> float:
        end = psutil.cpu_times()
        total = sum(end) - sum(self._start)
        idle = (end.idle + getattr(end, "iowait", 0)) - (self._start.idle + getattr(self._start, "iowait", 0))
        return round(1 - idle / total, 3) if total > 0 else 0.0


def measured(fn: Callable[[], Drain]) -> Drain:
    """Run one drain on a quiet box and record how busy the box was meanwhile."""
    before = wait_quiet()
    window = SystemCpu()
    drain = fn()
    drain.system_busy = window.busy()
    drain.system_busy_before = round(before, 3)
    return drain


def proc_cpu(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


# ---- a table copied beside the stream (d) -------------------------------------------------------
@dataclass(frozen=True)
class Write:
    """One single-row transaction of the writer into the small table."""

    id: int
    committed_at: float  # wall clock, when COMMIT returned
    fence: int  # an LSN inside the transaction, read just before its COMMIT


class SmallWriter(threading.Thread):
    """One single-row INSERT transaction into ``table`` every ``interval`` seconds, until stopped.

    Each row carries its insert time (``inserted_at``); each write records when its COMMIT
    returned and a fence LSN read inside the transaction, as the CDC scenarios do: the engine has
    made the row durable exactly when the slot's ``confirmed_flush_lsn`` is past the fence.
    """

    def __init__(self, dsn: str, table: str, interval: float) -> None:
        super().__init__(name=f"writer-{table}", daemon=True)
        self._dsn = dsn
        self._table = table
        self._interval = interval
        self._halt = threading.Event()
        self.writes: list[Write] = []  # appended by this thread only; read once it has ended
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                # The server runs with synchronous_commit=off for throughput; then a commit reaches the
                # walsender only when the WAL writer next flushes (wal_writer_delay, 200 ms), which
                # would be measured as the engine's lag. This writer commits as an application would.
                conn.execute("SET synchronous_commit = on")
                insert = f"INSERT INTO {self._table} (id, inserted_at, note) VALUES (%s, clock_timestamp(), %s)"
                fence_sql = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"
                next_at = time.monotonic()
                i = 1
                while not self._halt.is_set():
                    with conn.transaction():
                        conn.execute(insert, (i, f"row {i}"), prepare=True)
                        row = conn.execute(fence_sql, prepare=True).fetchone()
                    assert row is not None
                    self.writes.append(Write(i, time.time(), int(row[0])))
                    i += 1
                    next_at += self._interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._halt.wait(delay)
                    else:
                        next_at = time.monotonic()  # fell behind: go on at the pace, no burst
        except BaseException as exc:  # the main thread raises it
            self.error = exc

    def stop(self) -> list[Write]:
        self._halt.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"the writer into {self._table} failed: {self.error}") from self.error
        return self.writes


class SlotWatch(threading.Thread):
    """A slot's ``confirmed_flush_lsn`` polled every 10 ms from a connection of its own: the wall
    time of each advance (when this poll first saw it) and the LSN."""

    def __init__(self, dsn: str, slot: str) -> None:
        super().__init__(name=f"watch-{slot}", daemon=True)
        self._dsn = dsn
        self._slot = slot
        self._halt = threading.Event()
        self.advances: list[tuple[float, int]] = []  # appended by this thread only
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                sql = (
                    "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots"
                    " WHERE slot_name = %s"
                )
                last = -1
                while not self._halt.is_set():
                    row = conn.execute(sql, (self._slot,), prepare=True).fetchone()
                    now = time.time()
                    lsn = -1 if row is None or row[0] is None else int(row[0])
                    if lsn > last:
                        self.advances.append((now, lsn))
                        last = lsn
                    self._halt.wait(POLL_SECONDS)
        except BaseException as exc:  # the main thread raises it
            self.error = exc

    def confirmed(self) -> int:
        return self.advances[-1][1] if self.advances else -1

    def confirmed_at(self, wall: float) -> int:
        """The confirmed LSN as this watch knew it at ``wall``."""
        i = bisect.bisect_right([t for t, _ in self.advances], wall)
        return self.advances[i - 1][1] if i else -1

    def stop(self) -> list[tuple[float, int]]:
        self._halt.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"the watch of slot {self._slot} failed: {self.error}") from self.error
        return self.advances


def durable_lags(writes: list[Write], advances: list[tuple[float, int]]) -> list[tuple[Write, float | None]]:
    """Each write with its lag: from its COMMIT to the first poll that saw the slot confirm past its
    fence (None: never seen)."""
    lsns = [lsn for _, lsn in advances]
    out: list[tuple[Write, float | None]] = []
    for w in writes:
        i = bisect.bisect_right(lsns, w.fence)
        out.append((w, advances[i][0] - w.committed_at if i < len(advances) else None))
    return out


def batches_between(
    before: tuple[float, int] | None, after: tuple[float, int] | None
) -> tuple[int | None, float | None]:
    """How many batches a histogram counted between two readings, and their mean seconds."""
    if before is None or after is None:
        return None, None
    n = after[1] - before[1]
    return n, (round((after[0] - before[0]) / n, 4) if n else None)


def lag_stats(lags: list[float]) -> dict[str, float | int | None]:
    """p50, p99 and max of a window's lags, in seconds."""
    if not lags:
        return {"rows": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(lags)
    return {
        "rows": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 4),
        "max": round(ordered[-1], 4),
    }


@dataclass
class SideCopyLag:
    """Scenario d: the small table's lag without a copy and while the big table is copied again."""

    copy_seconds: float  # big: data_sync → finished_copy (Redis states)
    window_seconds: float  # resync requested → big ready again
    request_to_copy_seconds: float | None  # resync requested → big in data_sync
    baseline: dict[str, float | int | None]  # lag_stats of the rows committed in the baseline window
    during: dict[str, float | int | None]  # lag_stats of the rows committed from the request to ready
    slot_advanced: bool  # confirmed_flush_lsn at finished_copy > at data_sync
    slot_advance_bytes: int
    rows_copied: int
    peak_rss: int | None = None
    cpu_seconds: float | None = None  # of the engine, from the request to ready
    # the engine's batches (etl_batch_flush_seconds) in each window: how many, mean seconds to apply one
    batches_baseline: int | None = None
    batch_seconds_baseline: float | None = None
    batches_during: int | None = None
    batch_seconds_during: float | None = None
    # the largest lags of the copy window: (committed, seconds after the resync request; lag)
    during_worst: list[tuple[float, float]] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        base, during = self.baseline["max"], self.during["max"]
        if base is None or during is None or not base:
            return None
        return float(during) / float(base)


class Bench:
    def __init__(self, args: argparse.Namespace, pg: EmbeddedPostgres, rds: EmbeddedRedis, workdir: Path) -> None:
        self.args = args
        self.pg = pg
        self.workdir = workdir
        self.stamp = ""
        self.source = workdir / "src"
        pg.create_database(SOURCE_DB)
        pg.create_database(CONFIG_DB)
        self.settings = Settings(config_db_url=pg.dsn(CONFIG_DB), redis_url=rds.url)
        # what the engine, pg_recvlogical and the COPY baseline use; control queries always go over TCP
        self.dsn = pg.dsn(SOURCE_DB, unix=args.transport == "unix")
        self.admin = psycopg.connect(pg.dsn(SOURCE_DB), autocommit=True)
        self.config_conn = psycopg.connect(pg.dsn(CONFIG_DB), autocommit=True)
        self.repo = ConfigRepository(self.settings.config_db_url)
        self.repo.add_source("src", self.dsn)
        self.redis = redis.Redis.from_url(rds.url)

    def close(self) -> None:
        self.repo.close()
        self.admin.close()
        self.config_conn.close()
        self.redis.close()

    # ---- source queries ------------------------------------------------------------------------
    def one(self, query: str, params: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
        row = self.admin.execute(query, params).fetchone()
        assert row is not None
        return tuple(row)

    def slot(self, name: str) -> tuple[int | None, int | None]:
        """(active_pid, confirmed_flush_lsn) of a slot."""
        row = self.admin.execute(
            "SELECT active_pid, (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (name,),
            prepare=True,
        ).fetchone()
        if row is None:
            raise RuntimeError(f"replication slot {name} does not exist")
        return row[0], None if row[1] is None else int(row[1])

    def current_wal(self) -> int:
        return int(self.one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")[0])

    def drop_slot(self, name: str) -> None:
        def dropped() -> bool:
            try:
                self.admin.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (name,)
                )
                return True
            except psycopg.errors.ObjectInUse:  # its walsender has not exited yet
                return False

        wait_for(dropped, 30, f"slot {name} to be released")

    def checkpoint(self) -> None:
        self.admin.execute("CHECKPOINT")

    # ---- pipelines -----------------------------------------------------------------------------
    def add_pipeline(
        self, label: str, table: str, status: PipelineStatus = PipelineStatus.START, also: tuple[str, ...] = ()
    ) -> Pipeline:
        duck = self.workdir / f"{label}.duckdb"
        self.repo.add_destination(label, DestinationType.DUCKDB, {"path": str(duck)})
        tables = [TableName("public", t) for t in (table, *also)]
        return self.repo.add_pipeline(label, "src", label, tables, status)

    def phase(self, pipeline: Pipeline, table: str) -> tuple[TablePhase | None, float, int]:
        st = PipelineState(self.redis, pipeline.id).load().get(TableName("public", table))
        if st is None:
            return None, 0.0, 0
        if st.phase is TablePhase.ERRORED:
            raise RuntimeError(f"table {table} errored in the engine: {st.reason} ({st.hint})")
        return st.phase, st.updated_at, st.rows_copied

    def remove(self, label: str, table: str, also: tuple[str, ...] = ()) -> None:
        """Drop the pipeline (its slot, publication and state), its DuckDB file and its tables."""
        remove_pipeline(self.repo, self.settings, label)
        self.repo.remove_destination(label)
        for t in (table, *also):
            self.admin.execute(f"DROP TABLE IF EXISTS {t}")
        for path in self.workdir.glob(f"{label}.*"):
            if not self.args.keep:
                path.unlink(missing_ok=True)

    def verify(self, label: str, table: str) -> bool:
        src = self.one(f"SELECT count(*), coalesce(sum(id), 0) FROM {table}")
        con = duckdb.connect(str(self.workdir / f"{label}.duckdb"), read_only=True)
        try:
            row = con.execute(f"SELECT count(*), coalesce(sum(id), 0) FROM main.{table}").fetchone()
        finally:
            con.close()
        assert row is not None
        ok = (int(src[0]), int(src[1])) == (int(row[0]), int(row[1]))
        if not ok:
            log(f"  CONTENT MISMATCH in {table}: source {src}, DuckDB {row}")
        return ok

    def verify_checksum(self, label: str, table: str, columns: tuple[tuple[str, bool], ...]) -> bool:
        """Row count, ``sum(id)`` and an md5 over every row's values (ordered by id) equal the source's.

        Timestamps compare as microseconds since the epoch, so neither side's text form matters.
        """

        def check_sql(epoch_us: Callable[[str], str]) -> str:
            values = ", ".join(epoch_us(c) if ts else c for c, ts in columns)
            return (
                f"SELECT count(*), coalesce(sum(id), 0), "
                f"md5(coalesce(string_agg(concat_ws('|', {values}), ',' ORDER BY id), '')) FROM {{table}}"
            )

        src = self.one(check_sql(lambda c: f"(extract(epoch FROM {c}) * 1000000)::bigint").format(table=table))
        con = duckdb.connect(str(self.workdir / f"{label}.duckdb"), read_only=True)
        try:
            row = con.execute(check_sql(lambda c: f"epoch_us({c})").format(table=f"main.{table}")).fetchone()
        finally:
            con.close()
        assert row is not None
        ok = (int(src[0]), int(src[1]), src[2]) == (int(row[0]), int(row[1]), row[2])
        if not ok:
            log(f"  CONTENT MISMATCH in {table}: source {src}, DuckDB {row}")
        return ok

    def cli(self, *argv: str) -> str:
        """An ``etl-tui`` command of the benchmarked engine (its own admin code, as an operator runs it)."""
        done = subprocess.run(
            [sys.executable, "-m", "etl_tui.cli", *argv],
            env=engine_env(self.settings, self.source),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"etl-tui {' '.join(argv)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout.strip()

    # ---- CDC -----------------------------------------------------------------------------------
    def workload(self, table: str, shape: str, n: int) -> tuple[int, float]:
        """Write the backlog; returns an LSN inside the last transaction (before its commit) and the time taken.

        Every commit of the backlog but the last ends before that LSN and the last one ends after it,
        and the engine acknowledges only commit end LSNs (or, on a keepalive, the server's position
        once everything received is acknowledged), so ``confirmed_flush_lsn > fence`` holds exactly
        when the last transaction is durable in DuckDB. ``pg_current_wal_lsn()`` after the workload
        would be no good: WAL written later (CHECKPOINT, running-xacts records) lies beyond the last
        commit, and the engine need not confirm it.
        """
        started = time.perf_counter()
        row_sql = "({i}, md5(({i})::text), ({i}) % 1000, clock_timestamp())"
        with psycopg.connect(self.pg.dsn(SOURCE_DB), autocommit=True) as conn:
            if shape == "small":
                if n > 1:
                    # one COMMIT per row inside a DO block: n separate transactions at server speed
                    conn.execute(
                        f"DO $$ BEGIN FOR i IN 1..{n - 1} LOOP INSERT INTO {table} VALUES "
                        f"{row_sql.format(i='i')}; COMMIT; END LOOP; END $$"
                    )
                last = f"INSERT INTO {table} VALUES {row_sql.format(i=n)}"
            else:
                last = f"INSERT INTO {table} SELECT {row_sql.format(i='g')[1:-1]} FROM generate_series(1, {n}) g"
            with conn.transaction():
                conn.execute(last)
                row = conn.execute("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").fetchone()
        assert row is not None
        return int(row[0]), time.perf_counter() - started

    def expected_stream_bytes(self, table: str, transactions: int) -> int:
        """What pg_recvlogical writes for the backlog: each pgoutput message plus a newline.

        Computed from the rows' text forms, so a short drain shows up as a byte mismatch.
        """
        rows, text = self.one(
            f"SELECT count(*), coalesce(sum(octet_length(id::text) + octet_length(payload) + "
            f"octet_length(n::text) + octet_length(ts::text)), 0) FROM {table} WHERE id > 0"
        )
        ncols = len(CDC_COLUMNS)
        insert = 1 + 4 + 1 + 2 + ncols * (1 + 4)  # 'I', relid, 'N', natts, per column: kind + length
        relation = 1 + 4 + len("public") + 1 + len(table) + 1 + 1 + 2 + sum(1 + len(c) + 1 + 4 + 4 for c in CDC_COLUMNS)
        begin, commit = 1 + 8 + 8 + 4, 1 + 1 + 8 + 8 + 8
        return (relation + 1) + transactions * (begin + 1 + commit + 1) + int(rows) * (insert + 1) + int(text)

    def recvlogical(self, slot: str, publication: str, label: str, rows: int, expected: int) -> Drain:
        out = self.workdir / f"{label}.pgoutput"
        errlog = self.workdir / f"{label}.recvlogical.log"
        cmd = [
            str(self.pg.bindir / "pg_recvlogical"),
            "-d", self.dsn,
            "-S", slot,
            "--start",
            "-f", str(out),
            "-F", "0",  # no fsync of the output file: the engine's DuckDB file is not fsynced per batch either
            "-o", "proto_version=1",
            "-o", f"publication_names={publication}",
            "--no-loop",
        ]  # fmt: skip
        with errlog.open("wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT)
            size, last_growth, ws_pid, next_pid_check = 0, started, None, started
            try:
                while True:
                    try:
                        now_size = out.stat().st_size
                    except FileNotFoundError:
                        now_size = 0
                    now = time.perf_counter()
                    if now_size != size:
                        size, last_growth = now_size, now
                    if ws_pid is None and now >= next_pid_check:
                        ws_pid = self.slot(slot)[0]
                        next_pid_check = now + 0.05
                    idle = now - last_growth
                    if size >= expected and idle >= RECVLOGICAL_IDLE_SECONDS:
                        break
                    if size > 0 and idle >= RECVLOGICAL_GIVE_UP_SECONDS:
                        break
                    if proc.poll() is not None:
                        raise RuntimeError(f"pg_recvlogical exited early:\n{errlog.read_text(errors='replace')}")
                    if now - started > DRAIN_TIMEOUT:
                        raise TimeoutError(f"pg_recvlogical did not finish in {DRAIN_TIMEOUT:.0f}s")
                    time.sleep(POLL_SECONDS / 2)
                cpu = proc_cpu(proc.pid)
                ws_cpu = proc_cpu(ws_pid)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        out.unlink(missing_ok=True)
        return Drain(
            seconds=last_growth - started,
            rows=rows,
            cpu_seconds=cpu,
            walsender_cpu_seconds=ws_cpu,
            bytes=size,
            bytes_expected=expected,
        )

    def drain_ours(self, engine: Engine, pipeline: Pipeline, fence: int, rows: int, profile: Path | None) -> Drain:
        assert engine.rss is not None
        profiler = Profiler(engine.pid, profile) if profile else None
        rss_before = engine.rss.reset()
        cpu_before = engine.cpu()
        started = time.perf_counter()
        self.repo.set_pipeline_status(pipeline.name, PipelineStatus.START)
        active_at: float | None = None
        next_check = started
        ws_pid: int | None = None
        ws_cpu: float | None = None
        while True:
            pid, confirmed = self.slot(pipeline.slot_name)
            now = time.perf_counter()
            if pid and active_at is None:
                active_at, ws_pid = now, pid
            if confirmed is not None and confirmed > fence:
                ws_cpu = proc_cpu(ws_pid)
                break
            if now - started > DRAIN_TIMEOUT:
                raise TimeoutError(f"the engine did not catch up in {DRAIN_TIMEOUT:.0f}s")
            if now >= next_check:  # a crashed engine would otherwise look like a slow one
                engine.check_alive()
                next_check = now + 1.0
            time.sleep(POLL_SECONDS)
        cpu = engine.cpu() - cpu_before
        peak = engine.rss.peak()
        summary = None
        if profiler is not None:
            profiler.stop()
            summary = summarize_profile(profiler.out)
        return Drain(
            seconds=now - started,
            rows=rows,
            cpu_seconds=cpu,
            walsender_cpu_seconds=ws_cpu,
            rss_before=rss_before,
            peak_rss=peak,
            startup_seconds=None if active_at is None else active_at - started,
            profile=summary,
        )

    def cdc(self, scenario: str, label: str, shape: str, n: int, order: list[str]) -> Measurement:
        table = f"t_{label}"
        self.admin.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, payload text, n int, ts timestamptz)")
        # a row before the pipeline exists: engines before b63fbd5 fail to copy an empty table
        self.admin.execute(f"INSERT INTO {table} VALUES (0, 'seed', 0, now())")
        pipeline = self.add_pipeline(label, table)
        m = Measurement(scenario, label, n, n if shape == "small" else 1, order)
        engine = Engine(self.settings, self.workdir, label, self.source).start()
        clone = f"bench_clone_{label}"
        cloned = False
        expected = 0

        def ready() -> bool:
            engine.check_alive()
            return self.phase(pipeline, table)[0] is TablePhase.READY

        try:
            wait_for(ready, 120, f"{table} to be ready")
            target = self.current_wal()
            wait_for(lambda: (self.slot(pipeline.slot_name)[1] or 0) >= target, 60, "the engine to catch up")
            self.repo.set_pipeline_status(label, PipelineStatus.PAUSE)
            wait_for(lambda: self.slot(pipeline.slot_name)[0] is None, 60, "the engine to release its slot")
            fence, m.workload_seconds = self.workload(table, shape, n)
            if "baseline" in order:
                self.admin.execute("SELECT pg_copy_logical_replication_slot(%s, %s)", (pipeline.slot_name, clone))
                cloned = True
                expected = self.expected_stream_bytes(table, m.transactions)
            for side in order:
                self.checkpoint()
                if side == "baseline":
                    m.baseline = measured(
                        lambda: self.recvlogical(clone, pipeline.publication_name, label, n, expected)
                    )
                    if m.baseline.bytes != expected:
                        m.notes.append(f"pg_recvlogical wrote {m.baseline.bytes} bytes, expected {expected}")
                else:
                    profile = RESULTS_DIR / f"{self.stamp}-{label}.pyspy.txt" if self.args.profile else None
                    m.ours = measured(partial(self.drain_ours, engine, pipeline, fence, n, profile))
        finally:
            engine.stop()
        if cloned:
            self.drop_slot(clone)
        m.verified = self.verify(label, table)
        self.remove(label, table)
        return m

    # ---- initial copy --------------------------------------------------------------------------
    def raw_copy(self, table: str, rows: int) -> Drain:
        with psycopg.connect(self.dsn) as conn, conn.cursor() as cur:
            nbytes = 0
            started = time.perf_counter()
            with cur.copy(f"COPY {table} TO STDOUT") as copy:
                for chunk in copy:
                    nbytes += len(chunk)
            seconds = time.perf_counter() - started
        return Drain(seconds=seconds, rows=rows, bytes=nbytes)

    def engine_copy(self, engine: Engine, label: str, table: str, rows: int, profile: Path | None) -> Drain:
        """Time the engine's copy phase: Redis records when the table entered data_sync and when it was copied."""
        assert engine.rss is not None
        profiler = Profiler(engine.pid, profile) if profile else None
        rss_before = engine.rss.reset()
        cpu_before = engine.cpu()
        started = time.perf_counter()
        pipeline = self.add_pipeline(label, table)
        wall_added = time.time()
        next_check = started
        sync_at: float | None = None
        while True:
            phase, updated_at, copied = self.phase(pipeline, table)
            now = time.perf_counter()
            if phase is TablePhase.DATA_SYNC and sync_at is None:
                sync_at = updated_at
            if phase in (TablePhase.FINISHED_COPY, TablePhase.READY):
                break
            if now - started > DRAIN_TIMEOUT:
                raise TimeoutError(f"the engine did not copy {table} in {DRAIN_TIMEOUT:.0f}s")
            if now >= next_check:  # a crashed engine would otherwise look like a slow one
                engine.check_alive()
                next_check = now + 1.0
            time.sleep(POLL_SECONDS)
        cpu = engine.cpu() - cpu_before
        peak = engine.rss.peak()
        summary = None
        if profiler is not None:
            profiler.stop()
            summary = summarize_profile(profiler.out)
        logged = self._logged_copy_seconds(engine, table)
        if sync_at is None:  # the data_sync state was too short-lived to be seen: fall back on the log line
            if logged is None:
                raise RuntimeError(f"cannot tell how long the copy of {table} took; see {engine.log_path}")
            seconds = logged
        else:
            seconds = updated_at - sync_at
        return Drain(
            seconds=seconds,
            rows=copied,
            cpu_seconds=cpu,
            rss_before=rss_before,
            peak_rss=peak,
            startup_seconds=None if sync_at is None else sync_at - wall_added,
            end_to_end_seconds=now - started,
            profile=summary,
        )

    @staticmethod
    def _logged_copy_seconds(engine: Engine, table: str) -> float | None:
        """The engine's own figure from "table X: copied N rows in S s" (only 0.1 s resolution)."""
        text = engine.log_path.read_text(errors="replace")
        found = re.findall(rf"table public\.{table}: copied \d+ rows in ([0-9.]+)s", text)
        return float(found[-1]) if found else None

    def copy(self, label: str, n: int, order: list[str]) -> Measurement:
        table = f"c_{label}"
        self.admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, md5 text, ts timestamptz)")
        started = time.perf_counter()
        self.admin.execute(
            f"INSERT INTO {table} SELECT g, md5(g::text), now() - g * interval '1 second' "
            f"FROM generate_series(1, {n}) g"
        )
        # sets hint bits and the visibility map once, so neither reader pays for it; also the row estimate
        self.admin.execute(f"VACUUM (ANALYZE) {table}")
        m = Measurement("c", label, n, 0, order, workload_seconds=time.perf_counter() - started)
        engine = Engine(self.settings, self.workdir, label, self.source).start()
        try:
            engine.wait_listening(self.config_conn)
            for side in order:
                self.checkpoint()
                if side == "baseline":
                    m.baseline = measured(lambda: self.raw_copy(table, n))
                else:
                    profile = RESULTS_DIR / f"{self.stamp}-{label}.pyspy.txt" if self.args.profile else None
                    m.ours = measured(partial(self.engine_copy, engine, label, table, n, profile))
                    logged = self._logged_copy_seconds(engine, table)
                    if logged is not None:
                        m.notes.append(f"engine log says the copy took {logged:.1f}s")
        finally:
            engine.stop()
        if m.ours is not None and m.ours.rows != n:
            m.notes.append(f"engine reports {m.ours.rows} rows copied, expected {n}")
        m.verified = self.verify(label, table)
        self.remove(label, table)
        return m

    # ---- a table copied beside the stream ------------------------------------------------------
    def _watch_resync(
        self, engine: Engine, pipeline: Pipeline, table: str, requested: float
    ) -> tuple[float | None, float | None, float, int]:
        """Until ``table`` is ready again after a resync requested at ``requested`` (wall clock):
        when it entered data_sync and finished_copy (None: not seen), when it was ready, rows copied."""
        sync_at: float | None = None
        finished_at: float | None = None
        deadline = time.monotonic() + DRAIN_TIMEOUT
        next_check = time.monotonic()
        while True:
            phase, updated_at, copied = self.phase(pipeline, table)
            if updated_at >= requested:
                if phase is TablePhase.DATA_SYNC and sync_at is None:
                    sync_at = updated_at
                elif phase is TablePhase.FINISHED_COPY and finished_at is None:
                    finished_at = updated_at
                elif phase is TablePhase.READY:
                    return sync_at, finished_at, updated_at, copied
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{table} was not ready again {DRAIN_TIMEOUT:.0f}s after its resync")
            if now >= next_check:
                engine.check_alive()
                next_check = now + 1.0
            time.sleep(POLL_SECONDS)

    def side_copy(self, label: str, n: int) -> Measurement:
        """Scenario d: the lag of a small table under a steady writer, first with nothing else going
        on (the baseline), then while a big table of the same pipeline is resynced."""
        big, small = "big", "small"
        started = time.perf_counter()
        self.admin.execute(f"CREATE TABLE {big} (id bigint PRIMARY KEY, md5 text, payload text, n int, ts timestamptz)")
        self.admin.execute(
            f"INSERT INTO {big} SELECT g, md5(g::text), repeat(md5((g + 1)::text), 3), g % 1000, "
            f"now() - g * interval '1 second' FROM generate_series(1, {n}) g"
        )
        self.admin.execute(f"VACUUM (ANALYZE) {big}")
        self.admin.execute(f"CREATE TABLE {small} (id bigint PRIMARY KEY, inserted_at timestamptz NOT NULL, note text)")
        # a row before the pipeline exists: engines before b63fbd5 fail to copy an empty table
        self.admin.execute(f"INSERT INTO {small} VALUES (0, now(), 'seed')")
        m = Measurement("d", label, n, 0, ["baseline", "during copy"], workload_seconds=time.perf_counter() - started)
        pipeline = self.add_pipeline(label, big, also=(small,))
        engine = Engine(self.settings, self.workdir, label, self.source).start()
        watch = SlotWatch(self.pg.dsn(SOURCE_DB), pipeline.slot_name)
        writer = SmallWriter(self.pg.dsn(SOURCE_DB), small, WRITE_INTERVAL)
        try:

            def ready() -> bool:
                engine.check_alive()
                return all(self.phase(pipeline, t)[0] is TablePhase.READY for t in (big, small))

            wait_for(ready, DRAIN_TIMEOUT, f"{big} and {small} to be ready")
            target = self.current_wal()
            wait_for(lambda: (self.slot(pipeline.slot_name)[1] or 0) >= target, 60, "the engine to catch up")
            busy_before = wait_quiet()
            box = SystemCpu()
            watch.start()
            writer.start()
            try:
                time.sleep(LAG_SETTLE_SECONDS)
                flushes = [engine.histogram("etl_batch_flush_seconds")]
                base_from = time.time()
                time.sleep(LAG_BASELINE_SECONDS)
                base_to = time.time()
                flushes.append(engine.histogram("etl_batch_flush_seconds"))
                assert engine.rss is not None
                engine.rss.reset()
                cpu_before = engine.cpu()
                requested = time.time()
                said = self.cli("pipeline", "resync", label, "--table", f"public.{big}")
                sync_at, finished_at, ready_at, copied = self._watch_resync(engine, pipeline, big, requested)
                cpu = engine.cpu() - cpu_before
                peak = engine.rss.peak()
                flushes.append(engine.histogram("etl_batch_flush_seconds"))
                time.sleep(LAG_AFTER_SECONDS)
            finally:
                writes = writer.stop()
            busy = box.busy()

            def caught_up() -> bool:
                engine.check_alive()
                return watch.confirmed() > writes[-1].fence

            wait_for(caught_up, 120, f"the engine to make the last row of {small} durable")
        finally:
            if watch.ident is not None:  # started
                watch.stop()
            engine.stop()
        advances = watch.advances
        logged = self._logged_copy_seconds(engine, big)
        if sync_at is None or finished_at is None:
            # a state too short-lived to be seen: the engine's log line (0.1 s resolution) says how long
            if logged is None:
                raise RuntimeError(f"cannot tell how long the copy of {big} took; see {engine.log_path}")
            copy_seconds = logged
            if sync_at is None:
                sync_at = (finished_at or ready_at) - logged
            m.notes.append("a phase of the copy was not seen; its length is the engine log's")
        else:
            copy_seconds = finished_at - sync_at
        copy_end = finished_at if finished_at is not None else sync_at + copy_seconds
        lags = durable_lags(writes, advances)
        unseen = [w.id for w, lag in lags if lag is None]
        if unseen:
            m.notes.append(f"{len(unseen)} rows of {small} were never seen durable (first id {unseen[0]})")
        slot_from, slot_to = watch.confirmed_at(sync_at), watch.confirmed_at(copy_end)
        m.transactions = len(writes)
        batches_baseline, batch_seconds_baseline = batches_between(flushes[0], flushes[1])
        batches_during, batch_seconds_during = batches_between(flushes[1], flushes[2])
        during = [(w, lag) for w, lag in lags if lag is not None and requested <= w.committed_at <= ready_at]
        worst = sorted(during, key=lambda x: x[1], reverse=True)[:5]
        m.lag = SideCopyLag(
            copy_seconds=round(copy_seconds, 3),
            window_seconds=round(ready_at - requested, 3),
            request_to_copy_seconds=round(sync_at - requested, 3),
            baseline=lag_stats([lag for w, lag in lags if lag is not None and base_from <= w.committed_at < base_to]),
            during=lag_stats([lag for _, lag in during]),
            slot_advanced=slot_to > slot_from,
            slot_advance_bytes=max(0, slot_to - slot_from),
            rows_copied=copied,
            peak_rss=peak,
            cpu_seconds=round(cpu, 3),
            batches_baseline=batches_baseline,
            batch_seconds_baseline=batch_seconds_baseline,
            batches_during=batches_during,
            batch_seconds_during=batch_seconds_during,
            during_worst=[(round(w.committed_at - requested, 3), round(lag, 3)) for w, lag in worst],
        )
        m.notes.append(f"resync said: {said}")
        if logged is not None:
            m.notes.append(f"engine log says the copy took {logged:.1f}s")
        m.notes.append(f"box busy {busy:.0%} during the measurement ({busy_before:.0%} before)")
        if copied != n:
            m.notes.append(f"engine reports {copied} rows copied, expected {n}")
        m.verified = self.verify_checksum(label, big, BIG_COLUMNS) and self.verify_checksum(label, small, SMALL_COLUMNS)
        self.remove(label, big, also=(small,))
        return m


def snapshot_source(dest: Path, ref: str | None) -> dict[str, Any]:
    """Copy the engine's source (at ``ref``, or the working tree as it is now) for the engine processes.

    Other people may edit the checkout during a run; without a snapshot each engine process would
    import whatever is on disk at its start, half-finished edits included.
    """
    root = Path(__file__).resolve().parent.parent
    parts = ["engine", "etl_tui", "migrations"]
    dest.mkdir(parents=True, exist_ok=True)
    if ref:
        archive = subprocess.run(["git", "archive", ref, *parts], cwd=root, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        commit = subprocess.run(
            ["git", "rev-parse", ref], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        info: dict[str, Any] = {"ref": ref, "commit": commit}
    else:
        for part in parts:
            shutil.copytree(root / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        info = {"ref": "working tree", "commit": None}
    check = subprocess.run(
        [sys.executable, "-c", "import engine, etl_tui; print(engine.__file__)"],
        env=dict(os.environ, PYTHONPATH=str(dest)),
        cwd=dest.parent,  # as the engine runs: the current directory comes first on sys.path
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not check.startswith(str(dest)):
        raise RuntimeError(f"the engine snapshot in {dest} is not what gets imported ({check})")
    info["path"] = str(dest)
    return info


# ---- reporting ----------------------------------------------------------------------------------
def environment(pg: EmbeddedPostgres, bench: Bench) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu_model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout)
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": bench.one("SELECT version()")[0],
        "postgres_settings": PG_SETTINGS,
        "packages": {d: version(d) for d in ("psycopg", "psycopg2-binary", "pyarrow", "duckdb", "redis")},
        "git_commit": commit or None,
        "git_dirty": dirty,
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_side_copy(ms: list[Measurement]) -> dict[str, Any]:
    """Scenario d over its runs: medians, and the ratio's range."""
    runs = [m for m in ms if m.scenario == "d" and m.lag is not None]
    lags = [m.lag for m in runs if m.lag is not None]
    if not lags:
        return {}
    ratios = [r for r in (x.ratio for x in lags) if r is not None]

    def med(window: str, stat: str) -> float | None:
        return _median([float(v) for x in lags if (v := getattr(x, window)[stat]) is not None])

    return {
        "runs": len(runs),
        "rows": runs[0].rows,
        "writes": _median([float(m.transactions) for m in runs]),
        "copy_seconds": _median([x.copy_seconds for x in lags]),
        "window_seconds": _median([x.window_seconds for x in lags]),
        "request_to_copy_seconds": _median([x.request_to_copy_seconds for x in lags if x.request_to_copy_seconds]),
        "baseline_lag_p50": med("baseline", "p50"),
        "baseline_lag_p99": med("baseline", "p99"),
        "baseline_lag_max": med("baseline", "max"),
        "during_lag_p50": med("during", "p50"),
        "during_lag_p99": med("during", "p99"),
        "during_lag_max": med("during", "max"),
        "ratio": _median(ratios),
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "slot_advanced_runs": sum(x.slot_advanced for x in lags),
        "slot_advance_bytes": _median([float(x.slot_advance_bytes) for x in lags]),
        "peak_rss_mib": _median([x.peak_rss / MIB for x in lags if x.peak_rss]),
        "cpu_seconds": _median([x.cpu_seconds for x in lags if x.cpu_seconds is not None]),
        "batch_seconds_baseline": _median([x.batch_seconds_baseline for x in lags if x.batch_seconds_baseline]),
        "batch_seconds_during": _median([x.batch_seconds_during for x in lags if x.batch_seconds_during]),
        "verified": all(m.verified for m in runs),
    }


def summarize(ms: list[Measurement], scenario: str) -> dict[str, Any]:
    if scenario == "d":
        return summarize_side_copy(ms)
    runs = [m for m in ms if m.scenario == scenario and m.ours is not None]
    if not runs:
        return {}
    ratios = [m.ratio for m in runs if m.ratio is not None]
    ours = [m.ours for m in runs if m.ours is not None]
    base = [m.baseline for m in runs if m.baseline is not None]
    rows = runs[0].rows
    cpu = [d.cpu_seconds / d.rows * 1e6 for d in ours if d.cpu_seconds is not None and d.rows]
    startup = [d.startup_seconds for d in ours if d.startup_seconds is not None]
    ws_busy = [d.walsender_cpu_seconds / d.seconds for d in ours if d.walsender_cpu_seconds and d.seconds]
    base_ws_busy = [d.walsender_cpu_seconds / d.seconds for d in base if d.walsender_cpu_seconds and d.seconds]
    out: dict[str, Any] = {
        "runs": len(runs),
        "rows": rows,
        "ours_rows_per_second": _median([d.rate for d in ours]),
        "baseline_rows_per_second": _median([d.rate for d in base]),
        "ratio": _median(ratios),
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "ours_seconds": _median([d.seconds for d in ours]),
        "baseline_seconds": _median([d.seconds for d in base]),
        "peak_rss_mib": _median([d.peak_rss / MIB for d in ours if d.peak_rss]),
        "rss_before_mib": _median([d.rss_before / MIB for d in ours if d.rss_before]),
        "cpu_seconds_per_million_rows": _median(cpu),
        "startup_seconds": _median(startup),
        "end_to_end_seconds": _median([d.end_to_end_seconds for d in ours if d.end_to_end_seconds is not None]),
        "walsender_busy_ours": _median(ws_busy),
        "walsender_busy_baseline": _median(base_ws_busy),
        "system_busy_ours": _median([d.system_busy for d in ours if d.system_busy is not None]),
        "system_busy_baseline": _median([d.system_busy for d in base if d.system_busy is not None]),
        "verified": all(m.verified for m in runs),
    }
    target = TARGETS["copy" if scenario == "c" else "cdc"] if scenario in ("a", "b", "c") else None
    if target is not None:
        out["target"] = target
        out["target_met"] = out["ratio"] is not None and out["ratio"] >= target
    return out


TITLES = {
    "a": "a  CDC, single-row transactions",
    "b": "b  CDC, one big transaction",
    "b10": "b' CDC, one transaction of 1/10 size",
    "c": "c  initial copy",
    "d": "d  small table's lag while a big one copies",
}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    headers = [
        "scenario",
        "rows",
        "ours rows/s",
        "baseline rows/s",
        "ratio (min-max)",
        "target",
        "met",
        "peak RSS MiB",
        "CPU s/1M rows",
        "ok",
    ]
    lines = []
    for key, title in TITLES.items():
        s = summary.get(key)
        if not s or key == "d":  # lags, not rows/s: a table of its own
            continue
        ratio = "-" if s["ratio"] is None else f"{s['ratio']:.3f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})"
        lines.append(
            [
                title,
                f"{s['rows']:,}",
                _fmt(s["ours_rows_per_second"], ",.0f"),
                _fmt(s["baseline_rows_per_second"], ",.0f"),
                ratio,
                f">= {s['target']}" if "target" in s else "",
                ("yes" if s["target_met"] else "NO") if "target" in s else "",
                _fmt(s["peak_rss_mib"], ".0f"),
                _fmt(s["cpu_seconds_per_million_rows"], ".1f"),
                "yes" if s["verified"] else "NO",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in lines:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def print_side_copy(s: dict[str, Any]) -> None:
    """Scenario d: copy time, the small table's lag in each window, the ratio of the max lags."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f}"

    headers = [
        "scenario",
        "big rows",
        "copy s",
        "resync→ready s",
        "lag p50/max ms, no copy",
        "lag p50/max ms, copying",
        "ratio of max (min-max)",
        "slot advanced",
        "peak RSS MiB",
        "ok",
    ]
    ratio = "-" if s["ratio"] is None else f"{s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})"
    row = [
        TITLES["d"],
        f"{s['rows']:,}",
        _fmt(s["copy_seconds"], ".2f"),
        _fmt(s["window_seconds"], ".2f"),
        f"{ms(s['baseline_lag_p50'])} / {ms(s['baseline_lag_max'])}",
        f"{ms(s['during_lag_p50'])} / {ms(s['during_lag_max'])}",
        ratio,
        f"{'yes' if s['slot_advanced_runs'] == s['runs'] else 'NO'} ({s['slot_advanced_runs']}/{s['runs']})",
        _fmt(s["peak_rss_mib"], ".0f"),
        "yes" if s["verified"] else "NO",
    ]
    widths = [max(len(h), len(c)) for h, c in zip(headers, row, strict=True)]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        f"d: one row into small every {WRITE_INTERVAL * 1000:.0f} ms, {s['writes']:,.0f} rows; lag = COMMIT → the slot "
        f"confirms it (durable in DuckDB); p99 {ms(s['baseline_lag_p99'])} ms without a copy, "
        f"{ms(s['during_lag_p99'])} ms during it; resync → copy begins {_fmt(s['request_to_copy_seconds'], '.2f')}s; "
        f"slot advanced {_fmt(s['slot_advance_bytes'], ',.0f')} bytes during the copy; "
        f"a batch took {ms(s['batch_seconds_baseline'])} ms to apply without a copy, "
        f"{ms(s['batch_seconds_during'])} ms during it"
    )


def print_notes(summary: dict[str, dict[str, Any]]) -> None:
    big, small = summary.get("b"), summary.get("b10")
    if big and small and big.get("peak_rss_mib") and small.get("peak_rss_mib"):
        print(
            f"\npeak RSS of the engine: {big['peak_rss_mib']:.0f} MiB for a {big['rows']:,}-row transaction, "
            f"{small['peak_rss_mib']:.0f} MiB for {small['rows']:,} rows "
            f"(growth {big['peak_rss_mib'] - small['peak_rss_mib']:+.0f} MiB; idle before START "
            f"{big['rss_before_mib']:.0f} MiB)"
        )
    for key in ("a", "b", "c"):
        s = summary.get(key)
        if not s:
            continue
        parts = []
        if key == "c" and s.get("startup_seconds") is not None:
            parts.append(
                f"pipeline added → copy begins {s['startup_seconds']:.2f}s, copy {s['ours_seconds']:.2f}s, "
                f"pipeline added → copied {s['end_to_end_seconds']:.2f}s"
            )
        elif s.get("startup_seconds") is not None:
            parts.append(f"START → slot active {s['startup_seconds']:.2f}s of {s['ours_seconds']:.2f}s")
        if s.get("walsender_busy_ours") is not None:
            parts.append(f"walsender CPU busy {s['walsender_busy_ours']:.0%} with ours")
        if s.get("walsender_busy_baseline") is not None:
            parts.append(f"{s['walsender_busy_baseline']:.0%} with pg_recvlogical")
        if s.get("system_busy_ours") is not None:
            parts.append(f"box busy {s['system_busy_ours']:.0%} of all cores during ours")
        if s.get("system_busy_baseline") is not None:
            parts.append(f"{s['system_busy_baseline']:.0%} during the baseline")
        if parts:
            print(f"{key}: " + ", ".join(parts))


def print_profiles(ms: list[Measurement]) -> None:
    for m in ms:
        prof = m.ours.profile if m.ours else None
        if not prof or not prof["samples"]:
            continue
        threads = ", ".join(f"{k} {v:.0%}" for k, v in prof["threads"].items())
        print(f"\nprofile of {m.label} ({prof['samples']} samples; {threads}): top self time")
        for frame, share in prof["self"][:10]:
            print(f"  {share:6.1%}  {frame}")
        print("  engine functions, callees included:")
        for frame, share in prof["inclusive"][:10]:
            print(f"  {share:6.1%}  {frame}")


# ---- main -------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small data: 100k rows, 20k transactions")
    p.add_argument("--runs", type=int, default=3, help="measured runs per scenario (median reported)")
    p.add_argument("--rows", type=int, default=None, help="rows of the big transaction and the copy (1,000,000)")
    p.add_argument("--small-tx", type=int, default=None, help="single-row transactions in scenario a (100,000)")
    p.add_argument("--transport", choices=["tcp", "unix"], default="tcp", help="how consumers reach PostgreSQL")
    p.add_argument("--scenarios", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    p.add_argument("--profile", action="store_true", help="attach py-spy to the engine (perturbs the numbers)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed warm-up round")
    p.add_argument(
        "--engine-ref", default=None, help="benchmark this git commit/ref of the engine (default: the working tree)"
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (engine logs, DuckDB files)")
    p.add_argument("--console", action="store_true", help="run the engine inside the console app (headless screen)")
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 100_000 if args.quick else 1_000_000
    if args.small_tx is None:
        args.small_tx = 20_000 if args.quick else 100_000
    return args


def _order(i: int) -> list[str]:
    """Baseline first in odd runs, ours first in even ones (A B, B A, ...)."""
    return ["baseline", "ours"] if i % 2 == 0 else ["ours", "baseline"]


def _report(m: Measurement) -> None:
    parts = [f"[{m.label}]"]
    for name, d in (("ours", m.ours), ("baseline", m.baseline)):
        if d is not None:
            parts.append(f"{name} {d.rate:,.0f} rows/s ({d.seconds:.2f}s)")
    if m.lag is not None:
        x = m.lag
        began = x.request_to_copy_seconds
        ended = None if began is None else began + x.copy_seconds
        parts.append(
            f"copy {x.copy_seconds:.2f}s (resync → ready {x.window_seconds:.2f}s), lag of small p50/max "
            f"{_fmt(x.baseline['p50'], '.3f')}/{_fmt(x.baseline['max'], '.3f')}s without a copy, "
            f"{_fmt(x.during['p50'], '.3f')}/{_fmt(x.during['max'], '.3f')}s during it, "
            f"slot {'advanced' if x.slot_advanced else 'did NOT advance'} during the copy; "
            f"copy began +{_fmt(began, '.2f')}s, ended +{_fmt(ended, '.2f')}s after the resync; "
            f"largest lags (committed at +s: lag s) "
            + ", ".join(f"+{t:.2f}: {lag:.3f}" for t, lag in x.during_worst[:3])
        )
    if m.ratio is not None:
        parts.append(f"ratio {m.ratio:.2f}")
    if m.ours is not None and m.ours.peak_rss:
        parts.append(f"peak RSS {m.ours.peak_rss / MIB:.0f} MiB")
    busy = [d.system_busy_before for d in (m.ours, m.baseline) if d and d.system_busy_before is not None]
    if busy and max(busy) >= 0.3:
        parts.append(f"box was busy ({max(busy):.0%}) before a drain")
    parts.append("verified" if m.verified else "CONTENT MISMATCH")
    log("  " + ", ".join(parts) + "".join(f"; {n}" for n in m.notes))


def measure_all(bench: Bench, args: argparse.Namespace, scenarios: set[str]) -> list[Measurement]:
    measurements: list[Measurement] = []
    if args.warmup:
        log("warm-up (not recorded)")
        if scenarios & {"a", "b"}:
            _report(bench.cdc("w", "warm_small", "small", 2_000, ["baseline", "ours"]))
            _report(bench.cdc("w", "warm_big", "big", 20_000, ["baseline", "ours"]))
        if "c" in scenarios:
            _report(bench.copy("warm_copy", 20_000, ["baseline", "ours"]))
        if "d" in scenarios:
            _report(bench.side_copy("warm_d", 20_000))
    for i in range(args.runs):
        if "a" in scenarios:
            log(f"a: {args.small_tx:,} single-row transactions, run {i + 1}/{args.runs}")
            measurements.append(bench.cdc("a", f"a{i + 1}", "small", args.small_tx, _order(i)))
            _report(measurements[-1])
        if "b" in scenarios:
            log(f"b: one transaction of {args.rows:,} rows, run {i + 1}/{args.runs}")
            measurements.append(bench.cdc("b", f"b{i + 1}", "big", args.rows, _order(i)))
            _report(measurements[-1])
            log(f"b': one transaction of {args.rows // 10:,} rows (memory comparison), run {i + 1}")
            measurements.append(bench.cdc("b10", f"bs{i + 1}", "big", args.rows // 10, ["ours"]))
            _report(measurements[-1])
        if "c" in scenarios:
            log(f"c: initial copy of {args.rows:,} rows, run {i + 1}/{args.runs}")
            measurements.append(bench.copy(f"c{i + 1}", args.rows, _order(i)))
            _report(measurements[-1])
        if "d" in scenarios:
            log(f"d: a small table's lag while a {args.rows:,}-row table is resynced, run {i + 1}/{args.runs}")
            measurements.append(bench.side_copy(f"d{i + 1}", args.rows))
            _report(measurements[-1])
    return measurements


def run(args: argparse.Namespace) -> int:
    scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-"))
    env: dict[str, Any] = {}
    try:
        with EmbeddedPostgres(settings=PG_SETTINGS) as pg, EmbeddedRedis() as rds:
            bench = Bench(args, pg, rds, workdir)
            try:
                bench.stamp = stamp
                env.update(environment(pg, bench))
                env["engine_source"] = snapshot_source(bench.source, args.engine_ref)
                log(
                    f"PostgreSQL {pg.version} on {pg.port}, Redis {rds.url}, scratch {workdir}, "
                    f"transport {args.transport}"
                )
                measurements = measure_all(bench, args, scenarios)
            finally:
                bench.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = {key: s for key in TITLES if (s := summarize(measurements, key))}
    print(
        f"\netl-tui benchmark, {stamp}, {env['cores']} cores ({env['cpu']}), transport {args.transport}, "
        f"median of {args.runs} run(s)\n"
    )
    if any(key != "d" for key in summary):
        print_table(summary)
    if "d" in summary:
        print_side_copy(summary["d"])
    print_notes(summary)
    if args.profile:
        print_profiles(measurements)
    out = RESULTS_DIR / f"{stamp}.json"
    args_json = {k: v for k, v in vars(args).items()}
    out.write_text(
        json.dumps(
            {
                "timestamp": stamp,
                "args": args_json,
                "environment": env,
                "targets": TARGETS,
                "summary": summary,
                "measurements": [m.to_json() for m in measurements],
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nresults written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    global CONSOLE
    args = parse_args(argv)
    CONSOLE = args.console
    return run(args)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
