"""Type mapping and exact text → Arrow → DuckDB conversion.

Inputs are written exactly as PostgreSQL 15 prints them with DateStyle=ISO, MDY,
IntervalStyle=iso_8601, TimeZone=UTC (other zones where noted), extra_float_digits=3 and
bytea_output=hex.  Expected epoch numbers for dates and timestamps were computed by
PostgreSQL itself (``d - '1970-01-01'``, ``extract(epoch from t) * 1000000``).
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from engine.decoding.convert import convert
from engine.decoding.types import ColumnType, PgTypeInfo, TypeCategory, map_type
from engine.destinations.duckdb.types import duckdb_type
from engine.errors import ErrorKind, RetryPolicy, TableError, UnsupportedTypeError, ValueConversionError

# ----------------------------------------------------------------------------- fixtures

_OIDS = {
    "bool": 16, "bytea": 17, "char": 18, "name": 19, "int8": 20, "int2": 21, "int2vector": 22,
    "int4": 23, "text": 25, "oid": 26, "json": 114, "xml": 142, "point": 600, "cidr": 650,
    "float4": 700, "float8": 701, "macaddr8": 774, "money": 790, "macaddr": 829, "inet": 869,
    "bpchar": 1042, "varchar": 1043, "date": 1082, "time": 1083, "timestamp": 1114,
    "timestamptz": 1184, "interval": 1186, "timetz": 1266, "bit": 1560, "varbit": 1562,
    "numeric": 1700, "uuid": 2950, "tsvector": 3614, "tsquery": 3615, "jsonb": 3802,
    "int4range": 3904, "tsrange": 3908,
}  # fmt: skip


def numeric_typmod(precision: int, scale: int) -> int:
    return ((precision << 16) | (scale & 0x7FF)) + 4


def base(name: str, typmod: int = -1) -> PgTypeInfo:
    return PgTypeInfo(oid=_OIDS[name], name=name, typmod=typmod)


def array_of(elem: PgTypeInfo) -> PgTypeInfo:
    return PgTypeInfo(oid=1, name="_" + elem.name, typmod=elem.typmod, category=TypeCategory.ARRAY, element=elem)


CITEXT = PgTypeInfo(oid=16554, name="citext")
MOOD = PgTypeInfo(oid=16539, name="mood", category=TypeCategory.ENUM)


def ctype_of(info: PgTypeInfo) -> ColumnType:
    return map_type(info, "public.t", "c")


def as_input(texts: list[str | None]) -> pa.Array:
    return pa.array([None if t is None else t.encode() for t in texts], pa.binary())


def _plain_type(t: pa.DataType) -> pa.DataType:
    # Temporal values are compared as their integers: exact, and BC/5-digit years have no
    # Python datetime.
    if pa.types.is_date32(t):
        return pa.int32()
    if pa.types.is_timestamp(t) or pa.types.is_time64(t):
        return pa.int64()
    if pa.types.is_list(t):
        return pa.list_(_plain_type(t.value_type))
    return t


def _key(v: Any) -> Any:
    # Floats compared bit for bit (NaN equal to itself, -0.0 distinct from 0.0).
    if isinstance(v, float):
        return ("float", struct.pack("<d", v))
    if isinstance(v, list):
        return [_key(x) for x in v]
    return v


def plain(arr: pa.Array) -> list[Any]:
    return [_key(v) for v in arr.cast(_plain_type(arr.type)).to_pylist()]


def duckdb_round_trip(ctype: ColumnType, arr: pa.Array) -> pa.Array:
    """Insert into a real DuckDB column of ``duckdb_type(ctype)`` and read it back as Arrow."""
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE x (i INTEGER, v {duckdb_type(ctype)})")
        src = pa.table({"i": pa.array(range(len(arr)), pa.int32()), "v": arr})
        con.register("src", src)
        con.execute("INSERT INTO x SELECT i, v FROM src")
        back = con.sql("SELECT v FROM x ORDER BY i").to_arrow_table().column(0).combine_chunks()
        return back.cast(_plain_type(ctype.arrow)) if not pa.types.is_string(back.type) else back
    finally:
        con.close()


def duckdb_text(ctype: ColumnType, arr: pa.Array) -> list[str | None]:
    """DuckDB's own text rendering of the stored values."""
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE x (i INTEGER, v {duckdb_type(ctype)})")
        con.register("src", pa.table({"i": pa.array(range(len(arr)), pa.int32()), "v": arr}))
        con.execute("INSERT INTO x SELECT i, v FROM src")
        return [r[0] for r in con.execute("SELECT v::VARCHAR FROM x ORDER BY i").fetchall()]
    finally:
        con.close()


