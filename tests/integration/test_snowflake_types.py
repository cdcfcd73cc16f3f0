"""Every supported column type survives PostgreSQL → Snowflake exactly, through the initial copy and
through pgoutput, end to end: real PostgreSQL, the engine in-process, and Snowflake emulated by
fakesnow in server mode behind the real connector.

The columns and values are type_cases.py's. ``SF`` says, per column, the Snowflake type it must
land as (engine/destinations/snowflake/typemap.py's table) and how each side's value is brought to
one comparable form. Values Snowflake cannot hold (``REFUSED``) are left out of the round trip; each
of them is shown to stop only its own table, with a reason naming table and column.

Emulator gaps worked around here, each where it applies: fakesnow reads a NULL timestamp back as
1970-01-01 and maps NUMBER(38,0) to a 64-bit BIGINT. (The column named ``at`` keeps its name:
every identifier is sent quoted.)
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from engine.config.repository import ConfigRepository
from engine.destinations.snowflake.naming import snowflake_ident
from engine.embedded.postgres import EmbeddedPostgres
from engine.embedded.redis import EmbeddedRedis
from engine.identifiers import parse_table_list
from engine.settings import Settings
from engine.source.connection import source_conninfo
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from tests.integration.harness import EngineThread, wait_caught_up, wait_until
from tests.integration.targets import SnowflakeTarget, Target, make_target
from tests.integration.type_cases import (
    CDC_OFFSET,
    GROUPS,
    TSTZ_VALUES,
    TYPES_DDL,
    Col,
    _float8,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- comparable forms


def _same(v: Any) -> Any:
    return v


def _decimal(v: Any) -> Any:
    # The connector returns NUMBER(p,0) as int; a float would show as its binary expansion here.
    return None if v is None else Decimal(v)


def _bits(v: Any) -> Any:
    return None if v is None else _float8(float(v))


def _days(v: dt.date | None) -> int | None:
    return None if v is None else (v - _EPOCH_DATE).days


def _us(v: dt.datetime | None) -> int | None:
    # Exact integer microseconds; a naive value (TIMESTAMP_NTZ) is wall-clock time taken as UTC.
    if v is None:
        return None
    aware = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // dt.timedelta(microseconds=1)


def _bytes(v: Any) -> bytes | None:
    return None if v is None else bytes(v)


def _parse_json(text: str) -> Any:
    # Decimal keeps every digit, and a JSON integer stays an int (so an integer "-0" loses its sign,
    # as it does in Snowflake's NUMBER).
    return json.loads(text, parse_float=Decimal)


def _json(v: str | None) -> Any:
    # Tagged so a JSON null differs from SQL NULL.
    return None if v is None else ("json", _parse_json(v))


def _variant_list(elem: Callable[[Any], Any]) -> Callable[[str | None], list[Any] | None]:
    """An array column arrives as VARIANT JSON text; ``elem`` reads each element."""

    def norm(v: str | None) -> list[Any] | None:
        if v is None:
            return None
        items = _parse_json(v)
        if not isinstance(items, list):
            return [("not a JSON array", items)]
        return [None if x is None else elem(x) for x in items]

    return norm


def _pg_list(elem: Callable[[Any], Any]) -> Callable[[list[Any] | None], list[Any] | None]:
    return lambda v: None if v is None else [None if x is None else elem(x) for x in v]


def _strict(kind: type, then: Callable[[Any], Any] = _same) -> Callable[[Any], Any]:
    """An element must have the JSON kind the mapping documents; otherwise it shows as a mismatch."""
    return lambda x: then(x) if isinstance(x, kind) and not isinstance(x, bool) else ("unexpected", x)


_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})


def _float_elem(x: Any) -> Any:
    # JSON numbers, or one of three strings for what JSON numbers cannot write.
    if (isinstance(x, int | Decimal) and not isinstance(x, bool)) or (isinstance(x, str) and x in _FLOAT_WORDS):
        return _float8(float(x))
    return ("unexpected", x)


def _iso_days(x: str) -> int | None:
    return _days(dt.date.fromisoformat(x))


def _iso_us(x: str) -> int | None:
    return _us(dt.datetime.fromisoformat(x))


@dataclass(frozen=True)
class Sf:
    """The Snowflake side of a column: its type (as INFORMATION_SCHEMA names it) and how values on
    both sides are brought to one form. ``pg_read`` replaces the Col's PostgreSQL read expression."""

    type: str
    norm: Callable[[Any], Any] = _same
    pg_norm: Callable[[Any], Any] = _same
    pg_read: str | None = None


