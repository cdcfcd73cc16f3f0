"""Decide what a new Relation message means for a table that is being replicated.

PostgreSQL appends an added column after every existing one and keeps a column's position
(``attnum``) through a rename, so a new shape is a safe evolution of the old one exactly when it
is the old columns that remain, in order, with the same destination types, followed by new
columns that took new positions. ADD and DROP COLUMN (several at once too) pass; a rename, a type
change that changes the destination type, or a change of the key does not, and only that table
stops, with a hint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.decoding.pgoutput import Relation
from engine.decoding.types import ColumnType
from engine.errors import ErrorKind, RetryPolicy, TableError
from engine.source.catalog import ColumnSchema, TableSchema

__all__ = ["SchemaChange", "evolve", "same_columns"]


@dataclass(frozen=True)
class SchemaChange:
    added: tuple[str, ...]
    dropped: tuple[str, ...]
    retyped: tuple[str, ...]  # a new typmod with the same destination type (varchar(10) → varchar(20))

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append("added " + ", ".join(self.added))
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped))
        if self.retyped:
            parts.append("widened " + ", ".join(self.retyped))
        return "; ".join(parts) or "no change"


def same_columns(schema: TableSchema, rel: Relation) -> bool:
    """Whether ``rel`` announces exactly ``schema``'s columns: names, types and type modifiers."""
    return [(c.name, c.type_oid, c.type_modifier) for c in rel.columns] == [
        (c.name, c.type_oid, c.typmod) for c in schema.columns
    ]


def _same_destination_type(a: ColumnType, b: ColumnType) -> bool:
    # Every destination types a column from these alone (a typmod change may keep them).
    return (a.arrow, a.kind, a.element) == (b.arrow, b.kind, b.element)


def _unsafe(old: TableSchema, reason: str, pipeline: str) -> TableError:
    return TableError(
        str(old.table),
        f"table {old.table}: {reason}; this cannot be applied to the destination safely",
        f"resync the table to copy it with its new shape: etl-tui pipeline resync {pipeline} --table '{old.table}'",
        kind=ErrorKind.SCHEMA_CHANGE,
        retry=RetryPolicy.MANUAL,
    )


def evolve(
    old: TableSchema,
    rel: Relation,
    column_type: Callable[[str, int, int], ColumnType],
    attnums: Callable[[], Mapping[str, int]],
    pipeline: str,
) -> tuple[TableSchema, SchemaChange | None]:
    """The table's new schema after ``rel``, and what changed (None when nothing did).

    ``column_type(name, oid, typmod)`` maps a column type (it may raise
    :class:`~engine.errors.UnsupportedTypeError`, a :class:`TableError` too); ``attnums()`` reads
    the table's current column positions and is called only when columns were added. Raises
    :class:`TableError` for an unsafe change.
    """
    if rel.replica_identity == "n":
        raise _unsafe(old, "it was set to REPLICA IDENTITY NOTHING, so updates and deletes carry no key", pipeline)
    if rel.replica_identity in ("d", "i"):
        # with FULL every column is flagged; otherwise the flags are the key and must not move
        keys_now = {c.name for c in rel.columns if c.is_key}
        keys_before = {c.name for c in old.key_columns}
        if keys_now and keys_now != keys_before and keys_before <= {c.name for c in rel.columns}:
            before, after = ", ".join(sorted(keys_before)), ", ".join(sorted(keys_now))
            raise _unsafe(old, f"its key changed from ({before}) to ({after})", pipeline)
    if same_columns(old, rel):
        return old, None
    new_names = {c.name for c in rel.columns}
    old_by_name = {c.name: c for c in old.columns}
    survivors = [c for c in old.columns if c.name in new_names]
    dropped = [c for c in old.columns if c.name not in new_names]
    kept, added = rel.columns[: len(survivors)], rel.columns[len(survivors) :]
    if any(c.is_key for c in dropped):
        names = ", ".join(c.name for c in dropped if c.is_key)
        raise _unsafe(old, f"key column {names} was dropped or renamed", pipeline)
    for was, now in zip(survivors, kept, strict=True):
        if was.name != now.name:
            gone = ", ".join(c.name for c in dropped) or was.name
            raise _unsafe(old, f"column {now.name} replaced {gone} in place (a rename)", pipeline)
    if any(c.name in old_by_name for c in added):
        raise _unsafe(old, "its columns were reordered", pipeline)
    columns: list[ColumnSchema] = []
    retyped: list[str] = []
    for was, now in zip(survivors, kept, strict=True):
        if (was.type_oid, was.typmod) == (now.type_oid, now.type_modifier):
            columns.append(was)
            continue
        ctype = column_type(now.name, now.type_oid, now.type_modifier)
        if not _same_destination_type(was.ctype, ctype):
            raise _unsafe(
                old, f"column {now.name} changed type from {was.ctype.pg_display} to {ctype.pg_display}", pipeline
            )
        retyped.append(now.name)
        columns.append(ColumnSchema(now.name, now.type_oid, now.type_modifier, ctype, was.is_key, was.attnum))
    positions = attnums() if added else {}
    highest = max((c.attnum for c in old.columns), default=0)
    for now in added:
        attnum = positions.get(now.name, 0)
        if dropped and 0 < attnum <= highest:
            gone = ", ".join(c.name for c in dropped)
            raise _unsafe(old, f"column {gone} was renamed to {now.name}", pipeline)
        ctype = column_type(now.name, now.type_oid, now.type_modifier)
        columns.append(ColumnSchema(now.name, now.type_oid, now.type_modifier, ctype, False, attnum))
    change = SchemaChange(tuple(c.name for c in added), tuple(c.name for c in dropped), tuple(retyped))
    return TableSchema(old.table, rel.relid, tuple(columns), old.replica_identity), change
