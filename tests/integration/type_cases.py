"""The column types the round-trip tests replicate: one table per family of types, each column with
its PostgreSQL type, the DuckDB type it must land as, the values written, and how each side's value
is read and brought to one comparable form. test_types.py (DuckDB) and test_snowflake_types.py
(Snowflake) replicate the same cases."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _same(v: Any) -> Any:
    return v


def _float4(v: float | None) -> str | None:
    # psycopg parses float4 text into a double; packing to 32 bits gives back the stored float.
    # NaN carries no observable sign or payload in PostgreSQL, so all NaNs are one value.
    if v is None:
        return None
    return "NaN" if math.isnan(v) else struct.pack(">f", v).hex()


def _float8(v: float | None) -> str | None:
    if v is None:
        return None
    return "NaN" if math.isnan(v) else struct.pack(">d", v).hex()


# Read expressions that bypass driver conversions which cannot represent every value: Python's
# date/datetime stop at year 1, and psycopg cannot load ISO 8601 intervals (months would be lost
# in a timedelta anyway). Both sides compute the same exact integers.
_PG_DAYS = "({c} - DATE '1970-01-01')"
_DUCK_DAYS = "({c} - DATE '1970-01-01')"
_PG_EPOCH_US = "(extract(epoch FROM {c}) * 1000000)::int8"
_DUCK_EPOCH_US = "epoch_us({c})"
_PG_INTERVAL = (
    "(extract(year FROM {c}) * 12 + extract(month FROM {c}))::int8 || ',' || extract(day FROM {c})::int8"
    " || ',' || (extract(hour FROM {c}) * 3600000000 + extract(minute FROM {c}) * 60000000"
    " + extract(microsecond FROM {c}))::int8"
)
_DUCK_INTERVAL = (
    "CAST(datepart('year', {c}) * 12 + datepart('month', {c}) AS BIGINT) || ',' || datepart('day', {c})"
    " || ',' || CAST(datepart('hour', {c}) * 3600000000 + datepart('minute', {c}) * 60000000"
    " + datepart('microseconds', {c}) AS BIGINT)"
)


def _pg_each(expr: str) -> str:
    """A per-value read expression applied to every element of a PostgreSQL array, in order."""
    inner = expr.format(c="x")
    return (
        f"CASE WHEN {{c}} IS NULL THEN NULL ELSE ARRAY(SELECT {inner}"
        " FROM unnest({c}) WITH ORDINALITY AS u(x, o) ORDER BY o) END"
    )


def _duck_each(expr: str) -> str:
    return f"list_transform({{c}}, lambda x: {expr.format(c='x')})"


def _each(norm: Callable[[Any], Any]) -> Callable[[list[Any] | None], list[Any] | None]:
    return lambda v: None if v is None else [norm(x) for x in v]


@dataclass(frozen=True)
class Col:
    """A column under test: its PostgreSQL type, the DuckDB type it must land as, and values.

    ``values`` are passed as query parameters: a ``str`` in the type's input syntax (PostgreSQL
    parses it for the column) or a list for an array column. Rows take them in turn.
    """

    name: str
    pg_type: str
    duck_type: str
    values: tuple[Any, ...]
    pg_read: str = "{c}"
    duck_read: str = "{c}"
    norm: Callable[[Any], Any] = field(default=_same)


TSTZ_VALUES = (
    "2024-03-10 02:30:00.000001-08:00",
    "2024-06-01 23:59:59.5+05:45",
    "1969-12-31 23:59:59.999999+14:00",
    "2000-01-01 00:00:00-12:00",
    "1900-01-01 12:00:00+00:19:32",
    "0001-01-01 00:00:00+01:00",  # an hour into 1 BC in UTC
    "10000-06-01 12:00:00+02",
)

UUIDS = (
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "7fffffff-ffff-ffff-ffff-ffffffffffff",
    "80000000-0000-0000-0000-000000000000",
    "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
)

GROUPS: dict[str, tuple[Col, ...]] = {
    "t_ints": (
        Col("i2", "smallint", "SMALLINT", ("-32768", "32767", "0", "-1")),
        Col("i4", "integer", "INTEGER", ("-2147483648", "2147483647", "0", "1")),
        Col("i8", "bigint", "BIGINT", ("-9223372036854775808", "9223372036854775807", "0", "-42")),
    ),
    "t_numerics": (
        Col("n12_2", "numeric(12,2)", "DECIMAL(12,2)", ("9999999999.99", "-9999999999.99", "0.01", "0", "1.5")),
        Col(
            "n38_0",
            "numeric(38,0)",
            "DECIMAL(38,0)",
            ("9" * 38, "-" + "9" * 38, "12345678901234567890123456789012345678", "0"),
        ),
        Col("n5_5", "numeric(5,5)", "DECIMAL(5,5)", ("0.99999", "-0.99999", "0.00001", "0")),
        Col(
            "nu",
            "numeric",
            "DECIMAL(38,10)",
            (
                "1234567890123456789012345678.0123456789",
                "-9999999999999999999999999999.9999999999",
                "-0.0000000001",
                "1.50000000000000000000",  # zeros past the 10th fractional digit are not digits of value
                "0",
                "42",
            ),
        ),
        Col("n4_neg2", "numeric(4,-2)", "DECIMAL(6,0)", ("999900", "-123400", "0")),
        Col("n3_5", "numeric(3,5)", "DECIMAL(5,5)", ("0.00999", "-0.00001")),
    ),
    "t_floats": (
        Col(
            "r",
            "real",
            "FLOAT",
            ("NaN", "Infinity", "-Infinity", "-0", "1e-45", "1.17549435e-38", "0.1", "3.4028235e38", "-1.5"),
            norm=_float4,
        ),
        Col(
            "d",
            "double precision",
            "DOUBLE",
            (
                "NaN",
                "Infinity",
                "-Infinity",
                "-0",
                "1e-310",
                "5e-324",
                "0.1",
                "1.7976931348623157e308",
                "-2.2250738585072014e-308",
            ),
            norm=_float8,
        ),
    ),
    "t_strings": (
        Col(
            "t",
            "text",
            "VARCHAR",
            (
                "héllo wörld — 世界 🎉",
                "",
                "it's \"quoted\", 'twice'",
                "back\\slash \\\\ double \\N \\x00",
                "line1\nline2\r\n\ttab\t",
                "NULL",
                "\\N",
                "  padded  ",
                "\x01\x1f\x7f control",
                'a,b;"c"\n,',
                "x\n\\.\ny",  # COPY's end-of-data marker, alone on a line inside the value
                "\r",
                "ends with a backslash\\",
            ),
        ),
        Col("vc", "varchar(10)", "VARCHAR", ("abcdefghij", "ñ€𝄞 mixed!", "", " ", "x\ty")),
        Col("c5", "char(5)", "VARCHAR", ("ab", "abcde", "", "é", " a ")),
        Col("st", "short_text", "VARCHAR", ("fine", "with 'quote'", "ü")),
    ),
    "t_temporal": (
        Col(
            "dt",
            "date",
            "DATE",
            (
                "0044-03-15 BC",
                "9999-12-31",
                "2000-02-29",
                "1970-01-01",
                "0001-01-01",
                "4713-11-24 BC",
                "1969-12-31",
                "5874897-12-31",  # PostgreSQL's last date
            ),
            pg_read=_PG_DAYS,
            duck_read=_DUCK_DAYS,
        ),
        Col("tm", "time", "TIME", ("23:59:59.999999", "00:00:00", "12:34:56.5", "00:00:00.000001")),
        Col(
            "ts",
            "timestamp",
            "TIMESTAMP",
            (
                "2024-02-29 12:34:56.123456",
                "1900-01-01 00:00:00",
                "9999-12-31 23:59:59.999999",
                "0001-01-01 00:00:00",
                "1969-12-31 23:59:59.999999",
                "0100-06-15 10:00:00 BC",
                "10000-01-01 00:00:00",
                "294246-12-31 23:59:59.999999",
            ),
            pg_read=_PG_EPOCH_US,
            duck_read=_DUCK_EPOCH_US,
        ),
        Col(
            "tz",
            "timestamptz",
            "TIMESTAMP WITH TIME ZONE",
            TSTZ_VALUES,
            pg_read=_PG_EPOCH_US,
            duck_read=_DUCK_EPOCH_US,
        ),
        Col(
            "iv",
            "interval",
            "INTERVAL",
            (
                "1 year 2 months 3 days 04:05:06.789012",
                "-1 mons +2 days -00:00:03.5",
                "-3 years -5 days",
                "0",
                "35 days",  # stays days: not folded into a month
                "100:00:00",  # stays hours: not folded into days
                "-0.000001 seconds",
                "1 mon -1 day +01:00:00",
                "-178000000 years",
                "2562047:47:16.854775",
            ),
            pg_read=_PG_INTERVAL,
            duck_read=_DUCK_INTERVAL,
        ),
    ),
    "t_misc": (
        Col("b", "boolean", "BOOLEAN", ("true", "false")),
        Col("u", "uuid", "UUID", UUIDS),
        Col(
            "j",
            "json",
            "JSON",
            (
                # json keeps its text: spacing, key order, duplicate keys
                '{"b": 1,  "a": [1, 2.50, "x\\u00e9"], "a": null}',
                "[]",
                '"str"',
                "null",
                '  {"nested": {"deep": [true, false]}}  ',
                "1e1000",
                '"\\u0000"',
            ),
            pg_read="{c}::text",
            duck_read="CAST({c} AS VARCHAR)",
        ),
        Col(
            "jb",
            "jsonb",
            "JSON",
            (
                '{"b": 1, "a": [1, 2.50, "é"]}',
                "null",
                '{"emoji": "🎉", "esc": "a\\"b\\\\c\\n"}',
                "[]",
                "123456789012345678901234567890.123456789",
            ),
            pg_read="{c}::text",
            duck_read="CAST({c} AS VARCHAR)",
        ),
        Col("by", "bytea", "BLOB", ("\\x00", "\\x", "\\x00ff00ff", "\\x" + bytes(range(256)).hex(), "\\x5c00")),
        Col("mood", "mood", "VARCHAR", ("sad", "happy", 'it\'s, "complicated"')),
        Col("pos", "posint", "INTEGER", ("1", "2147483647")),
    ),
    "t_arrays": (
        Col("ai", "integer[]", "INTEGER[]", (["1", None, "-2147483648", "2147483647"], [], ["42"])),
        Col(
            "at",
            "text[]",
            "VARCHAR[]",
            (
                [
                    None,
                    "a,b",
                    "{braces}",
                    'q"uote',
                    "back\\slash",
                    "",
                    "NULL",
                    " spaced ",
                    "üñí",
                    "new\nline",
                ],
                [],
                ["plain"],
                [None],
            ),
        ),
        Col(
            "an",
            "numeric[]",
            "DECIMAL(38,10)[]",
            (["1.5", None, "-0.0000000001", "1234567890123456789012345678.0123456789"], [], ["0"]),
        ),
        Col(
            "atz",
            "timestamptz[]",
            "TIMESTAMP WITH TIME ZONE[]",
            ([*TSTZ_VALUES[:3], None], [], [TSTZ_VALUES[5]]),
            pg_read=_pg_each(_PG_EPOCH_US),
            duck_read=_duck_each(_DUCK_EPOCH_US),
        ),
        Col("au", "uuid[]", "UUID[]", ([UUIDS[0], None, UUIDS[1]], [], [UUIDS[4]])),
        Col("ab", "boolean[]", "BOOLEAN[]", (["t", None, "f"], [], ["true"])),
        Col(
            "ad",
            "date[]",
            "DATE[]",
            (["0044-03-15 BC", None, "9999-12-31"], [], ["2000-02-29"]),
            pg_read=_pg_each(_PG_DAYS),
            duck_read=_duck_each(_DUCK_DAYS),
        ),
        Col(
            "aiv",
            "interval[]",
            "INTERVAL[]",
            (["1 year 2 months 3 days 04:05:06.789012", None, "-1 mons +2 days -00:00:03.5"], [], ["0"]),
            pg_read=_pg_each(_PG_INTERVAL),
            duck_read=_duck_each(_DUCK_INTERVAL),
        ),
        Col(
            "af8",
            "double precision[]",
            "DOUBLE[]",
            (["NaN", "Infinity", "-Infinity", "-0", "1e-310", None, "0.1"], [], ["5e-324"]),
            norm=_each(_float8),
        ),
        Col("aby", "bytea[]", "BLOB[]", (["\\x00", None, "\\x", "\\x5c22"], [], ["\\xff"])),
        Col(
            "ajb",
            "jsonb[]",
            "JSON[]",
            (['{"a": "x,y}"}', None, "[]", '"\\"q\\""', "null"], [], ["{}"]),
            pg_read=_pg_each("{c}::text"),
            duck_read=_duck_each("CAST({c} AS VARCHAR)"),
        ),
        Col("ac3", "char(3)[]", "VARCHAR[]", (["a", None, "", "abc"], [], [" b"])),
        # psycopg has no loader for arrays of user types; the casts to built-in arrays are exact.
        Col(
            "amood",
            "mood[]",
            "VARCHAR[]",
            (["sad", None, 'it\'s, "complicated"'], [], ["happy"]),
            pg_read="{c}::text[]",
        ),
        Col("apos", "posint[]", "INTEGER[]", (["1", None, "2147483647"], [], ["7"]), pg_read="{c}::int4[]"),
    ),
}

TYPES_DDL = [
    "CREATE TYPE mood AS ENUM ('sad', 'happy', 'it''s, \"complicated\"')",
    "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
    "CREATE DOMAIN short_text AS text CHECK (VALUE <> '' AND length(VALUE) < 20)",
]

CDC_OFFSET = 1000  # ids of the rows inserted through pgoutput
