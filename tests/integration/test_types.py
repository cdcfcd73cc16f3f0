"""Every supported column type survives PostgreSQL → DuckDB exactly, through COPY and through pgoutput.

One pipeline replicates one table per family of types. Rows written before the engine starts reach
DuckDB through the initial copy; after the tables are ready the same values are inserted again and
the copied rows updated, so they also travel as pgoutput tuples. Each column is read on both sides
in a form that the two drivers return alike (see ``Col``), and compared value by value.
"""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from engine.config.repository import ConfigRepository
from engine.embedded.postgres import EmbeddedPostgres
from engine.embedded.redis import EmbeddedRedis
from engine.settings import Settings
from engine.state.store import connect_redis
from engine.state.table_state import TablePhase
from engine.status.report import collect_status
from tests.integration.harness import EngineThread, duck_rows, source_rows, wait_until
from tests.integration.test_replication import configure, table_phase, wait_caught_up


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


def _row_count(cols: tuple[Col, ...]) -> int:
    return max(len(c.values) for c in cols)


def _create_and_fill(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ddl in TYPES_DDL:
            conn.execute(ddl)
        for table, cols in GROUPS.items():
            conn.execute(
                sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, {})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in cols
                    ),
                )
            )
            # Arrays are passed as text[] lists, which only an explicit cast turns into e.g. uuid[].
            placeholders = sql.SQL(", ").join(
                sql.SQL("%s::{}").format(sql.SQL(c.pg_type)) if c.pg_type.endswith("[]") else sql.SQL("%s")
                for c in cols
            )
            insert = sql.SQL("INSERT INTO {} (id, {}) VALUES (%s, {})").format(
                sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c.name) for c in cols), placeholders
            )
            for k in range(1, _row_count(cols) + 1):
                conn.execute(insert, [k, *(c.values[(k - 1) % len(c.values)] for c in cols)])
            conn.execute(sql.SQL("INSERT INTO {} (id) VALUES (0)").format(sql.Identifier(table)))


