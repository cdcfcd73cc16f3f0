"""DuckDB destination: landing tables plus one MERGE per table per batch.

The file is opened for each write and closed right after, so other processes (the ``duckdb`` CLI,
a notebook) can read it between flushes; DuckDB allows one writing process at a time, so while a
reader holds the file the next flush waits and retries. The applied checkpoint lives in the same
file and is written in the same transaction as the MERGE, so the file itself says exactly what it
holds (I1, I2); Redis only caches it.

A statement refused for what it says about one table (a catalog, binder, parser, conversion or
constraint error: an object of another kind under the target's name, a column that is not there)
stops only that table (:class:`DestinationTableError`); a fault of the file itself (I/O, memory,
locks, transactions) is a :class:`DestinationError` of the whole pipeline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

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
from engine.destinations.duckdb.types import duckdb_type
from engine.errors import DestinationError, DestinationTableError, ErrorKind, RetryPolicy
from engine.identifiers import TableName, quote_ident
from engine.metrics import observe_write
from engine.source.catalog import ColumnSignature, TableSchema

CHECKPOINT_TABLE = "_etl_checkpoints"
LOCK_WAIT_SECONDS = 30.0
# What DuckDB raises when a statement's SQL, objects or values are at fault, not the file: the
# table the statement is about stops, the others go on.
_TABLE_FAULTS = (
    duckdb.ProgrammingError,  # catalog, binder, parser, invalid input or type
    duckdb.DataError,  # conversion, out of range, type mismatch
    duckdb.IntegrityError,
    duckdb.NotSupportedError,
    duckdb.DependencyException,
)


class DuckDbDestination:
    def __init__(
        self, path: str | Path, schema: str = "main", landing_schema: str = "etl_landing", *, soft_deletes: bool = False
    ) -> None:
        self.path = Path(path).expanduser()
        self.soft_deletes = soft_deletes  # keep deleted rows with _etl_deleted = true
        self._shapes = ShapeTracker()
        self.schema = schema
        self.landing_schema = landing_schema
        if not self.path.parent.exists():
            raise DestinationError(
                f"DuckDB destination: folder {self.path.parent} does not exist",
                "create it or point --path elsewhere",
                retry=RetryPolicy.MANUAL,
            )
        with self._connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(landing_schema)}")
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {self._checkpoint_table} "
                "(pipeline_id BIGINT, lsn BIGINT, updated_at TIMESTAMPTZ)"
            )
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {self._schemas_table} "
                "(target_table VARCHAR, columns VARCHAR, updated_at TIMESTAMPTZ)"
            )

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    # ---- connections -----------------------------------------------------------------------
    @contextmanager
    def _connect(self, threads: int = 1) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file for one write. Streaming writes use one DuckDB thread: the cores are
        needed by the stream decoder and the source's walsender; a copy may use more."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                # threads are set per write, not in the config: a copy beside the stream opens the
                # file while the apply worker has it open, and DuckDB refuses a second connection
                # whose config differs (the setting is the database's: the latest write's wins)
                con = duckdb.connect(str(self.path))
                con.execute(f"SET threads = {int(threads)}")
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                # held by another process (a lock), or in this process by a connection opened with
                # other settings (a read-only reader): both let go soon
                if "lock" not in str(exc).lower() and "different configuration" not in str(exc):
                    raise DestinationError(
                        f"cannot open DuckDB file {self.path}: {exc}", "check the path and permissions"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise DestinationError(
                        f"DuckDB file {self.path} is held by another process for more than {LOCK_WAIT_SECONDS:.0f}s",
                        "close other writers or long-lived readers of the file; replication resumes by itself",
                        kind=ErrorKind.DESTINATION_BUSY,
                        retry=RetryPolicy.TIMED,
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except duckdb.Error as exc:
                raise DestinationError(
                    f"cannot open DuckDB file {self.path}: {exc}", "check the path and permissions"
                ) from exc
        try:
            yield con
        except duckdb.Error as exc:
            raise DestinationError(
                f"DuckDB write to {self.path} failed: {exc}", "retrying; nothing was acknowledged"
            ) from exc
        finally:
            con.close()

    @contextmanager
    def _table_statements(self, table: TableName, what: str) -> Iterator[None]:
        """Statements about ``table`` (``what`` says which, on which object): one refused for
        that table's sake raises :class:`DestinationTableError`; anything else passes on."""
        try:
            yield
        except _TABLE_FAULTS as exc:
            if names_container(str(exc), table):
                raise  # a schema of the file is gone or refused: every table would fail
            raise table_fault(table, f"{what} in DuckDB file {self.path}", str(exc)) from exc

    @property
    def _checkpoint_table(self) -> str:
        return f"{quote_ident(self.landing_schema)}.{quote_ident(CHECKPOINT_TABLE)}"

    @property
    def _schemas_table(self) -> str:
        return f"{quote_ident(self.landing_schema)}.{quote_ident(SCHEMAS_TABLE)}"

    def target_sql(self, table: TableName) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(table.target_name())}"

    def landing_sql(self, table: TableName) -> str:
        return f"{quote_ident(self.landing_schema)}.{quote_ident(landing_name(table))}"

    # ---- checkpoint ------------------------------------------------------------------------
    def checkpoint(self, pipeline_id: int) -> int | None:
        with self._connect() as con:
            row = con.execute(
                f"SELECT max(lsn) FROM {self._checkpoint_table} WHERE pipeline_id = ?", [pipeline_id]
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def forget(self, pipeline_id: int) -> None:
        with self._connect() as con:
            con.execute(f"DELETE FROM {self._checkpoint_table} WHERE pipeline_id = ?", [pipeline_id])

    # ---- tables ------------------------------------------------------------------------------
    def _target_ddl(self, schema: TableSchema) -> str:
        cols = [f"{quote_ident(c.name)} {duckdb_type(c.ctype)}" for c in schema.columns]
        cols += [f"{quote_ident(TARGET_LSN_COLUMN)} BIGINT", f"{quote_ident(TARGET_ORDINAL_COLUMN)} BIGINT"]
        if self.soft_deletes:
            cols.append(f"{quote_ident(TARGET_DELETED_COLUMN)} BOOLEAN DEFAULT false")
        return f"CREATE TABLE {self.target_sql(schema.table)} ({', '.join(cols)})"

    def _landing_ddl(self, schema: TableSchema) -> str:
        cols = [f"{quote_ident(c.name)} {duckdb_type(c.ctype)}" for c in schema.columns]
        cols += [
            f"{quote_ident(OP_COLUMN)} VARCHAR",
            f"{quote_ident(LSN_COLUMN)} BIGINT",
            f"{quote_ident(ORDINAL_COLUMN)} BIGINT",
            f"{quote_ident(UNCHANGED_COLUMN)} INTEGER[]",
        ]
        return f"CREATE OR REPLACE TABLE {self.landing_sql(schema.table)} ({', '.join(cols)})"

    def _columns(self, con: duckdb.DuckDBPyConnection, schema_name: str, table: str) -> list[str] | None:
        rows = con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database()"
            " AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema_name, table],
        ).fetchall()
        return [r[0] for r in rows] or None

    def recorded_columns(self, tables: Iterable[TableName]) -> dict[TableName, tuple[ColumnSignature, ...]]:
        wanted = {t.target_name(): t for t in tables}
        if not wanted:
            return {}
        with self._connect() as con:
            rows = con.execute(f"SELECT target_table, columns FROM {self._schemas_table}").fetchall()
        return {wanted[name]: decode_signature(cols) for name, cols in rows if name in wanted}

    def _record(self, con: duckdb.DuckDBPyConnection, schema: TableSchema) -> None:
        name = schema.table.target_name()
        con.execute(f"DELETE FROM {self._schemas_table} WHERE target_table = ?", [name])
        con.execute(
            f"INSERT INTO {self._schemas_table} VALUES (?, ?, now())", [name, encode_signature(schema.signature)]
        )

    def _reshape(self, con: duckdb.DuckDBPyConnection, schema: TableSchema, found: list[str]) -> None:
        """Bring the target to ``schema`` by name (replay-safe: IF [NOT] EXISTS), then the landing table."""
        target = self.target_sql(schema.table)
        wanted = set(schema.column_names)
        for name in found:
            if name not in wanted and name not in TARGET_META_COLUMNS:
                con.execute(f"ALTER TABLE {target} DROP COLUMN IF EXISTS {quote_ident(name)}")
        for c in schema.columns:
            if c.name not in found:
                column = f"{quote_ident(c.name)} {duckdb_type(c.ctype)}"
                con.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {column}")
        con.execute(self._landing_ddl(schema))
        self._record(con, schema)

    def prepare(self, schemas: Iterable[TableSchema]) -> dict[TableName, DestinationTableError]:
        """Make targets and landing tables match ``schemas``, table by table. A target recorded
        with another shape is brought to it (a schema change applied before a crash); a target
        without a record must already match. Returns the tables that could not be prepared."""
        schemas = list(schemas)
        recorded = self.recorded_columns(s.table for s in schemas)
        failed: dict[TableName, DestinationTableError] = {}
        with self._connect() as con:
            for schema in schemas:
                try:
                    with self._table_statements(schema.table, f"preparing {self.target_sql(schema.table)}"):
                        self._prepare_table(con, schema, schema.table in recorded)
                except DestinationTableError as exc:
                    failed[schema.table] = exc
        return failed

    def _prepare_table(self, con: duckdb.DuckDBPyConnection, schema: TableSchema, recorded: bool) -> None:
        found = self._columns(con, self.schema, schema.table.target_name())
        data = [c for c in found if c not in TARGET_META_COLUMNS] if found is not None else None
        if found is not None and recorded and data != list(schema.column_names):
            self._reshape(con, schema, found)
            found = self._columns(con, self.schema, schema.table.target_name())
            data = [c for c in found or [] if c not in TARGET_META_COLUMNS]
        check_target_columns(self.target_sql(schema.table), str(self.path), schema, data, list(schema.column_names))
        assert found is not None
        if self.soft_deletes and TARGET_DELETED_COLUMN not in found:
            con.execute(
                f"ALTER TABLE {self.target_sql(schema.table)} ADD COLUMN {quote_ident(TARGET_DELETED_COLUMN)}"
                " BOOLEAN DEFAULT false"
            )
            found.append(TARGET_DELETED_COLUMN)
        landing = self._columns(con, self.landing_schema, landing_name(schema.table))
        if landing != [*schema.column_names, OP_COLUMN, LSN_COLUMN, ORDINAL_COLUMN, UNCHANGED_COLUMN]:
            con.execute(self._landing_ddl(schema))
        if not recorded:
            self._record(con, schema)
        self._shapes.known(schema, TARGET_DELETED_COLUMN in found)

    def copy_table(
        self, schema: TableSchema, batches: Iterable[pa.RecordBatch], on_progress: Callable[[int], None]
    ) -> int:
        names = ", ".join(quote_ident(c.name) for c in schema.columns)
        extra = ", false" if self.soft_deletes else ""
        total = 0
        started = time.perf_counter()
        target = self.target_sql(schema.table)
        with (
            self._connect(threads=os.cpu_count() or 1) as con,
            self._table_statements(schema.table, f"copying into {target} (DROP, CREATE, INSERT)"),
        ):
            con.execute("BEGIN")
            con.execute(f"DROP TABLE IF EXISTS {target}")
            con.execute(self._target_ddl(schema))
            con.execute(self._landing_ddl(schema))
            for batch in batches:
                con.register("etl_copy_batch", batch)
                con.execute(f"INSERT INTO {target} SELECT {names}, 0, 0{extra} FROM etl_copy_batch")
                con.unregister("etl_copy_batch")
                total += batch.num_rows
                on_progress(total)
            self._record(con, schema)
            con.execute("COMMIT")
        observe_write("duckdb", "copy", time.perf_counter() - started)
        self._shapes.known(schema, self.soft_deletes)
        return total

    def drop_table(self, table: TableName) -> None:
        with self._connect() as con:
            con.execute(f"DROP TABLE IF EXISTS {self.target_sql(table)}")
            con.execute(f"DROP TABLE IF EXISTS {self.landing_sql(table)}")
            con.execute(f"DELETE FROM {self._schemas_table} WHERE target_table = ?", [table.target_name()])
        self._shapes.forget(table)

    # ---- apply -------------------------------------------------------------------------------
    def apply(self, pipeline_id: int, batch: Batch) -> None:
        reshaped: list[tuple[TableSchema, bool]] = []
        landing = 0.0
        with self._connect() as con:
            started = time.perf_counter()
            con.execute("BEGIN")
            for step in batch.steps:
                # a refused statement stops its table: nothing of this transaction is committed,
                # and the applier writes the batch again without that table
                table = step.schema.table
                if isinstance(step, TruncateStep):
                    with self._table_statements(table, f"TRUNCATE of {self.target_sql(table)}"):
                        self._truncate(con, step)
                    continue
                has_deleted = self._shapes.has_deleted_column(step.schema)
                if has_deleted is None:  # a new shape: the schema changed on the source
                    with self._table_statements(table, f"ALTER of {self.target_sql(table)} (schema change)"):
                        found = self._columns(con, self.schema, table.target_name()) or []
                        self._reshape(con, step.schema, found)
                    has_deleted = TARGET_DELETED_COLUMN in found
                    reshaped.append((step.schema, has_deleted))
                with self._table_statements(table, f"MERGE into {self.target_sql(table)}"):
                    landing += self._merge(con, step, has_deleted)
            if batch.checkpoint is not None:
                con.execute(f"DELETE FROM {self._checkpoint_table} WHERE pipeline_id = ?", [pipeline_id])
                con.execute(
                    f"INSERT INTO {self._checkpoint_table} VALUES (?, ?, now())",
                    [pipeline_id, batch.checkpoint],
                )
            con.execute("COMMIT")
        # "merge" is everything but the landing inserts: MERGEs, checkpoint row, COMMIT, and the
        # close, which writes the WAL into the file (DuckDB's checkpoint)
        observe_write("duckdb", "landing", landing)
        observe_write("duckdb", "merge", time.perf_counter() - started - landing)
        for schema, has_deleted in reshaped:  # only once committed
            self._shapes.known(schema, has_deleted)

    def _truncate(self, con: duckdb.DuckDBPyConnection, step: TruncateStep) -> None:
        tl, to = quote_ident(TARGET_LSN_COLUMN), quote_ident(TARGET_ORDINAL_COLUMN)
        target = self.target_sql(step.schema.table)
        older = f"{tl} < ? OR ({tl} = ? AND {to} < ?)"
        if self.soft_deletes:
            # the rows stay, flagged, and take the TRUNCATE's position so no older change revives them
            con.execute(
                f"UPDATE {target} SET {quote_ident(TARGET_DELETED_COLUMN)} = true, {tl} = ?, {to} = ? WHERE {older}",
                [step.commit_lsn, step.ordinal, step.commit_lsn, step.commit_lsn, step.ordinal],
            )
        else:
            con.execute(f"DELETE FROM {target} WHERE {older}", [step.commit_lsn, step.commit_lsn, step.ordinal])

    def _merge(self, con: duckdb.DuckDBPyConnection, step: RowsStep, has_deleted: bool) -> float:
        """Land and merge one step; returns the seconds spent landing it."""
        schema = step.schema
        landing = self.landing_sql(schema.table)
        cols = [quote_ident(c.name) for c in schema.columns]
        meta = [quote_ident(OP_COLUMN), quote_ident(LSN_COLUMN), quote_ident(ORDINAL_COLUMN)]
        unchanged = quote_ident(UNCHANGED_COLUMN) if step.has_unchanged else "NULL"
        started = time.perf_counter()
        con.register("etl_batch", step.batch)
        con.execute(f"INSERT INTO {landing} SELECT {', '.join(cols + meta)}, {unchanged} FROM etl_batch")
        con.unregister("etl_batch")
        landed = time.perf_counter() - started
        target = self.target_sql(schema.table)
        if step.has_unchanged:
            # fail closed: an unchanged TOAST value neither the batch nor the target holds would be NULL
            check = unresolved_sql(target, landing, schema)
            row = con.execute(check).fetchone() if check is not None else None
            if row is not None and row[0]:
                raise unchanged_toast_fault(schema.table, target, int(row[0]))
        deletes = DeleteMode.choose(self.soft_deletes, has_deleted)
        con.execute(merge_sql(target, landing, schema, step.has_unchanged, deletes))
        con.execute(f"DELETE FROM {landing}")
        return landed

    def close(self) -> None:
        """Nothing stays open between writes."""