_TEXT = Sf("TEXT")

SF: dict[str, Sf] = {
    "i2": Sf("NUMBER(5,0)"),
    "i4": Sf("NUMBER(10,0)"),
    "i8": Sf("NUMBER(19,0)"),
    "n12_2": Sf("NUMBER(12,2)", _decimal, _decimal),
    "n38_0": Sf("NUMBER(38,0)", _decimal, _decimal),
    "n5_5": Sf("NUMBER(5,5)", _decimal, _decimal),
    "nu": Sf("NUMBER(38,10)", _decimal, _decimal),
    "n4_neg2": Sf("NUMBER(6,0)", _decimal, _decimal),
    "n3_5": Sf("NUMBER(5,5)", _decimal, _decimal),
    # float4 → float8 is exact in PostgreSQL too, so both sides compare as double bit patterns
    "r": Sf("FLOAT", _bits, _bits, "{c}::float8"),
    "d": Sf("FLOAT", _bits, _bits),
    "t": _TEXT,
    "vc": _TEXT,
    "c5": _TEXT,
    "st": _TEXT,
    "dt": Sf("DATE", _days),
    "tm": Sf("TIME"),
    "ts": Sf("TIMESTAMP_NTZ", _us),
    "tz": Sf("TIMESTAMP_TZ", _us),
    # PostgreSQL's own ISO 8601 output (the reader sets IntervalStyle) is the documented text
    "iv": Sf("TEXT", pg_read="{c}::text"),
    "b": Sf("BOOLEAN"),
    "u": Sf("TEXT", pg_read="{c}::text"),
    "j": Sf("VARIANT", _json, _json),
    "jb": Sf("VARIANT", _json, _json),
    "by": Sf("BINARY", _bytes, _bytes),
    "mood": _TEXT,
    "pos": Sf("NUMBER(10,0)"),
    "ai": Sf("VARIANT", _variant_list(_strict(int))),
    "at": Sf("VARIANT", _variant_list(_strict(str))),
    # decimals inside arrays are exact JSON strings
    "an": Sf("VARIANT", _variant_list(_strict(str, Decimal)), _pg_list(Decimal)),
    "atz": Sf("VARIANT", _variant_list(_strict(str, _iso_us))),
    "au": Sf("VARIANT", _variant_list(_strict(str)), pg_read="{c}::text[]"),
    "ab": Sf("VARIANT", _variant_list(lambda x: x if isinstance(x, bool) else ("unexpected", x))),
    "ad": Sf("VARIANT", _variant_list(_strict(str, _iso_days))),
    "aiv": Sf("VARIANT", _variant_list(_strict(str)), pg_read="{c}::text[]"),
    "af8": Sf("VARIANT", _variant_list(_float_elem), _pg_list(_float8)),
    "aby": Sf("VARIANT", _variant_list(_strict(str, bytes.fromhex)), _pg_list(bytes)),
    # nested JSON values, compared parsed
    "ajb": Sf("VARIANT", _variant_list(_same), _pg_list(_parse_json)),
    "ac3": Sf("VARIANT", _variant_list(_strict(str))),
    "amood": Sf("VARIANT", _variant_list(_strict(str))),
    "apos": Sf("VARIANT", _variant_list(_strict(int))),
}

# Values (array elements for array columns) Snowflake cannot hold as they are: they must stop
# their table, never be shifted or rounded.
REFUSED: dict[str, tuple[str, ...]] = {
    "dt": ("0044-03-15 BC", "4713-11-24 BC", "5874897-12-31"),  # DATE covers years 1 to 9999
    "ts": ("0100-06-15 10:00:00 BC", "10000-01-01 00:00:00", "294246-12-31 23:59:59.999999"),
    "tz": (TSTZ_VALUES[5], TSTZ_VALUES[6]),  # 1 BC and 10000 once in UTC
    "atz": (TSTZ_VALUES[5],),
    "ad": ("0044-03-15 BC",),
    # PARSE_JSON refuses a duplicated key, and keeps a number as DOUBLE past 38 digits or with an
    # exponent: these two would be out of range or rounded
    "j": ('{"b": 1,  "a": [1, 2.50, "x\\u00e9"], "a": null}', "1e1000"),
    "jb": ("123456789012345678901234567890.123456789",),
    # in a VARIANT array a JSON null reads back the same as a NULL element
    "ajb": ("null",),
}


