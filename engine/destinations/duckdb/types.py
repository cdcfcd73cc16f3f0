"""DuckDB's type for each column type: the DDL of landing and target tables.

A column's Arrow values (:mod:`engine.decoding.convert`) are stored in DuckDB as exactly this
type. These names are part of every existing DuckDB target: a change here changes the DDL of new
columns only, never existing ones, so it must be made on purpose.

===================  ===================
ConvKind             DuckDB
===================  ===================
INT16/INT32/INT64    SMALLINT/INTEGER/BIGINT
OID                  BIGINT
DECIMAL              DECIMAL(p,s), as the column's decimal128(p,s)
FLOAT32/FLOAT64      REAL/DOUBLE
BOOL                 BOOLEAN
STRING               VARCHAR
JSON                 JSON
UUID                 UUID
DATE / TIME          DATE / TIME
TIMESTAMP            TIMESTAMP
TIMESTAMPTZ          TIMESTAMPTZ
INTERVAL             INTERVAL
BYTEA                BLOB
ARRAY                T[] (T the element's type)
===================  ===================
"""

from __future__ import annotations

import pyarrow as pa

from engine.decoding.types import ColumnType, ConvKind

__all__ = ["duckdb_type"]

_SIMPLE: dict[ConvKind, str] = {
    ConvKind.INT16: "SMALLINT",
    ConvKind.INT32: "INTEGER",
    ConvKind.INT64: "BIGINT",
    ConvKind.OID: "BIGINT",
    ConvKind.FLOAT32: "REAL",
    ConvKind.FLOAT64: "DOUBLE",
    ConvKind.BOOL: "BOOLEAN",
    ConvKind.STRING: "VARCHAR",
    ConvKind.JSON: "JSON",
    ConvKind.UUID: "UUID",
    ConvKind.DATE: "DATE",
    ConvKind.TIME: "TIME",
    ConvKind.TIMESTAMP: "TIMESTAMP",
    ConvKind.TIMESTAMPTZ: "TIMESTAMPTZ",
    ConvKind.INTERVAL: "INTERVAL",
    ConvKind.BYTEA: "BLOB",
}


def duckdb_type(ctype: ColumnType) -> str:
    """The DuckDB DDL type of a column."""
    if ctype.kind is ConvKind.DECIMAL:
        arrow = ctype.arrow
        assert isinstance(arrow, pa.Decimal128Type)
        return f"DECIMAL({arrow.precision},{arrow.scale})"
    if ctype.kind is ConvKind.ARRAY:
        assert ctype.element is not None
        return f"{duckdb_type(ctype.element)}[]"
    return _SIMPLE[ctype.kind]
