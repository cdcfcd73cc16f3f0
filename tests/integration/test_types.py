"""Every supported column type survives PostgreSQL → DuckDB exactly, through COPY and through pgoutput.

One pipeline replicates one table per family of types. Rows written before the engine starts reach
DuckDB through the initial copy; after the tables are ready the same values are inserted again and
the copied rows updated, so they also travel as pgoutput tuples. Each column is read on both sides
in a form that the two drivers return alike (see ``Col``), and compared value by value.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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
from engine.status.board import TableView
from engine.status.report import collect_status
from tests.integration.harness import EngineThread, duck_rows, source_rows, table_phase, wait_caught_up, wait_until
from tests.integration.scenarios import configure
from tests.integration.type_cases import CDC_OFFSET, GROUPS, TYPES_DDL, Col


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
    entry = _status_tables(settings).get(f"public.{table}")
    err = entry.error if entry is not None else None
    return f"{err.reason if err else ''} (hint: {err.hint if err else ''})"


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


def _status_tables(settings: Settings) -> dict[str, TableView]:
    with ConfigRepository(settings.config_db_url) as repo:
        status = collect_status(repo, connect_redis(settings.redis_url))
    p1 = status.pipeline("p1")
    assert p1 is not None
    return {t.name: t for t in p1.tables}


def _status_once(settings: Settings, table: str, phase: str) -> dict[str, TableView]:
    """The status's tables as soon as ``table`` shows ``phase`` there (the status is read from
    Redis, where the runner writes it, so it may trail the runner a little)."""

    def shown() -> dict[str, TableView] | None:
        tables = _status_tables(settings)
        return tables if (t := tables.get(table)) is not None and t.phase == phase else None

    found: dict[str, TableView] = wait_until(shown, 10, what=f"status to show {table} {phase}")
    return found


def _hint(table: TableView) -> str:
    return table.error.hint if table.error else ""


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
            assert entry.phase == "errored" and entry.error is not None
            reason = entry.error.reason
            assert table in reason and repr(column) in reason and type_name in reason, reason
            assert entry.error.hint, f"{table} has no hint"
        assert "ALTER TABLE" in _hint(tables["public.shapes"])
        assert "38" in _hint(tables["public.wide"])

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
        # The copy path: unbounded numeric's type is chosen from the rows copied, so the 12
        # fractional digits fit (DECIMAL(38,14)) and are kept exactly.
        _wait_phase(settings, pid, "public.copied_bad", TablePhase.READY, 30)
        assert duck_rows(duck, "SELECT id, v FROM main.copied_bad ORDER BY id") == [
            (1, Decimal("2.5")),
            (2, Decimal("0.123456789012")),
        ]
        assert duck_rows(
            duck, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'copied_bad' AND column_name = 'v'"
        ) == [("DECIMAL(38,14)",)]

        # The stream path: one transaction touches both tables; only amounts may stop.
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            with conn.transaction():
                conn.execute("INSERT INTO amounts VALUES (2, 0.123456789012)")
                conn.execute("INSERT INTO other VALUES (2, 3.25)")
            conn.execute("INSERT INTO other VALUES (3, 4.75)")
        _wait_phase(settings, pid, "public.amounts", TablePhase.ERRORED, 30)
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        tables = _status_once(settings, "public.amounts", "errored")
        entry = tables["public.amounts"].error
        assert entry is not None
        assert "public.amounts" in entry.reason and "'v'" in entry.reason, entry.reason
        assert "0.123456789012" in entry.reason and "rounded" in entry.reason, entry.reason
        assert entry.hint == (
            "etl-tui pipeline edit p1 --column-type 'public.amounts.v=text'"
            " && etl-tui pipeline resync p1 --table 'public.amounts'"
        )
        assert tables["public.other"].phase == "ready"
        assert tables["public.copied_bad"].phase == "ready"
        assert duck_rows(duck, "SELECT id, v FROM main.other ORDER BY id") == [
            (1, Decimal("2.50")),
            (2, Decimal("3.25")),
            (3, Decimal("4.75")),
        ]
        assert duck_rows(duck, "SELECT id, v FROM main.amounts ORDER BY id") == [(1, Decimal("1.5"))]