def _toast_source(landing: str, schema: TableSchema) -> str:
    """The latest change per key of ``landing``, every column as a struct: a column that arrived
    as an unchanged TOAST value takes the latest value of that column seen earlier in the batch
    for the key, and is NULL (not a struct holding NULL) when the batch has none."""
    q = quote_ident
    lsn, ordn, op = q(LSN_COLUMN), q(ORDINAL_COLUMN), q(OP_COLUMN)
    partition = ", ".join(q(c.name) for c in schema.key_columns)
    exprs = []
    for i, c in enumerate(schema.columns):
        name = q(c.name)
        if c.is_key or not c.ctype.toastable:
            exprs.append(f"struct_pack(v := {name}) AS {name}")
            continue
        # A struct keeps a real NULL apart from "no value seen": only the latter is NULL.
        is_unchanged = f"coalesce(list_contains({q(UNCHANGED_COLUMN)}, {i}), false)"
        earlier = (
            f"last_value(CASE WHEN NOT {is_unchanged} AND {op} <> 'D' THEN struct_pack(v := {name}) END"
            f" IGNORE NULLS) OVER (PARTITION BY {partition} ORDER BY {lsn}, {ordn}"
            " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
        )
        exprs.append(f"CASE WHEN {is_unchanged} THEN {earlier} ELSE struct_pack(v := {name}) END AS {name}")
    return (
        f"SELECT * FROM (SELECT {', '.join(exprs)}, {op}, {lsn}, {ordn}, row_number() OVER "
        f"(PARTITION BY {partition} ORDER BY {lsn} DESC, {ordn} DESC) AS _etl_rn FROM {landing}) "
        "WHERE _etl_rn = 1"
    )


