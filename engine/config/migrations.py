"""Apply the numbered SQL files of ``migrations/`` to the config DB, once each, in order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from engine.errors import ConfigDbError

_FILE = re.compile(r"(\d+)_[\w-]+\.sql\Z")
# Serialises concurrent `etl-tui` processes starting against a fresh config DB.
_LOCK_KEY = 0x6574_6C74_7569  # "etltui"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "migrations", here.parent / "migrations"):  # wheel, then checkout
        if candidate.is_dir():
            return candidate
    raise ConfigDbError("the migrations folder is missing from the installation", "reinstall etl-tui")


def discover(directory: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((directory or migrations_dir()).iterdir()):
        m = _FILE.match(path.name)
        if m:
            found.append(Migration(int(m.group(1)), path.stem, path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigDbError(f"duplicate migration numbers in {directory}", "each file needs its own number")
    return sorted(found, key=lambda m: m.version)


def apply_migrations(conn: psycopg.Connection, directory: Path | None = None) -> list[Migration]:
    """Apply what is pending; return what was applied. Safe to run from several processes."""
    applied: list[Migration] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS etl_schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM etl_schema_migrations")}
        for mig in discover(directory):
            if mig.version in done:
                continue
            try:
                conn.execute(mig.path.read_text())
            except psycopg.Error as exc:
                raise ConfigDbError(
                    f"migration {mig.path.name} failed: {exc}".strip(),
                    "the config DB was left unchanged; fix the cause and run `etl-tui migrate`",
                ) from exc
            conn.execute("INSERT INTO etl_schema_migrations (version, name) VALUES (%s, %s)", (mig.version, mig.name))
            applied.append(mig)
    return applied
