"""Map the engine's column types to Snowflake, check values against Snowflake's limits, and
shape Arrow arrays for the Parquet files that ``COPY INTO`` loads.

=========================  =====================  ==========================================
PostgreSQL                 Snowflake              Parquet value (:func:`to_parquet_array`)
=========================  =====================  ==========================================
int2 / int4 / int8         NUMBER(5,0) / (10,0)   unchanged
                           / (19,0)
oid                        NUMBER(10,0)           unchanged (int64)
numeric(p,s)               NUMBER(p,s)            unchanged (decimal128)
numeric (unbounded)        NUMBER(38,10)          unchanged (decimal128(38,10))
float4 / float8            FLOAT                  unchanged (NaN/±Infinity kept)
bool                       BOOLEAN                unchanged
text, varchar, char, name, VARCHAR                unchanged
enum, uuid, inet, timetz…
json, jsonb                VARIANT                JSON text, unchanged
date                       DATE                   unchanged
time                       TIME(6)                unchanged
timestamp                  TIMESTAMP_NTZ(6)       unchanged
timestamptz                TIMESTAMP_TZ(6)        unchanged (UTC)
interval                   VARCHAR                ISO 8601 text as PostgreSQL prints it
bytea                      BINARY                 unchanged
T[]                        VARIANT                JSON array text
=========================  =====================  ==========================================

Choices worth knowing:

* Unbounded ``numeric`` is already held as decimal(38,10) by the decoder (values needing more
  digits are rejected there, never rounded), so NUMBER(38,10) keeps every accepted value.
  ``numeric(p,s)`` with s = 38 has no Snowflake type (NUMBER scale is at most 37).
* Snowflake has no interval column type, and turning months/days/time into one number of
  seconds would change the value; intervals are stored as PostgreSQL's ISO 8601 text
  (``P1Y2M3DT4H5M6.5S``), which casts back losslessly in PostgreSQL and DuckDB.
* VARIANT columns arrive as JSON *text*: the loader must ``PARSE_JSON`` them.  Inside array
  JSON, numerics are JSON strings (``"1.5000000000"``) so they keep their exact digits whatever
  type ``PARSE_JSON`` picks for a number; NaN/±Infinity become the strings ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` (not valid JSON numbers) and a float's negative zero is
  written ``-0.0e0`` (``PARSE_JSON`` reads ``-0`` as the integer 0, an exponent makes it a
  DOUBLE); bytea elements are hex strings (Snowflake's default binary text format); dates,
  times and timestamps are ISO strings.
* ``PARSE_JSON`` keeps a JSON number exactly only as NUMBER (no exponent, at most 38 digits,
  37 after the point); any other number becomes a DOUBLE.  json/jsonb values holding a number
  that DOUBLE would change (``123456789012345678901234567890.5``, ``1e1000``) are rejected, as
  are json objects with a duplicated key (``PARSE_JSON`` refuses them, and keeping one value
  would drop the other) and JSON ``null`` elements of json/jsonb arrays (a VARIANT array reads
  them back the same as NULL elements).
* Snowflake dates and timestamps cover years 1 to 9999 only; BC and later values are rejected
  by :func:`check_values` instead of being shifted.  BINARY holds 8 MiB and VARCHAR/VARIANT
  16 MiB (16,777,216 bytes); longer values are rejected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.decoding.types import ColumnType, ConvKind
from engine.errors import UnsupportedTypeError, ValueConversionError

__all__ = [
    "MAX_BINARY_BYTES",
    "MAX_VARCHAR_BYTES",
    "check_values",
    "interval_to_text",
    "snowflake_type",
    "to_parquet_array",
]

MAX_VARCHAR_BYTES = 16 * 1024 * 1024
MAX_BINARY_BYTES = 8 * 1024 * 1024
_MAX_SCALE = 37  # Snowflake NUMBER scale range is 0..37

# Days and microseconds since 1970-01-01 for 0001-01-01 00:00 and 9999-12-31 23:59:59.999999.
_MIN_DAYS = -719_162
_MAX_DAYS = 2_932_896
_US_PER_DAY = 86_400_000_000
_MIN_US = _MIN_DAYS * _US_PER_DAY
_MAX_US = (_MAX_DAYS + 1) * _US_PER_DAY - 1

_HINT_RANGE = (
    "Snowflake dates and timestamps cover years 1 to 9999; fix the value in PostgreSQL "
    "(e.g. set it to NULL) or exclude the table"
)
_HINT_SIZE = "shorten the value in PostgreSQL or exclude the column's table"
_HINT_JSON_NUMBER = "store the number as a JSON string in PostgreSQL, or exclude the table"
_HINT_JSON_KEY = (
    "remove the duplicate key in PostgreSQL (a jsonb column keeps only the last value), or exclude the table"
)
_HINT_JSON_NULL = "store a NULL element instead of the JSON null in PostgreSQL, or exclude the table"

# Rows worth parsing: a number with an exponent or 38+ digits, or (json only) an object.
_RISKY_NUMBER = r"[0-9][eE]|[0-9.]{39}"
_RISKY_JSON = r"\{|" + _RISKY_NUMBER

_STRINGS = frozenset({ConvKind.STRING, ConvKind.JSON, ConvKind.UUID})  # held as Arrow strings

_SIMPLE: dict[ConvKind, str] = {
    ConvKind.INT16: "NUMBER(5,0)",
    ConvKind.INT32: "NUMBER(10,0)",
    ConvKind.INT64: "NUMBER(19,0)",
    ConvKind.OID: "NUMBER(10,0)",  # unsigned 32-bit: at most 4294967295
    ConvKind.FLOAT32: "FLOAT",  # Snowflake FLOAT is 64-bit: float4 widens exactly
    ConvKind.FLOAT64: "FLOAT",
    ConvKind.BOOL: "BOOLEAN",
    ConvKind.STRING: "VARCHAR",
    ConvKind.JSON: "VARIANT",
    ConvKind.UUID: "VARCHAR",
    ConvKind.DATE: "DATE",
    ConvKind.TIME: "TIME(6)",
    ConvKind.TIMESTAMP: "TIMESTAMP_NTZ(6)",
    ConvKind.TIMESTAMPTZ: "TIMESTAMP_TZ(6)",
    ConvKind.INTERVAL: "VARCHAR",
    ConvKind.BYTEA: "BINARY",
    ConvKind.ARRAY: "VARIANT",
}


def _is_json(ctype: ColumnType) -> bool:
    # The kind, not the name: an enum named "json" is a plain string.
    return ctype.kind is ConvKind.JSON


def snowflake_type(ctype: ColumnType, *, table: str = "?", column: str = "?") -> str:
    """The Snowflake DDL type for a column; ``table``/``column`` only name it in errors."""
    if ctype.kind is ConvKind.DECIMAL:
        arrow = ctype.arrow
        assert isinstance(arrow, pa.Decimal128Type)
        if arrow.scale > _MAX_SCALE:
            raise UnsupportedTypeError(
                table,
                column,
                ctype.pg_display,
                f"it needs scale {arrow.scale} but Snowflake NUMBER keeps at most {_MAX_SCALE} fractional digits",
                "declare a smaller scale in PostgreSQL (e.g. numeric(38,37)) or exclude the table",
            )
        return f"NUMBER({arrow.precision},{arrow.scale})"
    return _SIMPLE[ctype.kind]


# --------------------------------------------------------------------------- value checks


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (astronomical year, month, day) for days since 1970-01-01."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _format_days(days: int) -> str:
    year, month, day = _civil_from_days(days)
    # PostgreSQL has no year 0: astronomical year 0 is 1 BC.
    text_year, bc = (year, "") if year > 0 else (1 - year, " BC")
    return f"{text_year:04d}-{month:02d}-{day:02d}{bc}"


def _format_us(us: int, tz: bool) -> str:
    days, rest = divmod(us, _US_PER_DAY)
    secs, frac = divmod(rest, 1_000_000)
    text = _format_days(days)
    date, bc = (text[:-3], " BC") if text.endswith(" BC") else (text, "")
    return f"{date} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac:06d}{'+00' if tz else ''}{bc}"


def _first(mask: pa.Array) -> int | None:
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _combine(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def check_values(array: pa.Array, ctype: ColumnType, table: str, column: str) -> None:
    """Raise :class:`ValueConversionError` for the first value Snowflake cannot hold exactly."""
    array = _combine(array)
    _check(array, ctype, table, column, ctype.pg_display, None)
    if ctype.kind is ConvKind.ARRAY:
        _check_size(to_parquet_array(array, ctype), MAX_VARCHAR_BYTES, "VARIANT", table, column, ctype.pg_display)


def _check(array: pa.Array, ctype: ColumnType, table: str, column: str, type_name: str, rows: pa.Array | None) -> None:
    """``rows`` maps positions in a flattened array element list back to table rows."""

    def fail(idx: int, value: str, reason: str, hint: str) -> ValueConversionError:
        if rows is not None:
            reason = f"array element {value!r}: {reason}"
            idx = int(rows[idx].as_py())
        return ValueConversionError(table, column, value, reason, hint, type_name=type_name, index=idx)

    kind = ctype.kind
    if kind is ConvKind.DATE:
        days = array.cast(pa.int32())
        idx = _first(pc.or_(pc.less(days, _MIN_DAYS), pc.greater(days, _MAX_DAYS)))
        if idx is not None:
            raise fail(
                idx, _format_days(days[idx].as_py()), "outside Snowflake's DATE range (years 1 to 9999)", _HINT_RANGE
            )
    elif kind in (ConvKind.TIMESTAMP, ConvKind.TIMESTAMPTZ):
        us = array.cast(pa.int64())
        idx = _first(pc.or_(pc.less(us, _MIN_US), pc.greater(us, _MAX_US)))
        if idx is not None:
            tz = kind is ConvKind.TIMESTAMPTZ
            raise fail(
                idx,
                _format_us(us[idx].as_py(), tz),
                "outside Snowflake's timestamp range (years 1 to 9999)",
                _HINT_RANGE,
            )
    elif kind is ConvKind.BYTEA:
        idx = _first(pc.greater(pc.binary_length(array), MAX_BINARY_BYTES))
        if idx is not None:
            size = len(array[idx].as_py())
            raise fail(
                idx, f"<{size} bytes>", f"{size} bytes exceed Snowflake BINARY's {MAX_BINARY_BYTES} bytes", _HINT_SIZE
            )
    elif kind in _STRINGS:
        idx = _first(pc.greater(pc.binary_length(array), MAX_VARCHAR_BYTES))
        if idx is not None:
            value = array[idx].as_py()
            size = len(value.encode())
            target = "VARIANT" if _is_json(ctype) else "VARCHAR"
            raise fail(
                idx, value[:60], f"{size} bytes exceed Snowflake {target}'s {MAX_VARCHAR_BYTES} bytes", _HINT_SIZE
            )
        if _is_json(ctype):
            if rows is not None:
                idx = _first(pc.equal(pc.utf8_trim_whitespace(array), "null"))
                if idx is not None:
                    reason = "a Snowflake VARIANT array reads a JSON null element back the same as a NULL element"
                    raise fail(idx, "null", reason, _HINT_JSON_NULL)
            found = _json_refusal(array, duplicate_keys=ctype.pg_display != "jsonb")
            if found is not None:
                idx, reason, hint = found
                raise fail(idx, array[idx].as_py()[:60], reason, hint)
    elif kind is ConvKind.ARRAY and ctype.element is not None:
        flat = array.flatten()
        parents = pc.list_parent_indices(array)
        if rows is not None:
            parents = pc.take(rows, parents)
        _check(flat, ctype.element, table, column, type_name, parents)


class _JsonRefusal(Exception):
    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _json_number(text: str) -> None:
    """Refuse a JSON number that ``PARSE_JSON`` would store as a DOUBLE of another value."""
    if "e" not in text and "E" not in text:
        whole, _, frac = text.lstrip("-").partition(".")
        if len(whole.lstrip("0")) + len(frac) <= 38 and len(frac) <= _MAX_SCALE:
            return  # a NUMBER(p,s): exact
    double = float(text)
    if not math.isfinite(double):
        raise _JsonRefusal(f"the JSON number {text[:40]} is outside Snowflake's DOUBLE range", _HINT_JSON_NUMBER)
    if Decimal(repr(double)) != Decimal(text):
        raise _JsonRefusal(
            f"Snowflake keeps the JSON number {text[:40]} as a DOUBLE, which changes it to {double!r}",
            _HINT_JSON_NUMBER,
        )


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _JsonRefusal(
                f"the JSON object has the key {key[:40]!r} twice, which Snowflake's PARSE_JSON refuses",
                _HINT_JSON_KEY,
            )
        seen.add(key)


def _json_refusal(array: pa.Array, duplicate_keys: bool) -> tuple[int, str, str] | None:
    """The first JSON text that Snowflake would refuse or change: (index, reason, hint)."""
    risky = pc.fill_null(pc.match_substring_regex(array, _RISKY_JSON if duplicate_keys else _RISKY_NUMBER), False)
    if not pc.any(risky).as_py():
        return None
    pairs_hook = _unique_keys if duplicate_keys else None
    for idx in pc.indices_nonzero(risky).to_pylist():
        text = array[idx].as_py()
        try:
            json.loads(text, parse_float=_json_number, parse_int=_json_number, object_pairs_hook=pairs_hook)
        except _JsonRefusal as exc:
            return idx, exc.reason, exc.hint
        except (ValueError, RecursionError):
            continue  # not judged here (PostgreSQL accepted it); Snowflake reports what it refuses
    return None


def _check_size(text: pa.Array, limit: int, target: str, table: str, column: str, type_name: str) -> None:
    idx = _first(pc.greater(pc.binary_length(text), limit))
    if idx is not None:
        value = text[idx].as_py()
        raise ValueConversionError(
            table,
            column,
            value[:60],
            f"its JSON text of {len(value.encode())} bytes exceeds Snowflake {target}'s {limit} bytes",
            _HINT_SIZE,
            type_name=type_name,
            index=idx,
        )


# --------------------------------------------------------------------------- Parquet values


def _interval_text(months: int, days: int, nanos: int) -> str:
    # Mirrors PostgreSQL's EncodeInterval (IntervalStyle=iso_8601): each field keeps its own
    # sign, division truncates toward zero, and the seconds fraction drops trailing zeros.
    def trunc_div(a: int, b: int) -> tuple[int, int]:
        q = abs(a) // b * (1 if a >= 0 else -1)
        return q, a - q * b

    years, mons = trunc_div(months, 12)
    hours, rest = trunc_div(nanos, 3_600_000_000_000)
    minutes, rest = trunc_div(rest, 60_000_000_000)
    if not (years or mons or days or hours or minutes or rest):
        return "PT0S"
    out = ["P"]
    for value, unit in ((years, "Y"), (mons, "M"), (days, "D")):
        if value:
            out.append(f"{value}{unit}")
    if hours or minutes or rest:
        out.append("T")
        for value, unit in ((hours, "H"), (minutes, "M")):
            if value:
                out.append(f"{value}{unit}")
        if rest:
            secs, frac = divmod(abs(rest), 1_000_000_000)
            fraction = f".{frac:09d}".rstrip("0") if frac else ""
            out.append(f"{'-' if rest < 0 else ''}{secs}{fraction}S")
    return "".join(out)


def interval_to_text(array: pa.Array) -> pa.Array:
    """``month_day_nano_interval`` values as PostgreSQL's ISO 8601 text (``P1Y2M3DT4H``)."""
    array = _combine(array)
    cache: dict[tuple[int, int, int], str] = {}
    out: list[str | None] = []
    for v in array.to_pylist():
        if v is None:
            out.append(None)
            continue
        key = (v.months, v.days, v.nanoseconds)
        text = cache.get(key)
        if text is None:
            text = cache[key] = _interval_text(*key)
        out.append(text)
    return pa.array(out, pa.string())


