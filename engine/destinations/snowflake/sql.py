"""The SQL the Snowflake destination sends: landing table columns, COPY transforms, string
literals, and the TRUNCATE barrier and MERGE that apply a batch's changes to a target."""

from __future__ import annotations

from engine.batching.batcher import LSN_COLUMN, OP_COLUMN, ORDINAL_COLUMN, UNCHANGED_COLUMN
from engine.destinations.base import TARGET_DELETED_COLUMN, TARGET_LSN_COLUMN, TARGET_ORDINAL_COLUMN, DeleteMode
from engine.destinations.snowflake.naming import snowflake_ident
from engine.destinations.snowflake.typemap import snowflake_type
from engine.source.catalog import ColumnSchema, TableSchema

# A landing table holds the source columns, then these (the change's op, position and unchanged
# TOAST columns).
LANDING_META = [OP_COLUMN, LSN_COLUMN, ORDINAL_COLUMN, UNCHANGED_COLUMN]
LANDING_META_TYPES = {
    OP_COLUMN: "VARCHAR",
    LSN_COLUMN: "NUMBER(20,0)",
    ORDINAL_COLUMN: "NUMBER(20,0)",
    UNCHANGED_COLUMN: "VARCHAR",
}

Position = tuple[int, int]
"""A change's (commit LSN, ordinal)."""


def _is_variant(col: ColumnSchema, table: str) -> bool:
    return snowflake_type(col.ctype, table=table, column=col.name) == "VARIANT"


def landing_type(col: ColumnSchema, table: str) -> str:
    """The type of ``col`` in a landing table."""
    # VARIANT values travel as JSON text and are parsed by the MERGE.
    sf_type = snowflake_type(col.ctype, table=table, column=col.name)
    return "VARCHAR" if sf_type == "VARIANT" else sf_type


def parquet_pick(i: int, sf_type: str) -> str:
    """The COPY transform for Parquet column ``c<i>`` loaded into a column of type ``sf_type``."""
    if sf_type == "BINARY":
        return f"$1:c{i}"  # binary Parquet values load as-is (BINARY_AS_TEXT=FALSE)
    return f"$1:c{i}::{sf_type}"


def string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def truncate_sql(target: str, commit_lsn: int, ordinal: int, soft: bool = False) -> str:
    """Delete what a TRUNCATE at (commit LSN, ordinal) removed: rows written before it. With
    ``soft`` the rows stay, flagged, and take the TRUNCATE's position so no older change revives
    them."""
    tl, to = snowflake_ident(TARGET_LSN_COLUMN), snowflake_ident(TARGET_ORDINAL_COLUMN)
    lsn, ordn = int(commit_lsn), int(ordinal)
    older = f"{tl} < {lsn} OR ({tl} = {lsn} AND {to} < {ordn})"
    if soft:
        deleted = snowflake_ident(TARGET_DELETED_COLUMN)
        return f"UPDATE {target} SET {deleted} = TRUE, {tl} = {lsn}, {to} = {ordn} WHERE {older}"
    return f"DELETE FROM {target} WHERE {older}"


def merge_sql(
    target: str,
    landing: str,
    schema: TableSchema,
    span: tuple[Position, Position] | None = None,
    toast_aware: bool = True,
    deletes: DeleteMode = DeleteMode.HARD,
) -> str:
    """One MERGE that applies the latest change per key, ordered by (commit LSN, ordinal).

    An older change never overwrites a newer one (the target keeps the LSN and ordinal of the
    change that wrote each row), so replaying a batch changes nothing (I2). With ``toast_aware``,
    a column listed in ``_ETL_UNCHANGED`` (an unchanged TOAST value not resolved within the
    batch) keeps the target's value. ``span`` limits the landing rows to one step's
    (commit LSN, ordinal) range.
    """
    q = snowflake_ident
    table = str(schema.table)
    keys = [q(c.name) for c in schema.key_columns]
    lsn, ordn, op, unch = q(LSN_COLUMN), q(ORDINAL_COLUMN), q(OP_COLUMN), q(UNCHANGED_COLUMN)
    tl, to = q(TARGET_LSN_COLUMN), q(TARGET_ORDINAL_COLUMN)
    where = ""
    if span is not None:
        (first_lsn, first_ord), (last_lsn, last_ord) = span
        where = (
            f" WHERE ({lsn} > {int(first_lsn)} OR ({lsn} = {int(first_lsn)} AND {ordn} >= {int(first_ord)}))"
            f" AND ({lsn} < {int(last_lsn)} OR ({lsn} = {int(last_lsn)} AND {ordn} <= {int(last_ord)}))"
        )
    latest = (
        f"SELECT * FROM {landing}{where} QUALIFY ROW_NUMBER() OVER "
        f"(PARTITION BY {', '.join(keys)} ORDER BY {lsn} DESC, {ordn} DESC) = 1"
    )
    exprs = []
    for i, c in enumerate(schema.columns):
        name = q(c.name)
        value = f"PARSE_JSON(l.{name})" if _is_variant(c, table) else f"l.{name}"
        if toast_aware and c.ctype.toastable and not c.is_key:
            # still unchanged after the batch's own earlier values: keep the target's value
            value = f"CASE WHEN l.{unch} IS NOT NULL AND CONTAINS(l.{unch}, ',{i},') THEN tt.{name} ELSE {value} END"
        exprs.append(f"{value} AS {name}")
    source = f"SELECT {', '.join(exprs)}, l.{op}, l.{lsn}, l.{ordn} FROM ({latest}) AS l"
    if toast_aware:
        source += f" LEFT JOIN {target} AS tt ON ({' AND '.join(f'tt.{k} = l.{k}' for k in keys)})"
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    newer = f"(s.{lsn} > t.{tl} OR (s.{lsn} = t.{tl} AND s.{ordn} > t.{to}))"
    same_or_newer = f"(s.{lsn} > t.{tl} OR (s.{lsn} = t.{tl} AND s.{ordn} >= t.{to}))"
    sets = [f"{q(c.name)} = s.{q(c.name)}" for c in schema.columns if not c.is_key]
    sets += [f"{tl} = s.{lsn}", f"{to} = s.{ordn}"]
    all_cols = [q(c.name) for c in schema.columns]
    insert_cols = [*all_cols, tl, to]
    insert_values = [*(f"s.{c}" for c in all_cols), f"s.{lsn}", f"s.{ordn}"]
    on_delete = "DELETE"
    if deletes is not DeleteMode.HARD:
        deleted = q(TARGET_DELETED_COLUMN)
        sets.append(f"{deleted} = FALSE")
        insert_cols.append(deleted)
        insert_values.append("FALSE")
        if deletes is DeleteMode.SOFT:
            on_delete = f"UPDATE SET {deleted} = TRUE, {tl} = s.{lsn}, {to} = s.{ordn}"
    return (
        f"MERGE INTO {target} AS t USING ({source}) AS s ON ({on}) "
        f"WHEN MATCHED AND s.{op} = 'D' AND {same_or_newer} THEN {on_delete} "
        f"WHEN MATCHED AND s.{op} <> 'D' AND {newer} THEN UPDATE SET {', '.join(sets)} "
        f"WHEN NOT MATCHED AND s.{op} <> 'D' THEN INSERT ({', '.join(insert_cols)}) "
        f"VALUES ({', '.join(insert_values)})"
    )
