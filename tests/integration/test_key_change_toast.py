"""An UPDATE that changes the primary key and leaves a TOASTed value alone: PostgreSQL sends that
value as "unchanged", and no row under the new key holds it. The target must still end with the
value (REPLICA IDENTITY DEFAULT: read from the source; FULL: taken from the old row)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, duck_rows, source_rows, table_phase, wait_caught_up, wait_until
from tests.integration.scenarios import configure

COLUMNS = "id, name, big"


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
def test_a_key_change_keeps_the_values_it_left_alone(
    settings: Settings, source_dsn: str, tmp_path: Path, identity: str
) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, name text, big text)")
        # EXTERNAL: out of line and uncompressed, so an UPDATE that leaves it alone sends "unchanged"
        conn.execute("ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL")
        conn.execute(f"ALTER TABLE docs REPLICA IDENTITY {identity}")
        conn.execute("INSERT INTO docs SELECT g, 'doc ' || g, repeat(md5(g::text), 200) FROM generate_series(1, 10) g")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.docs")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: table_phase(settings, runner.spec.id, "public.docs") == TablePhase.READY, 60)
        with psycopg.connect(source_dsn, autocommit=True) as conn:
            conn.execute("UPDATE docs SET id = id + 1000 WHERE id <= 3")  # big unchanged
            with conn.transaction():  # a key change, then the new row changes again in the same batch
                conn.execute("UPDATE docs SET id = 2004, name = 'moved' WHERE id = 4")
                conn.execute("UPDATE docs SET big = 'small now' WHERE id = 2004")
            conn.execute("UPDATE docs SET id = 3005 WHERE id = 5")
            conn.execute("UPDATE docs SET id = 4005 WHERE id = 3005")  # moved twice
            conn.execute("UPDATE docs SET id = 3006 WHERE id = 6")
            conn.execute("DELETE FROM docs WHERE id = 3006")  # moved, then gone
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        want = source_rows(source_dsn, f"SELECT {COLUMNS} FROM docs ORDER BY id")
        got = duck_rows(duck, f"SELECT {COLUMNS} FROM main.docs ORDER BY id")
        assert [r[0] for r in got] == [r[0] for r in want] == [7, 8, 9, 10, 1001, 1002, 1003, 2004, 4005]
        assert got == want
        assert all(r[2] for r in got), "no value left NULL"
