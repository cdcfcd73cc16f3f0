"""Every reserved word works as a table and a column name, end to end, on both destinations.

The words: Snowflake's documented reserved and limited keywords, the SQL:2016 reserved words
(Snowflake reserves every ANSI keyword but the type names), DuckDB's keywords of every category
(``duckdb_keywords()``, read at test time) and the keywords of the emulator's Snowflake and
DuckDB parsers (sqlglot's tokenizers, when the emulator is installed). PostgreSQL takes each one
quoted. They are the columns of tables themselves named by reserved words, plus a table named
``order`` whose primary key is (``group``, ``by``). Copy, then inserts, updates and deletes
through CDC: the target must equal the source by content, under the same column names.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import redis
from psycopg import sql

from engine.config.repository import ConfigRepository
from engine.destinations.snowflake.naming import SNOWFLAKE_RESERVED, snowflake_column_name
from engine.identifiers import TableName, parse_table_list
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, source_rows, wait_caught_up, wait_until
from tests.integration.targets import Target, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KINDS = ["duckdb", "snowflake"]

# SQL:2016 reserved words (ISO/IEC 9075-2, 5.2)
# (END-EXEC, not an identifier, left out).
_ANSI_TEXT = """
abs acos all allocate alter and any are array array_agg array_max_cardinality as asensitive asin
asymmetric at atan atomic authorization avg begin begin_frame begin_partition between bigint binary
blob boolean both by call called cardinality cascaded case cast ceil ceiling char char_length
character character_length check classifier clob close coalesce collate collect column commit
condition connect constraint contains convert copy corr corresponding cos cosh count covar_pop
covar_samp create cross cube cume_dist current current_catalog current_date
current_default_transform_group current_path current_role current_row current_schema current_time
current_timestamp current_transform_group_for_type current_user cursor cycle date day deallocate
dec decfloat decimal declare default define delete dense_rank deref describe deterministic
disconnect distinct double drop dynamic each element else empty end end_frame end_partition equals
escape every except exec execute exists exp external extract false fetch filter first_value float
floor for foreign frame_row free from full function fusion get global grant group grouping groups
having hold hour identity in indicator initial inner inout insensitive insert int integer intersect
intersection interval into is join json_array json_arrayagg json_exists json_object json_objectagg
json_query json_table json_table_primitive json_value lag language large last_value lateral lead
leading left like like_regex listagg ln local localtime localtimestamp log log10 lower match
match_number match_recognize matches max measures member merge method min minute mod modifies
module month multiset national natural nchar nclob new no none normalize not nth_value ntile null
nullif numeric occurrences_regex octet_length of offset old omit on one only open or order out
outer over overlaps overlay parameter partition pattern per percent percent_rank percentile_cont
percentile_disc period portion position position_regex power precedes precision prepare primary
procedure ptf range rank reads real recursive ref references referencing regr_avgx regr_avgy
regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy release result return
returns revoke right rollback rollup row row_number rows running savepoint scope scroll search
second seek select sensitive session_user set show similar sin sinh skip smallint some specific
specifictype sql sqlexception sqlstate sqlwarning sqrt start static stddev_pop stddev_samp
submultiset subset substring substring_regex succeeds sum symmetric system system_time system_user
table tablesample tan tanh then time timestamp timezone_hour timezone_minute to trailing translate
translate_regex translation treat trigger trim trim_array true truncate uescape union unique
unknown unnest update upper user using value value_of values var_pop var_samp varbinary varchar
varying versioning when whenever where width_bucket window with within without year
"""
ANSI_RESERVED = _ANSI_TEXT.split()

# Reserved "by other popular databases" in Snowflake's words (its page names ASC, DESC, MINUS).
OTHER_RESERVED = ("asc", "desc", "minus")

_WORD = re.compile(r"[a-z_][a-z0-9_]*\Z")


def _emulator_words() -> set[str]:
    """The keywords of the emulator's parsers: fakesnow reads Snowflake SQL with sqlglot and
    hands DuckDB SQL to DuckDB."""
    try:
        from sqlglot.dialects.duckdb import DuckDB
        from sqlglot.dialects.snowflake import Snowflake
    except ImportError:  # no emulator installed: the Snowflake cases skip anyway
        return set()
    keywords = [*Snowflake.Tokenizer.KEYWORDS, *DuckDB.Tokenizer.KEYWORDS]
    return {k.lower() for k in keywords if _WORD.match(k.lower())}


def reserved_words() -> list[str]:
    con = duckdb.connect()
    try:
        duck = {str(r[0]).lower() for r in con.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()}
    finally:
        con.close()
    words = {w.lower() for w in SNOWFLAKE_RESERVED} | set(ANSI_RESERVED) | set(OTHER_RESERVED) | duck
    words |= _emulator_words()
    assert duck and {"at", "order", "qualify", "select", "pivot"} <= words
    return sorted(words)


# ---------------------------------------------------------------------------------------- values

PgType = str
# The column types the words cycle through, and how a value of each is read back comparably.
TYPES: tuple[PgType, ...] = ("text", "integer", "numeric(12,2)", "timestamptz", "jsonb", "boolean")


def _value(pg_type: PgType, word: str, i: int, r: int) -> Any:
    """Column ``i`` (named ``word``) of row version ``r``."""
    if pg_type == "text":
        return f"{word} '{r}' \"{i}\""
    if pg_type == "integer":
        return i * 1000 + r
    if pg_type == "numeric(12,2)":
        return Decimal(f"{i}.{r % 100:02d}")
    if pg_type == "timestamptz":
        return dt.datetime(2024, 1 + r % 12, 1 + i % 28, 10, i % 60, r % 60, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    if pg_type == "jsonb":
        return json.dumps({word: [r, i]})
    if pg_type == "boolean":
        return (i + r) % 2 == 0
    raise AssertionError(pg_type)


def _comparable(pg_type: PgType) -> Callable[[Any], Any]:
    if pg_type == "timestamptz":
        return lambda v: v.astimezone(dt.UTC)
    if pg_type == "jsonb":
        return lambda v: json.loads(v) if isinstance(v, str) else v
    if pg_type == "numeric(12,2)":
        return lambda v: (type(v).__name__, Decimal(v))
    return lambda v: (type(v).__name__, v)


# ---------------------------------------------------------------------------------------- tables


class Table:
    """A source table: its name, columns (name, type) and primary key columns (the first ones)."""

    def __init__(self, name: str, columns: list[tuple[str, PgType]], keys: int = 1) -> None:
        self.name = name
        self.columns = columns
        self.keys = keys

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.columns]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier("public", self.name)

    def key_values(self, r: int) -> list[Any]:
        return [r, r % 2][: self.keys]

    def row(self, r: int, version: int) -> list[Any]:
        """Row ``r`` as written in ``version`` (keys never change)."""
        values = self.key_values(r)
        for i, (name, pg_type) in enumerate(self.columns[self.keys :], start=self.keys):
            values.append(_value(pg_type, name, i, r + 100 * version))
        return values


# Tables named by reserved words; the words themselves spread over them, about 150 columns each.
_TABLE_NAMES = ("select", "from", "where", "table", "at", "qualify", "window", "user", "limit", "group")
_PER_TABLE = 150


def _tables() -> list[Table]:
    words = reserved_words()
    chunks = [words[k : k + _PER_TABLE] for k in range(0, len(words), _PER_TABLE)]
    assert len(chunks) <= len(_TABLE_NAMES), "more words than tables: add table names"
    tables = []
    for name, chunk in zip(_TABLE_NAMES, chunks, strict=False):
        # the first word is the key (integer); the rest cycle through the types
        cols = [(chunk[0], "integer"), *((w, TYPES[i % len(TYPES)]) for i, w in enumerate(chunk[1:]))]
        tables.append(Table(name, cols))
    order = [
        ("group", "integer"),
        ("by", "integer"),
        ("order", "text"),
        ("select", "text"),
        ("at", "timestamptz"),
        ("values", "numeric(12,2)"),
        ("from", "jsonb"),
        ("desc", "boolean"),
        ("qualify", "integer"),
    ]
    tables.append(Table("order", order, keys=2))
    return tables


def _create(dsn: str, tables: list[Table], rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in tables:
            cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(ty)) for n, ty in t.columns)
            keys = sql.SQL(", ").join(sql.Identifier(n) for n in t.names[: t.keys])
            conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(t.ident, cols, keys))
            for r in range(1, rows + 1):
                _insert(conn, t, r, 0)


def _insert(conn: psycopg.Connection[Any], t: Table, r: int, version: int) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            t.ident,
            sql.SQL(", ").join(sql.Identifier(n) for n in t.names),
            sql.SQL(", ").join(sql.Placeholder() for _ in t.names),
        ),
        t.row(r, version),
    )


def _where_key(t: Table) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in t.names[: t.keys])


def _changes(dsn: str, tables: list[Table]) -> None:
    """Inserts, updates of every non-key column (one row twice in a transaction), deletes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in tables:
            _insert(conn, t, 5, 1)
            _insert(conn, t, 6, 1)
            non_keys = t.names[t.keys :]
            sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in non_keys)
            update = sql.SQL("UPDATE {} SET {} WHERE {}").format(t.ident, sets, _where_key(t))
            conn.execute(update, [*t.row(1, 2)[t.keys :], *t.key_values(1)])
            with conn.transaction():
                conn.execute(update, [*t.row(2, 1)[t.keys :], *t.key_values(2)])
                conn.execute(update, [*t.row(2, 2)[t.keys :], *t.key_values(2)])
            conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(t.ident, _where_key(t)), t.key_values(3))


