"""Initial copy: a table read with ``COPY … TO STDOUT (FORMAT csv)`` at an exported snapshot.

The CSV stream goes straight into pyarrow's multi-threaded CSV reader (every column as text), and
each column is then converted by the same vectorised code as streamed changes, so a value means
the same thing whichever path it took.
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from engine.decoding.convert import convert
from engine.errors import ErrorKind, RetryPolicy, TableError
from engine.identifiers import display_ident
from engine.source.catalog import TableSchema

_BLOCK = 8 << 20


class _CopyReader(io.RawIOBase):
    """A file object over the chunks ``cursor.copy()`` yields."""

    def __init__(self, chunks: Iterator[bytes | bytearray | memoryview]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        # COPY yields one row per chunk: fill the reader's whole buffer per call, not one row
        out = memoryview(b)
        size = len(out)
        filled = 0
        buf = self._buf
        while filled < size:
            if not buf:
                try:
                    buf = memoryview(next(self._chunks))
                except StopIteration:
                    break
            n = min(size - filled, len(buf))
            out[filled : filled + n] = buf[:n]
            filled += n
            buf = buf[n:]
        self._buf = buf
        return filled


# A partitioned table holds no rows (its reltuples is 0 or -1): its leaf partitions do.
_ESTIMATE_SQL = """
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
FROM pg_class c
WHERE c.oid = %(oid)s AND c.relkind <> 'p'
   OR c.oid IN (SELECT relid FROM pg_partition_tree(%(oid)s::oid::regclass) WHERE isleaf AND relid <> %(oid)s::oid)
"""


def estimate_rows(conn: psycopg.Connection, schema: TableSchema) -> int:
    row = conn.execute(_ESTIMATE_SQL, {"oid": schema.oid}).fetchone()
    return int(row[0]) if row else 0


def copy_table(conn: psycopg.Connection, schema: TableSchema) -> Generator[pa.RecordBatch, None, None]:
    """Yield the table's rows as converted Arrow batches (user columns only).

    The caller has opened a REPEATABLE READ transaction on ``conn`` at the exported snapshot, and
    closes the generator if it stops early: that ends the COPY, which the connection needs before
    it can run anything else (a ROLLBACK).
    """
    names = [c.name for c in schema.columns]
    # A query, not ``COPY table TO``: that refuses a partitioned table, and the SELECT (without
    # ONLY) reads every partition's rows; the column list also leaves generated columns out.
    query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.Identifier(schema.table.schema, schema.table.name),
    )
    field_names = [f"c{i}" for i in range(len(names))]  # column names may be anything; positions are not
    try:
        with conn.cursor() as cur, cur.copy(query) as copy:
            source = io.BufferedReader(_CopyReader(iter(copy)), buffer_size=_BLOCK)
            if not source.peek(1):
                return  # an empty table: pyarrow refuses an empty CSV stream
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=field_names, block_size=_BLOCK, use_threads=True),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, double_quote=True, escape_char=False),
                convert_options=pacsv.ConvertOptions(
                    column_types={f: pa.string() for f in field_names},
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            out_schema = pa.schema([pa.field(c.name, c.ctype.arrow) for c in schema.columns])
            for batch in reader:
                arrays = [
                    convert(batch.column(i), col.ctype, str(schema.table), col.name)
                    for i, col in enumerate(schema.columns)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=out_schema)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _refused(conn, schema, exc) from exc


def _refused(conn: psycopg.Connection, schema: TableSchema, exc: psycopg.Error) -> TableError:
    """The source refused to let this role read this one table: that table stops, not the pipeline."""
    role, table, said = display_ident(conn.info.user), schema.table, str(exc).strip()
    if "row-level security" in said:
        reason = f"table {table}: role {role} is subject to its row-level security policies, so a copy would miss"
        reason += f" the rows they hide ({said})"
        hint = f"ALTER ROLE {role} BYPASSRLS; (or replicate as a role that bypasses them), then retry the table"
    else:
        reason = f"table {table}: role {role} may not read it ({said})"
        hint = f"GRANT SELECT ON {table} TO {role}; then retry the table"
    return TableError(str(table), reason, hint, kind=ErrorKind.SOURCE_PRIVILEGE, retry=RetryPolicy.MANUAL)
