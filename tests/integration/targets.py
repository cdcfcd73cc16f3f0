"""Reading what a destination holds, the same way for DuckDB and for Snowflake (fakesnow in
server mode, through the real connector), so one end-to-end test can run against both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.config.models import DestinationType
from engine.destinations.snowflake.connection import SnowflakeConfig
from engine.destinations.snowflake.naming import qualified, snowflake_ident
from engine.identifiers import quote_ident
from tests.integration.harness import duck_rows

SNOWFLAKE_PASSWORD_ENV = "ETL_TEST_SNOWFLAKE_PASSWORD"


def emulator_config(server: dict[str, Any], database: str, monkeypatch: pytest.MonkeyPatch) -> SnowflakeConfig:
    """Settings for a Snowflake destination on the emulator, with ``database`` created first
    (fakesnow needs it before a session can use it; a Snowflake account already has one)."""
    import snowflake.connector

    from engine.destinations.snowflake import connection

    monkeypatch.setenv(SNOWFLAKE_PASSWORD_ENV, server["password"])
    monkeypatch.setattr(connection, "NETWORK_TIMEOUT_SECONDS", 20)  # an emulator error is retried until then
    admin = snowflake.connector.connect(
        **{k: v for k, v in server.items() if k != "network_timeout"}, network_timeout=30
    )
    admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    admin.close()
    return SnowflakeConfig(
        account=server["account"],
        user=server["user"],
        database=database,
        schema="analytics",
        password_env=SNOWFLAKE_PASSWORD_ENV,
        host=server["host"],
        port=server["port"],
        protocol=server["protocol"],
    )


class Target:
    """A destination under test: its config for the config DB, and a reader of its tables."""

    type: DestinationType
    schema: str

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def rows(self, table: str, columns: list[str], where: str = "") -> list[tuple[Any, ...]]:
        """``columns`` of ``table`` (source names), ordered by the first column."""
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        """The target table's columns as the destination names them."""
        raise NotImplementedError

    def target_sql(self, table: str) -> str:
        """The SQL name of the target table ``table`` (a target name: ``orders``)."""
        raise NotImplementedError

    def execute(self, statement: str) -> None:
        """Run ``statement`` at the destination behind the engine's back (to break or mend a target)."""
        raise NotImplementedError


class DuckTarget(Target):
    type = DestinationType.DUCKDB

    def __init__(self, path: Path, soft_deletes: bool = False) -> None:
        self.path = path
        self.schema = "main"
        self.soft_deletes = soft_deletes

    def config(self) -> dict[str, Any]:
        return {"path": str(self.path), "soft_deletes": self.soft_deletes}

    def rows(self, table: str, columns: list[str], where: str = "") -> list[tuple[Any, ...]]:
        cols = ", ".join(quote_ident(c) for c in columns)
        clause = f" WHERE {where}" if where else ""
        return duck_rows(self.path, f"SELECT {cols} FROM main.{quote_ident(table)}{clause} ORDER BY 1")

    def columns(self, table: str) -> list[str]:
        rows = duck_rows(
            self.path,
            f"SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = '{table}' "
            "ORDER BY column_index",
        )
        return [r[0] for r in rows]

    def target_sql(self, table: str) -> str:
        return f"main.{quote_ident(table)}"

    def execute(self, statement: str) -> None:
        deadline = time.monotonic() + 60
        while True:  # a running engine holds the file while it writes
            try:
                con = duckdb.connect(str(self.path))
                break
            except (duckdb.IOException, duckdb.ConnectionException):  # held, or open in this process
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            con.execute(statement)
        finally:
            con.close()


class SnowflakeTarget(Target):
    type = DestinationType.SNOWFLAKE

    def __init__(self, server: dict[str, Any], database: str, soft_deletes: bool = False) -> None:
        import snowflake.connector

        self.server = server
        self.database = database
        self.schema = "ANALYTICS"
        self.soft_deletes = soft_deletes
        # fakesnow needs the database before a session can use it (a Snowflake account has one).
        self._conn = snowflake.connector.connect(
            **{k: v for k, v in server.items() if k != "network_timeout"}, network_timeout=30
        )
        self._conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {database}")

    def config(self) -> dict[str, Any]:
        return {
            "account": self.server["account"],
            "user": self.server["user"],
            "database": self.database,
            "schema": "analytics",
            "password_env": SNOWFLAKE_PASSWORD_ENV,
            "host": self.server["host"],
            "port": int(self.server["port"]),
            "protocol": self.server["protocol"],
            # fakesnow cannot MERGE inside BEGIN/COMMIT; replays stay harmless without it (I2)
            "transactions": False,
            "soft_deletes": self.soft_deletes,
        }

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self._conn.cursor()
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]

    def rows(self, table: str, columns: list[str], where: str = "") -> list[tuple[Any, ...]]:
        cols = ", ".join(snowflake_ident(c) for c in columns)
        clause = f" WHERE {where}" if where else ""
        target = f"{self.database}.{self.schema}.{snowflake_ident(table)}"
        return self._query(f"SELECT {cols} FROM {target}{clause} ORDER BY 1")

    def columns(self, table: str) -> list[str]:
        from engine.destinations.snowflake.naming import snowflake_column_name

        name = snowflake_column_name(table).replace("'", "''")
        rows = self._query(
            f"SELECT COLUMN_NAME FROM {self.database}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
            f"'{self.schema}' AND TABLE_NAME = '{name}' ORDER BY ORDINAL_POSITION"
        )
        return [r[0] for r in rows]

    def target_sql(self, table: str) -> str:
        return qualified(self.database, self.schema, table)

    def execute(self, statement: str) -> None:
        self._conn.cursor().execute(statement)

    def close(self) -> None:
        self._conn.close()


def make_target(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, soft: bool = False
) -> Target:
    if kind == "duckdb":
        return DuckTarget(tmp_path / "out.duckdb", soft_deletes=soft)
    server = request.getfixturevalue("fakesnow_server")
    monkeypatch.setenv(SNOWFLAKE_PASSWORD_ENV, server["password"])
    database = "ETL_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.upper())[:80]
    target = SnowflakeTarget(server, database, soft_deletes=soft)
    request.addfinalizer(target.close)
    return target