def check(info: PgTypeInfo, texts: list[str | None], expected: list[Any]) -> pa.Array:
    """Convert, compare with ``expected``, store in DuckDB, read back, compare again."""
    ctype = ctype_of(info)
    out = convert(as_input(texts), ctype, "public.t", "c")
    assert out.type == ctype.arrow
    want = [_key(v) for v in expected]
    assert plain(out) == want
    back = duckdb_round_trip(ctype, out)
    if pa.types.is_string(back.type) and not pa.types.is_string(ctype.arrow):
        raise AssertionError(f"unexpected DuckDB read-back type {back.type}")
    assert [_key(v) for v in back.to_pylist()] == want
    return out


# ----------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("info", "display", "arrow", "duck", "toastable"),
    [
        (base("int2"), "int2", pa.int16(), "SMALLINT", False),
        (base("int4"), "int4", pa.int32(), "INTEGER", False),
        (base("int8"), "int8", pa.int64(), "BIGINT", False),
        (base("oid"), "oid", pa.int64(), "BIGINT", False),
        (
            base("numeric", numeric_typmod(12, 2)),
            "numeric(12,2)",
            pa.decimal128(12, 2),
            "DECIMAL(12,2)",
            True,
        ),
        (
            base("numeric", numeric_typmod(38, 0)),
            "numeric(38,0)",
            pa.decimal128(38, 0),
            "DECIMAL(38,0)",
            True,
        ),
        (base("numeric", numeric_typmod(5, -2)), "numeric(5,-2)", pa.decimal128(7, 0), "DECIMAL(7,0)", True),
        (base("numeric", numeric_typmod(3, 5)), "numeric(3,5)", pa.decimal128(5, 5), "DECIMAL(5,5)", True),
        (base("numeric"), "numeric", pa.decimal128(38, 10), "DECIMAL(38,10)", True),
        (base("float4"), "float4", pa.float32(), "REAL", False),
        (base("float8"), "float8", pa.float64(), "DOUBLE", False),
        (base("bool"), "bool", pa.bool_(), "BOOLEAN", False),
        (base("text"), "text", pa.string(), "VARCHAR", True),
        (base("varchar", 24), "varchar(20)", pa.string(), "VARCHAR", True),
        (base("bpchar", 7), "bpchar(3)", pa.string(), "VARCHAR", True),
        (base("name"), "name", pa.string(), "VARCHAR", False),
        (base("char"), '"char"', pa.string(), "VARCHAR", False),
        (CITEXT, "citext", pa.string(), "VARCHAR", True),
        (MOOD, "mood", pa.string(), "VARCHAR", False),
        (base("date"), "date", pa.date32(), "DATE", False),
        (base("time"), "time", pa.time64("us"), "TIME", False),
        (base("timetz"), "timetz", pa.string(), "VARCHAR", False),
        (base("timestamp", 3), "timestamp(3)", pa.timestamp("us"), "TIMESTAMP", False),
        (base("timestamptz"), "timestamptz", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", False),
        (base("interval"), "interval", pa.month_day_nano_interval(), "INTERVAL", False),
        (base("uuid"), "uuid", pa.string(), "UUID", False),
        (base("json"), "json", pa.string(), "JSON", True),
        (base("jsonb"), "jsonb", pa.string(), "JSON", True),
        (base("xml"), "xml", pa.string(), "VARCHAR", True),
        (base("inet"), "inet", pa.string(), "VARCHAR", True),
        (base("cidr"), "cidr", pa.string(), "VARCHAR", True),
        (base("macaddr"), "macaddr", pa.string(), "VARCHAR", False),
        (base("macaddr8"), "macaddr8", pa.string(), "VARCHAR", False),
        (base("money"), "money", pa.string(), "VARCHAR", False),
        (base("bit", 5), "bit(5)", pa.string(), "VARCHAR", True),
        (base("varbit"), "varbit", pa.string(), "VARCHAR", True),
        (base("tsvector"), "tsvector", pa.string(), "VARCHAR", True),
        (base("tsquery"), "tsquery", pa.string(), "VARCHAR", True),
        (base("bytea"), "bytea", pa.binary(), "BLOB", True),
        (array_of(base("int4")), "int4[]", pa.list_(pa.int32()), "INTEGER[]", True),
        (array_of(base("text")), "text[]", pa.list_(pa.string()), "VARCHAR[]", True),
        (
            array_of(base("numeric", numeric_typmod(12, 2))),
            "numeric(12,2)[]",
            pa.list_(pa.decimal128(12, 2)),
            "DECIMAL(12,2)[]",
            True,
        ),
        (
            array_of(base("timestamptz")),
            "timestamptz[]",
            pa.list_(pa.timestamp("us", tz="UTC")),
            "TIMESTAMPTZ[]",
            True,
        ),
        (array_of(MOOD), "mood[]", pa.list_(pa.string()), "VARCHAR[]", True),
        (array_of(base("uuid")), "uuid[]", pa.list_(pa.string()), "UUID[]", True),
        (array_of(base("jsonb")), "jsonb[]", pa.list_(pa.string()), "JSON[]", True),
        (array_of(base("bytea")), "bytea[]", pa.list_(pa.binary()), "BLOB[]", True),
        (
            array_of(base("interval")),
            "interval[]",
            pa.list_(pa.month_day_nano_interval()),
            "INTERVAL[]",
            True,
        ),
        # A domain maps as its base type (load_type_info resolves it).
        (
            PgTypeInfo(1700, "numeric", numeric_typmod(12, 2), domain="money2"),
            "numeric(12,2)",
            pa.decimal128(12, 2),
            "DECIMAL(12,2)",
            True,
        ),
    ],
)
def test_mapping(info: PgTypeInfo, display: str, arrow: pa.DataType, duck: str, toastable: bool) -> None:
    ctype = ctype_of(info)
    assert (ctype.pg_display, ctype.arrow, duckdb_type(ctype), ctype.toastable) == (display, arrow, duck, toastable)
    # DuckDB accepts the DDL and stores an Arrow column of that type as exactly that type.
    con = duckdb.connect()
    con.execute(f"CREATE TABLE x (v {duckdb_type(ctype)})")
    con.register("src", pa.table({"v": pa.nulls(1, ctype.arrow)}))
    con.execute("INSERT INTO x SELECT v FROM src")
    assert con.execute("SELECT count(*) FROM x WHERE v IS NULL").fetchone() == (1,)