def _quote_ascii(text: pa.Array) -> pa.Array:
    # Only for texts known to need no JSON escaping (digits, ISO dates, hex).
    return pc.binary_join_element_wise(pa.scalar('"'), text, pa.scalar('"'), "")


def _per_value(fn: Callable[[Any], str]) -> Callable[[pa.Array, ColumnType], pa.Array]:
    def conv(values: pa.Array, _ctype: ColumnType) -> pa.Array:
        return pa.array([None if v is None else fn(v) for v in values.to_pylist()], pa.string())

    return conv


def _float_json(values: pa.Array, _ctype: ColumnType) -> pa.Array:
    # Arrow prints the shortest text that round-trips (per float width), which is valid JSON.
    text = pc.cast(values, pa.string())
    specials = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"', "-0": "-0.0e0"}
    for arrow_text, json_text in specials.items():
        text = pc.if_else(pc.equal(text, arrow_text), pa.scalar(json_text), text)
    return text


def _string_json(values: pa.Array, ctype: ColumnType) -> pa.Array:
    if _is_json(ctype):
        return values  # already JSON (validated by PostgreSQL): nest it as a value
    return _per_value(lambda s: json.dumps(s, ensure_ascii=False))(values, ctype)


def _decimal_text(d: Decimal) -> str:
    return '"' + format(d, "f") + '"'


