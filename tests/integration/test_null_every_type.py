"""NULL in every supported type (type_cases.py's columns) lands as NULL, through the initial copy
and through CDC (an all-NULL insert, an update setting every column to NULL, and an insert
updated to NULL in the same transaction), on DuckDB and on Snowflake (fakesnow): the target
holds NULL, never 0, 1970-01-01, '' or a JSON null.

Whether a value is NULL is decided in the destination (``col IS NULL``), and the value the
driver hands back must be None too. One narrowly scoped exception, the emulator's and not the
engine's: fakesnow returns every NULL TIMESTAMP_NTZ/TIMESTAMP_TZ *in a result* as 1970-01-01,
even for ``SELECT NULL::TIMESTAMP_TZ`` (its Arrow encoding of timestamps builds the
epoch/fraction struct without the nulls), while the table holds NULL. So for TIMESTAMP columns,
and only when the destination answers that literal NULL with a non-NULL value, the value read
back must be exactly that stand-in, and ``IS NULL`` must still be true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from engine.config.repository import ConfigRepository
from engine.destinations.snowflake.naming import qualified, snowflake_column_name, snowflake_ident
from engine.identifiers import parse_table_list, quote_ident
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, duck_rows, wait_caught_up, wait_until
from tests.integration.targets import DuckTarget, SnowflakeTarget, Target, make_target
from tests.integration.type_cases import GROUPS, TYPES_DDL, Col

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KINDS = ["duckdb", "snowflake"]

# The value a non-NULL row holds: the column's first value, except where that one is beyond
# Snowflake (a BC date, a duplicated JSON key, a JSON null element) or beyond the emulator's
# NUMBER(38,0) (a 64-bit integer there); any value both hold will do here.
_VALUE_INDEX = {"dt": 2, "ad": 2, "j": 1, "ajb": 2, "n38_0": 3, "nu": 5}

ALL_NULL, NULLED, KEPT, CDC_NULL, CDC_NULLED = 1, 2, 3, 1001, 1002


def _value(col: Col) -> Any:
    return col.values[_VALUE_INDEX.get(col.name, 0)]


def _placeholder(col: Col) -> sql.Composable:
    # arrays travel as text[] lists, which only an explicit cast turns into e.g. uuid[]
    return sql.SQL("%s::{}").format(sql.SQL(col.pg_type)) if col.pg_type.endswith("[]") else sql.SQL("%s")


def _insert(conn: psycopg.Connection[Any], table: str, cols: tuple[Col, ...], row_id: int, null: bool) -> None:
    if null:
        conn.execute(sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(sql.Identifier(table)), [row_id])
        return
    conn.execute(
        sql.SQL("INSERT INTO {} (id, {}) VALUES (%s, {})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in cols),
            sql.SQL(", ").join(_placeholder(c) for c in cols),
        ),
        [row_id, *(_value(c) for c in cols)],
    )


def _set_null(conn: psycopg.Connection[Any], table: str, cols: tuple[Col, ...], row_id: int) -> None:
    nulls = sql.SQL(", ").join(sql.SQL("{} = NULL").format(sql.Identifier(c.name)) for c in cols)
    conn.execute(sql.SQL("UPDATE {} SET {} WHERE id = %s").format(sql.Identifier(table), nulls), [row_id])


def _create_and_fill(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ddl in TYPES_DDL:
            conn.execute(ddl)
        for table, cols in GROUPS.items():
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in cols
            )
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, {})").format(sql.Identifier(table), columns))
            _insert(conn, table, cols, ALL_NULL, null=True)
            _insert(conn, table, cols, NULLED, null=False)
            _insert(conn, table, cols, KEPT, null=False)


def _cdc(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table, cols in GROUPS.items():
            _insert(conn, table, cols, CDC_NULL, null=True)
            _set_null(conn, table, cols, NULLED)
            with conn.transaction():
                _insert(conn, table, cols, CDC_NULLED, null=False)
                _set_null(conn, table, cols, CDC_NULLED)


# ---------------------------------------------------------------------------------------- reading


class Reader:
    """Per row and column of a target table: whether the destination says NULL, and the value
    the driver returns."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.stand_in: dict[str, Any] = {}
        if isinstance(target, SnowflakeTarget):
            target._query(f"USE DATABASE {snowflake_ident(target.database)}")  # the emulator's casts live there
            ntz, tz = target._query("SELECT NULL::TIMESTAMP_NTZ, NULL::TIMESTAMP_TZ")[0]
            # what this destination returns for a literal NULL timestamp (None on Snowflake)
            self.stand_in = {"TIMESTAMP_NTZ": ntz, "TIMESTAMP_TZ": tz}

    def types(self, table: str) -> dict[str, str]:
        if not isinstance(self.target, SnowflakeTarget):
            return {}
        t = self.target
        name = snowflake_column_name(table).replace("'", "''")
        rows = t._query(
            f"SELECT COLUMN_NAME, DATA_TYPE FROM {qualified(t.database, 'INFORMATION_SCHEMA', 'COLUMNS')} "
            f"WHERE TABLE_SCHEMA = '{t.schema}' AND TABLE_NAME = '{name}'"
        )
        return {str(r[0]): str(r[1]).upper() for r in rows}

    def cells(self, table: str, cols: tuple[Col, ...]) -> dict[int, list[tuple[bool, Any]]]:
        if isinstance(self.target, SnowflakeTarget):
            t = self.target
            names = [snowflake_ident(c.name) for c in cols]
            where = qualified(t.database, t.schema, table)
            query = f"SELECT {snowflake_ident('id')}, {', '.join(f'{n} IS NULL, {n}' for n in names)} FROM {where}"
            raw = t._query(query + " ORDER BY 1")
        else:
            assert isinstance(self.target, DuckTarget)
            names = [quote_ident(c.name) for c in cols]
            query = f"SELECT id, {', '.join(f'{n} IS NULL, {n}' for n in names)} FROM main.{quote_ident(table)}"
            raw = duck_rows(self.target.path, query + " ORDER BY 1")
        return {int(r[0]): [(bool(r[1 + 2 * i]), r[2 + 2 * i]) for i in range(len(cols))] for r in raw}