def test_extension_type_names_only_count_outside_builtin_oids() -> None:
    with pytest.raises(UnsupportedTypeError):
        ctype_of(PgTypeInfo(oid=600, name="citext"))


# ----------------------------------------------------------------------------- values


def test_integers() -> None:
    check(base("int2"), ["-32768", "32767", "0", None], [-32768, 32767, 0, None])
    check(base("int4"), ["-2147483648", "2147483647", None, "42"], [-(2**31), 2**31 - 1, None, 42])
    check(
        base("int8"),
        ["-9223372036854775808", "9223372036854775807", None],
        [-(2**63), 2**63 - 1, None],
    )
    check(base("oid"), ["0", "4294967295", None], [0, 4294967295, None])


def test_numeric_with_typmod() -> None:
    check(
        base("numeric", numeric_typmod(12, 2)),
        ["9999999999.99", "-9999999999.99", "0.00", "0.01", "1.50", None],
        [
            Decimal("9999999999.99"),
            Decimal("-9999999999.99"),
            Decimal("0.00"),
            Decimal("0.01"),
            Decimal("1.50"),
            None,
        ],
    )
    nines = "9" * 38
    check(
        base("numeric", numeric_typmod(38, 0)),
        [nines, "-" + nines, "0"],
        [Decimal(nines), Decimal("-" + nines), Decimal(0)],
    )
    check(
        base("numeric", numeric_typmod(38, 38)),
        ["0." + nines, "-0." + nines],
        [Decimal("0." + nines), Decimal("-0." + nines)],
    )
    check(base("numeric", numeric_typmod(5, -2)), ["12300", "9999900", "-100"], [12300, 9999900, -100])
    check(
        base("numeric", numeric_typmod(3, 5)),
        ["0.00123", "-0.00999"],
        [Decimal("0.00123"), Decimal("-0.00999")],
    )


