"""The destination seam: what a pipeline runner needs from any destination."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Protocol

import pyarrow as pa

from engine.batching.batcher import Batch
from engine.errors import PIPELINE_PLACEHOLDER, DestinationTableError, ErrorKind
from engine.identifiers import TableName
from engine.source.catalog import ColumnSignature, TableSchema

# Metadata columns every target table carries (DESIGN §4: they start with _etl_).
TARGET_LSN_COLUMN = "_etl_commit_lsn"
TARGET_ORDINAL_COLUMN = "_etl_ordinal"
TARGET_DELETED_COLUMN = "_etl_deleted"  # with soft deletes: the row was deleted (or truncated) on the source
TARGET_META_COLUMNS = frozenset(
    {TARGET_LSN_COLUMN, TARGET_ORDINAL_COLUMN, TARGET_DELETED_COLUMN}
    | {c.upper() for c in (TARGET_LSN_COLUMN, TARGET_ORDINAL_COLUMN, TARGET_DELETED_COLUMN)}
)
# Per target table, the source columns it was last made to match (written with the data it
# describes, so after a crash it says exactly what shape the target is meant to have).
SCHEMAS_TABLE = "_etl_schemas"


def landing_name(table: TableName) -> str:
    """The landing table of ``table``'s target (it lives in the landing schema)."""
    return f"landing_{table.target_name()}"


class DeleteMode(StrEnum):
    HARD = "hard"  # a deleted row is removed
    SOFT = "soft"  # a deleted row stays with _etl_deleted = true
    FLAGGED = "flagged"  # hard deletes into a table that has the flag (soft deletes were on before)

    @classmethod
    def choose(cls, soft_deletes: bool, has_flag: bool) -> DeleteMode:
        return cls.SOFT if soft_deletes else cls.FLAGGED if has_flag else cls.HARD


def encode_signature(columns: tuple[ColumnSignature, ...]) -> str:
    return json.dumps([c.as_json() for c in columns])


def decode_signature(text: str) -> tuple[ColumnSignature, ...]:
    return tuple(ColumnSignature.from_json(c) for c in json.loads(text))


class ShapeTracker:
    """The shape each target is known to have now, and whether it has the deleted flag, so a
    step whose schema differs (a schema change on the source) is noticed before it is merged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[TableName, tuple[tuple[ColumnSignature, ...], bool]] = {}

    def known(self, schema: TableSchema, has_deleted: bool) -> None:
        with self._lock:
            self._known[schema.table] = (schema.signature, has_deleted)

    def has_deleted_column(self, schema: TableSchema) -> bool | None:
        """Whether the target has the deleted flag; None when its shape is not ``schema``'s."""
        with self._lock:
            entry = self._known.get(schema.table)
        if entry is None or entry[0] != schema.signature:
            return None
        return entry[1]

    def forget(self, table: TableName) -> None:
        with self._lock:
            self._known.pop(table, None)


def check_target_columns(
    target: str, where: str, schema: TableSchema, found: list[str] | None, expected: list[str]
) -> None:
    """A streaming table's target must exist with exactly the expected source columns (its
    _etl_ metadata columns aside); else the table needs a resync, and the error says so."""
    resync = f"etl-tui pipeline resync {PIPELINE_PLACEHOLDER} --table '{schema.table}'"
    if found is None:
        raise DestinationTableError(
            str(schema.table),
            f"target table {target} of table {schema.table} is missing in {where}",
            f"resync the table to copy it again: {resync}",
        )
    if found != expected:
        raise DestinationTableError(
            str(schema.table),
            f"target table {target} of table {schema.table} has columns {found}, expected {expected}",
            f"the table changed shape outside the engine; resync the table: {resync}",
        )


# A fault that names a database, schema or warehouse is not one table's (every table would hit it).
_CONTAINER = re.compile(r"\b(databases?|schemas?|warehouses?)\b", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def names_container(detail: str, table: TableName | None = None) -> bool:
    """Whether a destination's error message is about a database, schema or warehouse (quoted
    names aside, and the table's own names, so a table called ``schema`` or ``warehouse`` does
    not count: DuckDB prints names unquoted)."""
    text = _QUOTED.sub("", detail)
    if table is not None:
        for name in {table.name, table.target_name(), landing_name(table)}:
            text = re.sub(rf"(?<![\w$]){re.escape(name)}(?![\w$])", "", text, flags=re.IGNORECASE)
    return _CONTAINER.search(text) is not None


def table_fault(table: TableName, what: str, detail: str) -> DestinationTableError:
    """The error of a statement the destination refused for ``table``: ``what`` says which
    statement on which object, ``detail`` is the destination's message."""
    return DestinationTableError(
        str(table),
        f"table {table}: {what} failed: {detail}",
        "fix the cause at the destination (an object of another kind or shape under the target's name: drop "
        f"or rename it), then copy the table again: etl-tui pipeline start {PIPELINE_PLACEHOLDER}",
    )


def unchanged_toast_fault(table: TableName, target: str, keys: int) -> DestinationTableError:
    """``keys`` rows arrived with an unchanged TOAST value the batch does not hold, for keys the
    target lacks: merging them would insert NULL in place of the value, so the table stops."""
    return DestinationTableError(
        str(table),
        f"table {table}: {keys} updated row(s) left a TOASTed value unchanged, but target {target} does not "
        "hold their key(s) (deleted at the destination?), so the value is unknown; nothing was written for "
        "the table rather than NULL in its place",
        f"resync the table: etl-tui pipeline resync {PIPELINE_PLACEHOLDER} --table '{table}'",
        kind=ErrorKind.UNCHANGED_TOAST,
    )


class Destination(Protocol):
    def describe(self) -> str: ...

    def checkpoint(self, pipeline_id: int) -> int | None:
        """The end LSN of the last transaction durably applied for ``pipeline_id`` (authoritative)."""
        ...

    def forget(self, pipeline_id: int) -> None:
        """Drop the checkpoint of ``pipeline_id`` (its slot was created anew)."""
        ...

    def recorded_columns(self, tables: Iterable[TableName]) -> dict[TableName, tuple[ColumnSignature, ...]]:
        """The source columns each target was last made to match (absent: no record yet)."""
        ...

    def prepare(self, schemas: Iterable[TableSchema]) -> dict[TableName, DestinationTableError]:
        """Make landing and target tables match ``schemas``, table by table; a target that was
        recorded with another shape is brought to it, one without a record must already match.
        Returns the tables that could not be prepared (their targets missing, of another shape,
        or refused by the destination) with their errors: the others are prepared. A fault that
        is not one table's is raised."""
        ...

    def copy_table(
        self, schema: TableSchema, batches: Iterable[pa.RecordBatch], on_progress: Callable[[int], None]
    ) -> int:
        """Replace the target's contents with ``batches`` atomically; return rows written. A
        statement the destination refuses for this table raises :class:`DestinationTableError`."""
        ...

    def apply(self, pipeline_id: int, batch: Batch) -> None:
        """Land, merge and record the checkpoint of ``batch``, all in one transaction. A step
        whose schema differs from its target's (a schema change on the source) first adds and
        drops the target's columns to match. A statement the destination refuses for one table,
        or an unchanged TOAST value for a key the target lacks, raises
        :class:`DestinationTableError` naming that table, with nothing of the batch committed."""
        ...

    def close(self) -> None: ...
