"""The engine's one error tree.

Every failure an operator can see is an :class:`EtlError` carrying a *kind* (for metrics and
tests), a *reason* (what went wrong, naming the object) and a *hint* (what to do about it), plus
whether retrying on its own can help. The console, the CLI, the logs and the state store all show
these three fields; nothing else is needed to explain a failure.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    CONFIG = "config"
    SOURCE_UNREACHABLE = "source_unreachable"
    SOURCE_AUTH = "source_auth"
    SOURCE_SETTINGS = "source_settings"
    SOURCE_PRIVILEGE = "source_privilege"
    SOURCE_ERROR = "source_error"
    TABLE_MISSING = "table_missing"
    NO_REPLICA_IDENTITY = "no_replica_identity"
    UNSUPPORTED_TYPE = "unsupported_type"
    SCHEMA_CHANGE = "schema_change"
    VALUE_CONVERSION = "value_conversion"
    SLOT = "slot"
    STATE_LOST = "state_lost"
    STATE_STORE = "state_store"
    DESTINATION = "destination"
    DESTINATION_BUSY = "destination_busy"
    CONFIG_DB = "config_db"
    INTERNAL = "internal"


class RetryPolicy(StrEnum):
    """How a failed pipeline or table comes back (as Supabase `etl` table states do)."""

    NONE = "none"  # cannot recover without a change by the operator
    MANUAL = "manual"  # the operator fixes the cause, then retries (`pipeline start`, console retry)
    TIMED = "timed"  # retried with backoff on its own


class EtlError(Exception):
    """Base of every error the engine reports."""

    kind: ErrorKind = ErrorKind.INTERNAL
    retry: RetryPolicy = RetryPolicy.MANUAL

    def __init__(
        self,
        reason: str,
        hint: str = "",
        *,
        kind: ErrorKind | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        if kind is not None:
            self.kind = kind
        if retry is not None:
            self.retry = retry

    def __str__(self) -> str:
        return f"{self.reason} (hint: {self.hint})" if self.hint else self.reason


class ConfigError(EtlError):
    kind = ErrorKind.CONFIG
    retry = RetryPolicy.MANUAL


class ConfigDbError(EtlError):
    kind = ErrorKind.CONFIG_DB
    retry = RetryPolicy.TIMED


class SourceError(EtlError):
    """The source PostgreSQL cannot be used as configured."""

    kind = ErrorKind.SOURCE_ERROR
    retry = RetryPolicy.TIMED


class TableError(EtlError):
    """A problem confined to one table: only that table stops, the others go on."""

    kind = ErrorKind.TABLE_MISSING
    retry = RetryPolicy.MANUAL

    def __init__(self, table: str, reason: str, hint: str = "", **kw: object) -> None:
        super().__init__(reason, hint, **kw)  # type: ignore[arg-type]
        self.table = table


class DestinationError(EtlError):
    kind = ErrorKind.DESTINATION
    retry = RetryPolicy.TIMED


class StateStoreError(EtlError):
    kind = ErrorKind.STATE_STORE
    retry = RetryPolicy.TIMED