def test_unbounded_numeric_is_decimal_38_10() -> None:
    widest = "1234567890123456789012345678.1234567890"
    out = check(
        base("numeric"),
        [widest, "-" + widest, "0.0000000001", "123.000000000000", "-0.5", "0", "10", None],
        [
            Decimal(widest),
            Decimal("-" + widest),
            Decimal("0.0000000001"),
            Decimal("123"),
            Decimal("-0.5"),
            Decimal(0),
            Decimal(10),
            None,
        ],
    )
    assert out.type == pa.decimal128(38, 10)


def test_floats_are_bit_exact() -> None:
    f32 = check(
        base("float4"),
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "3.4028235e+38",
            "1e-45",
            "1.1754944e-38",
            "-0",
            "0.1",
            "1.2345679e+08",
            None,
        ],
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0],
            struct.unpack("<f", struct.pack("<I", 1))[0],
            struct.unpack("<f", struct.pack("<I", 0x00800000))[0],
            -0.0,
            struct.unpack("<f", struct.pack("<f", 0.1))[0],
            123456792.0,
            None,
        ],
    )
    assert f32.type == pa.float32()
    check(
        base("float8"),
        [
            "0.1",
            "1e-310",
            "5e-324",
            "1.7976931348623157e+308",
            "2.2250738585072014e-308",
            "-0",
            "NaN",
            "Infinity",
            "-Infinity",
            "1.2345678901234568e+17",
            None,
        ],
        [
            0.1,
            1e-310,
            5e-324,
            1.7976931348623157e308,
            2.2250738585072014e-308,
            -0.0,
            float("nan"),
            float("inf"),
            float("-inf"),
            1.2345678901234568e17,
            None,
        ],
    )


def test_bool() -> None:
    check(base("bool"), ["t", "f", None, "t"], [True, False, None, True])


def test_text_like_types_are_kept_verbatim() -> None:
    texts = [
        "",
        "plain",
        "ünïcödé 日本語 🙂",
        "tab\tnew\nline",
        'quote " and \\ backslash',
        "  padded  ",
        None,
    ]
    for info in (base("text"), base("varchar", 24), base("name"), CITEXT, MOOD):
        check(info, texts, texts)
    check(base("bpchar", 7), ["ab ", "x  ", None], ["ab ", "x  ", None])


@pytest.mark.parametrize(
    ("info", "texts"),
    [
        (base("xml"), ["<a>x</a>", "<b/>"]),
        (base("inet"), ["192.168.0.1/24", "::1", "10.0.0.1"]),
        (base("cidr"), ["10.0.0.0/8", "2001:db8::/32"]),
        (base("macaddr"), ["08:00:2b:01:02:03"]),
        (base("macaddr8"), ["08:00:2b:01:02:03:04:05"]),
        (base("money"), ["$12.50", "-$1,234.56"]),
        (base("bit", 3), ["101"]),
        (base("varbit"), ["1010", ""]),
        (base("tsvector"), ["'a' 'cat' 'fat'", "'a':1 'b':2"]),
        (base("tsquery"), ["'fat' & 'rat'"]),
        (base("timetz"), ["12:00:00+05:30", "23:59:59.999999-03:30"]),
        (base("char"), ["A", "\\351"]),
    ],
)
def test_lossless_text_types(info: PgTypeInfo, texts: list[str]) -> None:
    check(info, [*texts, None], [*texts, None])


def test_uuid() -> None:
    u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    check(
        base("uuid"),
        [u, None, "00000000-0000-0000-0000-000000000000"],
        [u, None, "00000000-0000-0000-0000-000000000000"],
    )


def test_json_text_is_not_reformatted() -> None:
    # json keeps the input text (whitespace, duplicate keys, key order); jsonb arrives normalised.
    texts = [
        '{"a": 1,  "b":2, "a": 3}',
        "  [1, 2.50, 1e2]  ",
        '"\\u00e9"',
        "123456789012345678901234567890",
        None,
    ]
    check(base("json"), texts, texts)
    check(base("jsonb"), ['{"a": 1, "b": [1, 2]}', "null", None], ['{"a": 1, "b": [1, 2]}', "null", None])