def _spec(col: Col) -> Sf:
    return SF[col.name]


def _keep(col: Col) -> Col:
    refused = REFUSED.get(col.name, ())
    if col.pg_type.endswith("[]"):
        values = tuple([x for x in v if x not in refused] for v in col.values)
    else:
        values = tuple(v for v in col.values if v not in refused)
    return replace(col, values=values)


SF_GROUPS: dict[str, tuple[Col, ...]] = {t: tuple(_keep(c) for c in cols) for t, cols in GROUPS.items()}


def _row_count(cols: tuple[Col, ...]) -> int:
    return max(len(c.values) for c in cols)


# --------------------------------------------------------------------------- source side


def _pg_rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(source_conninfo(dsn)) as conn:
        conn.execute("SET IntervalStyle = iso_8601")
        return [tuple(r) for r in conn.execute(query).fetchall()]


def _placeholders(cols: tuple[Col, ...]) -> sql.Composable:
    # Arrays are passed as text[] lists, which only an explicit cast turns into e.g. uuid[].
    return sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(c.pg_type)) if c.pg_type.endswith("[]") else sql.SQL("%s") for c in cols
    )


def _create(conn: psycopg.Connection[Any], table: str, cols: tuple[Col, ...]) -> None:
    conn.execute(
        sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, {})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in cols),
        )
    )


def _insert(conn: psycopg.Connection[Any], table: str, cols: tuple[Col, ...], row_id: int, values: list[Any]) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {} (id, {}) VALUES (%s, {})").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c.name) for c in cols), _placeholders(cols)
        ),
        [row_id, *values],
    )


