from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from engine.decoding.convert import convert
from engine.decoding.convert.interval import parse_iso_interval
from engine.decoding.types import ColumnType, PgTypeInfo, TypeCategory, map_type
from engine.destinations.snowflake.typemap import (
    MAX_BINARY_BYTES,
    MAX_VARCHAR_BYTES,
    check_values,
    interval_to_text,
    snowflake_type,
    to_parquet_array,
)
from engine.errors import UnsupportedTypeError, ValueConversionError

_OIDS = {
    "bool": 16, "bytea": 17, "name": 19, "int8": 20, "int2": 21, "int4": 23, "text": 25, "oid": 26,
    "json": 114, "float4": 700, "float8": 701, "inet": 869, "bpchar": 1042, "varchar": 1043,
    "date": 1082, "time": 1083, "timestamp": 1114, "timestamptz": 1184, "interval": 1186,
    "timetz": 1266, "numeric": 1700, "uuid": 2950, "jsonb": 3802,
}  # fmt: skip


def ct(name: str, typmod: int = -1) -> ColumnType:
    return map_type(PgTypeInfo(oid=_OIDS[name], name=name, typmod=typmod), "t", "c")


def arr(name: str) -> ColumnType:
    elem = PgTypeInfo(oid=_OIDS[name], name=name)
    return map_type(PgTypeInfo(oid=1, name="_" + name, category=TypeCategory.ARRAY, element=elem), "t", "c")


def numeric(p: int, s: int) -> ColumnType:
    return ct("numeric", ((p << 16) | (s & 0x7FF)) + 4)


def values(ctype: ColumnType, texts: list[str | None]) -> pa.Array:
    return convert(pa.array(texts, pa.string()), ctype, "t", "c")


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        (ct("int2"), "NUMBER(5,0)"),
        (ct("int4"), "NUMBER(10,0)"),
        (ct("int8"), "NUMBER(19,0)"),
        (ct("oid"), "NUMBER(10,0)"),
        (numeric(12, 2), "NUMBER(12,2)"),
        (numeric(5, -2), "NUMBER(7,0)"),
        (numeric(38, 37), "NUMBER(38,37)"),
        (ct("numeric"), "NUMBER(38,10)"),
        (ct("float4"), "FLOAT"),
        (ct("float8"), "FLOAT"),
        (ct("bool"), "BOOLEAN"),
        (ct("text"), "VARCHAR"),
        (ct("varchar", 14), "VARCHAR"),
        (ct("bpchar", 5), "VARCHAR"),
        (ct("name"), "VARCHAR"),
        (ct("uuid"), "VARCHAR"),
        (ct("inet"), "VARCHAR"),
        (ct("timetz"), "VARCHAR"),
        (ct("date"), "DATE"),
        (ct("time"), "TIME(6)"),
        (ct("timestamp"), "TIMESTAMP_NTZ(6)"),
        (ct("timestamptz"), "TIMESTAMP_TZ(6)"),
        (ct("interval"), "VARCHAR"),
        (ct("json"), "VARIANT"),
        (ct("jsonb"), "VARIANT"),
        (ct("bytea"), "BINARY"),
        (arr("int4"), "VARIANT"),
        (arr("text"), "VARIANT"),
    ],
)
def test_snowflake_type(ctype: ColumnType, expected: str) -> None:
    assert snowflake_type(ctype) == expected


def test_enum_named_json_is_varchar() -> None:
    enum = map_type(PgTypeInfo(oid=20000, name="json", category=TypeCategory.ENUM), "t", "c")
    assert snowflake_type(enum) == "VARCHAR"


def test_scale_38_is_unsupported() -> None:
    with pytest.raises(UnsupportedTypeError) as exc:
        snowflake_type(numeric(38, 38), table="public.t", column="x")
    assert exc.value.table == "public.t" and "37" in exc.value.detail


# ---- check_values


@pytest.mark.parametrize(
    ("name", "ok", "bad", "shown"),
    [
        ("date", ["0001-01-01", "9999-12-31", None], "0001-12-31 BC", "0001-12-31 BC"),
        ("date", ["2024-02-29"], "10000-01-01", "10000-01-01"),
        ("timestamp", ["0001-01-01 00:00:00", "9999-12-31 23:59:59.999999"], "0044-03-15 12:00:00 BC",
         "0044-03-15 12:00:00.000000 BC"),
        ("timestamp", ["2024-01-01 00:00:00"], "10000-01-01 00:00:00", "10000-01-01 00:00:00.000000"),
        ("timestamptz", ["0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00"], "0001-01-01 00:00:00+01",
         "0001-12-31 23:00:00.000000+00 BC"),
        ("timestamptz", ["2024-01-01 00:00:00+00"], "9999-12-31 23:00:00-01", "10000-01-01 00:00:00.000000+00"),
    ],
)  # fmt: skip
def test_temporal_range(name: str, ok: list[str | None], bad: str, shown: str) -> None:
    ctype = ct(name)
    check_values(values(ctype, ok), ctype, "t", "c")
    with pytest.raises(ValueConversionError) as exc:
        check_values(values(ctype, [*ok, bad]), ctype, "public.t", "c")
    assert exc.value.index == len(ok)
    assert exc.value.value == shown
    assert exc.value.table == "public.t" and "9999" in exc.value.detail and exc.value.hint


