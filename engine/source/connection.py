"""Connections to a source PostgreSQL with the session settings the decoder relies on."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from engine.errors import ErrorKind, SourceError
from engine.postgres_errors import classify_connect_error

# Text output of every type is parsed by engine.decoding.convert, which expects these settings.
SESSION_SETTINGS = {
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "iso_8601",
    "TimeZone": "UTC",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
}


def _options() -> str:
    return " ".join(f"-c {k}={v.replace(' ', '')}" for k, v in SESSION_SETTINGS.items())


def source_conninfo(dsn: str, application_name: str = "etl-tui") -> str:
    """The source DSN plus our session settings (appended to any options the operator set)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise SourceError(
            f"the source DSN is malformed: {exc}",
            "use a URL (postgresql://user@host:5432/db) or key=value pairs (host=… dbname=…)",
            kind=ErrorKind.CONFIG,
        ) from exc
    extra = _options()
    params["options"] = f"{params['options']} {extra}" if params.get("options") else extra
    params.setdefault("application_name", application_name)
    params.setdefault("connect_timeout", "10")
    return make_conninfo(**params)  # type: ignore[arg-type]


def connect_source(
    dsn: str, what: str, *, autocommit: bool = True, application_name: str = "etl-tui"
) -> psycopg.Connection:
    try:
        return psycopg.connect(source_conninfo(dsn, application_name), autocommit=autocommit)
    except psycopg.Error as exc:
        err = classify_connect_error(exc, what, dsn)
        raise SourceError(err.reason, err.hint, kind=err.kind, retry=err.retry) from exc
