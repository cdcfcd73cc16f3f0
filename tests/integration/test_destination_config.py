"""Configuring destinations: the CLI, the one check behind it, the factory and migration 002."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.config.destination_options import destination_config
from engine.config.migrations import apply_migrations, migrations_dir
from engine.config.models import Destination, DestinationType, parse_column_type
from engine.config.repository import ConfigRepository
from engine.destinations import factory
from engine.destinations.duckdb.destination import DuckDbDestination
from engine.destinations.snowflake.connection import SnowflakeConfig
from engine.errors import ConfigError
from engine.identifiers import parse_table_list
from engine.settings import Settings
from engine.status.collector import _snowflake_problem
from etl_tui.cli import main

SNOWFLAKE = ["--type", "snowflake", "--account", "myorg-acct", "--user", "ETL", "--database", "DB", "--schema", "S"]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    return settings


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "etl_key.p8"
    path.write_text("-----BEGIN PRIVATE KEY-----\n")
    return path


def _stored(settings: Settings) -> dict[str, tuple[DestinationType, dict[str, Any]]]:
    with ConfigRepository(settings.config_db_url) as repo:
        return {d.name: (d.type, dict(d.config)) for d in repo.list_destinations()}


def test_cli_adds_snowflake_destinations_and_lists_them_without_secrets(
    cli: Settings, key_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SF_PASSWORD", "hunter2-secret")
    monkeypatch.delenv("SF_PASSPHRASE", raising=False)
    add_key = ["destination", "add", "keyed", *SNOWFLAKE, "--private-key-file", str(key_file)]
    add_key += ["--private-key-passphrase-env", "SF_PASSPHRASE", "--warehouse", "LOAD_WH", "--role", "LOADER"]
    assert main(add_key) == 0
    out, err = capsys.readouterr()
    assert "destination keyed added (snowflake:myorg-acct/DB.S)" in out
    assert "$SF_PASSPHRASE is not set here" in err  # a warning: the engine may run elsewhere
    add_password = ["destination", "add", "pw", *SNOWFLAKE, "--password-env", "SF_PASSWORD", "--landing-schema", "L"]
    add_password += ["--host", "127.0.0.1", "--port", "8080", "--protocol", "http", "--no-transactions"]
    assert main([*add_password, "--soft-deletes", "--loader", "streaming"]) == 0
    assert main(["destination", "add", "duck", "--type", "duckdb", "--path", "x.duckdb", "--soft-deletes"]) == 0
    capsys.readouterr()
    assert main(["destination", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[1:] == [
        "duck   duckdb     duckdb:x.duckdb",
        "keyed  snowflake  snowflake:myorg-acct/DB.S",
        "pw     snowflake  snowflake:myorg-acct/DB.S",
    ]
    assert "hunter2" not in listing
    assert _stored(cli) == {
        "keyed": (
            DestinationType.SNOWFLAKE,
            {
                "account": "myorg-acct",
                "user": "ETL",
                "database": "DB",
                "schema": "S",
                "landing_schema": "ETL_LANDING",
                "warehouse": "LOAD_WH",
                "role": "LOADER",
                "private_key_file": str(key_file),
                "private_key_passphrase_env": "SF_PASSPHRASE",
                "loader": "copy",
            },
        ),
        "pw": (
            DestinationType.SNOWFLAKE,
            {
                "account": "myorg-acct",
                "user": "ETL",
                "database": "DB",
                "schema": "S",
                "landing_schema": "L",
                "password_env": "SF_PASSWORD",
                "host": "127.0.0.1",
                "port": 8080,
                "protocol": "http",
                "loader": "streaming",
                "soft_deletes": True,
                "transactions": False,
            },
        ),
        "duck": (
            DestinationType.DUCKDB,
            {"path": "x.duckdb", "schema": "main", "landing_schema": "etl_landing", "soft_deletes": True},
        ),
    }


BAD_INPUT = {
    "no account": (["--type", "snowflake", "--user", "U", "--database", "D", "--schema", "S"], "needs account"),
    "no user": (["--type", "snowflake", "--account", "A", "--database", "D", "--schema", "S"], "needs user"),
    "no database": (["--type", "snowflake", "--account", "A", "--user", "U", "--schema", "S"], "needs database"),
    "no schema": (["--type", "snowflake", "--account", "A", "--user", "U", "--database", "D"], "needs schema"),
    "no credentials": (SNOWFLAKE, "has no credentials"),
    "key and password": ([*SNOWFLAKE, "--private-key-file", "KEY", "--password-env", "V"], "both a private key"),
    "missing key file": ([*SNOWFLAKE, "--private-key-file", "/nonexistent/k.p8"], "does not exist"),
    "key file is a folder": ([*SNOWFLAKE, "--private-key-file", "DIR"], "is not a file"),
    "passphrase without key": (
        [*SNOWFLAKE, "--password-env", "V", "--private-key-passphrase-env", "P"],
        "only applies",
    ),
    "port without host": ([*SNOWFLAKE, "--password-env", "V", "--port", "8080"], "--port needs --host"),
    "protocol without host": ([*SNOWFLAKE, "--password-env", "V", "--protocol", "http"], "--protocol needs --host"),
    "bad protocol": ([*SNOWFLAKE, "--password-env", "V", "--host", "h", "--protocol", "ftp"], "not https or http"),
    "bad port": ([*SNOWFLAKE, "--password-env", "V", "--host", "h", "--port", "http"], "not a port number"),
    "bad loader": ([*SNOWFLAKE, "--password-env", "V", "--loader", "pipe"], "unknown loader"),
    "url as account": (
        [*SNOWFLAKE[:2], "--account", "https://x.snowflakecomputing.com", *SNOWFLAKE[4:], "--password-env", "V"],
        "is a URL",
    ),
    "path with snowflake": ([*SNOWFLAKE, "--password-env", "V", "--path", "x.duckdb"], "does not take --path"),
    "no path": (["--type", "duckdb"], "needs path"),
    "account with duckdb": (["--type", "duckdb", "--path", "x.duckdb", "--account", "A"], "does not take --account"),
    "no-transactions with duckdb": (["--type", "duckdb", "--path", "x", "--no-transactions"], "--no-transactions"),
    "loader with duckdb": (["--type", "duckdb", "--path", "x", "--loader", "copy"], "does not take --loader"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_cli_refuses_bad_destinations_with_a_hint_and_stores_nothing(
    case: str, cli: Settings, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, reason = BAD_INPUT[case]
    args = [str(key_file) if a == "KEY" else str(tmp_path) if a == "DIR" else a for a in args]
    assert main(["destination", "add", "d", *args]) == 2
    err = capsys.readouterr().err
    assert reason in err and "\nhint: " in err, err
    assert _stored(cli) == {}


@contextmanager
def _not_root() -> Iterator[None]:
    """Root reads any file whatever its mode: act as an ordinary user meanwhile (the effective
    uid only, so root can come back)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)  # nobody
    try:
        yield
    finally:
        os.seteuid(0)