def test_bytea() -> None:
    out = check(
        base("bytea"),
        ["\\x", "\\x00", "\\x000aff", None, "\\xdeadbeef", "\\xDEADBEEF"],
        [b"", b"\x00", b"\x00\n\xff", None, b"\xde\xad\xbe\xef", b"\xde\xad\xbe\xef"],
    )
    assert out.type == pa.binary()


def test_bytea_from_sliced_input() -> None:
    arr = as_input([None, "\\x01", "\\x", "\\x0203", None]).slice(1, 3)
    out = convert(arr, ctype_of(base("bytea")), "t", "c")
    assert out.to_pylist() == [b"\x01", b"", b"\x02\x03"]


def test_date() -> None:
    check(
        base("date"),
        [
            "2024-01-02",
            "0001-01-01",
            "9999-12-31",
            None,
            "1970-01-01",
            "2000-02-29",
            "0044-03-15 BC",
            "0001-12-31 BC",
            "4713-01-01 BC",
            "10000-01-01",
            "5874897-12-31",
        ],
        [19724, -719162, 2932896, None, 0, 11016, -735160, -719163, -2440550, 2932897, 2145042905],
    )


def test_date_text_in_duckdb() -> None:
    ctype = ctype_of(base("date"))
    out = convert(as_input(["0044-03-15 BC", "10000-01-01", "2024-01-02"]), ctype, "t", "c")
    assert duckdb_text(ctype, out) == ["0044-03-15 (BC)", "10000-01-01", "2024-01-02"]


def test_time() -> None:
    check(
        base("time"),
        ["00:00:00", "23:59:59.999999", "12:34:56.789", None],
        [0, 86_399_999_999, 45_296_789_000, None],
    )


def test_timestamp() -> None:
    check(
        base("timestamp"),
        [
            "2024-01-02 03:04:05.123456",
            "1970-01-01 00:00:00",
            "1969-12-31 23:59:59.999999",
            None,
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
            "0044-03-15 12:00:00 BC",
            "4713-01-01 00:00:00 BC",
            "10000-01-01 00:00:00",
            "294246-12-31 23:59:59.999999",
        ],
        [
            1704164645123456,
            0,
            -1,
            None,
            -62135596800000000,
            253402300799999999,
            -63517780800000000,
            -210863520000000000,
            253402300800000000,
            9223371244799999999,
        ],
    )


def test_timestamptz_converts_offsets_to_the_same_instant() -> None:
    check(
        base("timestamptz"),
        [
            "2024-01-02 03:04:05.123456+00",
            "2024-01-02 03:04:05.123456+05:30",
            "1999-12-31 20:00:00-03:30",
            None,
            # TimeZone=Asia/Kolkata and America/St_Johns print local mean time with seconds.
            "1800-01-01 05:53:28+05:53:28",
            "1799-12-31 20:29:08-03:30:52",
            "0044-03-15 17:53:28+05:53:28 BC",
            "0001-01-01 00:00:00+00 BC",
            "10000-01-01 00:00:00+00",
        ],
        [
            1704164645123456,
            1704144845123456,
            946683000000000,
            None,
            -5364662400000000,
            -5364662400000000,
            -63517780800000000,
            -62167219200000000,
            253402300800000000,
        ],
    )


def test_timestamptz_text_in_duckdb() -> None:
    ctype = ctype_of(base("timestamptz"))
    out = convert(as_input(["2024-01-02 03:04:05.5+05:30", "0044-03-15 12:00:00+00 BC"]), ctype, "t", "c")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE x (i INTEGER, v {duckdb_type(ctype)})")
    con.register("src", pa.table({"i": pa.array([0, 1], pa.int32()), "v": out}))
    con.execute("INSERT INTO x SELECT i, v FROM src")
    rows = con.execute("SELECT v::VARCHAR FROM x ORDER BY i").fetchall()
    assert rows == [("2024-01-01 21:34:05.5+00",), ("0044-03-15 (BC) 12:00:00+00",)]


def test_mixed_batch_keeps_rows_in_place() -> None:
    # Regular rows go through Arrow's parser, odd ones through the exact fallback; order and
    # nulls must survive the merge.
    texts = [
        "2024-01-02 03:04:05.123456+00",
        None,
        "0001-01-01 00:00:00+00 BC",
        "1970-01-01 00:00:00+00",
    ] * 50
    expected = [1704164645123456, None, -62167219200000000, 0] * 50
    check(base("timestamptz"), texts, expected)
    sliced = as_input(texts).slice(1, 5)
    out = convert(sliced, ctype_of(base("timestamptz")), "t", "c")
    assert plain(out) == expected[1:6]


