"""An UPDATE that changed a row's key: detect it, and fill in the TOASTed values it left out.

The stream applies such an UPDATE as a DELETE of the old key and a full write of the new one; no
row under the new key holds the values the server did not resend, so they are filled in here.
"""

from __future__ import annotations

from psycopg import sql

from engine.decoding import pgoutput
from engine.decoding.pgoutput import UNCHANGED_TOAST
from engine.decoding.tuples import encode_tuple
from engine.source.catalog import TableSchema
from engine.source.link import SourceLink

__all__ = ["fill_unchanged", "key_changed"]


def key_changed(schema: TableSchema, old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    return any(old[i] != new[i] for i, c in enumerate(schema.columns) if c.is_key)


def fill_unchanged(link: SourceLink, schema: TableSchema, update: pgoutput.Update, payload: bytes) -> bytes:
    """An UPDATE that changed the key and left TOASTed values alone: take those values from
    the old row when the server sent it whole (REPLICA IDENTITY FULL), else read them from the
    source by the new key (``link`` is connected only then). A value read now may be newer than
    this change; the changes after it are applied next, so the target ends the same as the
    source. Returns an UPDATE message with every value present."""
    values: list[bytes | None] = []
    missing: list[int] = []
    full_old = update.old_kind is pgoutput.OldTupleKind.OLD and update.old is not None
    for i, value in enumerate(update.new):
        before = update.old[i] if full_old and update.old is not None else UNCHANGED_TOAST
        if value is not UNCHANGED_TOAST:
            values.append(value)
        elif before is not UNCHANGED_TOAST:
            values.append(before)
        else:
            values.append(None)
            missing.append(i)
    if missing:
        cols = [schema.columns[i] for i in missing]
        keys = [(c, update.new[i]) for i, c in enumerate(schema.columns) if c.is_key]
        query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in cols),
            sql.Identifier(schema.table.schema, schema.table.name),
            sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c.name)) for c, _ in keys),
        )
        params = [v.decode() if isinstance(v, bytes) else v for _, v in keys]
        row = link.conn.execute(query, params).fetchone()
        if row is not None:  # else the row is gone by now: its later changes remove it too
            for i, value in zip(missing, row, strict=True):
                values[i] = None if value is None else str(value).encode()
    return payload[:5] + b"N" + encode_tuple(values)
