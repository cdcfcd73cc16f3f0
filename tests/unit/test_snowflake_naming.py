from __future__ import annotations

import pytest

from engine.destinations.snowflake.naming import (
    SNOWFLAKE_RESERVED,
    qualified,
    snowflake_column_name,
    snowflake_ident,
)
from engine.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "sql", "stored"),
    [
        ("orders", '"ORDERS"', "ORDERS"),
        ("ORDERS", '"ORDERS"', "ORDERS"),
        ("order_items_2", '"ORDER_ITEMS_2"', "ORDER_ITEMS_2"),
        ("_etl_lsn", '"_ETL_LSN"', "_ETL_LSN"),
        ("a$b", '"A$B"', "A$B"),
        ("Order Items", '"Order Items"', "Order Items"),
        ("MixedCase", '"MixedCase"', "MixedCase"),
        ('a"b', '"a""b"', 'a"b'),
        ("1abc", '"1abc"', "1abc"),
        ("$x", '"$x"', "$x"),
        ("has-dash", '"has-dash"', "has-dash"),
        ("café", '"café"', "café"),
        # str.upper() maps these to ASCII; upper-casing would rename the column.
        ("ı", '"ı"', "ı"),
        ("ſ", '"ſ"', "ſ"),
        ("select", '"SELECT"', "SELECT"),
        ("SELECT", '"SELECT"', "SELECT"),
        ("Select", '"Select"', "Select"),
        ("current_date", '"CURRENT_DATE"', "CURRENT_DATE"),
        ("try_cast", '"TRY_CAST"', "TRY_CAST"),
        # not on Snowflake's reserved list, yet refused bare by the emulator (DuckDB's SQL)
        ("at", '"AT"', "AT"),
        ("At", '"At"', "At"),
    ],
)
def test_ident(name: str, sql: str, stored: str) -> None:
    assert snowflake_ident(name) == sql
    assert snowflake_column_name(name) == stored


@pytest.mark.parametrize(
    "name",
    ['x"; DROP TABLE t; --', '"', '""', "a.b", "a b", "\n", "x'y", "--", "/*", 'A"."B'],
)
def test_hostile_names_are_one_quoted_identifier(name: str) -> None:
    sql = snowflake_ident(name)
    assert sql.startswith('"') and sql.endswith('"')
    inner = sql[1:-1]
    # Every quote inside is doubled, so the identifier cannot end early.
    assert inner.replace('""', "").count('"') == 0
    assert inner.replace('""', '"') == name


def test_all_reserved_words_are_quoted() -> None:
    assert {"ACCOUNT", "GSCLUSTER", "ILIKE", "QUALIFY", "WHENEVER", "WITH"} <= SNOWFLAKE_RESERVED
    for word in SNOWFLAKE_RESERVED:
        assert snowflake_ident(word) == f'"{word}"'
        assert snowflake_ident(word.lower()) == f'"{word}"'


def test_every_identifier_is_quoted() -> None:
    # No keyword list decides: plain names and non-reserved keywords are quoted too.
    for name in ("name", "value", "at", "qualify", "x", "_"):
        assert snowflake_ident(name) == f'"{name.upper()}"'


@pytest.mark.parametrize("name", ["a\x00b", "", "x" * 256])
def test_rejected(name: str) -> None:
    with pytest.raises(ConfigError):
        snowflake_ident(name)
    with pytest.raises(ConfigError):
        snowflake_column_name(name)


def test_longest_allowed() -> None:
    assert snowflake_ident("x" * 255) == '"' + "X" * 255 + '"'


def test_qualified() -> None:
    assert qualified("analytics", "public", "orders") == '"ANALYTICS"."PUBLIC"."ORDERS"'
    assert qualified("db", "Raw Schema", "select") == '"DB"."Raw Schema"."SELECT"'
    assert qualified("orders") == '"ORDERS"'
    with pytest.raises(ValueError):
        qualified()
