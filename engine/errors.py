"""The engine's one error tree.

Every failure an operator can see is an :class:`EtlError` carrying a *kind* (for metrics and
tests), a *reason* (what went wrong, naming the object) and a *hint* (what to do about it), plus
whether retrying on its own can help. The console, the CLI, the logs and the state store all show
these three fields; nothing else is needed to explain a failure.

Decoding belongs to the tree too: a value or a column type that cannot be replicated is a
:class:`TableError` naming its table (only that table stops), a malformed pgoutput message a
protocol error of the session, so no layer re-wraps another's errors.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


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
    PROTOCOL = "protocol"
    SLOT = "slot"
    STATE_LOST = "state_lost"
    STATE_STORE = "state_store"
    DESTINATION = "destination"
    DESTINATION_BUSY = "destination_busy"
    DESTINATION_TABLE = "destination_table"  # the destination refused a statement about one table
    UNCHANGED_TOAST = "unchanged_toast"  # an unchanged TOAST value for a row the target does not hold
    CONFIG_DB = "config_db"
    INTERNAL = "internal"


class RetryPolicy(StrEnum):
    """How a failed pipeline or table comes back (as Supabase `etl` table states do)."""

    NONE = "none"  # cannot recover without a change by the operator
    MANUAL = "manual"  # the operator fixes the cause, then retries (`pipeline start`, console retry)
    TIMED = "timed"  # retried with backoff on its own


# A layer that knows a pipeline by its id only (a destination, the source catalog) names it with
# this placeholder in a hint's command, until a caller that knows the name fills it in
# (EtlError.for_pipeline).
PIPELINE_PLACEHOLDER = "<pipeline>"


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

    def for_pipeline(self, name: str) -> Self:
        """The same error, its hint's command naming pipeline ``name`` (a layer that knows a
        pipeline by its id only writes :data:`PIPELINE_PLACEHOLDER` there)."""
        if PIPELINE_PLACEHOLDER not in self.hint:
            return self
        named = type(self).__new__(type(self))  # not copy.copy: subclasses take other arguments
        named.__dict__.update(self.__dict__)
        named.args = self.args
        named.hint = self.hint.replace(PIPELINE_PLACEHOLDER, name)
        return named


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


class DestinationTableError(TableError, DestinationError):
    """The destination refused a statement about one table (a compilation error, an object of
    the wrong kind or shape under the target's name, a refused value): only that table stops.
    Connection, login and database-level faults are plain :class:`DestinationError` and retry
    the whole pipeline."""

    kind = ErrorKind.DESTINATION_TABLE
    retry = RetryPolicy.MANUAL


class StateStoreError(EtlError):
    kind = ErrorKind.STATE_STORE
    retry = RetryPolicy.TIMED


# --------------------------------------------------------------------------- decoding
#
# Raised where PostgreSQL's output is read, and caught only where a caller knows more (a
# converter adds the column to an array or interval text error); everyone else lets them pass
# as the EtlErrors they are.

VALUE_HINT = "fix or remove the value in PostgreSQL, change the column type, or exclude the table"


def shorten_value(value: str, limit: int = 60) -> str:
    """A value as a message quotes it: cut at ``limit`` characters, marked by an ellipsis."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class ValueConversionError(TableError):
    """A value cannot be converted to its column's target type without changing it.

    ``detail`` says what is wrong with the value alone; ``reason`` is the whole sentence (value,
    column, type, table, detail); the hint stays apart (``str()`` joins them).
    ``index`` is the row of the value in the batch being converted, when known.
    """

    kind = ErrorKind.VALUE_CONVERSION
    retry = RetryPolicy.MANUAL

    def __init__(
        self,
        table: str,
        column: str,
        value: str,
        detail: str,
        hint: str,
        type_name: str | None = None,
        index: int | None = None,
    ) -> None:
        typed = f" ({type_name})" if type_name else ""
        sentence = (
            f"cannot convert value {shorten_value(value)!r} in column {column!r}{typed} of table {table!r}: {detail}"
        )
        super().__init__(table, sentence, hint)
        self.column = column
        self.value = value
        self.detail = detail
        self.type_name = type_name
        self.index = index


class UnsupportedTypeError(TableError):
    """A column type has no exact representation: its table cannot be replicated.

    ``detail`` says why the type alone does not fit; ``reason`` names column, type and table; the
    hint stays apart (``str()`` joins them).
    """

    kind = ErrorKind.UNSUPPORTED_TYPE
    retry = RetryPolicy.MANUAL

    def __init__(self, table: str, column: str, type_name: str, detail: str, hint: str) -> None:
        sentence = f"column {column!r} of table {table!r} has type {type_name}, which cannot be replicated: {detail}"
        super().__init__(table, sentence, hint)
        self.column = column
        self.type_name = type_name
        self.detail = detail


class ArrayParseError(EtlError):
    """The text is not a one-dimensional PostgreSQL array literal (no column known yet)."""

    kind = ErrorKind.VALUE_CONVERSION
    retry = RetryPolicy.MANUAL

    def __init__(self, reason: str) -> None:
        super().__init__(reason, VALUE_HINT)


class MultiDimensionalArrayError(ArrayParseError):
    """The array has more than one dimension."""

    def __init__(self) -> None:
        super().__init__("multi-dimensional arrays cannot be represented as a one-level list")


class ArrayLowerBoundError(ArrayParseError):
    """The array's lower bound is not 1: a one-level list would shift every index."""

    def __init__(self, dimensions: str) -> None:
        super().__init__(
            f"the array's bounds are {dimensions}, not starting at 1; a list keeps no lower bound, so every "
            "element would move to another index"
        )


class IntervalParseError(EtlError):
    """The text is not an ISO 8601 interval or does not fit Arrow's interval fields (no column
    known yet)."""

    kind = ErrorKind.VALUE_CONVERSION
    retry = RetryPolicy.MANUAL

    def __init__(self, reason: str) -> None:
        super().__init__(reason, VALUE_HINT)


class PgOutputError(EtlError):
    """A pgoutput payload that is truncated, malformed, unknown or unexpected here.

    ``detail`` is what is wrong; ``reason`` names the message type and the offset too. The
    session restarts and reads the change again, so the policy is a timed retry.
    """

    kind = ErrorKind.PROTOCOL
    retry = RetryPolicy.TIMED

    def __init__(self, message_type: str, offset: int, detail: str) -> None:
        super().__init__(
            f"{message_type} message: {detail} (at offset {offset})",
            "retrying with backoff; if it persists, report it with the log",
        )
        self.message_type = message_type
        self.offset = offset
        self.detail = detail

    def __reduce__(self) -> tuple[type[PgOutputError], tuple[str, int, str]]:
        # The default reduce would call __init__ with the formatted text only.
        return (type(self), (self.message_type, self.offset, self.detail))
