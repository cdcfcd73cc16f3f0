"""What a source's tables look like, shared by every pipeline reading that source.

Column types are resolved from the catalog once per (type oid, typmod) and kept; the latest
shape seen of each table (from the catalog or a Relation message) is kept too, for the console
and for pipelines that start later. A pipeline still follows its own Relation messages: the
shape that matters for a change is the one the stream announced before it, not today's catalog.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import psycopg

from engine.decoding.types import ColumnType, PgTypeInfo, map_type
from engine.identifiers import TableName
from engine.source import catalog
from engine.source.catalog import TableSchema
from engine.source.pg_types import load_type_info

__all__ = ["SchemaCache", "SchemaCaches"]


class SchemaCache:
    def __init__(self, source_id: int) -> None:
        self.source_id = source_id
        self._lock = threading.Lock()
        self._types: dict[tuple[int, int], PgTypeInfo] = {}
        self._tables: dict[TableName, TableSchema] = {}

    def describe(self, conn: psycopg.Connection, table: TableName) -> TableSchema:
        """The table as the catalog has it now (always asked: a restart must see today's shape)."""
        schema = catalog.describe_table(conn, table)
        self.remember(schema)
        return schema

    def column_type(
        self, conn: psycopg.Connection, type_oid: int, typmod: int, table: TableName, column: str
    ) -> ColumnType:
        """Map a column type; raises :class:`~engine.errors.UnsupportedTypeError` naming table and
        column, or :class:`LookupError` for a type dropped meanwhile."""
        key = (type_oid, typmod)
        with self._lock:
            info = self._types.get(key)
        if info is None:
            info = load_type_info(conn, type_oid, typmod)
            with self._lock:
                self._types[key] = info
        return map_type(info, str(table), column)

    @staticmethod
    def attnums(conn: psycopg.Connection, relid: int) -> Mapping[str, int]:
        """Current column positions of a table (never cached: they are asked only after DDL)."""
        rows = conn.execute(
            "SELECT attname, attnum FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
            (relid,),
        ).fetchall()
        return {str(name): int(num) for name, num in rows}

    def remember(self, schema: TableSchema) -> None:
        with self._lock:
            self._tables[schema.table] = schema

    def latest(self, table: TableName) -> TableSchema | None:
        with self._lock:
            return self._tables.get(table)


class SchemaCaches:
    """One :class:`SchemaCache` per source id, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caches: dict[int, SchemaCache] = {}

    def for_source(self, source_id: int) -> SchemaCache:
        with self._lock:
            cache = self._caches.get(source_id)
            if cache is None:
                cache = self._caches[source_id] = SchemaCache(source_id)
            return cache
