"""The ``orders`` table the Snowflake destination tests write, and how they feed it without a source:
table schemas as the catalog reads them, changes built from raw pgoutput payloads fed to
:class:`Batcher` the way the runner feeds it, the initial copy, and reading a target table back."""

from __future__ import annotations

import datetime as dt
import itertools
import struct
from decimal import Decimal
from typing import Any

import pyarrow as pa

from engine.batching.batcher import Batch, Batcher, Op
from engine.decoding.pgoutput import UNCHANGED_TOAST
from engine.decoding.types import PgTypeInfo, map_type
from engine.destinations.snowflake.destination import SnowflakeDestination
from engine.identifiers import TableName
from engine.source.catalog import ColumnSchema, TableSchema

_OIDS = {"int4": 23, "int8": 20, "text": 25, "numeric": 1700, "jsonb": 3802, "date": 1082, "timestamptz": 1184}
_relids = itertools.count(16384)


def col(name: str, type_name: str, key: bool = False, typmod: int = -1) -> ColumnSchema:
    info = PgTypeInfo(oid=_OIDS[type_name], name=type_name, typmod=typmod)
    return ColumnSchema(name, info.oid, typmod, map_type(info, "t", name), key)


def table(name: str, *columns: ColumnSchema) -> TableSchema:
    return TableSchema(TableName("public", name), next(_relids), tuple(columns), "d")


ORDERS = table(
    "orders",
    col("id", "int4", key=True),
    col("note", "text"),
    col("amount", "numeric", typmod=(12 << 16 | 2) + 4),
    col("doc", "jsonb"),
    col("placed_at", "timestamptz"),
)


def _tuple(values: list[object]) -> bytes:
    out = [struct.pack("!h", len(values))]
    for v in values:
        if v is None:
            out.append(b"n")
        elif v is UNCHANGED_TOAST:
            out.append(b"u")
        else:
            raw = v if isinstance(v, bytes) else str(v).encode()
            out.append(b"t" + struct.pack("!I", len(raw)) + raw)
    return b"".join(out)


class Changes:
    """Build a Batch from raw pgoutput payloads, as the runner feeds the Batcher."""

    def __init__(self) -> None:
        self.batcher = Batcher()
        self.ordinal = 0

    def _add(self, schema: TableSchema, op: Op, lsn: int, tag: bytes, values: list[object]) -> Changes:
        self.ordinal += 1
        payload = op.value.encode() + struct.pack("!I", schema.oid) + tag + _tuple(values)
        self.batcher.add(schema, op, lsn, self.ordinal, payload, 6)
        return self

    def insert(self, schema: TableSchema, lsn: int, *values: object) -> Changes:
        return self._add(schema, Op.INSERT, lsn, b"N", list(values))

    def update(self, schema: TableSchema, lsn: int, *values: object) -> Changes:
        return self._add(schema, Op.UPDATE, lsn, b"N", list(values))

    def delete(self, schema: TableSchema, lsn: int, key: object) -> Changes:
        values: list[object] = [key] + [None] * (len(schema.columns) - 1)
        return self._add(schema, Op.DELETE, lsn, b"K", values)

    def truncate(self, schema: TableSchema, lsn: int) -> Changes:
        self.ordinal += 1
        self.batcher.truncate(schema, lsn, self.ordinal)
        return self

    def batch(self, end_lsn: int) -> Batch:
        self.batcher.commit(end_lsn)
        built = self.batcher.take().build()
        assert not built.failed, built.failed
        return built


def rows(dest: SnowflakeDestination, schema: TableSchema) -> list[tuple[Any, ...]]:
    with dest._cursor() as cur:
        cur.execute(f"SELECT * FROM {dest.target_sql(schema.table)} ORDER BY 1")
        return [tuple(r) for r in cur.fetchall()]


T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _initial_copy(dest: SnowflakeDestination) -> None:
    batch = pa.record_batch(
        [
            pa.array([1, 2], pa.int32()),
            pa.array(["one", None]),
            pa.array([Decimal("1.50"), Decimal("2.00")], pa.decimal128(12, 2)),
            pa.array(['{"a": [1, 2]}', None]),
            pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
        ],
        names=list(ORDERS.column_names),
    )
    progress: list[int] = []
    assert dest.copy_table(ORDERS, [batch], progress.append) == 2
    assert progress == [2]
    dest.prepare([ORDERS])
