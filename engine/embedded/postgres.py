"""Throwaway PostgreSQL clusters, for `etl-tui demo` and the test suite.

:class:`EmbeddedPostgres` runs ``initdb`` into a directory and starts a real server on a free
127.0.0.1 port, already configured for logical replication (``wal_level=logical`` is in the
config before the first start, so no restart is needed). Where the binaries come from is
:mod:`engine.embedded.pg_install`'s business.

PostgreSQL refuses to run as root, and CI runs as root: then every server binary runs as an
unprivileged OS user (:func:`~engine.embedded.pg_install.server_os_user`), which owns the cluster
directory and must be able to reach both it and the binaries.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import psutil
import psycopg
from psycopg import sql

from engine.embedded.errors import EmbeddedServerError
from engine.embedded.loopback import HOST, free_port, log_tail
from engine.embedded.pg_install import (
    OsUser,
    ensure_traversable,
    find_pg_bindir,
    prepare_install,
    server_major_version,
    server_os_user,
)

_log = logging.getLogger(__name__)

# the one role that must log in with a password, so credential handling can be tested for real
PASSWORD_ROLE = "etl_pw"
# sun_path holds 108 bytes with the NUL; stay one byte under the brim
_MAX_SOCKET_PATH = 106
_CONF_FILE = "etl_tui.conf"
_START_ATTEMPTS = 3  # a free port can be taken between picking and binding
_CMD_TIMEOUT = 120.0
_READY_TIMEOUT = 60.0

StopMode = Literal["smart", "fast", "immediate"]
# the postmaster's own shutdown signals (what pg_ctl -m sends)
_STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}

_DEFAULT_SETTINGS: dict[str, str] = {
    "listen_addresses": HOST,
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    # a throwaway cluster never has to survive an OS crash
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "128MB",
}

_HBA = f"""\
# written by etl-tui: {PASSWORD_ROLE} must present its password, everyone else is trusted
host    all          {PASSWORD_ROLE}  {HOST}/32  scram-sha-256
host    replication  {PASSWORD_ROLE}  {HOST}/32  scram-sha-256
local   all          all                     trust
local   replication  all                     trust
host    all          all     {HOST}/32      trust
host    replication  all     {HOST}/32      trust
"""


# --------------------------------------------------------------------------- small pieces


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _conninfo_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _is_postgres(pid: int) -> bool:
    # a stale postmaster.pid may name a pid the OS has since given to something else
    try:
        return _alive(pid) and psutil.Process(pid).name() == "postgres"
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    # when we are PID 1 in a container, orphaned servers are our children and must be reaped
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# --------------------------------------------------------------------------- the cluster


class EmbeddedPostgres:
    """A PostgreSQL cluster of its own in *base_dir*, for tests and the demo.

    Layout: ``base_dir/data`` (PGDATA), ``base_dir/s`` (unix socket, unless that path is too
    long, then a short directory under /tmp), ``base_dir/postgres.log``. With no *base_dir* a
    temporary one is made and removed by :meth:`cleanup`; a caller's directory is kept, and a
    cluster already in it is reused. *settings* override the defaults in postgresql.conf.
    """

    def __init__(
        self,
        base_dir: Path | None = None,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        *,
        bindir: Path | None = None,
    ) -> None:
        self._bindir = bindir if bindir is not None else find_pg_bindir()
        self._auto_port = port is None
        self._port = port if port is not None else free_port()
        self._settings = dict(settings or {})
        self._os_user = server_os_user()
        self._owns_base_dir = base_dir is None
        if base_dir is None:
            self._base_dir = Path(tempfile.mkdtemp(prefix="etl-tui-pg-"))
        else:
            self._base_dir = base_dir.absolute()
        socket_dir = self._base_dir / "s"
        self._owns_socket_dir = len(str(socket_dir / ".s.PGSQL.65535").encode()) > _MAX_SOCKET_PATH
        if self._owns_socket_dir:
            socket_dir = Path(tempfile.mkdtemp(prefix="etl-pg-", dir="/tmp"))
        self._socket_dir = socket_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._cleaned = False

    # ------------------------------------------------------------------ accessors

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        return self._base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def log_path(self) -> Path:
        return self._base_dir / "postgres.log"

    @property
    def bindir(self) -> Path:
        return self._bindir

    @property
    def os_user(self) -> OsUser | None:
        """The OS account the server runs as when we are root, else None (our own)."""
        return self._os_user

    @property
    def version(self) -> int:
        """Server major version, e.g. 15."""
        return server_major_version(self._bindir)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (ours, or one left running in the directory)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc.pid
            self._proc = None
        lines = self._pid_file_lines()
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            return None
        return pid if _is_postgres(pid) else None

    @property
    def is_running(self) -> bool:
        return self.pid is not None

    def dsn(
        self,
        dbname: str = "postgres",
        user: str = "postgres",
        password: str | None = None,
        unix: bool = False,
    ) -> str:
        """A libpq ``key=value`` string (psycopg 3 and psycopg2), over TCP or the unix socket."""
        parts = {
            "host": str(self._socket_dir) if unix else HOST,
            "port": str(self._port),
            "dbname": dbname,
            "user": user,
        }
        if password is not None:
            parts["password"] = password
        return " ".join(f"{key}={_conninfo_value(value)}" for key, value in parts.items())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """initdb when the data directory is new, then start the server and wait for it."""
        if self._cleaned:
            raise EmbeddedServerError("this cluster was cleaned up", hint="make a new EmbeddedPostgres")
        if self.is_running:
            return
        began = time.monotonic()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        initdb_done = time.monotonic()
        self._start_server()
        atexit.register(self.cleanup)
        _log.info(
            "PostgreSQL %s up on %s:%s (initdb %.2fs, start %.2fs) in %s",
            self.version,
            HOST,
            self._port,
            initdb_done - began,
            time.monotonic() - initdb_done,
            self._base_dir,
        )

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        """Shut down as ``pg_ctl stop -m mode`` would, and wait for the postmaster to exit."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, _STOP_SIGNALS[mode])
        if not self._wait_gone([pid], timeout):
            raise EmbeddedServerError(
                f"PostgreSQL (pid {pid}) did not stop within {timeout:.0f}s ({mode} mode)",
                hint=f"see {self.log_path}",
            )

    def restart(self) -> None:
        """Stop (if running) and start again on the same port; after :meth:`kill` this recovers."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash would; :meth:`start` recovers."""
        pid = self.pid
        if pid is None:
            return
        try:
            victims = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            victims = [pid]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self._wait_gone(victims, 10.0)

    def cleanup(self) -> None:
        """Stop the server; remove the directories this object made. Safe to call twice."""
        if self._cleaned:
            return
        atexit.unregister(self.cleanup)
        try:
            self.stop()
        except EmbeddedServerError as exc:
            _log.warning("fast stop failed, killing the server: %s", exc)
            self.kill()
        if self._owns_base_dir:
            shutil.rmtree(self._base_dir, ignore_errors=True)
        if self._owns_socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._cleaned = True

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ SQL

    def execute(
        self,
        query: str | sql.SQL | sql.Composed,
        dbname: str = "postgres",
        params: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement as superuser in autocommit; its rows, or [] when it returns none."""
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description is not None else []

    def create_database(self, name: str) -> None:
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str, timeout: float = 10.0) -> None:
        """Drop *name* even while in use: its replication slots go first (they block the drop)."""
        deadline = time.monotonic() + timeout
        while True:
            self.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                " WHERE database = %s AND active_pid IS NOT NULL",
                params=(name,),
            )
            # a walsender may come back between the two statements; then go round again
            with contextlib.suppress(psycopg.errors.ObjectInUse):
                self.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE database = %s AND NOT active",
                    params=(name,),
                )
            left = self.execute("SELECT count(*) FROM pg_replication_slots WHERE database = %s", params=(name,))
            if left[0][0] == 0:
                break
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"replication slots in database {name!r} would not go away")
            time.sleep(0.05)
        ident = sql.Identifier(name)
        if self.version >= 13:
            self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        else:
            self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", params=(name,))
            self.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))

    # ------------------------------------------------------------------ internals

    def _bin(self, name: str) -> str:
        return str(self._bindir / name)

    def _chown(self, path: Path) -> None:
        if self._os_user is not None:
            os.chown(path, self._os_user.uid, self._os_user.gid)

    def _prepare_dirs(self) -> None:
        self._base_dir.mkdir(parents=True, exist_ok=True)
        self._socket_dir.mkdir(parents=True, exist_ok=True)
        if self._owns_base_dir:
            self._base_dir.chmod(0o755)
        self._socket_dir.chmod(0o755)
        if self._os_user is None:
            return
        prepare_install(self._bindir)
        ensure_traversable(self._base_dir)
        ensure_traversable(self._socket_dir)
        self._chown(self._base_dir)
        self._chown(self._socket_dir)
        if self.log_path.exists():
            self._chown(self.log_path)

    def _popen_kwargs(self) -> dict[str, Any]:
        """How every server binary is launched: as the server user when we are root."""
        return {
            "cwd": self._base_dir,  # the server user may not be allowed into our cwd
            "env": {key: value for key, value in os.environ.items() if not key.startswith("PG")},
            "stdin": subprocess.DEVNULL,
            **(self._os_user.popen_kwargs() if self._os_user is not None else {}),
        }

    def _run(self, command: list[str]) -> str:
        """Run a server binary to completion; its stdout, or raise."""
        name = Path(command[0]).name
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_CMD_TIMEOUT, **self._popen_kwargs())
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServerError(
                f"{name} did not finish within {_CMD_TIMEOUT:.0f}s", hint=f"see {self.log_path}"
            ) from exc
        except OSError as exc:
            raise EmbeddedServerError(f"cannot run {command[0]}: {exc}", hint="check the install") from exc
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise EmbeddedServerError(f"{name} failed with exit code {done.returncode}: {output}")
        return done.stdout

    def _initdb(self) -> None:
        existed = self.data_dir.exists()
        base = [self._bin("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        base.append("--no-sync")  # nothing here has to survive a power cut; saves most of initdb's time
        try:
            self._run([*base, "--locale=C.UTF-8"])
        except EmbeddedServerError as exc:
            _log.info("initdb with C.UTF-8 failed, retrying with --no-locale: %s", exc)
            if not existed:  # initdb cleans up after itself, unless it was killed
                shutil.rmtree(self.data_dir, ignore_errors=True)
            self._run([*base, "--no-locale"])

    def _write_config(self) -> None:
        settings = {
            "port": str(self._port),
            **_DEFAULT_SETTINGS,
            "unix_socket_directories": str(self._socket_dir),
            **{key: str(value) for key, value in self._settings.items()},
        }
        conf = self.data_dir / _CONF_FILE
        conf.write_text(
            "# written by etl-tui on every start; edit the settings passed to EmbeddedPostgres instead\n"
            + "".join(f"{key} = {_conf_value(value)}\n" for key, value in settings.items())
        )
        main_conf = self.data_dir / "postgresql.conf"
        include = f"include = '{_CONF_FILE}'\n"
        if include not in main_conf.read_text():
            with main_conf.open("a") as fh:
                fh.write("\n" + include)
        (self.data_dir / "pg_hba.conf").write_text(_HBA)
        for path in (conf, main_conf, self.data_dir / "pg_hba.conf"):
            self._chown(path)

    def _pid_file_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _wait_gone(self, pids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                self._proc = None
            for pid in pids:
                _reap(pid)
            if not any(_alive(pid) for pid in pids):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def _start_server(self) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._write_config()
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log_file:
                self._chown(self.log_path)
                # postgres itself rather than `pg_ctl start`: pg_ctl would orphan the postmaster, and
                # where PID 1 is slow to reap (containers), its zombie blocks the next start after kill()
                self._proc = subprocess.Popen(
                    [self._bin("postgres"), "-D", str(self.data_dir)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in the demo's terminal must not reach it first
                    **self._popen_kwargs(),
                )
            if self._wait_ready(self._proc):
                return
            log = log_tail(self.log_path, log_start)
            if self._auto_port and attempt < _START_ATTEMPTS and "could not bind" in log:
                _log.info("port %s was taken, picking another", self._port)
                self._port = free_port()
                continue
            raise EmbeddedServerError(
                f"PostgreSQL in {self.data_dir} did not start\n--- {self.log_path} ---\n{log}",
                hint=f"see {self.log_path}",
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """Wait as ``pg_ctl -w`` does: for our postmaster to mark postmaster.pid ready."""
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                return False
            lines = self._pid_file_lines()
            # line 8 is the status; a stale file from a killed server names another pid
            if len(lines) >= 8 and lines[0].strip() == str(proc.pid) and lines[7].strip() == "ready":
                return True
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        self._proc = None
        return False
