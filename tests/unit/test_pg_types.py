"""Resolving a column's type from catalog rows (engine.source.pg_types), and the type map of what
it resolves to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from engine.decoding.types import ConvKind, PgTypeInfo, TypeCategory, map_type
from engine.destinations.duckdb.types import duckdb_type
from engine.source.pg_types import TYPE_INFO_SQL, load_type_info, type_info_from_row


@dataclass
class _FakeCursor:
    row: tuple[Any, ...] | None
    calls: list[tuple[str, dict[str, int]]]

    def execute(self, sql: str, params: dict[str, int]) -> None:
        self.calls.append((sql, params))

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.row


@dataclass
class _FakeConn:
    row: tuple[Any, ...] | None
    calls: list[tuple[str, dict[str, int]]]

    @contextmanager
    def cursor(self, row_factory: Any = None) -> Iterator[_FakeCursor]:
        assert row_factory is not None
        yield _FakeCursor(self.row, self.calls)


def test_load_type_info_domain_over_array() -> None:
    # create domain numarr as numeric(7,3)[]  →  column of type numarr (atttypmod -1)
    row = (1231, "_numeric", "b", "A", 458759, True, ["numarr"], 1700, "numeric", "b", "N", 458759, [])
    conn = _FakeConn(row, [])
    info = load_type_info(conn, 16530, -1)
    assert conn.calls == [(TYPE_INFO_SQL, {"oid": 16530, "typmod": -1})]
    assert info == PgTypeInfo(
        1231, "_numeric", 458759, TypeCategory.ARRAY, PgTypeInfo(1700, "numeric", 458759), domain="numarr"
    )
    ctype = map_type(info, "public.t", "c")
    assert (duckdb_type(ctype), ctype.kind, ctype.element and ctype.element.kind) == (
        "DECIMAL(7,3)[]",
        ConvKind.ARRAY,
        ConvKind.DECIMAL,
    )


def test_type_info_array_of_stacked_domain() -> None:
    # money2 as numeric(12,2); money2c as money2b as money2; column money2c[]
    row = (
        16532,
        "_money2c",
        "b",
        "A",
        -1,
        True,
        [],
        1700,
        "numeric",
        "b",
        "N",
        786438,
        ["money2c", "money2b", "money2"],
    )
    info = type_info_from_row(row)
    assert info.element == PgTypeInfo(1700, "numeric", 786438, domain="money2c")
    assert duckdb_type(map_type(info, "public.t", "c")) == "DECIMAL(12,2)[]"


def test_type_info_enum_and_composite() -> None:
    enum_row = (16539, "mood", "e", "E", -1, False, ["moody"], None, None, None, None, None, None)
    assert type_info_from_row(enum_row) == PgTypeInfo(16539, "mood", -1, TypeCategory.ENUM, domain="moody")
    comp_row = (16547, "pair", "c", "C", -1, False, [], None, None, None, None, None, None)
    assert type_info_from_row(comp_row).category is TypeCategory.COMPOSITE


def test_load_type_info_missing_type() -> None:
    with pytest.raises(LookupError):
        load_type_info(_FakeConn(None, []), 4242, -1)
