"""A plain source connection held for a streaming session's rare lookups, opened on first use."""

from __future__ import annotations

from contextlib import ExitStack

import psycopg

from engine.source.connection import connect_source

__all__ = ["SourceLink"]


class SourceLink:
    """A plain connection to the source, opened on first use: for the rare lookups a stream needs
    (a new column's type and position, values a key change left out). It is kept until
    :meth:`close` so a bulk key change does not open one connection per row; using it again after
    that opens a new one."""

    def __init__(self, dsn: str, what: str) -> None:
        self._dsn = dsn
        self._what = what
        self._stack = ExitStack()
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            self._conn = self._stack.enter_context(connect_source(self._dsn, self._what))
        return self._conn

    def close(self) -> None:
        self._stack.close()
        self._conn = None
