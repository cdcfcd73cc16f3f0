"""Map PostgreSQL column types to Arrow and DuckDB types, and convert text values exactly.

Values arrive as PostgreSQL text output (pgoutput tuples and ``COPY ... (FORMAT csv)``),
produced under the session settings ``DateStyle=ISO, MDY``, ``IntervalStyle=iso_8601``,
``TimeZone=UTC``, ``extra_float_digits=3`` and ``bytea_output=hex``.  Every conversion is
exact: a value that the target type cannot hold raises :class:`ValueConversionError`; a
column type with no faithful target raises :class:`UnsupportedTypeError` when it is mapped.

=========================  ==================================  =========================
PostgreSQL                 Arrow                               DuckDB
=========================  ==================================  =========================
int2 / int4 / int8         int16 / int32 / int64               SMALLINT / INTEGER / BIGINT
oid                        int64                               BIGINT
numeric(p,s), p <= 38      decimal128(p,s)                     DECIMAL(p,s)
numeric(p,s), s < 0        decimal128(p-s,0)                   DECIMAL(p-s,0)
numeric(p,s), s > p        decimal128(s,s)                     DECIMAL(s,s)
numeric (unbounded)        decimal128(38,10)                   DECIMAL(38,10)
numeric(p,s), p > 38       -- UnsupportedTypeError --
float4 / float8            float32 / float64                   REAL / DOUBLE
bool                       bool                                BOOLEAN
text, varchar(n),          string                              VARCHAR
bpchar/char(n), name,
citext, "char"
date                       date32                              DATE
time                       time64[us]                          TIME
timetz                     string (as printed, with offset)    VARCHAR
timestamp                  timestamp[us]                       TIMESTAMP
timestamptz                timestamp[us, tz=UTC]               TIMESTAMPTZ
interval                   month_day_nano_interval             INTERVAL
uuid                       string                              UUID
json, jsonb                string                              JSON
xml, inet, cidr, macaddr,  string                              VARCHAR
macaddr8, money, bit,
varbit, tsvector, tsquery
bytea                      binary                              BLOB
enum                       string                              VARCHAR
domain                     as its base type
T[] (one dimension)        list<T>                             T[]
anything else              -- UnsupportedTypeError --
=========================  ==================================  =========================

Choices worth knowing:

* Unbounded ``numeric`` becomes DECIMAL(38,10), DuckDB's widest exact decimal, split as 28
  integer and 10 fractional digits.  A value needing more fractional digits (after dropping
  trailing zeros) or more integer digits, and ``NaN``/``±Infinity``, is rejected, never
  rounded.  Trailing fractional zeros beyond the 10th are dropped: the number is the same,
  only its printed scale differs.
* ``char(n)`` keeps its blank padding; ``varchar(n)``/``char(n)`` lengths are display-only.
* Dates and timestamps BC or after year 9999 are converted exactly (proleptic Gregorian, as
  in PostgreSQL).  ``infinity``/``-infinity`` are rejected: Arrow has no such value, and
  DuckDB's reading of the extreme 64-bit values as infinity is not portable to Parquet.
  Timestamps after 294247-01-10 (beyond Arrow's 64-bit microseconds since 1970) and
  ``time '24:00:00'`` (outside Arrow's ``time64`` day) are rejected too.
* ``timetz`` is kept as its text (e.g. ``12:00:00+05:30``): Arrow has no time-with-offset
  type, and turning it into a UTC time would drop the offset.
* Intervals keep PostgreSQL's three fields unnormalised; the time part is limited to
  Arrow's 64-bit nanoseconds (about ±2562047 hours, PostgreSQL allows 1000 times more).
* Arrays with a lower bound other than 1 (``[0:2]={1,2,3}``) keep their elements; the bound
  is not stored.  Multi-dimensional array values are rejected.
"""

from __future__ import annotations

import bisect
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.rows import tuple_row

from engine.decoding.interval import IntervalParseError, parse_iso_interval
from engine.decoding.pgarray import ArrayParseError, parse_array

__all__ = [
    "TYPE_INFO_SQL",
    "ColumnType",
    "ConvKind",
    "PgTypeInfo",
    "TypeCategory",
    "UnsupportedTypeError",
    "ValueConversionError",
    "convert",
    "load_type_info",
    "map_type",
]


# --------------------------------------------------------------------------- type info


class TypeCategory(StrEnum):
    """Kind of a PostgreSQL type after domains are resolved to their base type."""

    BASE = "base"
    ENUM = "enum"
    ARRAY = "array"
    COMPOSITE = "composite"
    RANGE = "range"
    MULTIRANGE = "multirange"
    PSEUDO = "pseudo"


