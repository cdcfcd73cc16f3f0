"""What a source's tables look like, shared by every pipeline reading that source.

Column types are resolved from the catalog once per (type oid, typmod) and kept; the latest
shape seen of each table (from the catalog or a Relation message) is kept too, for the console
and for pipelines that start later. A pipeline still follows its own Relation messages: the
shape that matters for a change is the one the stream announced before it, not today's catalog.

A pipeline sees the cache through :meth:`SchemaCache.for_pipeline`: the same types and tables,
with the pipeline's own type for each unbounded numeric column (``engine/source/numeric_scale.py``):
the type its table's state records (chosen when the table was copied, kept for the table's
life), else the pipeline's override (``--column-type``), else DECIMAL(38,10).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import psycopg

from engine.config.models import Pipeline
from engine.decoding.types import UNMEASURED_NUMERIC, ColumnType, PgTypeInfo, map_type
from engine.identifiers import TableName
from engine.source import catalog
from engine.source.catalog import ColumnSchema, TableSchema
from engine.source.numeric_scale import recorded_target, typed_column
from engine.source.pg_types import load_type_info

__all__ = ["ChosenTypes", "SchemaCache", "SchemaCaches"]


class ChosenTypes(Protocol):
    """What a table's state records of its copy: the type chosen for each unbounded numeric
    column (:class:`~engine.state.table_state.TableState` is one)."""

    @property
    def column_types(self) -> Mapping[str, str]: ...


class SchemaCache:
    def __init__(self, source_id: int) -> None:
        self.source_id = source_id
        self._lock = threading.Lock()
        self._types: dict[tuple[int, int], PgTypeInfo] = {}
        self._tables: dict[TableName, TableSchema] = {}
        self._pipeline: Pipeline | None = None
        self._states: Callable[[TableName], ChosenTypes | None] = lambda _table: None

    def for_pipeline(self, pipeline: Pipeline, states: Callable[[TableName], ChosenTypes | None]) -> SchemaCache:
        """This cache as ``pipeline`` sees it (sharing what it keeps): its unbounded numeric
        columns typed as ``states(table)`` records, else by the pipeline's overrides."""
        view = SchemaCache(self.source_id)
        view._lock, view._types, view._tables = self._lock, self._types, self._tables
        view._pipeline, view._states = pipeline, states
        return view

    def describe(self, conn: psycopg.Connection, table: TableName) -> TableSchema:
        """The table as the catalog has it now (always asked: a restart must see today's shape)."""
        schema = catalog.describe_table(conn, table)
        self.remember(schema)
        return self.typed(schema)

    def typed(self, schema: TableSchema) -> TableSchema:
        """``schema`` with the pipeline's type for each unbounded numeric column (read from the
        table's state now: call it again after the table was copied)."""
        if self._pipeline is None or not any(c.ctype.unbounded for c in schema.columns):
            return schema
        columns = tuple(self._typed_column(schema.table, c) for c in schema.columns)
        return replace(schema, columns=columns)

    def _typed_column(self, table: TableName, col: ColumnSchema) -> ColumnSchema:
        pipeline = self._pipeline
        if pipeline is None or not col.ctype.unbounded:
            return col
        st = self._states(table)
        recorded = st.column_types if st is not None else {}
        target = recorded_target(recorded, col.name) or pipeline.column_type(table, col.name) or UNMEASURED_NUMERIC
        return typed_column(col, target, pipeline.name, table)

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
        ctype = map_type(info, str(table), column)
        # a column added while streaming: nothing measured, so the override or DECIMAL(38,10)
        return self._typed_column(table, ColumnSchema(column, type_oid, typmod, ctype, False)).ctype

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