def test_cli_refuses_an_unreadable_key_file(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="etl-key-"))  # traversable by anyone, unlike tmp_path
    try:
        folder.chmod(0o755)
        key_file = folder / "etl_key.p8"
        key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
        key_file.chmod(0)
        with _not_root():
            code = main(["destination", "add", "d", *SNOWFLAKE, "--private-key-file", str(key_file)])
        assert code == 2
        assert "cannot be read" in capsys.readouterr().err
        assert _stored(cli) == {}
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "args",
    [
        ["--password", "hunter2-secret"],
        ["--password-env", "hunter2 secret!"],
        ["--private-key-passphrase", "hunter2-secret"],
    ],
)
def test_cli_never_takes_or_echoes_a_secret(
    args: list[str], cli: Settings, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--private-key-file", str(key_file)] if "passphrase" in args[0] else []
    assert main(["destination", "add", "d", *SNOWFLAKE, *extra, *args]) == 2
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    assert "environment variable" in err
    assert _stored(cli) == {}


def test_factory_builds_the_snowflake_config_that_was_given(key_file: Path) -> None:
    given = {
        "account": "myorg-acct",
        "user": "ETL",
        "database": "DB",
        "schema": "S",
        "warehouse": "WH",
        "role": "R",
        "private_key_file": str(key_file),
        "private_key_passphrase_env": "SF_PASSPHRASE",
    }
    stored = destination_config(DestinationType.SNOWFLAKE, given, name="wh")
    dest = Destination(1, "wh", DestinationType.SNOWFLAKE, stored)
    assert factory.snowflake_config(dest) == SnowflakeConfig(**given, landing_schema="ETL_LANDING")
    assert dest.describe() == "snowflake:myorg-acct/DB.S"
    # as the console sends it: text only
    console = {"account": "A", "user": "U", "database": "D", "schema": "S", "password_env": "PW"}
    console |= {"host": "127.0.0.1", "port": "8080", "protocol": "http", "transactions": "false"}
    cfg = factory.snowflake_config(Destination(2, "emu", DestinationType.SNOWFLAKE, console))
    assert cfg == SnowflakeConfig(
        account="A", user="U", database="D", schema="S", password_env="PW", host="127.0.0.1", port=8080, protocol="http"
    )
    assert "PW" in repr(cfg) and "hunter2" not in repr(cfg)


def test_factory_passes_transactions_soft_deletes_and_loader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made: list[tuple[str, SnowflakeConfig, bool, bool]] = []

    def fake(kind: str) -> type:
        class Fake:
            def __init__(self, config: SnowflakeConfig, *, atomic: bool = True, soft_deletes: bool = False) -> None:
                made.append((kind, config, atomic, soft_deletes))

        return Fake

    from engine.destinations.snowflake import destination as sf_destination

    monkeypatch.setattr(sf_destination, "SnowflakeDestination", fake("copy"))
    base = {"account": "A", "user": "U", "database": "D", "schema": "S", "password_env": "PW"}
    factory.open_destination(Destination(1, "a", DestinationType.SNOWFLAKE, base))
    options = base | {"transactions": False, "soft_deletes": True}
    factory.open_destination(Destination(2, "b", DestinationType.SNOWFLAKE, options))
    streaming = types.ModuleType("engine.destinations.snowflake.streaming")
    streaming.SnowpipeStreamingDestination = fake("streaming")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.destinations.snowflake.streaming", streaming)
    factory.open_destination(Destination(3, "c", DestinationType.SNOWFLAKE, options | {"loader": "streaming"}))
    assert [(kind, atomic, soft) for kind, _, atomic, soft in made] == [
        ("copy", True, False),
        ("copy", False, True),
        ("streaming", False, True),
    ]
    assert {cfg for _, cfg, _, _ in made} == {
        factory.snowflake_config(Destination(1, "a", DestinationType.SNOWFLAKE, base))
    }

    monkeypatch.setitem(sys.modules, "engine.destinations.snowflake.streaming", None)  # not installed
    with pytest.raises(ConfigError) as info:
        factory.open_destination(Destination(3, "c", DestinationType.SNOWFLAKE, options | {"loader": "streaming"}))
    assert "pip install 'etl-tui[snowpipe]'" in info.value.hint

    duck = factory.open_destination(
        Destination(4, "d", DestinationType.DUCKDB, {"path": str(tmp_path / "x.duckdb"), "soft_deletes": True})
    )
    assert isinstance(duck, DuckDbDestination) and duck.soft_deletes and duck.schema == "main"


def test_factory_names_the_destination_and_the_missing_option() -> None:
    dest = Destination(1, "wh", DestinationType.SNOWFLAKE, {"account": "A", "database": "D", "password_env": "PW"})
    with pytest.raises(ConfigError) as info:
        factory.open_destination(dest)
    assert info.value.reason == 'snowflake destination "wh" needs user, schema'
    assert "--user" in info.value.hint and "--schema" in info.value.hint
    with pytest.raises(ConfigError, match='duckdb destination "d" needs path'):
        factory.open_destination(Destination(2, "d", DestinationType.DUCKDB, {}))


def test_health_of_a_snowflake_destination_checks_what_it_can_without_connecting(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"account": "A", "user": "U", "database": "D", "schema": "S", "private_key_file": str(key_file)}
    assert _snowflake_problem(Destination(1, "wh", DestinationType.SNOWFLAKE, config)) is None
    monkeypatch.delenv("SF_PASSPHRASE", raising=False)
    with_passphrase = config | {"private_key_passphrase_env": "SF_PASSPHRASE"}
    problem = _snowflake_problem(Destination(1, "wh", DestinationType.SNOWFLAKE, with_passphrase))
    assert problem == "$SF_PASSPHRASE is not set in the engine's environment"
    key_file.unlink()
    assert "does not exist" in (_snowflake_problem(Destination(1, "wh", DestinationType.SNOWFLAKE, config)) or "")


def test_migration_002_admits_snowflake_and_keeps_duckdb_destinations(config_url: str, tmp_path: Path) -> None:
    only_001 = tmp_path / "migrations"
    only_001.mkdir()
    shutil.copy(migrations_dir() / "001_create_tables.sql", only_001)
    with psycopg.connect(config_url, autocommit=True) as conn:
        assert [m.name for m in apply_migrations(conn, only_001)] == ["001_create_tables"]
        conn.execute(
            "INSERT INTO destinations (name, type, config) VALUES ('local', 'duckdb', %s)",
            ('{"path": "./shop.duckdb", "schema": "main", "landing_schema": "etl_landing"}',),
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO destinations (name, type) VALUES ('wh', 'snowflake')")
        later = sorted(f.stem for f in migrations_dir().glob("*.sql"))[1:]
        assert [m.name for m in apply_migrations(conn)] == later and later[0] == "002_snowflake_destinations"
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO destinations (name, type) VALUES ('x', 'bigquery')")
    with ConfigRepository(config_url) as repo:
        local = repo.get_destination("local")
        assert local.type is DestinationType.DUCKDB and local.describe() == "duckdb:./shop.duckdb"
        assert factory._checked(local) == dict(local.config)  # still valid as stored
        wh = repo.add_destination(
            "wh", DestinationType.SNOWFLAKE, {"account": "A", "user": "U", "database": "D", "schema": "S"}
        )
        assert repo.get_destination("wh") == wh


def test_migration_003_keeps_pipelines_and_gives_them_no_column_types(config_url: str, tmp_path: Path) -> None:
    """A config DB made before column types: its pipelines load as they were, with none."""
    before = tmp_path / "migrations"
    before.mkdir()
    for name in ("001_create_tables.sql", "002_snowflake_destinations.sql"):
        shutil.copy(migrations_dir() / name, before)
    with psycopg.connect(config_url, autocommit=True) as conn:
        apply_migrations(conn, before)
        conn.execute("INSERT INTO sources (name, dsn) VALUES ('src', 'postgresql://u@h/db')")
        conn.execute("INSERT INTO destinations (name, type, config) VALUES ('local', 'duckdb', %s)", ('{"path": "x"}',))
    with ConfigRepository(config_url) as repo:  # applies 003 on open
        repo.add_pipeline("p1", "src", "local", parse_table_list("public.orders"))
        p = repo.get_pipeline("p1")
        assert p.column_types == ()
        repo.set_column_types("p1", [parse_column_type("public.orders.amount=text")])
        assert [str(t) for t in repo.get_pipeline("p1").column_types] == ["public.orders.amount=text"]
