"""Snowflake destination: Parquet files → PUT → COPY INTO a landing table → one MERGE per table.

Each batch is checked against Snowflake's limits (:func:`check_values`) before anything is sent,
written as Parquet (one file per step), uploaded to an internal stage in the landing schema and
copied into the table's landing table. The MERGEs, TRUNCATE barriers, the cleanup of the landing
tables and the checkpoint row then run in one transaction, so the checkpoint in Snowflake says
exactly what the targets hold (I1); every target row keeps the (commit LSN, ordinal) of the change
that wrote it and older changes never overwrite newer ones, so a replayed batch changes nothing
(I2).

Parquet columns are named by position (``c0``, ``c1``, …) and COPY picks them with ``$1:cN`` into
an explicit column list, so any PostgreSQL column name (``select``, ``Order Items``, ``a"b``, two
names that differ only by case) loads into the right column.

Unchanged TOAST values (columns an UPDATE did not send) are resolved within the batch first: such
a value takes the latest earlier value of the column for the same key; if the batch has none, the
column is listed in ``_ETL_UNCHANGED`` and the MERGE keeps the target's value. A key the target
does not hold has no value to keep: rather than insert NULL, the table stops.

A statement refused for what it says about one table (a compilation error, an object of another
kind under the target's name, a refused value: SQLSTATE classes 42, 02, 22, 23, 0A) stops only that
table (:class:`DestinationTableError`); connection, login, warehouse and database faults are a
:class:`DestinationError` of the whole pipeline.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors
from snowflake.connector.cursor import SnowflakeCursor

from engine.batching.batcher import (
    LSN_COLUMN,
    OP_COLUMN,
    ORDINAL_COLUMN,
    UNCHANGED_COLUMN,
    Batch,
    RowsStep,
    TruncateStep,
)
from engine.destinations.base import (
    SCHEMAS_TABLE,
    TARGET_DELETED_COLUMN,
    TARGET_LSN_COLUMN,
    TARGET_META_COLUMNS,
    TARGET_ORDINAL_COLUMN,
    DeleteMode,
    ShapeTracker,
    check_target_columns,
    decode_signature,
    encode_signature,
    landing_name,
    names_container,
    table_fault,
    unchanged_toast_fault,
)
from engine.destinations.snowflake import connection as connection_module
from engine.destinations.snowflake.connection import SnowflakeConfig, classify
from engine.destinations.snowflake.naming import qualified, snowflake_column_name, snowflake_ident
from engine.destinations.snowflake.sql import (
    LANDING_META,
    LANDING_META_TYPES,
    Position,
    landing_type,
    merge_sql,
    parquet_pick,
    string_literal,
    truncate_sql,
)
from engine.destinations.snowflake.typemap import check_values, snowflake_type, to_parquet_array
from engine.errors import DestinationError, DestinationTableError
from engine.identifiers import TableName
from engine.metrics import observe_write
from engine.source.catalog import ColumnSignature, TableSchema

__all__ = ["CHECKPOINT_TABLE", "STAGE_NAME", "SnowflakeDestination"]

CHECKPOINT_TABLE = "_ETL_CHECKPOINTS"
STAGE_NAME = "_ETL_STAGE"
# SQLSTATE classes of a statement refused for its own content: syntax or access rule (42), an
# object or column not found (02: Snowflake's "does not exist or not authorized"), data (22),
# integrity (23), feature not supported (0A). Connections (08), logins (28), a missing warehouse
# (57) and the like are not one table's; nor is a missing database or schema (names_container).
_TABLE_SQLSTATES = ("42", "02", "22", "23", "0A")


def _is_table_fault(exc: sf_errors.Error, table: TableName) -> bool:
    """Whether ``exc`` refused a statement for what it says about its table."""
    if not isinstance(exc, sf_errors.ProgrammingError | sf_errors.DataError | sf_errors.IntegrityError):
        return False
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    return sqlstate.startswith(_TABLE_SQLSTATES) and not names_container(str(getattr(exc, "msg", None) or exc), table)


class SnowflakeDestination:
    def __init__(
        self,
        config: SnowflakeConfig,
        connector: Callable[[SnowflakeConfig], SnowflakeConnection] | None = None,
        *,
        atomic: bool = True,
        soft_deletes: bool = False,
    ) -> None:
        """``atomic=False`` runs the apply statements without BEGIN/COMMIT; only for emulators
        that cannot run MERGE inside a transaction (fakesnow). Replay stays harmless (I2), but
        readers may see one table merged before another. ``soft_deletes`` keeps deleted rows
        with ``_ETL_DELETED = TRUE`` instead of removing them."""
        self.config = config
        self.atomic = atomic
        self.soft_deletes = soft_deletes
        self._connector = connector
        self._shapes = ShapeTracker()
        self._conn: SnowflakeConnection | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="etl-sf-"))
        with self._cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified(config.database, config.schema)}")
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified(config.database, config.landing_schema)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._checkpoint_table} "
                "(PIPELINE_ID NUMBER(19,0), LSN NUMBER(20,0), UPDATED_AT TIMESTAMP_TZ)"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._schemas_table} "
                "(TARGET_TABLE VARCHAR, COLUMNS VARCHAR, UPDATED_AT TIMESTAMP_TZ)"
            )
            cur.execute(f"CREATE STAGE IF NOT EXISTS {self._stage}")

    def describe(self) -> str:
        return f"snowflake:{self.config.account}/{self.config.database}.{self.config.schema}"

    # ---- connection --------------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[SnowflakeCursor]:
        if self._conn is None or self._conn.is_closed():
            # looked up at call time, so a wrapped connect (fault injection in tests) is honoured
            self._conn = (self._connector or connection_module.connect)(self.config)
        cur = self._conn.cursor()
        try:
            yield cur
        except sf_errors.Error as exc:
            self._reset()
            raise classify(exc, self.config) from None
        except OSError as exc:
            self._reset()
            raise DestinationError(
                f"Snowflake I/O for {self.config.who} failed: {exc}", "retrying; nothing was acknowledged"
            ) from None
        finally:
            cur.close()

    @contextmanager
    def _table_statements(self, table: TableName, what: str) -> Iterator[None]:
        """Statements about ``table`` (``what`` says which, on which object): one refused for
        that table's sake raises :class:`DestinationTableError`; any other error passes on to
        :meth:`_cursor`, which classifies it for the whole pipeline."""
        try:
            yield
        except sf_errors.Error as exc:
            if not _is_table_fault(exc, table):
                raise
            code = f" [{exc.errno} {exc.sqlstate}]" if exc.errno else ""
            detail = str(getattr(exc, "msg", None) or exc)
            raise table_fault(table, f"{what} in Snowflake{code}", detail) from None

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(sf_errors.Error):
                conn.close()

    def close(self) -> None:
        self._reset()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- names ---------------------------------------------------------------------------------
    @property
    def _checkpoint_table(self) -> str:
        return qualified(self.config.database, self.config.landing_schema, CHECKPOINT_TABLE)

    @property
    def _schemas_table(self) -> str:
        return qualified(self.config.database, self.config.landing_schema, SCHEMAS_TABLE.upper())

    @property
    def _stage(self) -> str:
        return qualified(self.config.database, self.config.landing_schema, STAGE_NAME)

    def target_sql(self, table: TableName) -> str:
        return qualified(self.config.database, self.config.schema, table.target_name())

    def landing_sql(self, table: TableName) -> str:
        return qualified(self.config.database, self.config.landing_schema, landing_name(table))

    # ---- checkpoint ------------------------------------------------------------------------------
    def checkpoint(self, pipeline_id: int) -> int | None:
        with self._cursor() as cur:
            cur.execute(f"SELECT MAX(LSN) FROM {self._checkpoint_table} WHERE PIPELINE_ID = {int(pipeline_id)}")
            row = cur.fetchone()
        value = row[0] if isinstance(row, tuple | list) else None
        return None if value is None else int(value)

    def forget(self, pipeline_id: int) -> None:
        with self._cursor() as cur:
            cur.execute(f"DELETE FROM {self._checkpoint_table} WHERE PIPELINE_ID = {int(pipeline_id)}")

    # ---- tables ----------------------------------------------------------------------------------
    def _target_ddl(self, schema: TableSchema) -> str:
        table = str(schema.table)
        cols = [
            f"{snowflake_ident(c.name)} {snowflake_type(c.ctype, table=table, column=c.name)}" for c in schema.columns
        ]
        cols += [
            f"{snowflake_ident(TARGET_LSN_COLUMN)} NUMBER(20,0)",
            f"{snowflake_ident(TARGET_ORDINAL_COLUMN)} NUMBER(20,0)",
        ]
        if self.soft_deletes:
            cols.append(f"{snowflake_ident(TARGET_DELETED_COLUMN)} BOOLEAN DEFAULT FALSE")
        return f"CREATE OR REPLACE TABLE {self.target_sql(schema.table)} ({', '.join(cols)})"

    def _landing_ddl(self, schema: TableSchema) -> str:
        table = str(schema.table)
        cols = [f"{snowflake_ident(c.name)} {landing_type(c, table)}" for c in schema.columns]
        cols += [f"{snowflake_ident(m)} {LANDING_META_TYPES[m]}" for m in LANDING_META]
        return f"CREATE OR REPLACE TABLE {self.landing_sql(schema.table)} ({', '.join(cols)})"

    def _columns(self, cur: SnowflakeCursor, schema_name: str, table: str) -> list[str] | None:
        info = qualified(self.config.database, "INFORMATION_SCHEMA", "COLUMNS")
        cur.execute(
            f"SELECT COLUMN_NAME FROM {info} WHERE TABLE_SCHEMA = {string_literal(snowflake_column_name(schema_name))}"
            f" AND TABLE_NAME = {string_literal(snowflake_column_name(table))} ORDER BY ORDINAL_POSITION"
        )
        return [str(r[0]) for r in cur.fetchall()] or None

    def recorded_columns(self, tables: Iterable[TableName]) -> dict[TableName, tuple[ColumnSignature, ...]]:
        wanted = {t.target_name(): t for t in tables}
        if not wanted:
            return {}
        with self._cursor() as cur:
            cur.execute(f"SELECT TARGET_TABLE, COLUMNS FROM {self._schemas_table}")
            rows = cur.fetchall()
        return {wanted[str(r[0])]: decode_signature(str(r[1])) for r in rows if str(r[0]) in wanted}

    def _record_sql(self, schema: TableSchema) -> list[str]:
        name = string_literal(schema.table.target_name())
        return [
            f"DELETE FROM {self._schemas_table} WHERE TARGET_TABLE = {name}",
            f"INSERT INTO {self._schemas_table} (TARGET_TABLE, COLUMNS, UPDATED_AT) "
            f"SELECT {name}, {string_literal(encode_signature(schema.signature))}, CURRENT_TIMESTAMP()",
        ]

    def _reshape(self, cur: SnowflakeCursor, schema: TableSchema, found: list[str]) -> None:
        """Bring the target to ``schema`` by name, then recreate the landing table. Snowflake
        commits DDL at once, so every statement is safe to repeat (IF [NOT] EXISTS): after a
        crash, the recorded shape (written with the data) says where to go again."""
        target = self.target_sql(schema.table)
        table = str(schema.table)
        wanted = {snowflake_column_name(n) for n in schema.column_names}
        for name in found:
            if name not in wanted and name not in TARGET_META_COLUMNS:
                cur.execute(f"ALTER TABLE {target} DROP COLUMN IF EXISTS {snowflake_ident(name)}")
        for c in schema.columns:
            if snowflake_column_name(c.name) not in found:
                sf_type = snowflake_type(c.ctype, table=table, column=c.name)
                cur.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {snowflake_ident(c.name)} {sf_type}")
        cur.execute(self._landing_ddl(schema))

    def prepare(self, schemas: Iterable[TableSchema]) -> dict[TableName, DestinationTableError]:
        """Make targets and landing tables match ``schemas``, table by table. A target recorded
        with another shape is brought to it (a schema change interrupted by a crash); a target
        without a record must already match. Returns the tables that could not be prepared."""
        schemas = list(schemas)
        recorded = self.recorded_columns(s.table for s in schemas)
        failed: dict[TableName, DestinationTableError] = {}
        with self._cursor() as cur:
            for schema in schemas:
                try:
                    with self._table_statements(schema.table, f"preparing {self.target_sql(schema.table)}"):
                        self._prepare_table(cur, schema, recorded.get(schema.table))
                except DestinationTableError as exc:
                    failed[schema.table] = exc
        return failed

    def _prepare_table(
        self, cur: SnowflakeCursor, schema: TableSchema, recorded: tuple[ColumnSignature, ...] | None
    ) -> None:
        names = [snowflake_column_name(n) for n in schema.column_names]
        target = schema.table.target_name()
        found = self._columns(cur, self.config.schema, target)
        data = [c for c in found if c not in TARGET_META_COLUMNS] if found is not None else None
        if found is not None and recorded is not None and data != names:
            self._reshape(cur, schema, found)
            found = self._columns(cur, self.config.schema, target)
            data = [c for c in found or [] if c not in TARGET_META_COLUMNS]
        check_target_columns(self.target_sql(schema.table), "Snowflake", schema, data, names)
        assert found is not None
        deleted = snowflake_column_name(TARGET_DELETED_COLUMN)
        if self.soft_deletes and deleted not in found:
            cur.execute(
                f"ALTER TABLE {self.target_sql(schema.table)} ADD COLUMN IF NOT EXISTS "
                f"{snowflake_ident(TARGET_DELETED_COLUMN)} BOOLEAN DEFAULT FALSE"
            )
            found.append(deleted)
        landing = self._columns(cur, self.config.landing_schema, landing_name(schema.table))
        if landing != [*names, *(snowflake_column_name(m) for m in LANDING_META)]:
            cur.execute(self._landing_ddl(schema))
        if recorded != schema.signature:
            for statement in self._record_sql(schema):
                cur.execute(statement)
        self._shapes.known(schema, deleted in found)

    def drop_table(self, table: TableName) -> None:
        with self._cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.target_sql(table)}")
            cur.execute(f"DROP TABLE IF EXISTS {self.landing_sql(table)}")
            cur.execute(f"DELETE FROM {self._schemas_table} WHERE TARGET_TABLE = {string_literal(table.target_name())}")
        self._shapes.forget(table)

    # ---- files -----------------------------------------------------------------------------------
    def _put(self, cur: SnowflakeCursor, table: pa.Table, prefix: str) -> None:
        path = self._tmp / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(table, path)
        try:
            local = str(path.resolve()).replace("\\", "/").replace("'", "\\'")
            cur.execute(f"PUT 'file://{local}' @{self._stage}/{prefix} AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
        finally:
            path.unlink(missing_ok=True)

    def _copy_sql(self, into: str, columns: list[str], picks: list[str], prefix: str) -> str:
        return (
            f"COPY INTO {into} ({', '.join(columns)}) FROM (SELECT {', '.join(picks)} FROM @{self._stage}/{prefix}/)"
            " FILE_FORMAT = (TYPE = PARQUET BINARY_AS_TEXT = FALSE) PURGE = TRUE"
        )

    # ---- copy --------------------------------------------------------------------------------------
    def copy_table(
        self, schema: TableSchema, batches: Iterable[pa.RecordBatch], on_progress: Callable[[int], None]
    ) -> int:
        """Recreate the target, stage every batch as a Parquet file, then load them with one COPY."""
        table = str(schema.table)
        n = len(schema.columns)
        prefix = f"copy/{uuid.uuid4().hex}"
        total = 0
        started = time.perf_counter()
        with (
            self._cursor() as cur,
            self._table_statements(schema.table, f"copying into {self.target_sql(schema.table)} (CREATE, PUT, COPY)"),
        ):
            cur.execute(self._target_ddl(schema))
            cur.execute(self._landing_ddl(schema))
            for batch in batches:
                arrays: list[pa.Array] = []
                for i, col in enumerate(schema.columns):
                    check_values(batch.column(i), col.ctype, table, col.name)
                    arrays.append(to_parquet_array(batch.column(i), col.ctype))
                zeros = pa.array([0] * batch.num_rows, pa.int64())
                arrays += [zeros, zeros]
                if self.soft_deletes:
                    arrays.append(pa.array([False] * batch.num_rows, pa.bool_()))
                self._put(cur, pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))]), prefix)
                total += batch.num_rows
                on_progress(total)
            if total:
                columns = [snowflake_ident(c.name) for c in schema.columns]
                columns += [snowflake_ident(TARGET_LSN_COLUMN), snowflake_ident(TARGET_ORDINAL_COLUMN)]
                picks = []
                for i, col in enumerate(schema.columns):
                    sf_type = snowflake_type(col.ctype, table=table, column=col.name)
                    picks.append(f"PARSE_JSON($1:c{i}::VARCHAR)" if sf_type == "VARIANT" else parquet_pick(i, sf_type))
                picks += [parquet_pick(n, "NUMBER(20,0)"), parquet_pick(n + 1, "NUMBER(20,0)")]
                if self.soft_deletes:
                    columns.append(snowflake_ident(TARGET_DELETED_COLUMN))
                    picks.append(parquet_pick(n + 2, "BOOLEAN"))
                cur.execute(self._copy_sql(self.target_sql(schema.table), columns, picks, prefix))
            for statement in self._record_sql(schema):
                cur.execute(statement)
        observe_write("snowflake", "copy", time.perf_counter() - started)
        self._shapes.known(schema, self.soft_deletes)
        return total

    # ---- apply -------------------------------------------------------------------------------------
    def _landing_file(self, step: RowsStep) -> pa.Table:
        schema = step.schema
        table = str(schema.table)
        batch = step.batch
        n = len(schema.columns)
        columns = [batch.column(i) for i in range(n)]
        unchanged: pa.Array = pa.nulls(batch.num_rows, pa.string())
        if step.has_unchanged:
            columns, unchanged = _resolve_unchanged(step, columns)
        arrays: list[pa.Array] = []
        for i, col in enumerate(schema.columns):
            check_values(columns[i], col.ctype, table, col.name)
            arrays.append(to_parquet_array(columns[i], col.ctype))
        arrays += [batch.column(n), batch.column(n + 1), batch.column(n + 2), unchanged]
        return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(n + 4)])

    def _check_unchanged(
        self, cur: SnowflakeCursor, step: RowsStep, target: str, landing: str, span: tuple[Position, Position]
    ) -> None:
        """Fail closed: an unchanged TOAST value the batch did not resolve, for a key the target
        does not hold, would be inserted as NULL."""
        cur.execute(_unresolved_sql(target, landing, step.schema, span))
        row = cur.fetchone()
        count = int(row[0]) if isinstance(row, tuple | list) and row[0] is not None else 0
        if count:
            raise unchanged_toast_fault(step.schema.table, target, count)

    def _landing_copy_sql(self, schema: TableSchema, prefix: str) -> str:
        table = str(schema.table)
        n = len(schema.columns)
        columns = [snowflake_ident(c.name) for c in schema.columns] + [snowflake_ident(m) for m in LANDING_META]
        picks = [parquet_pick(i, landing_type(c, table)) for i, c in enumerate(schema.columns)]
        picks += [parquet_pick(n + j, LANDING_META_TYPES[m]) for j, m in enumerate(LANDING_META)]
        return self._copy_sql(self.landing_sql(schema.table), columns, picks, prefix)

    def _load_landing(self, cur: SnowflakeCursor, batch: Batch, files: list[pa.Table | None], run: str) -> None:
        """Put each step's rows into its landing table (a Parquet file per step: PUT, then COPY).
        ``files[i]`` is the landing file of ``batch.steps[i]`` (None for a TRUNCATE)."""
        for i, (step, file) in enumerate(zip(batch.steps, files, strict=True)):
            if file is None:
                continue
            prefix = f"apply/{run}/{i}"
            self._put(cur, file, prefix)
            with self._table_statements(step.schema.table, f"COPY into {self.landing_sql(step.schema.table)}"):
                cur.execute(self._landing_copy_sql(step.schema, prefix))

    def apply(self, pipeline_id: int, batch: Batch) -> None:
        # Everything that can be refused (values out of Snowflake's range) is checked before
        # anything is sent.
        files = [self._landing_file(step) if isinstance(step, RowsStep) else None for step in batch.steps]
        run = uuid.uuid4().hex
        landings = {s.schema.table: s.schema for s in batch.steps if isinstance(s, RowsStep)}
        flags: dict[TableName, bool] = {}
        reshaped: list[TableSchema] = []
        with self._cursor() as cur:
            # A new shape (schema change on the source): DDL first, as Snowflake commits DDL at once.
            for schema in landings.values():
                has_deleted = self._shapes.has_deleted_column(schema)
                if has_deleted is None:
                    found = self._columns(cur, self.config.schema, schema.table.target_name()) or []
                    with self._table_statements(schema.table, f"ALTER of {self.target_sql(schema.table)}"):
                        self._reshape(cur, schema, found)
                    has_deleted = snowflake_column_name(TARGET_DELETED_COLUMN) in found
                    reshaped.append(schema)
                flags[schema.table] = has_deleted
            # Landing loads run before the transaction (the landing tables hold nothing anyone
            # reads); leftovers of an attempt that never committed are dropped first.
            started = time.perf_counter()
            for landing in landings.values():
                with self._table_statements(landing.table, f"DELETE from {self.landing_sql(landing.table)}"):
                    cur.execute(f"DELETE FROM {self.landing_sql(landing.table)}")
            self._load_landing(cur, batch, files, run)
            landed = time.perf_counter()
            if self.atomic:
                cur.execute("BEGIN")
            try:
                for step in batch.steps:
                    # a refused statement stops its table; the applier writes the batch again
                    # without it (MERGEs already run without a transaction replay harmlessly, I2)
                    table = step.schema.table
                    target = self.target_sql(table)
                    if isinstance(step, TruncateStep):
                        with self._table_statements(table, f"TRUNCATE of {target}"):
                            cur.execute(truncate_sql(target, step.commit_lsn, step.ordinal, soft=self.soft_deletes))
                        continue
                    landing_table = self.landing_sql(table)
                    mode = DeleteMode.choose(self.soft_deletes, flags[table])
                    span = _span(step)
                    with self._table_statements(table, f"MERGE into {target}"):
                        if step.has_unchanged:
                            self._check_unchanged(cur, step, target, landing_table, span)
                        cur.execute(merge_sql(target, landing_table, step.schema, span, step.has_unchanged, mode))
                for landing in landings.values():
                    cur.execute(f"DELETE FROM {self.landing_sql(landing.table)}")
                for schema in reshaped:
                    for statement in self._record_sql(schema):
                        cur.execute(statement)
                if batch.checkpoint is not None:
                    cur.execute(f"DELETE FROM {self._checkpoint_table} WHERE PIPELINE_ID = {int(pipeline_id)}")
                    cur.execute(
                        f"INSERT INTO {self._checkpoint_table} (PIPELINE_ID, LSN, UPDATED_AT) "
                        f"SELECT {int(pipeline_id)}, {int(batch.checkpoint)}, CURRENT_TIMESTAMP()"
                    )
                if self.atomic:
                    cur.execute("COMMIT")
                observe_write("snowflake", "landing", landed - started)
                observe_write("snowflake", "merge", time.perf_counter() - landed)
                for schema in reshaped:  # only once committed
                    self._shapes.known(schema, flags[schema.table])
            except BaseException:
                try:
                    if self.atomic:
                        cur.execute("ROLLBACK")
                except (sf_errors.Error, OSError):
                    pass
                raise


def _unresolved_sql(target: str, landing: str, schema: TableSchema, span: tuple[Position, Position]) -> str:
    """Counts the keys whose latest change in ``span`` of ``landing`` keeps an unchanged TOAST
    value (``_ETL_UNCHANGED`` set) for a key ``target`` does not hold."""
    q = snowflake_ident
    keys = [q(c.name) for c in schema.key_columns]
    lsn, ordn = q(LSN_COLUMN), q(ORDINAL_COLUMN)
    (first_lsn, first_ord), (last_lsn, last_ord) = span
    # the same rows merge_sql picks: the step's span, then the latest change per key
    latest = (
        f"SELECT * FROM {landing}"
        f" WHERE ({lsn} > {int(first_lsn)} OR ({lsn} = {int(first_lsn)} AND {ordn} >= {int(first_ord)}))"
        f" AND ({lsn} < {int(last_lsn)} OR ({lsn} = {int(last_lsn)} AND {ordn} <= {int(last_ord)}))"
        f" QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY {lsn} DESC, {ordn} DESC) = 1"
    )
    on = " AND ".join(f"tt.{k} = l.{k}" for k in keys)
    return (
        f"SELECT COUNT(*) FROM ({latest}) AS l LEFT JOIN {target} AS tt ON ({on}) "
        f"WHERE l.{q(OP_COLUMN)} <> 'D' AND l.{q(UNCHANGED_COLUMN)} IS NOT NULL AND tt.{q(TARGET_LSN_COLUMN)} IS NULL"
    )


def _span(step: RowsStep) -> tuple[Position, Position]:
    """The first and last (commit LSN, ordinal) of a step: a table's steps never overlap, so
    this picks one step's rows out of a landing table that holds several."""
    n = len(step.schema.columns)
    lsns = step.batch.column(n + 1).to_numpy()
    ordinals = step.batch.column(n + 2).to_numpy()
    positions = sorted(zip(lsns.tolist(), ordinals.tolist(), strict=True))
    return positions[0], positions[-1]