def _check(reader: Reader, null_ids: set[int], kept_ids: set[int]) -> None:
    wrong: list[str] = []
    for table, cols in GROUPS.items():
        types = reader.types(table)
        cells = reader.cells(table, cols)
        assert set(cells) == null_ids | kept_ids, f"{table}: rows {sorted(cells)}"
        for row_id, row in cells.items():
            for col, (is_null, value) in zip(cols, row, strict=True):
                where = f"{table}.{col.name} ({col.pg_type}) row {row_id}"
                if row_id in kept_ids:
                    if is_null or value is None:
                        wrong.append(f"{where}: NULL, expected a value")
                    continue
                if not is_null:
                    wrong.append(f"{where}: holds {value!r}, not NULL")
                    continue
                sf_type = types.get(snowflake_column_name(col.name), "")
                stand_in = reader.stand_in.get(sf_type)
                if stand_in is not None and sf_type.startswith("TIMESTAMP"):
                    if value != stand_in:  # the emulator's reading of NULL, exactly, and nothing else
                        wrong.append(f"{where}: IS NULL, yet read back as {value!r}, not as {stand_in!r}")
                elif value is not None:
                    wrong.append(f"{where}: IS NULL, yet read back as {value!r}")
    assert not wrong, "\n".join(wrong)


def _configure(settings: Settings, dsn: str, target: Target) -> None:
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list(",".join(f"public.{t}" for t in GROUPS)))


def _all_ready(settings: Settings, pipeline_id: int) -> bool:
    states = PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id).load()
    ready = True
    for table in GROUPS:
        st = states.get(parse_table_list(f"public.{table}")[0])
        if st is not None and st.phase is TablePhase.ERRORED:
            pytest.fail(f"table {table} errored: {st.reason} ({st.hint})")
        ready = ready and st is not None and st.phase is TablePhase.READY
    return ready


@pytest.mark.parametrize("kind", KINDS)
def test_null_in_every_type_copy_and_cdc(
    kind: str,
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch)
    reader = Reader(target)
    _create_and_fill(source_dsn)
    _configure(settings, source_dsn, target)
    with EngineThread(settings) as engine:
        runner = engine.runner("p1", timeout=60)
        wait_until(lambda: _all_ready(settings, runner.spec.id), 180, what="every type table ready")
        _check(reader, null_ids={ALL_NULL}, kept_ids={NULLED, KEPT})
        _cdc(source_dsn)
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name, 180)
        _check(reader, null_ids={ALL_NULL, NULLED, CDC_NULL, CDC_NULLED}, kept_ids={KEPT})