def unresolved_sql(target: str, landing: str, schema: TableSchema) -> str | None:
    """Counts the keys whose latest change in ``landing`` keeps an unchanged TOAST value that
    neither the batch nor ``target`` holds (the MERGE would insert NULL for it); None when the
    table has no TOASTable column."""
    q = quote_ident
    toasted = [q(c.name) for c in schema.columns if not c.is_key and c.ctype.toastable]
    if not toasted:
        return None
    on = " AND ".join(f"t.{q(c.name)} = s.{q(c.name)}.v" for c in schema.key_columns)
    unknown = " OR ".join(f"s.{name} IS NULL" for name in toasted)
    return (
        f"SELECT count(*) FROM ({_toast_source(landing, schema)}) AS s WHERE s.{q(OP_COLUMN)} <> 'D' "
        f"AND ({unknown}) AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on})"
    )


def merge_sql(
    target: str, landing: str, schema: TableSchema, toast_aware: bool, deletes: DeleteMode = DeleteMode.HARD
) -> str:
    """One MERGE that applies the latest change per key, ordered by (commit LSN, ordinal).

    An older change never overwrites a newer one (the target keeps the LSN and ordinal of the
    change that wrote each row), so replaying a batch changes nothing (I2). With ``toast_aware``,
    a column that arrived as an unchanged TOAST value takes the latest value of that column seen
    earlier in the batch for the key, or keeps the target's value.
    """
    q = quote_ident
    keys = [q(c.name) for c in schema.key_columns]
    lsn, ordn, op = q(LSN_COLUMN), q(ORDINAL_COLUMN), q(OP_COLUMN)
    tl, to = q(TARGET_LSN_COLUMN), q(TARGET_ORDINAL_COLUMN)
    partition = ", ".join(keys)
    if toast_aware:
        source = _toast_source(landing, schema)

        def value(name: str) -> str:
            return f"s.{name}.v"

        def update_value(name: str) -> str:
            return f"CASE WHEN s.{name} IS NULL THEN t.{name} ELSE s.{name}.v END"
    else:
        source = (
            f"SELECT * FROM {landing} QUALIFY row_number() OVER "
            f"(PARTITION BY {partition} ORDER BY {lsn} DESC, {ordn} DESC) = 1"
        )

        def value(name: str) -> str:
            return f"s.{name}"

        update_value = value
    on = " AND ".join(f"t.{k} = {value(k)}" for k in keys)
    newer = f"(s.{lsn} > t.{tl} OR (s.{lsn} = t.{tl} AND s.{ordn} > t.{to}))"
    same_or_newer = f"(s.{lsn} > t.{tl} OR (s.{lsn} = t.{tl} AND s.{ordn} >= t.{to}))"
    non_keys = [q(c.name) for c in schema.columns if not c.is_key]
    sets = [f"{n} = {update_value(n)}" for n in non_keys] + [f"{tl} = s.{lsn}", f"{to} = s.{ordn}"]
    all_cols = [q(c.name) for c in schema.columns]
    insert_cols = [*all_cols, tl, to]
    insert_values = [*(value(c) for c in all_cols), "s." + lsn, "s." + ordn]
    on_delete = "DELETE"
    if deletes is not DeleteMode.HARD:
        deleted = q(TARGET_DELETED_COLUMN)
        sets.append(f"{deleted} = false")
        insert_cols.append(deleted)
        insert_values.append("false")
        if deletes is DeleteMode.SOFT:
            on_delete = f"UPDATE SET {deleted} = true, {tl} = s.{lsn}, {to} = s.{ordn}"
    return (
        f"MERGE INTO {target} AS t USING ({source}) AS s ON ({on}) "
        f"WHEN MATCHED AND s.{op} = 'D' AND {same_or_newer} THEN {on_delete} "
        f"WHEN MATCHED AND s.{op} <> 'D' AND {newer} THEN UPDATE SET {', '.join(sets)} "
        f"WHEN NOT MATCHED AND s.{op} <> 'D' THEN INSERT ({', '.join(insert_cols)}) "
        f"VALUES ({', '.join(insert_values)})"
    )