def test_binary_limit() -> None:
    ctype = ct("bytea")
    ok = pa.array([b"\x00" * MAX_BINARY_BYTES, None], pa.binary())
    check_values(ok, ctype, "t", "c")
    with pytest.raises(ValueConversionError) as exc:
        check_values(pa.array([b"", b"\x01" * (MAX_BINARY_BYTES + 1)], pa.binary()), ctype, "t", "c")
    assert exc.value.index == 1 and str(MAX_BINARY_BYTES) in exc.value.detail


def test_varchar_limit_counts_bytes() -> None:
    ctype = ct("text")
    check_values(pa.array(["x" * MAX_VARCHAR_BYTES]), ctype, "t", "c")
    with pytest.raises(ValueConversionError) as exc:
        check_values(pa.array(["é" * (MAX_VARCHAR_BYTES // 2 + 1)]), ctype, "t", "c")
    assert exc.value.index == 0 and "VARCHAR" in exc.value.detail


def test_floats_and_numbers_pass() -> None:
    ctype = ct("float8")
    check_values(values(ctype, ["NaN", "Infinity", "-Infinity", "1e308"]), ctype, "t", "c")
    ctype = ct("numeric")
    check_values(values(ctype, ["99999999999999999999999999.9999999999"]), ctype, "t", "c")


def test_array_elements_checked_and_row_reported() -> None:
    ctype = arr("date")
    data = values(ctype, ["{2024-01-01}", None, "{}", "{2020-01-01,0100-01-01 BC}"])
    with pytest.raises(ValueConversionError) as exc:
        check_values(data, ctype, "t", "c")
    assert exc.value.index == 3 and "array element" in exc.value.detail
    assert exc.value.value == "0100-01-01 BC"
    check_values(data.slice(0, 3), ctype, "t", "c")


def test_array_json_size_limit() -> None:
    ctype = arr("text")
    data = pa.array([["a"], ["x" * (MAX_VARCHAR_BYTES // 2), "y" * (MAX_VARCHAR_BYTES // 2)]], pa.list_(pa.string()))
    with pytest.raises(ValueConversionError) as exc:
        check_values(data, ctype, "t", "c")
    assert exc.value.index == 1 and "VARIANT" in exc.value.detail


def test_chunked_input() -> None:
    ctype = ct("date")
    chunked = pa.chunked_array([values(ctype, ["2024-01-01"]), values(ctype, ["0001-01-01 BC"])])
    with pytest.raises(ValueConversionError) as exc:
        check_values(chunked, ctype, "t", "c")
    assert exc.value.index == 1


# ---- intervals


@pytest.mark.parametrize(
    "text",
    ["PT0S", "P1Y2M3DT4H5M6.5S", "PT-1M", "P-1Y-2M", "P-1DT2H3M4.000001S", "P1Y", "P1M", "P1D", "PT1H",
     "PT-0.5S", "P-1Y-2M-3DT-4H-5M-6.000001S", "P178956970Y7M", "PT2562047H47M16.854775807S", "P-2147483648D"],
)  # fmt: skip
def test_interval_round_trip(text: str) -> None:
    ctype = ct("interval")
    out = to_parquet_array(values(ctype, [text, None]), ctype)
    assert out.type == pa.string()
    assert out.to_pylist() == [text, None]
    iv = parse_iso_interval(text)
    assert parse_iso_interval(out[0].as_py()) == iv


def test_interval_months_split_like_postgres() -> None:
    data = pa.array([(14, 0, 0), (-14, 0, 0), (0, 0, 90 * 60 * 10**9)], pa.month_day_nano_interval())
    assert interval_to_text(data).to_pylist() == ["P1Y2M", "P-1Y-2M", "PT1H30M"]


# ---- Parquet values


def test_unchanged_kinds() -> None:
    for name, texts in [("int4", ["1"]), ("text", ["x"]), ("jsonb", ['{"a": 1}']), ("bytea", ["\\x00ff"])]:
        ctype = ct(name)
        data = values(ctype, [*texts, None])
        assert to_parquet_array(data, ctype) is data


def _json_rows(name: str, texts: list[str | None]) -> list[object]:
    ctype = arr(name)
    out = to_parquet_array(values(ctype, texts), ctype)
    assert out.type == pa.string()
    return [None if v is None else json.loads(v) for v in out.to_pylist()]


def test_array_json() -> None:
    assert _json_rows("int8", ["{1,NULL,-9223372036854775808}", None, "{}"]) == [
        [1, None, -9223372036854775808],
        None,
        [],
    ]
    assert _json_rows("bool", ["{t,f,NULL}"]) == [[True, False, None]]
    assert _json_rows("text", ['{"a\\"b","\\\\",NULL,"é\n",""}']) == [['a"b', "\\", None, "é\n", ""]]
    assert _json_rows("jsonb", ['{"{\\"k\\": [1, 2]}",null}']) == [[{"k": [1, 2]}, None]]
    assert _json_rows("bytea", ['{"\\\\x00ff",NULL}']) == [["00ff", None]]
    assert _json_rows("date", ["{2024-02-29,0001-01-01}"]) == [["2024-02-29", "0001-01-01"]]
    assert _json_rows("timestamptz", ['{"2024-01-01 12:00:00+02"}']) == [["2024-01-01 10:00:00.000000Z"]]
    assert _json_rows("interval", ["{P1Y2M,PT0S}"]) == [["P1Y2M", "PT0S"]]


def test_array_json_numbers_exact() -> None:
    # Decimals are JSON strings so Snowflake does not parse them as DOUBLE.
    rows = _json_rows("numeric", ["{0,1.5,-99999999999999999999999999.9999999999,0.0000000001}"])
    assert rows == [["0.0000000000", "1.5000000000", "-99999999999999999999999999.9999999999", "0.0000000001"]]
    big = Decimal("-99999999999999999999999999.9999999999")
    assert [Decimal(v) for v in rows[0]] == [Decimal(0), Decimal("1.5"), big, Decimal("1E-10")]
    rows = _json_rows("float8", ["{0.1,NaN,Infinity,-Infinity,1e-300,1.7976931348623157e308}"])
    assert rows == [[0.1, "NaN", "Infinity", "-Infinity", 1e-300, 1.7976931348623157e308]]
    rows = _json_rows("float4", ["{0.1,3.4028235e+38}"])
    assert rows == [[0.1, 3.4028235e38]]


def test_array_all_null_and_sliced() -> None:
    ctype = arr("int4")
    assert to_parquet_array(pa.nulls(2, pa.list_(pa.int32())), ctype).to_pylist() == [None, None]
    data = values(ctype, ["{1}", "{2,3}", None, "{4}"]).slice(1)
    assert to_parquet_array(data, ctype).to_pylist() == ["[2,3]", None, "[4]"]


# ---- JSON that Snowflake would refuse or change


@pytest.mark.parametrize(
    ("name", "text", "shown"),
    [
        ("jsonb", "123456789012345678901234567890.123456789", "changes it to 1.2345678901234568e+29"),
        ("jsonb", '{"a": [1, 12345678901234567890123456789012345678901]}', "as a DOUBLE"),
        ("json", "1e1000", "outside Snowflake's DOUBLE range"),
        ("json", "[1e-400]", "changes it to 0.0"),
        ("json", '{"b": 1, "a": 2, "a": 3}', "key 'a' twice"),
        ("json", '[{"x": {"k": 1, "k": 1}}]', "key 'k' twice"),
    ],
)
def test_json_refused(name: str, text: str, shown: str) -> None:
    ctype = ct(name)
    with pytest.raises(ValueConversionError) as exc:
        check_values(values(ctype, ['{"ok": 1}', None, text]), ctype, "public.t", "c")
    assert exc.value.index == 2 and shown in exc.value.detail, exc.value.detail
    assert exc.value.table == "public.t" and exc.value.hint


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890123456789012345678",  # 38 digits: NUMBER(38,0)
        "1234567890123456789012345678.0123456789",
        "0.0000000000000000000000000000000000001",  # scale 37
        "0.00000000000000000000000000000000000000012",  # past scale 37, but 1.2e-40 as a DOUBLE is the same
        "1.5e-1",
        "1E2",
        "-0",
        '{"e": "1e1000", "n": 2.50, "s": "' + "9" * 50 + '"}',  # in strings, digits are just text
    ],
)
def test_json_numbers_kept(text: str) -> None:
    for name in ("json", "jsonb"):
        ctype = ct(name)
        check_values(values(ctype, [text]), ctype, "t", "c")


def test_jsonb_duplicate_keys_not_looked_for() -> None:
    # jsonb has no duplicate keys; only json keeps them as written.
    ctype = ct("jsonb")
    check_values(values(ctype, ['{"a": 1, "b": {"c": [1, 2]}}']), ctype, "t", "c")


def test_json_array_null_element_refused_and_numbers_checked() -> None:
    ctype = arr("jsonb")
    check_values(values(ctype, ['{"{\\"a\\": null}",NULL,"[]"}']), ctype, "t", "c")
    with pytest.raises(ValueConversionError) as exc:
        check_values(values(ctype, ["{1}", '{"{}","null"}']), ctype, "t", "c")
    assert exc.value.index == 1 and "JSON null" in exc.value.detail
    with pytest.raises(ValueConversionError) as exc:
        check_values(values(ctype, ["{1}", "{2,1e1000}"]), ctype, "t", "c")
    assert exc.value.index == 1 and "array element" in exc.value.detail


def test_float_negative_zero_stays_a_double() -> None:
    # PARSE_JSON reads -0 as the integer 0; with an exponent it is a DOUBLE and keeps its sign.
    for name in ("float4", "float8"):
        ctype = arr(name)
        out = to_parquet_array(values(ctype, ["{-0,0,-1.5}"]), ctype).to_pylist()
        assert out == ["[-0.0e0,0,-1.5]"]
