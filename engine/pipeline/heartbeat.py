"""An idle pipeline's heartbeat: a logical message written on its source now and then."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

import psycopg

from engine.config.models import PipelineSpec
from engine.pipeline.activity import EventKind
from engine.source.connection import source_conninfo

__all__ = ["Heartbeat"]


class Heartbeat:
    """While the pipeline is idle, write a logical message on its source now and then: WAL in the
    slot's own database, so the slot advances even where the server's keepalives alone do not
    let it (other databases busy, this one silent). Failures are reported once and never stop
    replication."""

    def __init__(self, spec: PipelineSpec, interval: float, event: Callable[[EventKind, str], None]) -> None:
        self._spec = spec
        self._interval = interval
        self._event = event
        self._conn: psycopg.Connection | None = None
        self._next = 0.0
        self._failed = False

    def beat(self) -> None:
        now = time.monotonic()
        if now < self._next or self._failed:
            return
        self._next = now + self._interval
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(source_conninfo(self._spec.source.dsn), autocommit=True, connect_timeout=5)
            self._conn.execute("SELECT pg_logical_emit_message(false, 'etl-tui/heartbeat', '')")
        except psycopg.Error as exc:
            self._failed = True  # until the next session
            self._drop()
            self._event(
                EventKind.RETRY,
                f'pipeline {self._spec.name}: heartbeat on source "{self._spec.source.name}" failed '
                f"({str(exc).strip() or type(exc).__name__}); the slot relies on keepalives only",
            )

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        """End of a session: the next one tries again."""
        self._drop()
        self._failed = False
