"""Source and target compared by content, for any table of the corpus.

Each column's type family is read from the source catalog (domains resolved to their base type,
enums as text, arrays by their element). Both sides are read in a form their drivers return alike
(timestamps as exact epoch microseconds, uuids and json as text, as type_cases.py does) and brought
to one comparable value per family, then compared row by row, keyed by the primary key."""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from engine.destinations.snowflake.naming import snowflake_column_name, snowflake_ident
from engine.identifiers import parse_table_list, quote_ident
from engine.source.connection import source_conninfo
from tests.integration.harness import duck_rows
from tests.integration.targets import DuckTarget, SnowflakeTarget, Target

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PG_EPOCH_US = "(extract(epoch FROM {c}) * 1000000)::int8"

_FAMILIES = {
    "int2": "int", "int4": "int", "int8": "int", "numeric": "numeric", "float4": "float4", "float8": "float8",
    "bool": "bool", "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "tsvector": "text",
    "date": "date", "timestamp": "ts", "timestamptz": "ts", "uuid": "uuid", "bytea": "bytea", "json": "json",
    "jsonb": "json",
}  # fmt: skip

_COLUMNS_SQL = """
SELECT a.attname, bt.typname, bt.typtype, bt.typcategory, et.typname, et.typtype,
       coalesce(a.attnum = ANY(i.indkey), false)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type e0 ON e0.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_type et ON et.oid = CASE WHEN e0.typtype = 'd' THEN e0.typbasetype ELSE e0.oid END
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND (a.attgenerated = '' OR (a.attgenerated = 's' AND current_setting('server_version_num')::int >= 180000))
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Column:
    name: str
    family: str  # see _FAMILIES; "array" with ``element``
    element: str | None = None
    key: bool = False


def _family(typname: str, typtype: str) -> str:
    if typtype == "e":
        return "enum"
    family = _FAMILIES.get(typname)
    if family is None:
        raise AssertionError(f"the corpus comparison has no reading for type {typname}; add it to _FAMILIES")
    return family


def source_columns(dsn: str, table: str) -> list[Column]:
    """The columns the engine replicates: generated ones only when stored, on PostgreSQL 18+ (pgoutput
    sends none before)."""
    with psycopg.connect(source_conninfo(dsn)) as conn:
        rows = conn.execute(_COLUMNS_SQL, (parse_table_list(table)[0].sql,)).fetchall()
    cols = []
    for name, typname, typtype, category, elem, elem_type, key in rows:
        if category == "A":
            cols.append(Column(name, "array", _family(elem, elem_type), key))
        else:
            cols.append(Column(name, _family(typname, typtype), None, key))
    return cols


def generated_columns(dsn: str, table: str) -> list[str]:
    with psycopg.connect(source_conninfo(dsn)) as conn:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attgenerated <> '' ORDER BY attnum",
            (parse_table_list(table)[0].sql,),
        ).fetchall()
    return [r[0] for r in rows]


# --------------------------------------------------------------------------- reading each side


def _pg_read(col: Column) -> str:
    c = quote_ident(col.name)
    if col.family == "ts":
        return _PG_EPOCH_US.format(c=c)
    if col.family in ("uuid", "json", "enum"):
        return f"{c}::text"
    if col.family == "array" and col.element == "ts":
        return f"ARRAY(SELECT {_PG_EPOCH_US.format(c='x')} FROM unnest({c}) WITH ORDINALITY u(x, o) ORDER BY o)"
    if col.family == "array" and col.element in ("uuid", "json", "enum"):
        return f"{c}::text[]"
    return c


def _duck_read(col: Column) -> str:
    c = quote_ident(col.name)
    if col.family == "ts":
        return f"epoch_us({c})"
    if col.family in ("uuid", "json"):
        return f"CAST({c} AS VARCHAR)"
    if col.family == "array" and col.element == "ts":
        return f"list_transform({c}, lambda x: epoch_us(x))"
    if col.family == "array" and col.element in ("uuid", "json"):
        return f"list_transform({c}, lambda x: CAST(x AS VARCHAR))"
    return c


def source_rows(dsn: str, table: str, cols: list[Column]) -> list[tuple[Any, ...]]:
    reads = ", ".join(_pg_read(c) for c in cols)
    with psycopg.connect(source_conninfo(dsn)) as conn:
        rows = conn.execute(f"SELECT {reads} FROM {parse_table_list(table)[0].sql}").fetchall()
    return [tuple(_norm(c, v, False) for c, v in zip(cols, r, strict=True)) for r in rows]


def target_rows(target: Target, table: str, cols: list[Column]) -> list[tuple[Any, ...]]:
    name = parse_table_list(table)[0].target_name()
    if isinstance(target, DuckTarget):
        reads = ", ".join(_duck_read(c) for c in cols)
        rows = duck_rows(target.path, f"SELECT {reads} FROM main.{quote_ident(name)}")
        return [tuple(_norm(c, v, False) for c, v in zip(cols, r, strict=True)) for r in rows]
    assert isinstance(target, SnowflakeTarget)
    # fakesnow reads a NULL timestamp back as 1970-01-01 (Snowflake returns NULL), so each timestamp
    # comes with its IS NULL, which only decides NULL or not; any other value is compared exactly.
    exprs: list[str] = []
    for c in cols:
        exprs.append(snowflake_ident(c.name))
        if c.family == "ts":
            exprs.append(f"{snowflake_ident(c.name)} IS NULL")
    raw = target._query(f"SELECT {', '.join(exprs)} FROM {target.database}.{target.schema}.{snowflake_ident(name)}")
    out = []
    for r in raw:
        values, i = [], 0
        for c in cols:
            v = r[i]
            if c.family == "ts":
                v = None if r[i + 1] else v
                i += 1
            values.append(_norm(c, v, True))
            i += 1
        out.append(tuple(values))
    return out


def target_column_names(target: Target, table: str) -> list[str]:
    """The target table's columns, metadata (``_etl_``) columns left out, as source names would map."""
    name = parse_table_list(table)[0].target_name()
    return [c for c in target.columns(name) if not c.lower().startswith("_etl_")]


