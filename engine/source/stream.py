"""The logical replication connection: slots and the pgoutput stream.

This is the only module that uses psycopg2 (psycopg 3 has no streaming-replication API).
Acknowledgements are explicit: :meth:`ReplicationStream.ack` is called only with an LSN whose
transactions are durable at the destination (I1). psycopg2 itself moves the flush position to the
server's ``wal_end`` on keepalives only once everything received has been acknowledged, which is
what lets an idle slot advance (I5).
"""

from __future__ import annotations

import contextlib
import select
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from engine.errors import ErrorKind, RetryPolicy, SourceError
from engine.postgres_errors import classify_connect_error
from engine.source.connection import source_conninfo

PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class CreatedSlot:
    name: str
    consistent_point: int
    snapshot: str | None


def _lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


class ReplicationStream:
    def __init__(self, dsn: str, what: str, application_name: str = "etl-tui replication") -> None:
        self._what = what
        self._dsn = dsn
        try:
            self._conn = psycopg2.connect(
                source_conninfo(dsn, application_name),
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
            )
        except psycopg2.Error as exc:
            err = classify_connect_error(exc, what, dsn)
            raise SourceError(err.reason, err.hint, kind=err.kind, retry=err.retry) from exc
        self._cur = self._conn.cursor()
        self._acked = 0
        self.server_version: int = self._conn.server_version

    # ---- slots -------------------------------------------------------------------------------
    def create_slot(self, name: str, *, temporary: bool = False, export_snapshot: bool = False) -> CreatedSlot:
        temp = " TEMPORARY" if temporary else ""
        if self.server_version >= 150000:
            opts = "(SNAPSHOT 'export')" if export_snapshot else "(SNAPSHOT 'nothing')"
        else:
            opts = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            self._cur.execute(f"CREATE_REPLICATION_SLOT {quoted}{temp} LOGICAL pgoutput {opts}")
            row = self._cur.fetchone()
        except psycopg2.Error as exc:
            msg = str(exc).strip()
            hint = "check max_replication_slots on the source and drop unused slots"
            if "all replication slots are in use" in msg:
                hint = "raise max_replication_slots on the source (restart needed) or drop unused slots"
            raise SourceError(
                f"{self._what}: cannot create replication slot {name}: {msg}",
                hint,
                kind=ErrorKind.SLOT,
                retry=RetryPolicy.MANUAL,
            ) from exc
        assert row is not None
        return CreatedSlot(name=row[0], consistent_point=_lsn(row[1]), snapshot=row[2])

    # ---- streaming ---------------------------------------------------------------------------
    def start(self, slot: str, publication: str, start_lsn: int = 0) -> None:
        try:
            self._cur.start_replication(
                slot_name=slot,
                decode=False,
                start_lsn=start_lsn,
                options={"proto_version": str(PROTOCOL_VERSION), "publication_names": publication},
                status_interval=5,
            )
        except psycopg2.Error as exc:
            msg = str(exc).strip()
            if "is active for PID" in msg:
                raise SourceError(
                    f"{self._what}: replication slot {slot} is in use by another process: {msg}",
                    "another etl-tui may be running this pipeline; stop it first",
                    kind=ErrorKind.SLOT,
                    retry=RetryPolicy.TIMED,
                ) from exc
            raise SourceError(
                f"{self._what}: cannot start replication from slot {slot}: {msg}", "", kind=ErrorKind.SLOT
            ) from exc

    def read_nowait(self) -> psycopg2.extras.ReplicationMessage | None:
        """The next message already received, or None."""
        try:
            return self._cur.read_message()
        except psycopg2.Error as exc:
            raise SourceError(
                f"{self._what}: replication connection lost: {str(exc).strip()}",
                "reconnecting with backoff; the slot keeps every change meanwhile",
                kind=ErrorKind.SOURCE_UNREACHABLE,
                retry=RetryPolicy.TIMED,
            ) from exc

    def wait(self, timeout: float) -> None:
        """Block until the connection has data or ``timeout`` seconds pass."""
        select.select([self._conn], [], [], timeout)

    @property
    def server_wal_end(self) -> int:
        """The server's WAL position as of the last message or keepalive."""
        return int(getattr(self._cur, "wal_end", 0) or 0)

    @property
    def acked(self) -> int:
        return self._acked

    def ack(self, lsn: int) -> None:
        """Confirm everything up to ``lsn`` as durable at the destination."""
        if lsn <= self._acked:
            return
        try:
            self._cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, apply_lsn=lsn, force=True)
        except psycopg2.Error as exc:
            raise SourceError(
                f"{self._what}: cannot send feedback: {str(exc).strip()}",
                "reconnecting; the destination holds the data, so nothing is lost",
                kind=ErrorKind.SOURCE_UNREACHABLE,
                retry=RetryPolicy.TIMED,
            ) from exc
        self._acked = lsn

    def close(self) -> None:
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()
