"""What a new Relation message means for a replicated table (engine.pipeline.schema_change)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from engine.decoding.pgoutput import Relation, RelationColumn, ReplicaIdentity
from engine.decoding.types import ColumnType, PgTypeInfo, TypeCategory, map_type
from engine.destinations.duckdb.types import duckdb_type
from engine.errors import ErrorKind, TableError, UnsupportedTypeError
from engine.identifiers import TableName
from engine.pipeline.schema_change import evolve
from engine.source.catalog import ColumnSchema, TableSchema

TYPES = {"int4": 23, "int8": 20, "text": 25, "varchar": 1043, "numeric": 1700, "point": 600}
TABLE = TableName("public", "t")


def ctype(type_name: str, typmod: int = -1) -> ColumnType:
    info = PgTypeInfo(oid=TYPES[type_name], name=type_name, typmod=typmod, category=TypeCategory.BASE)
    return map_type(info, "public.t", "c")


def col(name: str, type_name: str, attnum: int, key: bool = False, typmod: int = -1) -> ColumnSchema:
    return ColumnSchema(name, TYPES[type_name], typmod, ctype(type_name, typmod), key, attnum)


OLD = TableSchema(
    TABLE,
    16384,
    (col("id", "int4", 1, key=True), col("a", "text", 2), col("b", "varchar", 3, typmod=14)),
    "d",
)


def rel(
    *columns: tuple[str, str] | tuple[str, str, int],
    keys: tuple[str, ...] = ("id",),
    identity: ReplicaIdentity = ReplicaIdentity.DEFAULT,
) -> Relation:
    cols = []
    for c in columns:
        name, type_name = c[0], c[1]
        typmod = c[2] if len(c) == 3 else -1  # type: ignore[misc]
        cols.append(RelationColumn(name, TYPES[type_name], typmod, name in keys))
    return Relation(16384, "public", "t", identity, tuple(cols))


def column_type(name: str, oid: int, typmod: int) -> ColumnType:
    type_name = next(k for k, v in TYPES.items() if v == oid)
    if type_name == "point":
        raise UnsupportedTypeError("public.t", name, "point", "no exact representation", "cast it to text")
    return ctype(type_name, typmod)


def positions(**attnums: int) -> Mapping[str, int]:
    return attnums


def run(r: Relation, attnums: Mapping[str, int] | None = None) -> tuple[TableSchema, object]:
    asked: list[bool] = []

    def read() -> Mapping[str, int]:
        asked.append(True)
        return attnums or {}

    return evolve(OLD, r, column_type, read, "p1")


def test_same_shape_is_no_change() -> None:
    schema, change = run(rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14)))
    assert schema is OLD and change is None


def test_added_columns_come_last_with_their_positions() -> None:
    schema, change = run(
        rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14), ("c", "int8"), ("d", "numeric", 655366)),
        positions(id=1, a=2, b=3, c=4, d=5),
    )
    assert [c.name for c in schema.columns] == ["id", "a", "b", "c", "d"]
    assert [c.attnum for c in schema.columns] == [1, 2, 3, 4, 5]
    assert duckdb_type(schema.columns[4].ctype) == "DECIMAL(10,2)"
    assert not schema.columns[3].is_key
    assert change.describe() == "added c, d"  # type: ignore[attr-defined]


def test_dropped_columns_go() -> None:
    schema, change = run(rel(("id", "int4"), ("b", "varchar", 14)))
    assert [c.name for c in schema.columns] == ["id", "b"]
    assert schema.columns[1] is OLD.columns[2]
    assert change.describe() == "dropped a"  # type: ignore[attr-defined]


def test_a_drop_and_an_add_at_once() -> None:
    schema, change = run(rel(("id", "int4"), ("a", "text"), ("c", "text")), positions(id=1, a=2, c=4))
    assert [c.name for c in schema.columns] == ["id", "a", "c"]
    assert change.describe() == "added c; dropped b"  # type: ignore[attr-defined]


def test_renaming_the_last_column_is_told_apart_from_drop_and_add_by_its_position() -> None:
    with pytest.raises(TableError) as err:
        run(rel(("id", "int4"), ("a", "text"), ("b2", "varchar", 14)), positions(id=1, a=2, b2=3))
    assert err.value.kind is ErrorKind.SCHEMA_CHANGE
    assert "column b was renamed to b2" in err.value.reason
    assert "etl-tui pipeline resync p1 --table 'public.t'" in err.value.hint


def test_renaming_a_middle_column() -> None:
    with pytest.raises(TableError, match="column a2 replaced a in place"):
        run(rel(("id", "int4"), ("a2", "text"), ("b", "varchar", 14)))


def test_a_type_change_that_changes_the_destination_type() -> None:
    with pytest.raises(TableError, match="column a changed type from text to int8"):
        run(rel(("id", "int4"), ("a", "int8"), ("b", "varchar", 14)))


def test_widening_a_varchar_keeps_going() -> None:
    schema, change = run(rel(("id", "int4"), ("a", "text"), ("b", "varchar", 104)))
    assert schema.columns[2].typmod == 104
    assert change.describe() == "widened b"  # type: ignore[attr-defined]


def test_a_new_key_is_refused() -> None:
    with pytest.raises(TableError, match=r"its key changed from \(id\) to \(a, id\)"):
        run(rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14), keys=("id", "a")))


def test_dropping_the_key_is_refused() -> None:
    with pytest.raises(TableError, match="key column id was dropped or renamed"):
        run(rel(("a", "text"), ("b", "varchar", 14), keys=()))


def test_an_added_column_of_an_unsupported_type_errors_naming_it() -> None:
    with pytest.raises(TableError) as err:
        run(rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14), ("p", "point")), positions(p=4))
    assert err.value.kind is ErrorKind.UNSUPPORTED_TYPE
    assert "p" in err.value.reason and "point" in err.value.reason


def test_positions_are_read_only_when_columns_were_added() -> None:
    calls: list[int] = []

    def read() -> Mapping[str, int]:
        calls.append(1)
        return {}

    evolve(OLD, rel(("id", "int4"), ("a", "text")), column_type, read, "p1")
    assert calls == []
    evolve(OLD, rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14), ("z", "int4")), column_type, read, "p1")
    assert calls == [1]


def test_switching_to_replica_identity_full_is_not_a_key_change() -> None:
    schema, change = run(
        rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14), keys=("id", "a", "b"), identity=ReplicaIdentity.FULL)
    )
    assert change is None and [c.name for c in schema.key_columns] == ["id"]


def test_replica_identity_nothing_is_refused() -> None:
    with pytest.raises(TableError, match="REPLICA IDENTITY NOTHING"):
        run(rel(("id", "int4"), ("a", "text"), ("b", "varchar", 14), keys=(), identity=ReplicaIdentity.NOTHING))
