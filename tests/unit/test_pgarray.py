"""PostgreSQL array text parsing (one dimension)."""

from __future__ import annotations

import random

import pytest

from engine.decoding.pgarray import parse_array
from engine.errors import ArrayLowerBoundError, ArrayParseError, MultiDimensionalArrayError

# Literals below are written exactly as PostgreSQL 15's array_out prints them.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", []),
        ("{1,2,3}", ["1", "2", "3"]),
        ("{1,NULL,3}", ["1", None, "3"]),
        ("{NULL}", [None]),
        ("{t,f}", ["t", "f"]),
        ("{1.5,NaN,-Infinity}", ["1.5", "NaN", "-Infinity"]),
        ("{ü,日本語,🙂}", ["ü", "日本語", "🙂"]),
        ("{P1D,PT-1S}", ["P1D", "PT-1S"]),
        ('{"\\\\x00","\\\\x",NULL}', ["\\x00", "\\x", None]),
        ('{2024-01-01,"0044-03-15 BC"}', ["2024-01-01", "0044-03-15 BC"]),
        ('{"{\\"a\\": 1}","[1, 2]"}', ['{"a": 1}', "[1, 2]"]),
        ('{"ab ","x  "}', ["ab ", "x  "]),
        ("[1:3]={1,2,3}", ["1", "2", "3"]),
        ("[3]={1,2,3}", ["1", "2", "3"]),
    ],
)
def test_postgres_output(text: str, expected: list[str | None]) -> None:
    assert parse_array(text) == expected


def test_every_quoting_rule() -> None:
    # select array['', ' ', 'a\b', 'ü', 'NULL', 'nuLL', 'a"b', '{', '}', ',', E'\n', 'a,b', NULL]
    text = '{""," ","a\\\\b",ü,"NULL","nuLL","a\\"b","{","}",",","\n","a,b",NULL}'
    assert parse_array(text) == [
        "",
        " ",
        "a\\b",
        "ü",
        "NULL",
        "nuLL",
        'a"b',
        "{",
        "}",
        ",",
        "\n",
        "a,b",
        None,
    ]


def test_unquoted_null_is_case_insensitive_but_quoted_null_is_text() -> None:
    assert parse_array('{null,Null,NULL,"null","NULL",nulls}') == [None, None, None, "null", "NULL", "nulls"]


def test_non_ascii_whitespace_is_part_of_an_unquoted_element() -> None:
    # array_out only quotes ASCII whitespace, so U+00A0 reaches us unquoted and must stay.
    assert parse_array("{\u00a0a\u00a0,b\u3000}") == ["\u00a0a\u00a0", "b\u3000"]
    assert parse_array('{"x",\u00a0}') == ["x", "\u00a0"]


def test_array_in_style_input_is_accepted() -> None:
    assert parse_array("{ 1 , 2 }") == ["1", "2"]
    assert parse_array('{ "a b" , c d }') == ["a b", "c d"]
    assert parse_array("{ }") == []
    assert parse_array("{a\\,b,c}") == ["a,b", "c"]
    assert parse_array('{a\\ ,"x"}') == ["a ", "x"]
    assert parse_array('{\\NULL,"x"}') == ["NULL", "x"]
    assert parse_array("[1:2] = {a,b}") == ["a", "b"]
    assert parse_array("[2]={a,b}") == ["a", "b"]


@pytest.mark.parametrize(
    "text",
    ["{{1,2},{3,4}}", "{{a}}", '{{"a"},{"b"}}', "[1:2][1:1]={{1},{2}}", "{ {1} }"],
)
def test_multi_dimensional_is_rejected(text: str) -> None:
    with pytest.raises(MultiDimensionalArrayError, match="multi-dimensional"):
        parse_array(text)


@pytest.mark.parametrize("text", ["[0:2]={1,2,3}", "[-3:-2]={a,b}", "[5:4]={}", "[2:2]={x}"])
def test_a_lower_bound_other_than_1_is_refused_not_dropped(text: str) -> None:
    with pytest.raises(ArrayLowerBoundError, match="not starting at 1"):
        parse_array(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1,2",
        "{1,2",
        "1,2}",
        "{1,,2}",
        "{1,}",
        "{,1}",
        '{"a}',
        '{"a"b}',
        '{a"b"}',
        "{a}b}",
        "{a\\}",
        "[0:2]{1,2,3}",
        "[0:1]={1,2,3}",
        "[x]={1}",
    ],
)
def test_malformed_is_rejected(text: str) -> None:
    with pytest.raises(ArrayParseError):
        parse_array(text)


def _pg_array_out(items: list[str | None]) -> str:
    """Model of PostgreSQL's array_out quoting, to check parsing round-trips."""
    out = []
    for item in items:
        if item is None:
            out.append("NULL")
            continue
        needs_quotes = (
            item == ""
            or item.upper() == "NULL"
            or any(c in item for c in '{},"\\')
            or any(c in " \t\n\r\v\f" for c in item)
        )
        if needs_quotes:
            out.append('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(item)
    return "{" + ",".join(out) + "}"


def test_round_trip_random_elements() -> None:
    rng = random.Random(20240102)
    alphabet = [*'ab,{}"\\ \t\nNULnul\u00a0ü🙂', "NULL", "null"]
    for _ in range(3000):
        items: list[str | None] = []
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.15:
                items.append(None)
            else:
                items.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))))
        text = _pg_array_out(items)
        assert parse_array(text) == items, text