def test_interval() -> None:
    mdn = pa.MonthDayNano
    check(
        base("interval"),
        [
            "P1Y2M3DT4H5M6.5S",
            "PT-1M",
            "P-1Y-2M",
            "PT0S",
            None,
            "P-1DT2H3M4.000001S",
            "PT-0.5S",
            "P1DT12H",
            "PT0.000001S",
            "P178000000Y",
            "P-178956970Y-8M-2147483648D",
            "PT2562047H47M16.854775S",
            "PT-2562047H-47M-16.854775S",
            "PT-0.5S",
        ],
        [
            mdn([14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 500_000_000]),
            mdn([0, 0, -60 * 10**9]),
            mdn([-14, 0, 0]),
            mdn([0, 0, 0]),
            None,
            mdn([0, -1, (2 * 3600 + 3 * 60 + 4) * 10**9 + 1000]),
            mdn([0, 0, -500_000_000]),
            mdn([0, 1, 12 * 3600 * 10**9]),
            mdn([0, 0, 1000]),
            mdn([178000000 * 12, 0, 0]),
            mdn([-(2**31), -(2**31), 0]),
            mdn([0, 0, 9223372036854775000]),
            mdn([0, 0, -9223372036854775000]),
            mdn([0, 0, -500_000_000]),
        ],
    )


def test_interval_text_in_duckdb() -> None:
    ctype = ctype_of(base("interval"))
    out = convert(as_input(["P-1DT2H3M4.000001S", "P1Y2M"]), ctype, "t", "c")
    assert duckdb_text(ctype, out) == ["-1 day 02:03:04.000001", "1 year 2 months"]


def test_all_null_and_empty_batches() -> None:
    for info in (base("int4"), base("timestamptz"), base("bytea"), array_of(base("text")), base("interval")):
        ctype = ctype_of(info)
        assert convert(as_input([None, None]), ctype, "t", "c").equals(pa.nulls(2, ctype.arrow))
        assert len(convert(as_input([]), ctype, "t", "c")) == 0
        assert convert(pa.nulls(3), ctype, "t", "c").type == ctype.arrow


@pytest.mark.parametrize(
    "make", [pa.string(), pa.large_string(), pa.large_binary(), pa.string_view(), pa.binary_view()]
)
def test_input_array_types(make: pa.DataType) -> None:
    arr = pa.array(["1", None, "3"], make)
    assert convert(arr, ctype_of(base("int4")), "t", "c").to_pylist() == [1, None, 3]
    chunked = pa.chunked_array([arr, arr])
    assert convert(chunked, ctype_of(base("int4")), "t", "c").to_pylist() == [1, None, 3] * 2


# ----------------------------------------------------------------------------- arrays


def test_int_array() -> None:
    check(
        array_of(base("int4")),
        ["{1,NULL,3}", None, "{}", "[1:3]={1,2,3}", "{-2147483648,2147483647}"],
        [[1, None, 3], None, [], [1, 2, 3], [-(2**31), 2**31 - 1]],
    )


def test_text_array_quoting() -> None:
    check(
        array_of(base("text")),
        [
            '{""," ","a\\\\b",ü,"NULL","nuLL","a\\"b","{","}",",","\n",NULL}',
            '{"a,b","{x}","q\\"t","back\\\\slash"," sp "}',
            "[1:3]={a,b,c}",
            None,
            "{}",
        ],
        [
            ["", " ", "a\\b", "ü", "NULL", "nuLL", 'a"b', "{", "}", ",", "\n", None],
            ["a,b", "{x}", 'q"t', "back\\slash", " sp "],
            ["a", "b", "c"],
            None,
            [],
        ],
    )


