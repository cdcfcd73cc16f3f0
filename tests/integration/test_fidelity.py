"""Names that need quoting, and updates whose unchanged TOASTed columns must keep their value."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
from psycopg import sql

from engine.identifiers import TableName, quote_ident
from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, duck_rows, source_rows, table_phase, wait_caught_up, wait_until
from tests.integration.scenarios import configure

HOSTILE_TABLES = [
    TableName("public", "select"),
    TableName("public", "MixedCase"),
    TableName("public", "Order Items"),
    TableName("My Schema", 'x"; DROP TABLE items; --'),
    TableName("public", "CARIÑO_カラム"),
    TableName("public", "t" * 63),
]
HOSTILE_COLUMNS = ["select", "MixedCase", 'a"b', "C 1", "é" * 31 + "x", "right", "xmin_"]


def test_identifiers_that_need_quoting_replicate_and_cannot_inject(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in HOSTILE_COLUMNS)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "My Schema"')
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")  # the injection target: must survive
        for t in HOSTILE_TABLES:
            conn.execute(
                sql.SQL("CREATE TABLE {} ({} int PRIMARY KEY, {})").format(
                    sql.Identifier(t.schema, t.name), sql.Identifier("Key Col"), cols
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT g, {} FROM generate_series(1, 20) g").format(
                    sql.Identifier(t.schema, t.name),
                    sql.SQL(", ").join(sql.Literal(f"{c} value") for c in HOSTILE_COLUMNS),
                )
            )
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, ",".join(str(t) for t in HOSTILE_TABLES))
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        for t in HOSTILE_TABLES:
            wait_until(lambda t=t: table_phase(settings, runner.spec.id, str(t)) == TablePhase.READY, 60, what=str(t))
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            for t in HOSTILE_TABLES:
                ident = sql.Identifier(t.schema, t.name)
                conn.execute(
                    sql.SQL("UPDATE {} SET {} = 'changed' WHERE {} = 3").format(
                        ident, sql.Identifier('a"b'), sql.Identifier("Key Col")
                    )
                )
                conn.execute(sql.SQL("DELETE FROM {} WHERE {} = 4").format(ident, sql.Identifier("Key Col")))
                conn.execute(
                    sql.SQL("INSERT INTO {} ({}, {}) VALUES (100, 'new')").format(
                        ident, sql.Identifier("Key Col"), sql.Identifier("select")
                    )
                )
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        col_list = ", ".join(quote_ident(c) for c in ["Key Col", *HOSTILE_COLUMNS])
        for t in HOSTILE_TABLES:
            want = source_rows(source_dsn, f"SELECT {col_list} FROM {t.sql} ORDER BY 1")
            got = duck_rows(duck, f"SELECT {col_list} FROM main.{quote_ident(t.target_name())} ORDER BY 1")
            assert got == want, t
            assert len(got) == 20
    assert source_rows(source_dsn, "SELECT count(*) FROM items") == [(0,)]


def _md5(b: bytes | str | None) -> str | None:
    if b is None:
        return None
    return hashlib.md5(b if isinstance(b, bytes) else b.encode()).hexdigest()


def test_unchanged_toast_values_keep_their_target_value(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, n int, body text, blob bytea, tags text[])")
        # EXTERNAL: stored out of line and uncompressed, so an update of `n` sends body as unchanged
        conn.execute("ALTER TABLE docs ALTER body SET STORAGE EXTERNAL, ALTER blob SET STORAGE EXTERNAL")
        conn.execute(
            "INSERT INTO docs SELECT g, 0, repeat(md5(g::text), 3000), decode(repeat(md5(g::text), 2000), 'hex'),"
            " ARRAY[repeat('t', 5000)] FROM generate_series(1, 10) g"
        )
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.docs")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.docs") == TablePhase.READY, 60)
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("UPDATE docs SET n = n + 1")  # every big column arrives as unchanged TOAST
            with conn.transaction():  # one batch: the new value must win over an older unchanged marker
                conn.execute("UPDATE docs SET body = repeat('new', 20000) WHERE id = 2")
                conn.execute("UPDATE docs SET n = 42 WHERE id = 2")
                conn.execute("INSERT INTO docs VALUES (11, 0, repeat('eleven', 20000), '\\x00ff', ARRAY['x'])")
                conn.execute("UPDATE docs SET n = 11 WHERE id = 11")
                conn.execute("DELETE FROM docs WHERE id = 3")
                conn.execute("UPDATE docs SET body = NULL WHERE id = 4")
                conn.execute("UPDATE docs SET n = 44 WHERE id = 4")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        want = [
            (r[0], r[1], _md5(r[2]), _md5(r[3]), r[4])
            for r in source_rows(source_dsn, "SELECT id, n, body, blob, tags FROM docs ORDER BY id")
        ]
        got = [
            (r[0], r[1], _md5(r[2]), _md5(r[3]), r[4])
            for r in duck_rows(duck, "SELECT id, n, body, blob, tags FROM main.docs ORDER BY id")
        ]
        assert got == want
        assert got[0][1] == 1 and got[0][2] is not None  # unchanged TOAST kept, not NULLed