def _create_and_fill(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ddl in TYPES_DDL:
            conn.execute(ddl)
        for table, cols in SF_GROUPS.items():
            _create(conn, table, cols)
            for k in range(1, _row_count(cols) + 1):
                _insert(conn, table, cols, k, [c.values[(k - 1) % len(c.values)] for c in cols])
            conn.execute(sql.SQL("INSERT INTO {} (id) VALUES (0)").format(sql.Identifier(table)))


def _cdc_changes(dsn: str) -> None:
    """Inserts of every value, updates to every value, and updates to NULL, all after the copy."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table, cols in SF_GROUPS.items():
            t = sql.Identifier(table)
            names = sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
            n = sql.Literal(_row_count(cols))
            conn.execute(
                sql.SQL("INSERT INTO {t} (id, {names}) SELECT id + {off}, {names} FROM {t} WHERE id <= {n}").format(
                    t=t, names=names, off=sql.Literal(CDC_OFFSET), n=n
                )
            )
            with conn.transaction():
                # Each copied row takes the next row's values (the last takes the first's).
                conn.execute(
                    sql.SQL(
                        "UPDATE {t} SET ({names}) = (SELECT {names} FROM {t} s WHERE s.id = {t}.id % {n} + 1)"
                        " WHERE id BETWEEN 1 AND {n}"
                    ).format(t=t, names=names, n=n)
                )
                conn.execute(
                    sql.SQL(
                        "UPDATE {t} SET ({names}) = (SELECT {names} FROM {t} s WHERE s.id = {src}) WHERE id = 0"
                    ).format(t=t, names=names, src=sql.Literal(CDC_OFFSET + 1))
                )
            nulls = sql.SQL(", ").join(sql.SQL("{} = NULL").format(sql.Identifier(c.name)) for c in cols)
            conn.execute(sql.SQL("UPDATE {} SET {} WHERE id = {}").format(t, nulls, sql.Literal(CDC_OFFSET + 2)))


# --------------------------------------------------------------------------- the round trip


def _configure(settings: Settings, dsn: str, target: Target, tables: list[str]) -> None:
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list(",".join(f"public.{t}" for t in tables)))


def _state(settings: Settings, pipeline_id: int, table: str) -> TableState | None:
    store = PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id)
    return store.load().get(parse_table_list(f"public.{table}")[0])


def _settled(settings: Settings, pipeline_id: int, tables: list[str]) -> dict[str, TableState] | None:
    done = (TablePhase.READY, TablePhase.ERRORED)
    states = {t: _state(settings, pipeline_id, t) for t in tables}
    if all(s is not None and s.phase in done for s in states.values()):
        return {t: s for t, s in states.items() if s is not None}
    return None


@dataclass
class Outcome:
    state: TableState
    source: list[tuple[Any, ...]] = field(default_factory=list)
    target: list[tuple[Any, ...]] = field(default_factory=list)


def _observe(settings: Settings, pipeline_id: int, dsn: str, target: SnowflakeTarget) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    for table, cols in SF_GROUPS.items():
        state = _state(settings, pipeline_id, table)
        assert state is not None, table
        if state.phase is not TablePhase.READY:
            found[table] = Outcome(state)
            continue
        reads = ", ".join((_spec(c).pg_read or c.pg_read).format(c=f'"{c.name}"') for c in cols)
        found[table] = Outcome(
            state,
            source=_pg_rows(dsn, f"SELECT id, {reads} FROM {table} ORDER BY id"),
            target=_sf_rows(target, table, cols),
        )
    return found


def _sf_rows(target: SnowflakeTarget, table: str, cols: tuple[Col, ...]) -> list[tuple[Any, ...]]:
    """``id`` and ``cols`` as the connector returns them, ordered by id.

    fakesnow sends a NULL TIMESTAMP_NTZ/TZ over the wire as 1970-01-01 (even ``SELECT
    NULL::TIMESTAMP_NTZ``), while the table holds NULL (``IS NULL`` is true); Snowflake returns
    NULL. So timestamps are read with their ``IS NULL``, which decides only whether the value is
    NULL: any other value is still compared exactly."""
    exprs = ["ID"]
    for c in cols:
        name = snowflake_ident(c.name)
        exprs.append(name)
        if _spec(c).type.startswith("TIMESTAMP"):
            exprs.append(f"{name} IS NULL")
    raw = target._query(
        f"SELECT {', '.join(exprs)} FROM {target.database}.{target.schema}.{snowflake_ident(table)} ORDER BY 1"
    )
    rows: list[tuple[Any, ...]] = []
    for r in raw:
        values, i = [r[0]], 1
        for c in cols:
            if _spec(c).type.startswith("TIMESTAMP"):
                values.append(None if r[i + 1] else r[i])
                i += 2
            else:
                values.append(r[i])
                i += 1
        rows.append(tuple(values))
    return rows


def _keep_number_38_0(mp: pytest.MonkeyPatch) -> None:
    """fakesnow turns NUMBER(38,0) into DuckDB's 64-bit BIGINT (so its results come back as ints),
    which cannot hold the 38-digit values a Snowflake NUMBER(38,0) holds; keep it DECIMAL(38,0)."""
    import fakesnow.transforms as fs_transforms
    from sqlglot import exp

    original = fs_transforms.integer_precision

    def integer_precision(expression: exp.Expr) -> exp.Expr:
        decimal = isinstance(expression, exp.DataType) and expression.this == exp.DataType.Type.DECIMAL
        if decimal and expression.expressions:
            return expression
        result: exp.Expr = original(expression)
        return result

    mp.setattr(fs_transforms, "integer_precision", integer_precision)


@pytest.fixture(scope="module")
def round_trip(
    pg: EmbeddedPostgres,
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, Any]]:
    """One pipeline over all type tables; what both sides held after the copy and after CDC."""
    # Module scope (one engine run for all the parametrised checks) rules out the function-scoped
    # conftest fixtures, so the databases are made here the same way.
    src_db, cfg_db = f"t_{uuid.uuid4().hex[:12]}", f"cfg_{uuid.uuid4().hex[:12]}"
    pg.create_database(src_db)
    pg.create_database(cfg_db)
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    settings = Settings(config_db_url=pg.dsn(cfg_db), redis_url=redis_server.url)
    dsn = pg.dsn(src_db)
    tables = list(SF_GROUPS)
    with pytest.MonkeyPatch.context() as mp:
        target = make_target("snowflake", tmp_path_factory.mktemp("sf"), request, mp)
        assert isinstance(target, SnowflakeTarget)
        _keep_number_38_0(mp)
        try:
            _create_and_fill(dsn)
            _configure(settings, dsn, target, tables)
            with EngineThread(settings) as engine:
                runner = engine.runner("p1")
                pid = runner.spec.id
                wait_until(lambda: _settled(settings, pid, tables), 120, what="every type table ready or errored")
                copied = _observe(settings, pid, dsn, target)
                _cdc_changes(dsn)
                wait_caught_up(dsn, runner.spec.pipeline.slot_name, 120)
                streamed = _observe(settings, pid, dsn, target)
            types = target._query(
                f"SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE FROM "
                f"{target.database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = '{target.schema}'"
            )
        finally:
            # Now, not at module teardown: replication slot names are cluster-wide and per pipeline
            # id, so this slot would collide with the next test's pipeline.
            pg.drop_database(src_db)
            pg.drop_database(cfg_db)
        yield {"copy": copied, "cdc": streamed, "types": types}


def _equal(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down: True == 1 and 1 == 1.0 in Python, but they are
    different values here."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _mismatches(cols: tuple[Col, ...], outcome: Outcome) -> list[str]:
    problems: list[str] = []
    src_ids = [r[0] for r in outcome.source]
    dst_ids = [r[0] for r in outcome.target]
    if src_ids != dst_ids:
        problems.append(f"row ids differ: source {src_ids}, Snowflake {dst_ids}")
    dst_by_id = {r[0]: r for r in outcome.target}
    for src in outcome.source:
        dst = dst_by_id.get(src[0])
        if dst is None:
            continue
        for i, col in enumerate(cols, start=1):
            spec = _spec(col)
            want, got = spec.pg_norm(src[i]), spec.norm(dst[i])
            if not _equal(want, got):
                problems.append(f"id {src[0]} column {col.name} ({col.pg_type}): source {want!r}, Snowflake {got!r}")
    return problems


def test_every_column_has_a_snowflake_spec_and_refused_values_exist() -> None:
    columns = {c.name: c for cols in GROUPS.values() for c in cols}
    assert set(SF) == set(columns)
    for name, refused in REFUSED.items():
        col = columns[name]
        values = {x for v in col.values for x in v} if col.pg_type.endswith("[]") else set(col.values)
        assert set(refused) <= values, name  # type_cases.py changed: keep this list in step


@pytest.mark.parametrize("path", ["copy", "cdc"])
@pytest.mark.parametrize("table", list(SF_GROUPS))
def test_values_round_trip_exactly(round_trip: dict[str, Any], table: str, path: str) -> None:
    outcome: Outcome = round_trip[path][table]
    state = outcome.state
    assert state.phase is TablePhase.READY, f"{table} is {state.phase} after {path}: {state.reason} ({state.hint})"
    cols = SF_GROUPS[table]
    n = _row_count(cols)
    expected_ids = list(range(n + 1)) if path == "copy" else [*range(n + 1), *range(CDC_OFFSET, CDC_OFFSET + n + 1)]
    assert [r[0] for r in outcome.source] == expected_ids  # the test wrote what it meant to
    problems = _mismatches(cols, outcome)
    assert not problems, f"{len(problems)} value(s) changed in {table} via {path}:\n" + "\n".join(problems)


@pytest.mark.parametrize("table", list(SF_GROUPS))
def test_target_column_types(round_trip: dict[str, Any], table: str) -> None:
    got: dict[str, str] = {}
    for tname, column, data_type, precision, scale in round_trip["types"]:
        if tname == table.upper():
            got[column] = f"NUMBER({precision},{scale})" if data_type == "NUMBER" else data_type
    want = {"ID": "NUMBER(10,0)", **{c.name.upper(): _spec(c).type for c in SF_GROUPS[table]}}
    assert {k: v for k, v in got.items() if k in want} == want


def test_all_null_rows_and_absolute_values(round_trip: dict[str, Any]) -> None:
    # Spot checks in absolute terms, so a mistake shared by both read paths would still show.
    for path in ("copy", "cdc"):
        for table, cols in SF_GROUPS.items():
            outcome: Outcome = round_trip[path][table]
            if outcome.state.phase is not TablePhase.READY:
                continue  # reported by test_values_round_trip_exactly
            # copy: the NULL row as copied; cdc: inserted as NULLs, and updated to NULLs
            for null_id in [0] if path == "copy" else [CDC_OFFSET, CDC_OFFSET + 2]:
                row = next(r for r in outcome.target if r[0] == null_id)
                assert row[1:] == (None,) * len(cols), (table, path, null_id)
    temporal: Outcome = round_trip["copy"]["t_temporal"]
    if temporal.state.phase is TablePhase.READY:
        names = [c.name for c in SF_GROUPS["t_temporal"]]
        first = next(r for r in temporal.target if r[0] == 1)
        # 2024-03-10 02:30:00.000001-08:00 is 10:30:00.000001 UTC
        assert first[1 + names.index("tz")] == dt.datetime(2024, 3, 10, 10, 30, 0, 1, tzinfo=dt.UTC)
        assert first[1 + names.index("ts")] == dt.datetime(2024, 2, 29, 12, 34, 56, 123456)
        assert first[1 + names.index("iv")] == "P1Y2M3DT4H5M6.789012S"


# --------------------------------------------------------------------------- values that must stop their table


def _wait_phase(settings: Settings, pipeline_id: int, table: str, phase: TablePhase, timeout: float) -> TableState:
    def reached() -> TableState | None:
        st = _state(settings, pipeline_id, table)
        return st if st is not None and st.phase is phase else None

    found: TableState = wait_until(reached, timeout, what=f"{table} {phase}")
    return found


def _refused_tables() -> dict[str, tuple[Col, str]]:
    """One table per refused value, so each is shown to be refused on its own."""
    columns = {c.name: c for cols in GROUPS.values() for c in cols}
    return {f"r_{name}_{k}": (columns[name], v) for name, values in REFUSED.items() for k, v in enumerate(values)}


def _as_param(col: Col, value: str) -> Any:
    return [value] if col.pg_type.endswith("[]") else value


def _assert_refused(settings: Settings, pipeline_id: int, table: str, col: Col, value: str) -> None:
    st = _wait_phase(settings, pipeline_id, table, TablePhase.ERRORED, 30)
    assert f"'public.{table}'" in st.reason and f"'{col.name}'" in st.reason, (value, st.reason)
    assert "Snowflake" in st.reason and st.hint, (value, st.reason)


def test_values_snowflake_cannot_hold_stop_only_their_table_in_the_copy(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_target("snowflake", tmp_path, request, monkeypatch)
    refused = _refused_tables()
    good = (SF_GROUPS["t_temporal"][0],)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        for ddl in TYPES_DDL:
            conn.execute(ddl)
        for table, (col, value) in refused.items():
            _create(conn, table, (col,))
            _insert(conn, table, (col,), 1, [_as_param(col, value)])
        _create(conn, "good", good)
        _insert(conn, "good", good, 1, ["2000-02-29"])
    _configure(settings, source_dsn, target, [*refused, "good"])
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        _wait_phase(settings, pid, "good", TablePhase.READY, 60)
        for table, (col, value) in refused.items():
            _assert_refused(settings, pid, table, col, value)
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO good VALUES (2, '9999-12-31')")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        assert target.rows("good", ["id", "dt"]) == [(1, dt.date(2000, 2, 29)), (2, dt.date(9999, 12, 31))]
        for table in refused:
            assert _state(settings, pid, table).phase is TablePhase.ERRORED  # type: ignore[union-attr]


def test_values_snowflake_cannot_hold_stop_only_their_table_in_the_stream(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_target("snowflake", tmp_path, request, monkeypatch)
    refused = _refused_tables()
    good = (SF_GROUPS["t_temporal"][0],)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        for ddl in TYPES_DDL:
            conn.execute(ddl)
        for table, (col, _value) in refused.items():
            _create(conn, table, (col,))
            _insert(conn, table, (col,), 0, [_keep(col).values[-1]])  # a value Snowflake holds
        _create(conn, "good", good)
        _insert(conn, "good", good, 1, ["2000-02-29"])
    _configure(settings, source_dsn, target, [*refused, "good"])
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        for table in [*refused, "good"]:
            _wait_phase(settings, pid, table, TablePhase.READY, 60)
        # One transaction touches every table; only the refused ones may stop.
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            with conn.transaction():
                for table, (col, value) in refused.items():
                    _insert(conn, table, (col,), 1, [_as_param(col, value)])
                conn.execute("INSERT INTO good VALUES (2, '9999-12-31')")
            conn.execute("INSERT INTO good VALUES (3, '1970-01-01')")
        for table, (col, value) in refused.items():
            _assert_refused(settings, pid, table, col, value)
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        assert _state(settings, pid, "good").phase is TablePhase.READY  # type: ignore[union-attr]
        assert target.rows("good", ["id", "dt"]) == [
            (1, dt.date(2000, 2, 29)),
            (2, dt.date(9999, 12, 31)),
            (3, dt.date(1970, 1, 1)),
        ]
        # Nothing shifted or rounded was written for a refused row.
        for table in refused:
            assert target.rows(table, ["id"]) == [(0,)], table