def test_arrays_of_other_element_types() -> None:
    check(array_of(base("numeric", numeric_typmod(12, 2))), ["{12.50,NULL}"], [[Decimal("12.50"), None]])
    check(array_of(base("bytea")), ['{"\\\\x00","\\\\x",NULL}'], [[b"\x00", b"", None]])
    check(array_of(base("float4")), ["{1.5,NaN,-Infinity}"], [[1.5, float("nan"), float("-inf")]])
    check(array_of(base("bool")), ["{t,f,NULL}"], [[True, False, None]])
    check(array_of(base("date")), ['{2024-01-01,"0044-03-15 BC"}'], [[19723, -735160]])
    check(
        array_of(base("timestamptz")),
        ['{"2023-12-31 19:00:00+00","0001-01-01 00:00:00+00 BC"}'],
        [[1704049200000000, -62167219200000000]],
    )
    check(
        array_of(base("interval")),
        ["{P1D,PT-1S}"],
        [[pa.MonthDayNano([0, 1, 0]), pa.MonthDayNano([0, 0, -(10**9)])]],
    )
    u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    check(array_of(base("uuid")), [f"{{{u},NULL}}"], [[u, None]])
    check(array_of(base("json")), ['{"{\\"a\\": 1}","[1, 2]"}'], [['{"a": 1}', "[1, 2]"]])
    check(array_of(MOOD), ["{sad,ok}"], [["sad", "ok"]])
    check(array_of(base("bpchar", 7)), ['{"ab ","x  "}'], [["ab ", "x  "]])


# ----------------------------------------------------------------------------- errors


def conversion_error(info: PgTypeInfo, texts: list[str | None]) -> ValueConversionError:
    with pytest.raises(ValueConversionError) as excinfo:
        convert(as_input(texts), ctype_of(info), "public.orders", "amount")
    err = excinfo.value
    assert err.table == "public.orders" and err.column == "amount"
    assert "public.orders" in str(err) and "amount" in str(err)
    assert err.detail and err.hint and err.detail in err.detail
    assert isinstance(err, TableError) and err.kind is ErrorKind.VALUE_CONVERSION and err.retry is RetryPolicy.MANUAL
    return err


@pytest.mark.parametrize(
    ("typmod", "text", "reason"),
    [
        (numeric_typmod(12, 2), "1.005", "3 fractional digits"),
        (numeric_typmod(12, 2), "12345678901.00", "11 integer digits"),
        (numeric_typmod(12, 2), "NaN", "NaN"),
        (-1, "0.00000000001", "11 fractional digits"),
        (-1, "0.00000000000000000001", "20 fractional digits"),
        (-1, "12345678901234567890123456789", "29 integer digits"),
        (-1, "NaN", "NaN"),
        (-1, "Infinity", "Infinity"),
        (-1, "-Infinity", "-Infinity"),
    ],
)
def test_numeric_is_never_rounded(typmod: int, text: str, reason: str) -> None:
    err = conversion_error(base("numeric", typmod), ["1.00", None, text, "2.00"])
    assert err.value == text
    assert err.index == 2
    assert reason in err.detail


def test_error_names_the_first_bad_value_in_a_large_batch() -> None:
    texts: list[str | None] = [str(i) for i in range(100_000)]
    texts[77_777] = "99999999999"
    err = conversion_error(base("int4"), texts)
    assert (err.value, err.index) == ("99999999999", 77_777)
    assert "out of range" in err.detail


def test_long_values_are_truncated_in_the_message() -> None:
    long = "1." + "1" * 200
    err = conversion_error(base("numeric", numeric_typmod(12, 2)), [long])
    assert err.value == long
    assert long not in str(err) and long[:40] in str(err) and "…" in str(err)


