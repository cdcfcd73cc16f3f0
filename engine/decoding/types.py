"""The type map: which column type a PostgreSQL type becomes, or why it has none.

A column type (:class:`ColumnType`) is the engine's own: the Arrow type its values take and the
kind of value it holds (:class:`ConvKind`), which decides how PostgreSQL's text is converted
(:mod:`engine.decoding.convert`) and which type each destination gives it (its own map, e.g.
``engine/destinations/duckdb/types.py``). Every mapping is exact: a type with no faithful
target raises :class:`~engine.errors.UnsupportedTypeError` when it is mapped.

=========================  ==================================  ============
PostgreSQL                 Arrow                               ConvKind
=========================  ==================================  ============
int2 / int4 / int8         int16 / int32 / int64               INT16/32/64
oid                        int64                               OID
numeric(p,s), p <= 38      decimal128(p,s)                     DECIMAL
numeric(p,s), s < 0        decimal128(p-s,0)                   DECIMAL
numeric(p,s), s > p        decimal128(s,s)                     DECIMAL
numeric (unbounded)        decimal128(38,s) or string          DECIMAL or STRING
                           (chosen per table, see below)
numeric(p,s), p > 38       -- UnsupportedTypeError --
float4 / float8            float32 / float64                   FLOAT32/64
bool                       bool                                BOOL
text, varchar(n),          string                              STRING
bpchar/char(n), name,
citext, "char"
date                       date32                              DATE
time                       time64[us]                          TIME
timetz                     string (as printed, with offset)    STRING
timestamp                  timestamp[us]                       TIMESTAMP
timestamptz                timestamp[us, tz=UTC]               TIMESTAMPTZ
interval                   month_day_nano_interval             INTERVAL
uuid                       string                              UUID
json, jsonb                string                              JSON
xml, inet, cidr, macaddr,  string                              STRING
macaddr8, money, bit,
varbit, tsvector, tsquery
bytea                      binary                              BYTEA
enum                       string                              STRING
domain                     as its base type
T[] (one dimension)        list<T>                             ARRAY
anything else              -- UnsupportedTypeError --
=========================  ==================================  ============

Unbounded ``numeric`` has no one exact decimal type, so its type is chosen per pipeline and
table (:func:`numeric_column_type`): an override (``--column-type``), or what the initial copy
measured of the column's rows (``engine/source/numeric_scale.py``): decimal128(38,s), or the
value's exact text. :func:`map_type` gives it decimal128(38,10) (28 integer and 10 fractional
digits), the type of a column nothing was measured for; the converters reject, never round, a
value that needs more, and the refusal's hint says how to choose another type.
``char(n)`` keeps its blank padding; ``varchar(n)``/``char(n)`` lengths are display-only. The
catalog query that resolves a column's type (domains, arrays) is ``engine/source/pg_types.py``;
:class:`PgTypeInfo` is its answer, and the input here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from engine.config.models import NumericTarget, NumericTargetKind
from engine.errors import UnsupportedTypeError

__all__ = [
    "UNMEASURED_NUMERIC",
    "ColumnType",
    "ConvKind",
    "PgTypeInfo",
    "TypeCategory",
    "map_type",
    "numeric_column_type",
]


# --------------------------------------------------------------------------- PostgreSQL types


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


# --------------------------------------------------------------------------- column types


class ConvKind(StrEnum):
    """What a column's values are: it decides how their text is converted and which type each
    destination gives them (JSON and UUID are strings that some destinations type apart)."""

    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    OID = "oid"
    DECIMAL = "decimal"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"
    STRING = "string"
    JSON = "json"
    UUID = "uuid"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    BYTEA = "bytea"
    ARRAY = "array"


@dataclass(frozen=True)
class ColumnType:
    """Where a PostgreSQL column lands: its Arrow type and the kind of value it holds."""

    pg_display: str
    arrow: pa.DataType
    toastable: bool  # varlena: may arrive as an unchanged-TOAST placeholder in updates
    kind: ConvKind
    element: ColumnType | None = None  # for ConvKind.ARRAY
    # unbounded numeric: its type was chosen (numeric_column_type), not declared
    unbounded: bool = False
    # what to do when a value does not fit the chosen type (empty: the converters' own hint)
    misfit_hint: str = ""


_HINT_UNSUPPORTED = (
    "logical replication sends the column as stored, so it cannot be cast on the way; change the "
    "column type in PostgreSQL (e.g. ALTER TABLE ... ALTER COLUMN ... TYPE text) or exclude the table"
)


@dataclass(frozen=True)
class _Simple:
    name: str
    kind: ConvKind
    arrow: pa.DataType
    toastable: bool


_K = ConvKind
_STR = pa.string()

# Built-in types by OID: stable across installations, immune to look-alike names in user schemas.
_BUILTIN: dict[int, _Simple] = {
    16: _Simple("bool", _K.BOOL, pa.bool_(), False),
    17: _Simple("bytea", _K.BYTEA, pa.binary(), True),
    18: _Simple('"char"', _K.STRING, _STR, False),
    19: _Simple("name", _K.STRING, _STR, False),
    20: _Simple("int8", _K.INT64, pa.int64(), False),
    21: _Simple("int2", _K.INT16, pa.int16(), False),
    23: _Simple("int4", _K.INT32, pa.int32(), False),
    25: _Simple("text", _K.STRING, _STR, True),
    26: _Simple("oid", _K.OID, pa.int64(), False),
    114: _Simple("json", _K.JSON, _STR, True),
    142: _Simple("xml", _K.STRING, _STR, True),
    650: _Simple("cidr", _K.STRING, _STR, True),
    700: _Simple("float4", _K.FLOAT32, pa.float32(), False),
    701: _Simple("float8", _K.FLOAT64, pa.float64(), False),
    774: _Simple("macaddr8", _K.STRING, _STR, False),
    790: _Simple("money", _K.STRING, _STR, False),
    829: _Simple("macaddr", _K.STRING, _STR, False),
    869: _Simple("inet", _K.STRING, _STR, True),
    1042: _Simple("bpchar", _K.STRING, _STR, True),
    1043: _Simple("varchar", _K.STRING, _STR, True),
    1082: _Simple("date", _K.DATE, pa.date32(), False),
    1083: _Simple("time", _K.TIME, pa.time64("us"), False),
    1114: _Simple("timestamp", _K.TIMESTAMP, pa.timestamp("us"), False),
    1184: _Simple("timestamptz", _K.TIMESTAMPTZ, pa.timestamp("us", tz="UTC"), False),
    1186: _Simple("interval", _K.INTERVAL, pa.month_day_nano_interval(), False),
    1266: _Simple("timetz", _K.STRING, _STR, False),
    1560: _Simple("bit", _K.STRING, _STR, True),
    1562: _Simple("varbit", _K.STRING, _STR, True),
    2950: _Simple("uuid", _K.UUID, _STR, False),
    3614: _Simple("tsvector", _K.STRING, _STR, True),
    3615: _Simple("tsquery", _K.STRING, _STR, True),
    3802: _Simple("jsonb", _K.JSON, _STR, True),
}
_NUMERIC_OID = 1700
_FIRST_NORMAL_OID = 16384  # OIDs below this are assigned by initdb, so built-in
# Extension types have installation-specific OIDs and are recognised by name.
_EXTENSION: dict[str, _Simple] = {
    "citext": _Simple("citext", _K.STRING, _STR, True),
}

_MAX_DECIMAL_DIGITS = 38  # Arrow's decimal128, and DuckDB's DECIMAL
# What an unbounded numeric column gets when nothing was measured (a column added while
# streaming, or a table copied before types were chosen): what such columns always got.
UNMEASURED_NUMERIC = NumericTarget(NumericTargetKind.DECIMAL, 38, 10)

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
    """Decide the column type for a column, or raise :class:`UnsupportedTypeError`."""
    display = _display(info)
    shown = f"{display} (domain {info.domain})" if info.domain else display

    def unsupported(detail: str, hint: str = _HINT_UNSUPPORTED) -> UnsupportedTypeError:
        return UnsupportedTypeError(table, column, shown, detail, hint)

    if info.category is TypeCategory.ARRAY:
        if info.element is None:
            raise unsupported("the array's element type is unknown")
        if info.element.category is TypeCategory.ARRAY:
            raise unsupported("arrays of arrays are not supported")
        try:
            elem = map_type(info.element, table, column)
        except UnsupportedTypeError as exc:
            raise unsupported(f"its element type is not supported ({exc.detail})", exc.hint) from None
        return ColumnType(
            pg_display=display,
            arrow=pa.list_(elem.arrow),
            toastable=True,
            kind=ConvKind.ARRAY,
            element=elem,
        )

    if info.category is TypeCategory.ENUM:
        return ColumnType(display, pa.string(), toastable=False, kind=ConvKind.STRING)

    if info.category is not TypeCategory.BASE:
        raise unsupported(f"{info.category.value} types have no Arrow/DuckDB mapping")

    if info.oid == _NUMERIC_OID:
        return _map_numeric(info, display, unsupported)

    simple = _BUILTIN.get(info.oid)
    if simple is None and info.oid >= _FIRST_NORMAL_OID:
        simple = _EXTENSION.get(info.name)
    if simple is None:
        raise unsupported("the type has no exact Arrow/DuckDB mapping")
    return ColumnType(display, simple.arrow, simple.toastable, simple.kind)


def numeric_column_type(target: NumericTarget, pg_display: str = "numeric", misfit_hint: str = "") -> ColumnType:
    """The column type of a numeric column whose type was chosen: DECIMAL(p,s) or exact text."""
    if target.kind is NumericTargetKind.TEXT:
        # as PostgreSQL prints it: every digit, and NaN / Infinity as words
        return ColumnType(pg_display, pa.string(), True, ConvKind.STRING, unbounded=True, misfit_hint=misfit_hint)
    return ColumnType(
        pg_display,
        pa.decimal128(target.precision, target.scale),
        True,
        ConvKind.DECIMAL,
        unbounded=True,
        misfit_hint=misfit_hint,
    )


def _map_numeric(info: PgTypeInfo, display: str, unsupported: Callable[..., UnsupportedTypeError]) -> ColumnType:
    ps = _numeric_typmod(info.typmod)
    if ps is None:
        return numeric_column_type(UNMEASURED_NUMERIC, display)
    declared_p, declared_s = ps
    if declared_s < 0:
        # numeric(5,-2) holds integers of up to 7 digits, all exactly representable at scale 0.
        precision, scale = declared_p - declared_s, 0
    else:
        # numeric(3,5) holds values below 0.01 with 5 fractional digits: DECIMAL(5,5).
        precision, scale = max(declared_p, declared_s), declared_s
    if precision > _MAX_DECIMAL_DIGITS:
        raise unsupported(
            f"it needs {precision} decimal digits",
            "DuckDB DECIMAL holds at most 38 digits; declare a smaller precision in PostgreSQL "
            "(e.g. numeric(38,s)) or exclude the table",
        )
    return ColumnType(
        pg_display=display,
        arrow=pa.decimal128(precision, scale),
        toastable=True,
        kind=ConvKind.DECIMAL,
    )