# ---------------------------------------------------------------------------------------- checks


def _source(dsn: str, t: Table) -> list[tuple[Any, ...]]:
    cols = ", ".join(sql.Identifier(n).as_string() for n in t.names)
    keys = ", ".join(sql.Identifier(n).as_string() for n in t.names[: t.keys])
    return source_rows(dsn, f'SELECT {cols} FROM public."{t.name}" ORDER BY {keys}')


def _comparable_rows(t: Table, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    forms = [_comparable(ty) for _, ty in t.columns]
    return [tuple(None if v is None else f(v) for f, v in zip(forms, row, strict=True)) for row in rows]


def _assert_equal(target: Target, dsn: str, t: Table, expected_rows: int) -> None:
    stored = snowflake_column_name if target.type == "snowflake" else str
    data = [c for c in target.columns(t.name) if not c.lower().startswith("_etl_")]
    assert data == [stored(n) for n in t.names], f"{t.name}: columns renamed or lost"
    want = _comparable_rows(t, _source(dsn, t))
    got = _comparable_rows(t, target.rows(t.name, t.names))
    assert len(want) == expected_rows
    assert got == want, f"table {t.name!r} differs"


def _configure(settings: Settings, dsn: str, target: Target, tables: list[Table]) -> None:
    names = ",".join(str(TableName("public", t.name)) for t in tables)
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list(names))