def _cdc_changes(dsn: str) -> None:
    """Inserts of every value, updates to every value, and updates to NULL, all after the copy."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table, cols in GROUPS.items():
            t = sql.Identifier(table)
            names = sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
            n = _row_count(cols)
            conn.execute(
                sql.SQL("INSERT INTO {t} (id, {names}) SELECT id + {off}, {names} FROM {t} WHERE id <= {n}").format(
                    t=t, names=names, off=sql.Literal(CDC_OFFSET), n=sql.Literal(n)
                )
            )
            with conn.transaction():
                # Each copied row takes the next row's values (the last takes the first's).
                conn.execute(
                    sql.SQL(
                        "UPDATE {t} SET ({names}) = (SELECT {names} FROM {t} s WHERE s.id = {t}.id % {n} + 1)"
                        " WHERE id BETWEEN 1 AND {n}"
                    ).format(t=t, names=names, n=sql.Literal(n))
                )
                conn.execute(
                    sql.SQL(
                        "UPDATE {t} SET ({names}) = (SELECT {names} FROM {t} s WHERE s.id = {src}) WHERE id = 0"
                    ).format(t=t, names=names, src=sql.Literal(CDC_OFFSET + 1))
                )
            nulls = sql.SQL(", ").join(sql.SQL("{} = NULL").format(sql.Identifier(c.name)) for c in cols)
            conn.execute(sql.SQL("UPDATE {} SET {} WHERE id = {}").format(t, nulls, sql.Literal(CDC_OFFSET + 2)))


@dataclass
class Outcome:
    phase: TablePhase | None
    reason: str = ""
    source: list[tuple[Any, ...]] = field(default_factory=list)
    target: list[tuple[Any, ...]] = field(default_factory=list)
    target_types: dict[str, str] = field(default_factory=dict)


def _reason(settings: Settings, table: str) -> str:
    entry = _status_tables(settings).get(f"public.{table}", {})
    return f"{entry.get('reason', '')} (hint: {entry.get('hint', '')})"


def _observe(settings: Settings, pipeline_id: int, dsn: str, duck: Path) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    for table, cols in GROUPS.items():
        phase = table_phase(settings, pipeline_id, f"public.{table}")
        if phase is not TablePhase.READY:
            found[table] = Outcome(phase, _reason(settings, table))
            continue
        pg_cols = ", ".join(c.pg_read.format(c=f'"{c.name}"') for c in cols)
        duck_cols = ", ".join(c.duck_read.format(c=f'"{c.name}"') for c in cols)
        types = duck_rows(
            duck,
            "SELECT column_name, data_type FROM duckdb_columns()"
            f" WHERE schema_name = 'main' AND table_name = '{table}'",
        )
        found[table] = Outcome(
            phase,
            source=source_rows(dsn, f"SELECT id, {pg_cols} FROM {table} ORDER BY id"),
            target=duck_rows(duck, f"SELECT id, {duck_cols} FROM main.{table} ORDER BY id"),
            target_types={str(name): str(dtype) for name, dtype in types},
        )
    return found


@pytest.fixture(scope="module")
def round_trip(
    pg: EmbeddedPostgres, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Outcome]]]:
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
    duck = tmp_path_factory.mktemp("types") / "out.duckdb"
    try:
        _create_and_fill(dsn)
        configure(settings, dsn, duck, ",".join(f"public.{t}" for t in GROUPS))
        with EngineThread(settings) as engine:
            runner = engine.runner("p1")
            pid = runner.spec.id

            def settled() -> bool:
                done = (TablePhase.READY, TablePhase.ERRORED)
                return all(table_phase(settings, pid, f"public.{t}") in done for t in GROUPS)

            wait_until(settled, 120, what="every type table ready or errored")
            copied = _observe(settings, pid, dsn, duck)
            _cdc_changes(dsn)
            wait_caught_up(dsn, runner.spec.pipeline.slot_name, 120)
            streamed = _observe(settings, pid, dsn, duck)
    finally:
        # Now, not at module teardown: replication slot names are cluster-wide and per pipeline id,
        # so this slot would collide with the next test's pipeline.
        pg.drop_database(src_db)
        pg.drop_database(cfg_db)
    yield {"copy": copied, "cdc": streamed}


def _mismatches(cols: tuple[Col, ...], outcome: Outcome) -> list[str]:
    problems: list[str] = []
    src_ids = [r[0] for r in outcome.source]
    dst_ids = [r[0] for r in outcome.target]
    if src_ids != dst_ids:
        problems.append(f"row ids differ: source {src_ids}, DuckDB {dst_ids}")
    dst_by_id = {r[0]: r for r in outcome.target}
    for src in outcome.source:
        dst = dst_by_id.get(src[0])
        if dst is None:
            continue
        for i, col in enumerate(cols, start=1):
            want, got = col.norm(src[i]), col.norm(dst[i])
            # type() as well: True == 1 and 1 == 1.0 in Python, but they are different values here.
            if want != got or type(want) is not type(got):
                problems.append(f"id {src[0]} column {col.name} ({col.pg_type}): source {want!r}, DuckDB {got!r}")
    return problems


@pytest.mark.parametrize("path", ["copy", "cdc"])
@pytest.mark.parametrize("table", list(GROUPS))
def test_values_round_trip_exactly(round_trip: dict[str, dict[str, Outcome]], table: str, path: str) -> None:
    outcome = round_trip[path][table]
    assert outcome.phase is TablePhase.READY, f"{table} is {outcome.phase} after {path}: {outcome.reason}"
    cols = GROUPS[table]
    n = _row_count(cols)
    expected_ids = list(range(n + 1)) if path == "copy" else [*range(n + 1), *range(CDC_OFFSET, CDC_OFFSET + n + 1)]
    assert [r[0] for r in outcome.source] == expected_ids  # the test wrote what it meant to
    problems = _mismatches(cols, outcome)
    assert not problems, f"{len(problems)} value(s) changed in {table} via {path}:\n" + "\n".join(problems)


@pytest.mark.parametrize("table", list(GROUPS))
def test_target_column_types(round_trip: dict[str, dict[str, Outcome]], table: str) -> None:
    outcome = round_trip["copy"][table]
    assert outcome.phase is TablePhase.READY, f"{table} is {outcome.phase}: {outcome.reason}"
    want = {"id": "INTEGER", **{c.name: c.duck_type for c in GROUPS[table]}}
    got = {k: v for k, v in outcome.target_types.items() if k in want}
    assert got == want


def test_all_null_row_and_offsets_keep_their_meaning(round_trip: dict[str, dict[str, Outcome]]) -> None:
    # Spot checks in absolute terms, so a mistake shared by both read paths would still show.
    for path in ("copy", "cdc"):
        for table, cols in GROUPS.items():
            outcome = round_trip[path][table]
            if outcome.phase is not TablePhase.READY:
                continue  # reported by test_values_round_trip_exactly
            # copy: the NULL row as copied; cdc: inserted as NULLs, and updated to NULLs
            for null_id in [0] if path == "copy" else [CDC_OFFSET, CDC_OFFSET + 2]:
                row = next(r for r in outcome.target if r[0] == null_id)
                assert row[1:] == (None,) * len(cols), (table, path, null_id)
    temporal = round_trip["copy"]["t_temporal"]
    if temporal.phase is TablePhase.READY:
        tz_col = 1 + [c.name for c in GROUPS["t_temporal"]].index("tz")
        first = next(r for r in temporal.target if r[0] == 1)
        # 2024-03-10 02:30:00.000001-08:00 is 10:30:00.000001 UTC
        assert first[tz_col] == 1710066600_000001
        dt_col = 1 + [c.name for c in GROUPS["t_temporal"]].index("dt")
        assert first[dt_col] == -735160  # 44 BC-03-15, proleptic Gregorian


# --------------------------------------------------------------------------- tables that must error


def _status_tables(settings: Settings) -> dict[str, dict[str, Any]]:
    with ConfigRepository(settings.config_db_url) as repo:
        status = collect_status(repo, connect_redis(settings.redis_url))
    return dict(next(p for p in status if p["pipeline"] == "p1")["tables"])


def _status_once(settings: Settings, table: str, phase: str) -> dict[str, dict[str, Any]]:
    """The status's tables as soon as ``table`` shows ``phase`` there. Status overlays the runner's
    last published snapshot, refreshed about once a second, so it can trail the table state."""

    def shown() -> dict[str, dict[str, Any]] | None:
        tables = _status_tables(settings)
        return tables if tables.get(table, {}).get("phase") == phase else None

    found: dict[str, dict[str, Any]] = wait_until(shown, 10, what=f"status to show {table} {phase}")
    return found


def _wait_phase(settings: Settings, pipeline_id: int, table: str, phase: TablePhase, timeout: float) -> None:
    wait_until(lambda: table_phase(settings, pipeline_id, table) == phase, timeout, what=f"{table} {phase}")


def test_unsupported_column_types_error_their_table_and_others_replicate(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE shapes (id int PRIMARY KEY, spot point)")
        conn.execute("CREATE TABLE spans (id int PRIMARY KEY, span int4range)")
        conn.execute("CREATE TABLE wide (id int PRIMARY KEY, amount numeric(40,2))")
        conn.execute("CREATE TABLE good (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO shapes VALUES (1, point(1, 2))")
        conn.execute("INSERT INTO spans VALUES (1, int4range(1, 5))")
        conn.execute("INSERT INTO wide VALUES (1, 1.25)")
        conn.execute("INSERT INTO good VALUES (1, 'one')")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.shapes,public.spans,public.wide,public.good")
    bad = {
        "public.shapes": ("spot", "point"),
        "public.spans": ("span", "int4range"),
        "public.wide": ("amount", "numeric(40,2)"),
    }
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        _wait_phase(settings, pid, "public.good", TablePhase.READY, 60)
        for table, (column, type_name) in bad.items():
            _wait_phase(settings, pid, table, TablePhase.ERRORED, 30)
            tables = _status_once(settings, table, "errored")
            entry = tables[table]
            assert entry["phase"] == "errored"
            reason = entry["reason"]
            assert table in reason and repr(column) in reason and type_name in reason, reason
            assert entry["hint"], f"{table} has no hint"
        assert "ALTER TABLE" in tables["public.shapes"]["hint"]
        assert "38" in tables["public.wide"]["hint"]

        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO good VALUES (2, 'two')")
            conn.execute("INSERT INTO shapes VALUES (2, point(3, 4))")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        assert duck_rows(duck, "SELECT id, v FROM main.good ORDER BY id") == [(1, "one"), (2, "two")]
        assert table_phase(settings, pid, "public.shapes") == TablePhase.ERRORED


def test_numeric_that_does_not_fit_errors_only_its_table_and_is_never_rounded(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE amounts (id int PRIMARY KEY, v numeric)")
        conn.execute("CREATE TABLE copied_bad (id int PRIMARY KEY, v numeric)")
        conn.execute("CREATE TABLE other (id int PRIMARY KEY, v numeric(12,2))")
        conn.execute("INSERT INTO amounts VALUES (1, 1.5)")
        conn.execute("INSERT INTO copied_bad VALUES (1, 2.5), (2, 0.123456789012)")
        conn.execute("INSERT INTO other VALUES (1, 2.50)")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.amounts,public.copied_bad,public.other")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        pid = runner.spec.id
        for t in ("public.amounts", "public.other"):
            _wait_phase(settings, pid, t, TablePhase.READY, 60)
        # The copy path: the whole table is refused, nothing of it is kept rounded.
        _wait_phase(settings, pid, "public.copied_bad", TablePhase.ERRORED, 30)
        copy_reason = _status_tables(settings)["public.copied_bad"]["reason"]
        assert "public.copied_bad" in copy_reason and "'v'" in copy_reason and "0.123456789012" in copy_reason

        # The stream path: one transaction touches both tables; only amounts may stop.
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            with conn.transaction():
                conn.execute("INSERT INTO amounts VALUES (2, 0.123456789012)")
                conn.execute("INSERT INTO other VALUES (2, 3.25)")
            conn.execute("INSERT INTO other VALUES (3, 4.75)")
        _wait_phase(settings, pid, "public.amounts", TablePhase.ERRORED, 30)
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        tables = _status_once(settings, "public.amounts", "errored")
        entry = tables["public.amounts"]
        assert "public.amounts" in entry["reason"] and "'v'" in entry["reason"], entry["reason"]
        assert "0.123456789012" in entry["reason"] and "rounded" in entry["reason"], entry["reason"]
        assert entry["hint"]
        assert tables["public.other"]["phase"] == "ready"
        assert tables["public.copied_bad"]["phase"] == "errored"
        assert duck_rows(duck, "SELECT id, v FROM main.other ORDER BY id") == [
            (1, Decimal("2.50")),
            (2, Decimal("3.25")),
            (3, Decimal("4.75")),
        ]
        assert duck_rows(duck, "SELECT id, v FROM main.amounts ORDER BY id") == [(1, Decimal("1.5"))]
        # The failed copy was rolled back whole: no target, so no rounded 0.1234567890 either.
        assert duck_rows(duck, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'copied_bad'") == [(0,)]