def expected_column_names(target: Target, cols: list[Column]) -> list[str]:
    if isinstance(target, SnowflakeTarget):
        return [snowflake_column_name(c.name) for c in cols]
    return [c.name for c in cols]


# --------------------------------------------------------------------------- one comparable form


def _us(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        aware = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
        return (aware - _EPOCH) // dt.timedelta(microseconds=1)
    return v


def _decimal(v: Any) -> Any:
    # a float here would be a lossy value: keep it visible as one
    return ("float", v) if isinstance(v, float) else Decimal(v)


def _json(v: Any) -> Any:
    return ("json", json.loads(v, parse_float=Decimal) if isinstance(v, str) else v)


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "int": lambda v: ("bool", v) if isinstance(v, bool) else int(v),
    "numeric": _decimal,
    "float4": lambda v: struct.pack(">f", float(v)).hex(),
    "float8": lambda v: struct.pack(">d", float(v)).hex(),
    "bool": lambda v: v,
    "text": str,
    "enum": str,
    "date": lambda v: v,
    "ts": _us,
    "uuid": lambda v: str(v).lower(),
    "bytea": lambda v: bytes.fromhex(v) if isinstance(v, str) else bytes(v),
    "json": _json,
}


def _norm(col: Column, v: Any, snowflake: bool) -> Any:
    if v is None:
        return None
    if col.family != "array":
        return _SCALARS[col.family](v)
    if snowflake and isinstance(v, str):  # VARIANT arrives as JSON text
        v = json.loads(v, parse_float=Decimal)
    if not isinstance(v, list):
        return ("not a list", v)
    assert col.element is not None
    elem = _SCALARS[col.element]
    return [None if x is None else elem(x) for x in v]


# --------------------------------------------------------------------------- the verdict


def _short(v: Any, limit: int = 120) -> str:
    text = repr(v)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def differences(cols: list[Column], source: list[tuple[Any, ...]], target: list[tuple[Any, ...]]) -> list[str]:
    """What differs between the two sides, keyed by the primary key; at most a few of each kind."""
    keys = [i for i, c in enumerate(cols) if c.key]

    def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in keys)

    problems: list[str] = []
    tgt: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in target:
        k = key_of(row)
        if k in tgt:
            problems.append(f"duplicate key in target: {k}")
        tgt[k] = row
    src = {key_of(r): r for r in source}
    missing = sorted(k for k in src if k not in tgt)
    extra = sorted(k for k in tgt if k not in src)
    if missing:
        problems.append(f"{len(missing)} source row(s) missing in target, e.g. keys {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} target row(s) not in source, e.g. keys {extra[:5]}")
    cells: list[str] = []
    for k in sorted(src.keys() & tgt.keys()):
        for c, want, got in zip(cols, src[k], tgt[k], strict=True):
            if want != got or type(want) is not type(got):
                cells.append(f"key {k} column {c.name!r} ({c.family}): source {_short(want)}, target {_short(got)}")
    if cells:
        problems.append(f"{len(cells)} value(s) differ, e.g.:\n      " + "\n      ".join(cells[:5]))
    return problems