def _all_ready(settings: Settings, pipeline_id: int, tables: list[Table]) -> bool:
    states = PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id).load()
    phases = {}
    for t in tables:
        st = states.get(TableName("public", t.name))
        if st is not None and st.phase is TablePhase.ERRORED:
            pytest.fail(f"table {t.name!r} errored: {st.reason} ({st.hint})")
        phases[t.name] = st.phase if st else None
    return all(p is TablePhase.READY for p in phases.values())


@pytest.mark.parametrize("kind", KINDS)
def test_every_reserved_word_is_a_table_and_column_name(
    kind: str,
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_target(kind, tmp_path, request, monkeypatch)
    tables = _tables()
    assert sum(len(t.columns) for t in tables) >= len(reserved_words())
    _create(source_dsn, tables, rows=4)
    _configure(settings, source_dsn, target, tables)
    with EngineThread(settings) as engine:
        runner = engine.runner("p1", timeout=60)  # a shared 2-core machine can be slow to start it
        wait_until(lambda: _all_ready(settings, runner.spec.id, tables), 240, what="every table ready")
        for t in tables:
            _assert_equal(target, source_dsn, t, 4)
        _changes(source_dsn, tables)
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name, 240)
        for t in tables:
            _assert_equal(target, source_dsn, t, 5)
