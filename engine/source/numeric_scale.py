"""The type of an unbounded ``numeric`` column, chosen when its table is copied.

PostgreSQL's unbounded numeric holds any number of digits; a destination DECIMAL holds 38. So
when a table is copied, inside the copy's snapshot transaction, one query measures each of its
unbounded numeric columns (:func:`measure`): the most fractional digits of a value (trailing
zeros left out: ``1.50`` has 1, as it fits DECIMAL(p,1) exactly), the most integer digits
(``0.5`` has 0), and whether it holds NaN or ±Infinity. :func:`choose` turns that into the
column's type:

* exact text (the value as PostgreSQL prints it) when no DECIMAL(38,s) holds every value: NaN or
  Infinity, more than 38 digits in all, or more than 37 fractional digits (Snowflake's limit);
* otherwise DECIMAL(38,s), with headroom for later values: the scale is the measured scale plus
  2, and at least 10 (what unbounded numeric always got), as long as the integer part keeps room
  for the measured integer digits plus 4; when both do not fit, the integer room wins, and the
  scale never drops below the measured one. An empty column gets DECIMAL(38,10).

An override (``--column-type``) wins over the measurement. The choice is recorded in the table's
state (:class:`~engine.state.table_state.TableState`) and used for the table's whole life: the
stream, after any restart, converts with it; a resync measures and chooses again. A later value
that does not fit stops only its table, and the refusal's hint is the command that fixes it
(:func:`misfit_hint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import psycopg
import pyarrow as pa
from psycopg import sql

from engine.config.models import MAX_DECIMAL_PRECISION, NumericTarget, NumericTargetKind, Pipeline
from engine.decoding.types import ColumnType, ConvKind, numeric_column_type
from engine.identifiers import TableName, display_ident
from engine.source.catalog import ColumnSchema, TableSchema

__all__ = [
    "Measured",
    "choose",
    "choose_types",
    "chosen_types",
    "measure",
    "misfit_hint",
    "typed_column",
]

MAX_SCALE = 37  # Snowflake NUMBER keeps at most 37 fractional digits (DuckDB 38)
FRACTION_HEADROOM = 2
INTEGER_HEADROOM = 4
MIN_SCALE = 10

_TEXT = NumericTarget(NumericTargetKind.TEXT)


@dataclass(frozen=True)
class Measured:
    """What one unbounded numeric column holds, over the rows being copied."""

    scale: int = 0  # the most fractional digits of a value, trailing zeros left out
    integer_digits: int = 0  # the most digits before the point
    finite: bool = True  # no NaN, Infinity or -Infinity


def choose(m: Measured) -> NumericTarget:
    """The type for a column that holds ``m`` (the rule in the module docstring)."""
    if not m.finite or m.scale > MAX_SCALE or m.scale + m.integer_digits > MAX_DECIMAL_PRECISION:
        return _TEXT
    scale = max(m.scale + FRACTION_HEADROOM, MIN_SCALE)
    scale = min(scale, MAX_DECIMAL_PRECISION - (m.integer_digits + INTEGER_HEADROOM), MAX_SCALE)
    return NumericTarget(NumericTargetKind.DECIMAL, MAX_DECIMAL_PRECISION, max(scale, m.scale))


def measure(conn: psycopg.Connection, table: TableName, columns: list[str]) -> dict[str, Measured]:
    """One query over the table: what each of ``columns`` (unbounded numeric) holds. Run it in
    the copy's transaction, so it sees exactly the rows copied."""
    if not columns:
        return {}
    # trailing zeros are no digits of value (1.50 fits DECIMAL(p,1)): min_scale() since PostgreSQL 13
    scale_of = sql.SQL("min_scale" if conn.info.server_version >= 130000 else "scale")
    parts: list[sql.Composable] = []
    for name in columns:
        c = sql.Identifier(name)
        # scale() and min_scale() are NULL for NaN and ±Infinity
        parts.append(sql.SQL("coalesce(max({f}({c})), 0)").format(f=scale_of, c=c))
        parts.append(
            sql.SQL(
                "coalesce(max(CASE WHEN scale({c}) IS NULL OR abs({c}) < 1 THEN 0"
                " ELSE length(trunc(abs({c}))::text) END), 0)"
            ).format(c=c)
        )
        parts.append(sql.SQL("coalesce(bool_or({c} IS NOT NULL AND scale({c}) IS NULL), false)").format(c=c))
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(parts), sql.Identifier(table.schema, table.name))
    row = conn.execute(query).fetchone()
    assert row is not None
    out = {}
    for i, name in enumerate(columns):
        scale, digits, special = row[3 * i : 3 * i + 3]
        out[name] = Measured(int(scale), int(digits), not special)
    return out


def misfit_hint(pipeline: str, table: TableName, column: str) -> str:
    """The command that gives a column exact text and copies its table again."""
    return (
        f"etl-tui pipeline edit {pipeline} --column-type '{table}.{display_ident(column)}=text'"
        f" && etl-tui pipeline resync {pipeline} --table '{table}'"
    )


def typed_column(col: ColumnSchema, target: NumericTarget, pipeline: str, table: TableName) -> ColumnSchema:
    """``col`` (unbounded numeric) with the type ``target``."""
    ctype = numeric_column_type(target, col.ctype.pg_display, misfit_hint(pipeline, table, col.name))
    return replace(col, ctype=ctype)


def choose_types(conn: psycopg.Connection, schema: TableSchema, pipeline: Pipeline) -> TableSchema:
    """The table's schema with a type chosen for each unbounded numeric column: the pipeline's
    override, else what :func:`measure` finds (one query, only when a column needs it)."""
    table = schema.table
    unbounded = [c for c in schema.columns if c.ctype.unbounded]
    if not unbounded:
        return schema
    overrides = {c.name: t for c in unbounded if (t := pipeline.column_type(table, c.name)) is not None}
    measured = measure(conn, table, [c.name for c in unbounded if c.name not in overrides])
    chosen = {c.name: overrides.get(c.name) or choose(measured[c.name]) for c in unbounded}
    columns = tuple(
        typed_column(c, chosen[c.name], pipeline.name, table) if c.name in chosen else c for c in schema.columns
    )
    return replace(schema, columns=columns)


def chosen_types(schema: TableSchema) -> dict[str, str]:
    """The type of each unbounded numeric column, as the table's state records it."""
    return {c.name: _target_of(c.ctype).spelling for c in schema.columns if c.ctype.unbounded}


def _target_of(ctype: ColumnType) -> NumericTarget:
    arrow = ctype.arrow
    if ctype.kind is ConvKind.DECIMAL and isinstance(arrow, pa.Decimal128Type):
        return NumericTarget(NumericTargetKind.DECIMAL, arrow.precision, arrow.scale)
    return _TEXT


def recorded_target(recorded: Mapping[str, str], column: str) -> NumericTarget | None:
    """The type a table's state records for ``column``, if any."""
    spelled = recorded.get(column)
    return NumericTarget.parse(spelled) if spelled else None
