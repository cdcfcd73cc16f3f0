"""Redis state store, cache-first: reads come from memory, every write goes through to Redis.

One store per pipeline runner thread (redis-py clients are thread-safe, but the cache is not
shared on purpose: each runner owns its pipeline's keys).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import redis

from engine.errors import StateStoreError
from engine.identifiers import TableName
from engine.metrics import METRICS
from engine.redaction import redact_dsn
from engine.state import keys
from engine.state.table_state import TableState

T = TypeVar("T")


def connect_redis(url: str) -> redis.Redis:
    try:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
        client.ping()
    except redis.RedisError as exc:
        raise StateStoreError(
            f"cannot reach Redis at {redact_dsn(url)}: {exc}",
            "check REDIS_URL and that redis-server is running; replication waits and retries",
        ) from exc
    return client


def _call(operation: str, what: str, fn: Callable[[], T]) -> T:
    """Run one Redis round trip, timed as ``operation`` (failures included: a slow timeout counts)."""
    started = time.perf_counter()
    try:
        return fn()
    except redis.RedisError as exc:
        raise StateStoreError(
            f"Redis {what} failed: {exc}", "check that Redis is up; the slot is not advanced meanwhile"
        ) from exc
    finally:
        METRICS.redis_operation.labels(operation).observe(time.perf_counter() - started)


class PipelineState:
    """The state of one pipeline: table phases, checkpoint cache, slot marker, status, counters."""

    def __init__(self, client: redis.Redis, pipeline_id: int, *, pipeline: str | None = None) -> None:
        """``pipeline``: the pipeline's name, given by its runner, so table phases are also
        exported as metrics (other readers of the state leave it out)."""
        self._r = client
        self.pipeline_id = pipeline_id
        self.pipeline = pipeline
        self._tables: dict[TableName, TableState] = {}
        self._loaded = False

    # ---- table phases ------------------------------------------------------------------------
    def load(self) -> dict[TableName, TableState]:
        raw: Mapping[Any, Any] = _call("load", "HGETALL", lambda: self._r.hgetall(keys.tables(self.pipeline_id)))
        self._tables = {}
        for field, value in raw.items():
            schema, name = json.loads(field)
            self._tables[TableName(schema, name)] = TableState.from_json(value)
        self._loaded = True
        if self.pipeline is not None:
            for table, state in self._tables.items():
                METRICS.set_table_phase(self.pipeline, str(table), state.phase)
        return dict(self._tables)

    def tables(self) -> dict[TableName, TableState]:
        if not self._loaded:
            self.load()
        return dict(self._tables)

    def get(self, table: TableName) -> TableState | None:
        if not self._loaded:
            self.load()
        return self._tables.get(table)

    def set(self, table: TableName, state: TableState) -> None:
        if not state.updated_at:
            state = state.moved(state.phase)
        field = json.dumps([table.schema, table.name])
        _call("set", "HSET", lambda: self._r.hset(keys.tables(self.pipeline_id), field, state.to_json()))
        self._tables[table] = state
        if self.pipeline is not None:
            METRICS.set_table_phase(self.pipeline, str(table), state.phase)

    def forget(self, tables: Iterable[TableName]) -> None:
        tables = list(tables)
        fields = [json.dumps([t.schema, t.name]) for t in tables]
        if fields:
            _call("forget", "HDEL", lambda: self._r.hdel(keys.tables(self.pipeline_id), *fields))
        for t in tables:
            self._tables.pop(t, None)
            if self.pipeline is not None:
                METRICS.forget_table(self.pipeline, str(t))

    # ---- copy requests -----------------------------------------------------------------------
    def request_copy(self, tables: Iterable[TableName]) -> None:
        """Ask this pipeline's runner to copy ``tables`` again (it takes them within a second
        while streaming, or when its next session starts)."""
        fields = [json.dumps([t.schema, t.name]) for t in tables]
        if fields:
            _call("request_copy", "SADD", lambda: self._r.sadd(keys.copy_requests(self.pipeline_id), *fields))

    def take_copy_requests(self) -> list[TableName]:
        """The tables asked for since the last call, each once (read and removed atomically)."""

        def run() -> list[Any]:
            pipe = self._r.pipeline(transaction=True)
            pipe.smembers(keys.copy_requests(self.pipeline_id))
            pipe.delete(keys.copy_requests(self.pipeline_id))
            return list(pipe.execute()[0])

        raw = _call("take_copy_requests", "SMEMBERS", run)
        out = []
        for field in raw:
            schema, name = json.loads(field)
            out.append(TableName(schema, name))
        return sorted(out)

    # ---- checkpoint and slot marker ---------------------------------------------------------
    def checkpoint(self) -> int | None:
        value = _call("checkpoint", "GET", lambda: self._r.get(keys.checkpoint(self.pipeline_id)))
        return int(value) if value is not None else None

    def set_checkpoint(self, lsn: int) -> None:
        _call("set_checkpoint", "SET", lambda: self._r.set(keys.checkpoint(self.pipeline_id), str(lsn)))

    def slot_marker(self) -> str | None:
        value = _call("slot_marker", "GET", lambda: self._r.get(keys.slot(self.pipeline_id)))
        return value.decode() if isinstance(value, bytes) else value

    def set_slot_marker(self, slot_name: str) -> None:
        _call("set_slot_marker", "SET", lambda: self._r.set(keys.slot(self.pipeline_id), slot_name))

    # ---- status and counters ----------------------------------------------------------------
    def publish_status(self, status: Mapping[str, Any], ttl_seconds: int = 30) -> None:
        """Publish the runner's status: its view as :func:`engine.pipeline.view_codec.encode_view`
        writes it (a JSON-ready dict), kept ``ttl_seconds`` unless published again."""
        payload = json.dumps(status, separators=(",", ":"))
        _call("publish_status", "SET", lambda: self._r.set(keys.status(self.pipeline_id), payload, ex=ttl_seconds))

    def published_status(self) -> dict[str, Any] | None:
        """The status this pipeline's runner last published (None: none, or it expired)."""
        return read_status(self._r, self.pipeline_id)

    def add_counters(self, counts: Mapping[tuple[TableName, str], int]) -> None:
        if not counts:
            return

        def run() -> None:
            pipe = self._r.pipeline(transaction=False)
            for (table, op), n in counts.items():
                pipe.hincrby(keys.counters(self.pipeline_id), f"{table}|{op}", n)
            pipe.execute()

        _call("add_counters", "HINCRBY", run)

    def clear(self) -> None:
        """Remove every key of this pipeline (used by an explicit `pipeline remove`)."""
        prefix = keys.pipeline_prefix(self.pipeline_id)
        found = list(_call("clear", "SCAN", lambda: list(self._r.scan_iter(match=prefix + "*", count=500))))
        if found:
            _call("clear", "DEL", lambda: self._r.delete(*found))
        if self.pipeline is not None:
            for t in self._tables:
                METRICS.forget_table(self.pipeline, str(t))
        self._tables.clear()


def read_status(client: redis.Redis, pipeline_id: int) -> dict[str, Any] | None:
    """The status a pipeline's runner last published (None: none, or it expired), as published;
    :func:`engine.pipeline.view_codec.decode_view` reads the runner's view from it."""
    raw = _call("read_status", "GET", lambda: client.get(keys.status(pipeline_id)))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        key = keys.status(pipeline_id)
        raise StateStoreError(
            f"{key} in Redis is not JSON: {exc}", f"delete {key}: a running engine rewrites it"
        ) from exc
    return data if isinstance(data, dict) else None


def read_counters(client: redis.Redis, pipeline_id: int) -> dict[str, int]:
    raw = _call("read_counters", "HGETALL", lambda: client.hgetall(keys.counters(pipeline_id)))
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