def _resolve_unchanged(step: RowsStep, columns: list[pa.Array]) -> tuple[list[pa.Array], pa.Array]:
    """Fill unchanged TOAST values from the latest earlier change of the same key in the batch.

    Returns the columns and, per row, the column indexes still unresolved as ``",i,j,"`` text
    (NULL when none): for those the MERGE keeps the target's value.
    """
    schema = step.schema
    batch = step.batch
    n = len(schema.columns)
    marks: list[list[int] | None] = batch.column(n + 3).to_pylist()
    ops: list[str] = batch.column(n).to_pylist()
    lsns: list[int] = batch.column(n + 1).to_pylist()
    ordinals: list[int] = batch.column(n + 2).to_pylist()
    key_idx = [i for i, c in enumerate(schema.columns) if c.is_key]
    key_values = [columns[i].to_pylist() for i in key_idx]
    keys = list(zip(*key_values, strict=True)) if key_idx else [() for _ in ops]
    order = sorted(range(len(ops)), key=lambda r: (lsns[r], ordinals[r]))
    touched = sorted({i for m in marks if m for i in m})
    remaining: list[set[int]] = [set(m) if m else set() for m in marks]
    out = list(columns)
    for i in touched:
        values: list[Any] = columns[i].to_pylist()
        last: dict[tuple[Any, ...], Any] = {}
        for r in order:
            key = keys[r]
            if ops[r] == "D":
                last.pop(key, None)
            elif i in remaining[r]:
                if key in last:
                    values[r] = last[key]
                    remaining[r].discard(i)
            else:
                last[key] = values[r]
        out[i] = pa.array(values, type=columns[i].type)
    text = [("," + ",".join(str(i) for i in sorted(m)) + ",") if m else None for m in remaining]
    return out, pa.array(text, pa.string())