@pytest.mark.parametrize(
    ("info", "text", "reason"),
    [
        (base("int2"), "32768", "out of range"),
        (base("int8"), "9223372036854775808", "out of range"),
        (base("int4"), "abc", "not an integer"),
        (base("oid"), "-1", "out of range"),
        (base("float4"), "3.5e38", "out of range"),
        (base("float8"), "1e400", "out of range"),
        (base("float8"), "1,5", "not a floating-point number"),
        (base("bool"), "true", "'t' or 'f'"),
        (base("date"), "infinity", "no Arrow equivalent"),
        (base("date"), "-infinity", "no Arrow equivalent"),
        (base("date"), "2024-02-30", "not a valid calendar date"),
        (base("date"), "01/02/2024", "DateStyle"),
        (base("timestamp"), "infinity", "no Arrow equivalent"),
        (base("timestamp"), "294247-01-10 04:00:54.775807", "timestamp range"),
        (base("timestamp"), "294276-12-31 23:59:59.999999", "timestamp range"),
        (base("timestamp"), "2024-01-02 03:04:05+00", "unexpected zone offset"),
        (base("timestamptz"), "-infinity", "no Arrow equivalent"),
        (base("timestamptz"), "2024-01-02 03:04:05", "missing zone offset"),
        (base("time"), "24:00:00", "24:00:00"),
        (base("interval"), "PT2562048H", "interval range"),
        (base("interval"), "-1 days +02:03:04", "iso_8601"),
        (base("interval"), "infinity", "infinite"),
        (base("bytea"), "\\x0", "hex"),
        (base("bytea"), "0a0b", "hex"),
        (base("bytea"), "\\x0g", "hex"),
        (base("bytea"), "\\x0a 0b ", "hex"),
        (array_of(base("int4")), "{{1,2},{3,4}}", "multi-dimensional"),
        (array_of(base("int4")), "[1:2][1:2]={{1,2},{3,4}}", "multi-dimensional"),
        (array_of(base("int4")), "[0:2]={1,2,3}", "not starting at 1"),
        (array_of(base("text")), "[-1:0]={a,b}", "not starting at 1"),
        (array_of(base("int4")), "{1,2", "braces"),
        (array_of(base("int4")), "{1,x}", "not an integer"),
        (array_of(base("numeric", numeric_typmod(5, 2))), "{1.00,1.005}", "fractional digits"),
    ],
)
def test_value_errors(info: PgTypeInfo, text: str, reason: str) -> None:
    err = conversion_error(info, [None, text])
    assert reason in err.detail
    assert err.index == 1


def test_array_element_error_names_the_element() -> None:
    err = conversion_error(array_of(base("int2")), ["{1,2}", "{3,99999}"])
    assert (err.value, err.index) == ("99999", 1)
    assert "array element" in err.detail


def test_invalid_utf8_is_rejected() -> None:
    arr = pa.array([b"ok", b"bad \xff\xfe"], pa.binary())
    with pytest.raises(ValueConversionError) as excinfo:
        convert(arr, ctype_of(base("text")), "public.t", "c")
    assert excinfo.value.index == 1 and "UTF-8" in excinfo.value.detail


@pytest.mark.parametrize(
    ("info", "shown"),
    [
        (base("point"), "point"),
        (base("int2vector"), "int2vector"),
        (PgTypeInfo(3904, "int4range", category=TypeCategory.RANGE), "int4range"),
        (PgTypeInfo(4451, "int4multirange", category=TypeCategory.MULTIRANGE), "int4multirange"),
        (PgTypeInfo(16547, "pair", category=TypeCategory.COMPOSITE), "pair"),
        (PgTypeInfo(2283, "anyelement", category=TypeCategory.PSEUDO), "anyelement"),
        (array_of(PgTypeInfo(3908, "tsrange", category=TypeCategory.RANGE)), "tsrange[]"),
        (array_of(base("point")), "point[]"),
        (PgTypeInfo(600, "point", domain="location"), "point (domain location)"),
        (PgTypeInfo(88888, "some_ext_type"), "some_ext_type"),
    ],
)
def test_unsupported_types(info: PgTypeInfo, shown: str) -> None:
    with pytest.raises(UnsupportedTypeError) as excinfo:
        map_type(info, "public.shapes", "geom")
    err = excinfo.value
    assert (err.table, err.column, err.type_name) == ("public.shapes", "geom", shown)
    assert "public.shapes" in str(err) and "geom" in str(err) and shown in str(err)
    assert "exclude the table" in err.hint
    assert isinstance(err, TableError) and err.kind is ErrorKind.UNSUPPORTED_TYPE and err.retry is RetryPolicy.MANUAL


@pytest.mark.parametrize(("p", "s", "digits"), [(39, 0, 39), (1000, 0, 1000), (50, 2, 50), (38, -2, 40)])
def test_numeric_wider_than_duckdb_is_unsupported(p: int, s: int, digits: int) -> None:
    with pytest.raises(UnsupportedTypeError) as excinfo:
        map_type(base("numeric", numeric_typmod(p, s)), "public.t", "big")
    assert f"{digits} decimal digits" in excinfo.value.detail
    assert "38 digits" in excinfo.value.hint
    assert excinfo.value.type_name == f"numeric({p},{s})"