@dataclass(frozen=True)
class PgTypeInfo:
    """A column type as the catalog describes it, domains already resolved.

    ``oid``, ``name`` and ``typmod`` describe the resolved (non-domain) type; for arrays the
    typmod is the element's, as in ``pg_attribute.atttypmod``.  ``domain`` names the domain
    the column (or array element) was declared with, if any, for messages.
    """

    oid: int
    name: str
    typmod: int = -1
    category: TypeCategory = TypeCategory.BASE
    element: PgTypeInfo | None = None
    domain: str | None = None


_TYPTYPE_CATEGORY = {
    "b": TypeCategory.BASE,
    "e": TypeCategory.ENUM,
    "c": TypeCategory.COMPOSITE,
    "r": TypeCategory.RANGE,
    "m": TypeCategory.MULTIRANGE,
    "p": TypeCategory.PSEUDO,
}

# Parameters: %(oid)s, %(typmod)s (a column's atttypid / atttypmod).  One row:
#   base_oid, base_name, base_typtype, base_typcategory, base_typmod, base_is_array, base_domains,
#   elem_oid, elem_name, elem_typtype, elem_typcategory, elem_typmod, elem_domains
# A domain's typmod applies to its base type; a domain cannot take a typmod itself, so the
# first domain in a stack that declares one wins.  An array's typmod applies to its element.
# True arrays are told apart from fixed-length types with a typelem (name, point) and from
# int2vector/oidvector by the element pointing back at them through typarray.
TYPE_INFO_SQL = """
WITH RECURSIVE
chain AS (
    SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype, t.typtypmod,
           %(typmod)s::int4 AS eff_typmod, ARRAY[]::name[] AS domains, 0 AS depth
    FROM pg_catalog.pg_type t
    WHERE t.oid = %(oid)s::oid
  UNION ALL
    SELECT b.oid, b.typname, b.typtype, b.typcategory, b.typelem, b.typbasetype, b.typtypmod,
           CASE WHEN c.typtypmod <> -1 THEN c.typtypmod ELSE c.eff_typmod END,
           c.domains || c.typname, c.depth + 1
    FROM chain c
    JOIN pg_catalog.pg_type b ON b.oid = c.typbasetype
    WHERE c.typtype = 'd' AND c.depth < 64
),
base AS (
    SELECT c.*,
           EXISTS (SELECT 1 FROM pg_catalog.pg_type e
                   WHERE e.oid = c.typelem AND e.typarray = c.oid) AS is_array
    FROM chain c
    WHERE c.typtype <> 'd'
),
elem_chain AS (
    SELECT e.oid, e.typname, e.typtype, e.typcategory, e.typbasetype, e.typtypmod,
           b.eff_typmod AS eff_typmod, ARRAY[]::name[] AS domains, 0 AS depth
    FROM base b
    JOIN pg_catalog.pg_type e ON e.oid = b.typelem
    WHERE b.is_array
  UNION ALL
    SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typbasetype, t.typtypmod,
           CASE WHEN c.typtypmod <> -1 THEN c.typtypmod ELSE c.eff_typmod END,
           c.domains || c.typname, c.depth + 1
    FROM elem_chain c
    JOIN pg_catalog.pg_type t ON t.oid = c.typbasetype
    WHERE c.typtype = 'd' AND c.depth < 64
),
elem AS (
    SELECT * FROM elem_chain WHERE typtype <> 'd'
)
SELECT b.oid::int8, b.typname::text, b.typtype::text, b.typcategory::text, b.eff_typmod,
       b.is_array, b.domains::text[],
       e.oid::int8, e.typname::text, e.typtype::text, e.typcategory::text, e.eff_typmod,
       e.domains::text[]
FROM base b
LEFT JOIN elem e ON true
"""


def load_type_info(conn: psycopg.Connection[Any], oid: int, typmod: int) -> PgTypeInfo:
    """Resolve a column type (``atttypid``, ``atttypmod``) with a psycopg 3 connection."""
    # A tuple row factory regardless of how the caller configured the connection.
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(TYPE_INFO_SQL, {"oid": oid, "typmod": typmod})
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"type oid {oid} not found in pg_type (dropped concurrently?)")
    return type_info_from_row(row)


def type_info_from_row(row: tuple[Any, ...]) -> PgTypeInfo:
    """Build a :class:`PgTypeInfo` from one :data:`TYPE_INFO_SQL` result row."""
    (b_oid, b_name, b_typtype, _b_cat, b_typmod, b_is_array, b_domains,
     e_oid, e_name, e_typtype, _e_cat, e_typmod, e_domains) = row  # fmt: skip
    domain = b_domains[0] if b_domains else None
    if b_is_array:
        if e_oid is None:
            raise LookupError(f"element type of array type {b_name} (oid {b_oid}) not found")
        element = PgTypeInfo(
            oid=int(e_oid),
            name=str(e_name),
            typmod=int(e_typmod),
            category=_TYPTYPE_CATEGORY.get(str(e_typtype), TypeCategory.PSEUDO),
            domain=e_domains[0] if e_domains else None,
        )
        return PgTypeInfo(
            oid=int(b_oid),
            name=str(b_name),
            typmod=int(b_typmod),
            category=TypeCategory.ARRAY,
            element=element,
            domain=domain,
        )
    return PgTypeInfo(
        oid=int(b_oid),
        name=str(b_name),
        typmod=int(b_typmod),
        category=_TYPTYPE_CATEGORY.get(str(b_typtype), TypeCategory.PSEUDO),
        domain=domain,
    )


