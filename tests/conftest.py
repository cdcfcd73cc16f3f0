"""Shared fixtures: one throwaway PostgreSQL cluster and one Redis server per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from engine.embedded.postgres import EmbeddedPostgres
from engine.embedded.redis import EmbeddedRedis
from engine.settings import Settings


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the session's Redis, emptied for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def pg_db(pg: EmbeddedPostgres) -> Iterator[str]:
    """Name of a fresh database on the session cluster, dropped (slots and all) afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg.create_database(name)
    yield name
    pg.drop_database(name)


@pytest.fixture
def config_url(pg: EmbeddedPostgres) -> Iterator[str]:
    """A fresh, empty config DB (migrations are applied by whoever connects first)."""
    name = f"cfg_{uuid.uuid4().hex[:12]}"
    pg.create_database(name)
    yield pg.dsn(name)
    pg.drop_database(name)


@pytest.fixture
def source_dsn(pg: EmbeddedPostgres, pg_db: str) -> str:
    return pg.dsn(pg_db)


@pytest.fixture
def settings(config_url: str, redis_url: str) -> Settings:
    # port 0: each engine started by a test serves /metrics on a free port of its own
    return Settings(config_db_url=config_url, redis_url=redis_url, metrics_addr="127.0.0.1:0")