_JSON_FRAGMENT: dict[ConvKind, Callable[[pa.Array, ColumnType], pa.Array]] = {
    ConvKind.INT16: lambda a, _c: pc.cast(a, pa.string()),
    ConvKind.INT32: lambda a, _c: pc.cast(a, pa.string()),
    ConvKind.INT64: lambda a, _c: pc.cast(a, pa.string()),
    ConvKind.OID: lambda a, _c: pc.cast(a, pa.string()),
    ConvKind.DECIMAL: _per_value(_decimal_text),
    ConvKind.FLOAT32: _float_json,
    ConvKind.FLOAT64: _float_json,
    ConvKind.BOOL: lambda a, _c: pc.if_else(a, pa.scalar("true"), pa.scalar("false")),
    ConvKind.STRING: _string_json,
    ConvKind.JSON: _string_json,
    ConvKind.UUID: _string_json,
    ConvKind.DATE: lambda a, _c: _quote_ascii(pc.cast(a, pa.string())),
    ConvKind.TIME: lambda a, _c: _quote_ascii(pc.cast(a, pa.string())),
    ConvKind.TIMESTAMP: lambda a, _c: _quote_ascii(pc.cast(a, pa.string())),
    ConvKind.TIMESTAMPTZ: lambda a, _c: _quote_ascii(pc.cast(a, pa.string())),
    ConvKind.INTERVAL: lambda a, _c: _quote_ascii(interval_to_text(a)),
    ConvKind.BYTEA: _per_value(lambda b: '"' + b.hex() + '"'),
}


def _array_json(array: pa.Array, ctype: ColumnType) -> pa.Array:
    elem = ctype.element
    assert elem is not None
    flat = array.flatten()
    fragments = _JSON_FRAGMENT[elem.kind](flat, elem) if len(flat) else pa.array([], pa.string())
    fragments = pc.fill_null(fragments, "null")
    # Rebuild the lists around the fragments and join each row; an empty list joins to "".
    offsets = pc.subtract(array.offsets, array.offsets[0])
    lists = pa.ListArray.from_arrays(offsets, fragments, mask=array.is_null() if array.null_count else None)
    joined = pc.binary_join(lists, ",")
    return pc.binary_join_element_wise(pa.scalar("["), joined, pa.scalar("]"), "")


def to_parquet_array(array: pa.Array, ctype: ColumnType) -> pa.Array:
    """The array as the Parquet file for ``COPY INTO`` should hold it (see the module table)."""
    array = _combine(array)
    if ctype.kind is ConvKind.INTERVAL:
        return interval_to_text(array)
    if ctype.kind is ConvKind.ARRAY:
        if array.null_count == len(array):
            return pa.nulls(len(array), pa.string())
        return _array_json(array, ctype)
    return array
