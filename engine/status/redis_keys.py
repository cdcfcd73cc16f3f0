"""A read-only look at the engine's Redis keys, for the console's Redis screen.

What each key holds is listed in :mod:`engine.state.keys`; ``etl:pipeline:{id}:status`` is its
runner's view as JSON (schema in :mod:`engine.pipeline.view_codec`), which ``etl-tui status``
decodes rather than previews.

Keys are found with SCAN, never KEYS: KEYS walks the whole keyspace in one command and stalls a
Redis that the runners need for every checkpoint. Values are read only in part (a bounded range
of a string, one HSCAN page of a hash, the first members of a list/set/zset), so a huge key costs
no more than a small one, and nothing here writes.
"""

from __future__ import annotations

import math
from typing import Any

import redis

from engine.errors import StateStoreError
from engine.state.keys import PREFIX
from engine.status.board import RedisKeyView

PREVIEW_CHARS = 200
_SCAN_COUNT = 1000  # keys examined per SCAN call: few round trips, each one short for the server
_MEMBERS = 20  # elements read for a preview: more would not fit in PREVIEW_CHARS anyway
# control characters would move the console's cursor or break the one-line preview: show them escaped
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def inspect_keys(client: redis.Redis, match: str = PREFIX + "*", limit: int = 500) -> list[RedisKeyView]:
    """Up to ``limit`` keys matching ``match``, sorted, with type, TTL and a value preview."""
    try:
        found: list[Any] = []
        for key in client.scan_iter(match=match, count=_SCAN_COUNT):
            found.append(key)
            if len(found) >= limit:
                break
        found.sort(key=_text)
        meta = client.pipeline(transaction=False)
        for key in found:
            meta.type(key)
            meta.pttl(key)
        answers = meta.execute()
        types = [_text(t) for t in answers[0::2]]
        ttls: list[int] = [int(t) for t in answers[1::2]]
        values = client.pipeline(transaction=False)
        for key, type_ in zip(found, types, strict=True):
            _queue_preview(values, key, type_)
        previews = values.execute(raise_on_error=False)
    except redis.RedisError as exc:
        raise StateStoreError(
            f"cannot read keys from Redis: {exc}",
            f"check that Redis is up at {_address(client)}",
        ) from exc
    out: list[RedisKeyView] = []
    for key, type_, pttl, raw in zip(found, types, ttls, previews, strict=True):
        if type_ == "none" or pttl == -2:
            continue  # deleted between SCAN and TYPE
        ttl = None if pttl < 0 else math.ceil(pttl / 1000)
        out.append(RedisKeyView(key=_text(key), type=type_, ttl_seconds=ttl, preview=_preview(type_, raw)))
    return out


def _queue_preview(pipe: Any, key: Any, type_: str) -> None:
    """Queue exactly one command per key, so answers line up with keys."""
    if type_ == "string":
        pipe.getrange(key, 0, PREVIEW_CHARS * 4)  # enough bytes for PREVIEW_CHARS multi-byte characters
    elif type_ == "hash":
        pipe.hscan(key, 0, count=_MEMBERS)
    elif type_ == "list":
        pipe.lrange(key, 0, _MEMBERS - 1)
    elif type_ == "set":
        pipe.sscan(key, 0, count=_MEMBERS)
    elif type_ == "zset":
        pipe.zrange(key, 0, _MEMBERS - 1, withscores=True)
    elif type_ == "stream":
        pipe.xlen(key)
    else:
        pipe.exists(key)  # an unknown type: only a placeholder answer


def _preview(type_: str, raw: Any) -> str:
    if isinstance(raw, Exception):
        return f"(unreadable: {raw})"[:PREVIEW_CHARS]
    if type_ == "string":
        text = _text(raw)
    elif type_ == "hash":
        _, fields = raw
        text = ", ".join(sorted(f"{_text(k)}={_text(v)}" for k, v in fields.items()))
    elif type_ == "set":
        _, members = raw
        text = ", ".join(sorted(_text(m) for m in members))
    elif type_ == "list":
        text = ", ".join(_text(m) for m in raw)
    elif type_ == "zset":
        text = ", ".join(f"{_text(m)}={score:g}" for m, score in raw)
    elif type_ == "stream":
        text = f"{int(raw)} entries"
    else:
        text = f"({type_})"
    return _truncate(text)


def _truncate(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _text(value: Any) -> str:
    """Bytes as text; bytes that are not UTF-8 (binary values) and control characters are
    escaped, never an error."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value).translate(_CONTROL)


def _address(client: redis.Redis) -> str:
    """Where the client connects, without credentials."""
    kw: dict[str, Any] = client.connection_pool.connection_kwargs
    if "path" in kw:
        return str(kw["path"])
    return f"{kw.get('host', '?')}:{kw.get('port', '?')} db {kw.get('db', 0)}"