# --------------------------------------------------------------------------- column types


class ConvKind(StrEnum):
    """How text values of a column are converted."""

    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    OID = "oid"
    DECIMAL = "decimal"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"
    STRING = "string"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    BYTEA = "bytea"
    ARRAY = "array"


@dataclass(frozen=True)
class ColumnType:
    """Where a PostgreSQL column lands: Arrow type, DuckDB DDL type and conversion kind."""

    pg_display: str
    arrow: pa.DataType
    duckdb: str
    toastable: bool  # varlena: may arrive as an unchanged-TOAST placeholder in updates
    kind: ConvKind
    element: ColumnType | None = None  # for ConvKind.ARRAY


class UnsupportedTypeError(ValueError):
    """A column type has no exact Arrow/DuckDB representation."""

    def __init__(self, table: str, column: str, type_name: str, reason: str, hint: str) -> None:
        self.table = table
        self.column = column
        self.type_name = type_name
        self.reason = reason
        self.hint = hint
        super().__init__(
            f"column {column!r} of table {table!r} has type {type_name}, which cannot be replicated: "
            f"{reason}. Hint: {hint}"
        )


class ValueConversionError(ValueError):
    """A value cannot be converted to its column's target type without changing it."""

    def __init__(
        self,
        table: str,
        column: str,
        value: str,
        reason: str,
        hint: str,
        type_name: str | None = None,
        index: int | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.value = value
        self.reason = reason
        self.hint = hint
        self.type_name = type_name
        self.index = index
        typed = f" ({type_name})" if type_name else ""
        super().__init__(
            f"cannot convert value {_shorten(value)!r} in column {column!r}{typed} of table {table!r}: "
            f"{reason}. Hint: {hint}"
        )


def _shorten(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


_HINT_UNSUPPORTED = (
    "logical replication sends the column as stored, so it cannot be cast on the way; change the "
    "column type in PostgreSQL (e.g. ALTER TABLE ... ALTER COLUMN ... TYPE text) or exclude the table"
)
_HINT_VALUE = "fix or remove the value in PostgreSQL, change the column type, or exclude the table"


@dataclass(frozen=True)
class _Simple:
    name: str
    kind: ConvKind
    arrow: pa.DataType
    duckdb: str
    toastable: bool


_K = ConvKind
_STR = pa.string()

# Built-in types by OID: stable across installations, immune to look-alike names in user schemas.
_BUILTIN: dict[int, _Simple] = {
    16: _Simple("bool", _K.BOOL, pa.bool_(), "BOOLEAN", False),
    17: _Simple("bytea", _K.BYTEA, pa.binary(), "BLOB", True),
    18: _Simple('"char"', _K.STRING, _STR, "VARCHAR", False),
    19: _Simple("name", _K.STRING, _STR, "VARCHAR", False),
    20: _Simple("int8", _K.INT64, pa.int64(), "BIGINT", False),
    21: _Simple("int2", _K.INT16, pa.int16(), "SMALLINT", False),
    23: _Simple("int4", _K.INT32, pa.int32(), "INTEGER", False),
    25: _Simple("text", _K.STRING, _STR, "VARCHAR", True),
    26: _Simple("oid", _K.OID, pa.int64(), "BIGINT", False),
    114: _Simple("json", _K.STRING, _STR, "JSON", True),
    142: _Simple("xml", _K.STRING, _STR, "VARCHAR", True),
    650: _Simple("cidr", _K.STRING, _STR, "VARCHAR", True),
    700: _Simple("float4", _K.FLOAT32, pa.float32(), "REAL", False),
    701: _Simple("float8", _K.FLOAT64, pa.float64(), "DOUBLE", False),
    774: _Simple("macaddr8", _K.STRING, _STR, "VARCHAR", False),
    790: _Simple("money", _K.STRING, _STR, "VARCHAR", False),
    829: _Simple("macaddr", _K.STRING, _STR, "VARCHAR", False),
    869: _Simple("inet", _K.STRING, _STR, "VARCHAR", True),
    1042: _Simple("bpchar", _K.STRING, _STR, "VARCHAR", True),
    1043: _Simple("varchar", _K.STRING, _STR, "VARCHAR", True),
    1082: _Simple("date", _K.DATE, pa.date32(), "DATE", False),
    1083: _Simple("time", _K.TIME, pa.time64("us"), "TIME", False),
    1114: _Simple("timestamp", _K.TIMESTAMP, pa.timestamp("us"), "TIMESTAMP", False),
    1184: _Simple("timestamptz", _K.TIMESTAMPTZ, pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", False),
    1186: _Simple("interval", _K.INTERVAL, pa.month_day_nano_interval(), "INTERVAL", False),
    1266: _Simple("timetz", _K.STRING, _STR, "VARCHAR", False),
    1560: _Simple("bit", _K.STRING, _STR, "VARCHAR", True),
    1562: _Simple("varbit", _K.STRING, _STR, "VARCHAR", True),
    2950: _Simple("uuid", _K.STRING, _STR, "UUID", False),
    3614: _Simple("tsvector", _K.STRING, _STR, "VARCHAR", True),
    3615: _Simple("tsquery", _K.STRING, _STR, "VARCHAR", True),
    3802: _Simple("jsonb", _K.STRING, _STR, "JSON", True),
}
_NUMERIC_OID = 1700
_FIRST_NORMAL_OID = 16384  # OIDs below this are assigned by initdb, so built-in
# Extension types have installation-specific OIDs and are recognised by name.
_EXTENSION: dict[str, _Simple] = {
    "citext": _Simple("citext", _K.STRING, _STR, "VARCHAR", True),
}

_DUCKDB_MAX_DECIMAL = 38
_UNBOUNDED_NUMERIC = (38, 10)

_TYPMOD_DISPLAY_LENGTH = {1042, 1043}  # typmod - 4 is the length
_TYPMOD_DISPLAY_DIRECT = {1083, 1114, 1184, 1266, 1560, 1562}  # typmod is the parameter


def _numeric_typmod(typmod: int) -> tuple[int, int] | None:
    if typmod < 4:
        return None
    raw = typmod - 4
    precision = (raw >> 16) & 0xFFFF
    scale = ((raw & 0x7FF) ^ 1024) - 1024  # 11-bit signed since PostgreSQL 15
    return precision, scale


def _display(info: PgTypeInfo) -> str:
    if info.category is TypeCategory.ARRAY and info.element is not None:
        return f"{_display(info.element)}[]"
    name = _BUILTIN[info.oid].name if info.oid in _BUILTIN else info.name
    if info.oid == _NUMERIC_OID:
        ps = _numeric_typmod(info.typmod)
        return "numeric" if ps is None else f"numeric({ps[0]},{ps[1]})"
    if info.oid in _TYPMOD_DISPLAY_LENGTH and info.typmod >= 4:
        return f"{name}({info.typmod - 4})"
    if info.oid in _TYPMOD_DISPLAY_DIRECT and info.typmod >= 0:
        return f"{name}({info.typmod})"
    return name


def map_type(info: PgTypeInfo, table: str, column: str) -> ColumnType:
    """Decide the Arrow and DuckDB types for a column, or raise :class:`UnsupportedTypeError`."""
    display = _display(info)
    shown = f"{display} (domain {info.domain})" if info.domain else display

    def unsupported(reason: str, hint: str = _HINT_UNSUPPORTED) -> UnsupportedTypeError:
        return UnsupportedTypeError(table, column, shown, reason, hint)

    if info.category is TypeCategory.ARRAY:
        if info.element is None:
            raise unsupported("the array's element type is unknown")
        if info.element.category is TypeCategory.ARRAY:
            raise unsupported("arrays of arrays are not supported")
        try:
            elem = map_type(info.element, table, column)
        except UnsupportedTypeError as exc:
            raise unsupported(f"its element type is not supported ({exc.reason})", exc.hint) from None
        return ColumnType(
            pg_display=display,
            arrow=pa.list_(elem.arrow),
            duckdb=f"{elem.duckdb}[]",
            toastable=True,
            kind=ConvKind.ARRAY,
            element=elem,
        )

    if info.category is TypeCategory.ENUM:
        return ColumnType(display, pa.string(), "VARCHAR", toastable=False, kind=ConvKind.STRING)

    if info.category is not TypeCategory.BASE:
        raise unsupported(f"{info.category.value} types have no Arrow/DuckDB mapping")

    if info.oid == _NUMERIC_OID:
        return _map_numeric(info, display, unsupported)

    simple = _BUILTIN.get(info.oid)
    if simple is None and info.oid >= _FIRST_NORMAL_OID:
        simple = _EXTENSION.get(info.name)
    if simple is None:
        raise unsupported("the type has no exact Arrow/DuckDB mapping")
    return ColumnType(display, simple.arrow, simple.duckdb, simple.toastable, simple.kind)


def _map_numeric(info: PgTypeInfo, display: str, unsupported: Callable[..., UnsupportedTypeError]) -> ColumnType:
    ps = _numeric_typmod(info.typmod)
    if ps is None:
        precision, scale = _UNBOUNDED_NUMERIC
    else:
        declared_p, declared_s = ps
        if declared_s < 0:
            # numeric(5,-2) holds integers of up to 7 digits, all exactly representable at scale 0.
            precision, scale = declared_p - declared_s, 0
        else:
            # numeric(3,5) holds values below 0.01 with 5 fractional digits: DECIMAL(5,5).
            precision, scale = max(declared_p, declared_s), declared_s
        if precision > _DUCKDB_MAX_DECIMAL:
            raise unsupported(
                f"it needs {precision} decimal digits",
                "DuckDB DECIMAL holds at most 38 digits; declare a smaller precision in PostgreSQL "
                "(e.g. numeric(38,s)) or exclude the table",
            )
    return ColumnType(
        pg_display=display,
        arrow=pa.decimal128(precision, scale),
        duckdb=f"DECIMAL({precision},{scale})",
        toastable=True,
        kind=ConvKind.DECIMAL,
    )


# --------------------------------------------------------------------------- conversion


class _Reject(Exception):
    """A single value cannot be converted; carries the reason for the user."""

    def __init__(self, reason: str, hint: str = _HINT_VALUE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class _Site:
    table: str
    column: str
    ctype: ColumnType
    in_array: bool = False

    def error(self, value: str, reason: str, hint: str = _HINT_VALUE, index: int | None = None) -> ValueConversionError:
        if self.in_array:
            reason = f"array element {_shorten(value, 40)!r}: {reason}"
        return ValueConversionError(
            self.table, self.column, value, reason, hint, type_name=self.ctype.pg_display, index=index
        )


def convert(values: pa.Array, ctype: ColumnType, table: str, column: str) -> pa.Array:
    """Convert PostgreSQL text output (binary/string, nulls allowed) to ``ctype.arrow``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    site = _Site(table, column, ctype)
    return _convert_text(_as_text(values, site), site)


def _convert_text(text: pa.StringArray, site: _Site) -> pa.Array:
    if text.null_count == len(text):
        return pa.nulls(len(text), site.ctype.arrow)
    return _CONVERTERS[site.ctype.kind](text, site)


def _as_text(values: pa.Array, site: _Site) -> pa.StringArray:
    t = values.type
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        values = values.cast(pa.binary())
        t = values.type
    elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
        values = values.cast(pa.string())
        t = values.type
    if pa.types.is_string(t):
        return values
    if pa.types.is_binary(t):
        try:
            return values.cast(pa.string())
        except pa.ArrowInvalid:
            idx = _first_failing(values, lambda a: a.cast(pa.string()))
            raw = values[idx].as_py()
            raise site.error(
                raw.decode("utf-8", "backslashreplace"),
                "the text is not valid UTF-8",
                "the source database must use UTF8 encoding (client_encoding UTF8)",
                index=idx,
            ) from None
    raise TypeError(f"expected a binary or string array of PostgreSQL text output, got {t}")


def _first_failing(arr: pa.Array, attempt: Callable[[pa.Array], object]) -> int:
    """Index of the first element for which ``attempt`` fails, found by bisection.

    Only used once a whole-array attempt failed, so the error can name the value.
    """
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            attempt(arr.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            hi = mid
        else:
            lo = mid
    return lo


def _cast_exact(text: pa.StringArray, target: pa.DataType, site: _Site, explain: Callable[[str], str]) -> pa.Array:
    try:
        return pc.cast(text, target)
    except pa.ArrowInvalid:
        idx = _first_failing(text, lambda a: pc.cast(a, target))
        value = text[idx].as_py()
        raise site.error(value, explain(value), index=idx) from None


# ---- integers, floats, booleans, decimals

_INTEGER_TEXT = re.compile(r"-?\d+", re.ASCII)


def _explain_int(target: pa.DataType) -> Callable[[str], str]:
    def explain(value: str) -> str:
        if _INTEGER_TEXT.fullmatch(value):
            return f"out of range for {target}"
        return "not an integer"

    return explain


def _conv_int16(text: pa.StringArray, site: _Site) -> pa.Array:
    return _cast_exact(text, pa.int16(), site, _explain_int(pa.int16()))


def _conv_int32(text: pa.StringArray, site: _Site) -> pa.Array:
    return _cast_exact(text, pa.int32(), site, _explain_int(pa.int32()))


def _conv_int64(text: pa.StringArray, site: _Site) -> pa.Array:
    return _cast_exact(text, pa.int64(), site, _explain_int(pa.int64()))


def _conv_oid(text: pa.StringArray, site: _Site) -> pa.Array:
    # Parsed as uint32 for the range check, stored as int64 (BIGINT has no unsigned surprises).
    return _cast_exact(text, pa.uint32(), site, _explain_int(pa.uint32())).cast(pa.int64())


_INFINITIES = pa.array(["Infinity", "-Infinity"])


def _conv_float(target: pa.DataType) -> Callable[[pa.StringArray, _Site], pa.Array]:
    def conv(text: pa.StringArray, site: _Site) -> pa.Array:
        out = _cast_exact(text, target, site, lambda _v: "not a floating-point number")
        # Arrow saturates out-of-range text to ±inf; PostgreSQL never prints such values, but a
        # silent infinity would be a changed value, so check whenever one appears.
        inf = pc.is_inf(out)
        if pc.any(inf).as_py():
            bad = pc.and_(inf, pc.invert(pc.is_in(text, value_set=_INFINITIES)))
            if pc.any(bad).as_py():
                idx = pc.index(bad, True).as_py()
                raise site.error(text[idx].as_py(), f"out of range for {target}", index=idx)
        return out

    return conv


_BOOL_TEXT = pa.array(["t", "f"])


def _conv_bool(text: pa.StringArray, site: _Site) -> pa.Array:
    bad = pc.and_(text.is_valid(), pc.invert(pc.is_in(text, value_set=_BOOL_TEXT)))
    if pc.any(bad).as_py():
        idx = pc.index(bad, True).as_py()
        raise site.error(text[idx].as_py(), "a boolean must be 't' or 'f'", index=idx)
    return pc.equal(text, "t")


_DECIMAL_TEXT = re.compile(r"-?(\d*)(?:\.(\d*))?", re.ASCII)


def _conv_decimal(text: pa.StringArray, site: _Site) -> pa.Array:
    target = site.ctype.arrow
    assert isinstance(target, pa.Decimal128Type)

    def explain(value: str) -> str:
        if value in ("NaN", "Infinity", "-Infinity"):
            return f"{value} cannot be stored in DECIMAL({target.precision},{target.scale})"
        m = _DECIMAL_TEXT.fullmatch(value)
        if m is None:
            return "not a decimal number"
        whole, frac = m.group(1).lstrip("0"), (m.group(2) or "").rstrip("0")
        if len(frac) > target.scale:
            return (
                f"it has {len(frac)} fractional digits but DECIMAL({target.precision},{target.scale}) "
                f"keeps {target.scale}; it would have to be rounded"
            )
        room = target.precision - target.scale
        if len(whole) > room:
            return (
                f"it has {len(whole)} integer digits but DECIMAL({target.precision},{target.scale}) "
                f"holds at most {room}"
            )
        return f"not representable as DECIMAL({target.precision},{target.scale})"

    # Arrow's string→decimal cast refuses both precision overflow and lossy rescaling
    # ("Rescaling Decimal value would cause data loss"), so no value is rounded here.
    return _cast_exact(text, target, site, explain)


def _conv_string(text: pa.StringArray, site: _Site) -> pa.Array:
    return text


# ---- bytea


def _conv_bytea(text: pa.StringArray, site: _Site) -> pa.Array:
    valid = text.is_valid()
    ok = pc.and_(pc.starts_with(text, "\\x"), pc.equal(pc.bit_wise_and(pc.binary_length(text), 1), 0))
    bad = pc.and_(valid, pc.invert(ok))
    if pc.any(bad).as_py():
        idx = pc.index(bad, True).as_py()
        raise site.error(text[idx].as_py(), "bytea text must be hex ('\\x...'); set bytea_output=hex", index=idx)
    # An explicit stop: pyarrow 26's binary_slice without one fails ("Negative buffer resize").
    digits = pc.binary_slice(text.cast(pa.binary()), 2, _INT32_MAX)
    offsets = pa.Array.from_buffers(pa.int32(), len(digits) + 1, [None, digits.buffers()[1]], offset=digits.offset)
    start, stop = offsets[0].as_py(), offsets[-1].as_py()
    hex_text = digits.buffers()[2].to_pybytes()[start:stop] if stop > start else b""
    try:
        data = bytes.fromhex(hex_text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        data = None
    # bytes.fromhex skips whitespace between bytes, which would shift every later value; a
    # length check catches it along with any invalid digit.
    if data is None or 2 * len(data) != len(hex_text):
        for i, v in enumerate(text.to_pylist()):
            if v is None:
                continue
            try:
                if 2 * len(bytes.fromhex(v[2:])) == len(v) - 2:
                    continue
            except ValueError:
                pass
            raise site.error(v, "not valid hex bytea text", index=i)
        raise AssertionError("unreachable: bytea batch failed but no value did")
    half = pc.divide(pc.subtract(offsets, offsets[0]), 2).cast(pa.int32())
    out = pa.Array.from_buffers(pa.binary(), len(text), [None, half.buffers()[1], pa.py_buffer(data)])
    if text.null_count:
        out = pc.if_else(valid, out, pa.scalar(None, pa.binary()))
    return out


# ---- interval


_MONTH_DAY_NANO = struct.Struct("<iiq")  # Arrow's month_day_nano_interval value layout


def _conv_interval(text: pa.StringArray, site: _Site) -> pa.Array:
    # Parsing is per value in Python, so parse each distinct text once: interval columns
    # usually repeat a handful of values ('P1M', 'PT1H').
    encoded = pc.dictionary_encode(text)
    distinct = encoded.dictionary.to_pylist()
    data = bytearray(_MONTH_DAY_NANO.size * len(distinct))
    for j, v in enumerate(distinct):
        try:
            iv = parse_iso_interval(v)
        except IntervalParseError as exc:
            raise site.error(v, exc.reason, index=pc.index(text, v).as_py()) from None
        _MONTH_DAY_NANO.pack_into(data, _MONTH_DAY_NANO.size * j, iv.months, iv.days, iv.nanoseconds)
    values = pa.Array.from_buffers(pa.month_day_nano_interval(), len(distinct), [None, pa.py_buffer(data)])
    return pc.take(values, encoded.indices)


# ---- dates and times
#
# Arrow's ISO 8601 cast handles the common 'YYYY-MM-DD HH:MM:SS.ffffff[+hh[:mm]]' text at
# full speed and rejects what it cannot read (' BC', 5-digit years, 'infinity', offsets with
# seconds) instead of misreading it.  Only when a batch contains such a value are the odd rows
# parsed in Python, exactly, and merged back.

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_US_PER_DAY = 86_400_000_000
_HINT_INFINITY = (
    "Arrow has no infinite dates/timestamps; replace them in PostgreSQL (e.g. with NULL) or exclude the table"
)

_DATE_RE = re.compile(r"(\d{4,})-(\d\d)-(\d\d)( BC)?", re.ASCII)
_TIME_RE = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?", re.ASCII)
_TS_RE = re.compile(
    r"(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?"
    r"(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?",
    re.ASCII,
)
_REGULAR_DATE = r"^\d{4}-\d\d-\d\d$"
_REGULAR_TIME = r"^([01]\d|2[0-3]):\d\d:\d\d(\.\d{1,6})?$"
_REGULAR_TS = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$"
_REGULAR_TSTZ = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?$"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (astronomical years)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _check_date(year: int, month: int, day: int) -> None:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    mdays = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= mdays[month - 1]:
        raise _Reject("not a valid calendar date")


def _year(digits: str, bc: str | None) -> int:
    # PostgreSQL has no year 0: 1 BC is astronomical year 0.
    return 1 - int(digits) if bc else int(digits)


def _parse_date_days(value: str) -> int:
    if value in ("infinity", "-infinity"):
        raise _Reject(f"date '{value}' has no Arrow equivalent", _HINT_INFINITY)
    m = _DATE_RE.fullmatch(value)
    if m is None:
        raise _Reject("not a PostgreSQL ISO date (DateStyle must be ISO)")
    year, month, day = _year(m.group(1), m.group(4)), int(m.group(2)), int(m.group(3))
    _check_date(year, month, day)
    days = _days_from_civil(year, month, day)
    if not -_INT32_MAX < days < _INT32_MAX:  # ±INT32_MAX are DuckDB's ±infinity
        raise _Reject("outside the range of Arrow date32")
    return days


def _parse_time_us(value: str) -> int:
    m = _TIME_RE.fullmatch(value)
    if m is None:
        raise _Reject("not a PostgreSQL time (HH:MM:SS[.ffffff])")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if h == 24 and mi == 0 and s == 0 and not (m.group(4) or "").strip("0"):
        raise _Reject("24:00:00 is outside Arrow's time64 range [00:00:00, 24:00:00)")
    if h > 23 or mi > 59 or s > 59:
        raise _Reject("not a valid time of day")
    return ((h * 60 + mi) * 60 + s) * 1_000_000 + int((m.group(4) or "").ljust(6, "0"))


def _timestamp_parser(with_tz: bool) -> Callable[[str], int]:
    kind = "timestamptz" if with_tz else "timestamp"

    def parse(value: str) -> int:
        if value in ("infinity", "-infinity"):
            raise _Reject(f"{kind} '{value}' has no Arrow equivalent", _HINT_INFINITY)
        m = _TS_RE.fullmatch(value)
        if m is None:
            raise _Reject(f"not a PostgreSQL ISO {kind} (DateStyle must be ISO)")
        (y, mo, d, hh, mi, ss, frac, sign, oh, om, os_, bc) = m.groups()
        if (sign is not None) != with_tz:
            raise _Reject("unexpected zone offset" if sign else "missing zone offset")
        year, month, day = _year(y, bc), int(mo), int(d)
        _check_date(year, month, day)
        h, minute, sec = int(hh or 0), int(mi or 0), int(ss or 0)
        if h > 23 or minute > 59 or sec > 59:
            raise _Reject("not a valid time of day")
        us = (((_days_from_civil(year, month, day) * 24 + h) * 60 + minute) * 60 + sec) * 1_000_000
        us += int((frac or "").ljust(6, "0"))
        if sign is not None:
            offset = (int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)) * 1_000_000
            us -= offset if sign == "+" else -offset  # local time minus offset = UTC
        if not -_INT64_MAX < us < _INT64_MAX:  # ±INT64_MAX are DuckDB's ±infinity
            raise _Reject("outside Arrow's timestamp range (64-bit microseconds since 1970, up to 294247 AD)")
        return us

    return parse


def _time_fast(text: pa.StringArray) -> pa.Array:
    # Arrow has no string→time cast; read it as a time on 1970-01-01 and keep the time of day.
    stamped = pc.binary_join_element_wise(pa.scalar("1970-01-01 "), text, "")
    return pc.cast(pc.cast(stamped, pa.timestamp("us")), pa.time64("us"))


def _temporal(
    text: pa.StringArray,
    site: _Site,
    fast: Callable[[pa.StringArray], pa.Array],
    regular: str,
    slow: Callable[[str], int],
    storage: pa.DataType,
) -> pa.Array:
    target = site.ctype.arrow
    try:
        return fast(text)
    except pa.ArrowInvalid:
        pass

    def reason_for(value: str) -> _Reject:
        try:
            slow(value)
        except _Reject as rej:
            return rej
        return _Reject(f"not a valid {site.ctype.pg_display} value")

    is_regular = pc.fill_null(pc.match_substring_regex(text, regular), True)
    regular_text = pc.if_else(is_regular, text, pa.scalar(None, pa.string()))
    try:
        fast_out = fast(regular_text)
    except pa.ArrowInvalid:
        idx = _first_failing(regular_text, fast)
        value = text[idx].as_py()
        rej = reason_for(value)
        raise site.error(value, rej.reason, rej.hint, index=idx) from None

    odd_mask = pc.invert(is_regular)
    odd_idx = pc.indices_nonzero(odd_mask).to_pylist()
    slow_values: list[int] = []
    for i in odd_idx:
        value = text[i].as_py()
        try:
            slow_values.append(slow(value))
        except _Reject as rej:
            raise site.error(value, rej.reason, rej.hint, index=i) from None
    merged = pc.replace_with_mask(fast_out.cast(storage), odd_mask, pa.array(slow_values, storage))
    return merged.cast(target)


def _conv_date(text: pa.StringArray, site: _Site) -> pa.Array:
    return _temporal(text, site, lambda a: pc.cast(a, pa.date32()), _REGULAR_DATE, _parse_date_days, pa.int32())


def _conv_time(text: pa.StringArray, site: _Site) -> pa.Array:
    return _temporal(text, site, _time_fast, _REGULAR_TIME, _parse_time_us, pa.int64())


def _conv_timestamp(text: pa.StringArray, site: _Site) -> pa.Array:
    target = pa.timestamp("us")
    return _temporal(text, site, lambda a: pc.cast(a, target), _REGULAR_TS, _timestamp_parser(False), pa.int64())


def _conv_timestamptz(text: pa.StringArray, site: _Site) -> pa.Array:
    target = pa.timestamp("us", tz="UTC")
    return _temporal(text, site, lambda a: pc.cast(a, target), _REGULAR_TSTZ, _timestamp_parser(True), pa.int64())


# ---- arrays


def _conv_array(text: pa.StringArray, site: _Site) -> pa.Array:
    elem = site.ctype.element
    assert elem is not None
    offsets: list[int] = [0]
    nulls: list[bool] = []
    flat: list[str | None] = []
    for i, v in enumerate(text.to_pylist()):
        if v is None:
            nulls.append(True)
        else:
            try:
                flat.extend(parse_array(v))
            except ArrayParseError as exc:
                raise site.error(v, exc.reason, index=i) from None
            nulls.append(False)
        offsets.append(len(flat))
    elem_site = _Site(site.table, site.column, elem, in_array=True)
    try:
        values = _convert_text(pa.array(flat, pa.string()), elem_site)
    except ValueConversionError as exc:
        if exc.index is None:
            raise
        # Report the row, not the position in the flattened elements.
        row = bisect.bisect_right(offsets, exc.index) - 1
        raise ValueConversionError(
            exc.table, exc.column, exc.value, exc.reason, exc.hint, site.ctype.pg_display, index=row
        ) from None
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        values,
        type=site.ctype.arrow,
        mask=pa.array(nulls, pa.bool_()) if text.null_count else None,
    )


_CONVERTERS: dict[ConvKind, Callable[[pa.StringArray, _Site], pa.Array]] = {
    ConvKind.INT16: _conv_int16,
    ConvKind.INT32: _conv_int32,
    ConvKind.INT64: _conv_int64,
    ConvKind.OID: _conv_oid,
    ConvKind.DECIMAL: _conv_decimal,
    ConvKind.FLOAT32: _conv_float(pa.float32()),
    ConvKind.FLOAT64: _conv_float(pa.float64()),
    ConvKind.BOOL: _conv_bool,
    ConvKind.STRING: _conv_string,
    ConvKind.DATE: _conv_date,
    ConvKind.TIME: _conv_time,
    ConvKind.TIMESTAMP: _conv_timestamp,
    ConvKind.TIMESTAMPTZ: _conv_timestamptz,
    ConvKind.INTERVAL: _conv_interval,
    ConvKind.BYTEA: _conv_bytea,
    ConvKind.ARRAY: _conv_array,
}
