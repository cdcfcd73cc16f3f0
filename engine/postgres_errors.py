"""Turn driver errors from psycopg 3 and psycopg2 into the engine's classified errors."""

from __future__ import annotations

from engine.errors import ErrorKind, EtlError, RetryPolicy
from engine.redaction import redact_dsn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # libpq prefixes "connection to server at ... failed:"; the useful part is what follows
    return "; ".join(lines[:2])


def classify_connect_error(exc: BaseException, what: str, dsn: str) -> EtlError:
    """An error raised while connecting to a PostgreSQL server named ``what`` (e.g. 'source "shop"')."""
    msg = _first_line(exc)
    low = msg.lower()
    where = f"{what} ({redact_dsn(dsn)})"
    if "password authentication failed" in low or "no password supplied" in low or "authentication failed" in low:
        return EtlError(
            f"{where}: authentication failed: {msg}",
            "check the user and password in the DSN (`etl-tui source add` again, or edit it in the console)",
            kind=ErrorKind.SOURCE_AUTH,
            retry=RetryPolicy.MANUAL,
        )
    if "does not exist" in low and "database" in low:
        return EtlError(
            f"{where}: {msg}",
            "check the database name in the DSN",
            kind=ErrorKind.SOURCE_SETTINGS,
            retry=RetryPolicy.MANUAL,
        )
    if (
        "pg_hba.conf" in low
        or "permission denied" in low
        or "must have replication" in low
        or ("replication" in low and "not allowed" in low)
    ):
        return EtlError(
            f"{where}: access refused: {msg}",
            "the role needs LOGIN and REPLICATION (ALTER ROLE … REPLICATION) and a pg_hba.conf entry that "
            "allows both normal and replication connections",
            kind=ErrorKind.SOURCE_PRIVILEGE,
            retry=RetryPolicy.MANUAL,
        )
    return EtlError(
        f"{where}: cannot connect: {msg}",
        "check that the server is running and reachable from this host (host, port, firewall); retrying with backoff",
        kind=ErrorKind.SOURCE_UNREACHABLE,
        retry=RetryPolicy.TIMED,
    )
