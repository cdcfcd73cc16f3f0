"""Vectorised reading of pgoutput TupleData, a whole batch at a time.

The stream thread does not split each row into Python objects: it keeps the raw message and the
offset of its TupleData, and this module turns a batch of them into one Arrow binary array per
column with numpy (a few passes over the bytes instead of a Python loop per value). That moves
the per-row cost off the thread that must keep up with PostgreSQL.

TupleData is: int16 column count, then per column a kind byte — ``n`` NULL, ``u`` unchanged
TOAST value, ``t`` text (int32 length + bytes), ``b`` binary (not requested by this engine).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.errors import PgOutputError

_KIND_TEXT, _KIND_NULL, _KIND_UNCHANGED = ord("t"), ord("n"), ord("u")
_U32 = struct.Struct("!I")
_MAX_OFFSET = (1 << 31) - 1  # pa.binary() offsets are int32


@dataclass(frozen=True)
class TupleColumns:
    """One binary array per column (NULL where the value is NULL or unchanged), and per column
    a boolean mask of the rows whose value is an unchanged TOAST value (None: no such row)."""

    values: list[pa.Array]
    unchanged: list[np.ndarray | None]


def skip_tuple(payload: bytes, pos: int) -> int:
    """The offset just past the TupleData at ``pos`` (lengths only: no value is copied)."""
    try:
        (ncols,) = struct.unpack_from("!h", payload, pos)
        pos += 2
        for _ in range(ncols):
            kind = payload[pos]
            if kind == _KIND_TEXT or kind == ord("b"):
                pos += 5 + _U32.unpack_from(payload, pos + 1)[0]
            else:
                pos += 1
    except (IndexError, struct.error):
        raise PgOutputError("TupleData", pos, f"truncated, the message has {len(payload)} bytes") from None
    if pos > len(payload):
        raise PgOutputError("TupleData", pos, f"runs past the end of the {len(payload)}-byte message")
    return pos


def _fail(reason: str) -> PgOutputError:
    return PgOutputError("TupleData", -1, reason)  # in bulk: no single offset to point at


def parse_tuple_columns(payloads: Sequence[bytes], offsets: Sequence[int], ncols: int) -> TupleColumns:
    """Read the TupleData at ``offsets[i]`` of each ``payloads[i]``; every tuple has ``ncols``."""
    n = len(payloads)
    if n == 0:
        return TupleColumns([pa.array([], pa.binary()) for _ in range(ncols)], [None] * ncols)
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    ends = np.cumsum(lengths)
    pos = ends - lengths + np.asarray(offsets, dtype=np.int64)
    if np.any(pos + 2 > ends):
        raise _fail("a message ends before its column count")
    counts = (buf[pos].astype(np.int64) << 8) | buf[pos + 1]
    if np.any(counts != ncols):
        bad = int(counts[counts != ncols][0])
        raise _fail(f"a row has {bad} columns where the relation has {ncols}")
    pos = pos + 2
    values: list[pa.Array] = []
    unchanged: list[np.ndarray | None] = []
    for _ in range(ncols):
        if np.any(pos >= ends):
            raise _fail("a message ends inside its tuple data")
        kind = buf[pos]
        is_text = kind == _KIND_TEXT
        is_unchanged = kind == _KIND_UNCHANGED
        if not np.all(is_text | is_unchanged | (kind == _KIND_NULL)):
            other = int(kind[~(is_text | is_unchanged | (kind == _KIND_NULL))][0])
            raise _fail(f"unexpected column kind {chr(other)!r} (binary tuple data is not requested)")
        lens = np.zeros(n, dtype=np.int64)
        if is_text.any():
            at = pos[is_text] + 1
            if np.any(at + 4 > ends[is_text]):
                raise _fail("a message ends inside a value length")
            lens[is_text] = (
                (buf[at].astype(np.int64) << 24)
                | (buf[at + 1].astype(np.int64) << 16)
                | (buf[at + 2].astype(np.int64) << 8)
                | buf[at + 3]
            )
        starts = pos + 5
        nxt = np.where(is_text, starts + lens, pos + 1)
        if np.any(nxt > ends):
            raise _fail("a value runs past the end of its message")
        cum = np.cumsum(lens)
        total = int(cum[-1])
        if total > _MAX_OFFSET:
            raise _fail("a batch column holds more than 2 GiB")
        if total:
            # index of every byte of every value: start of its value + its rank within it
            gather = np.arange(total, dtype=np.int64) + np.repeat(starts - (cum - lens), lens)
            data = buf[gather]
        else:
            data = np.empty(0, dtype=np.uint8)
        value_offsets = np.empty(n + 1, dtype=np.int32)
        value_offsets[0] = 0
        value_offsets[1:] = cum
        null_count = int(n - np.count_nonzero(is_text))
        validity = pa.py_buffer(np.packbits(is_text, bitorder="little")) if null_count else None
        values.append(
            pa.Array.from_buffers(
                pa.binary(), n, [validity, pa.py_buffer(value_offsets), pa.py_buffer(data)], null_count=null_count
            )
        )
        unchanged.append(is_unchanged if is_unchanged.any() else None)
        pos = nxt
    return TupleColumns(values, unchanged)


def encode_tuple(values: Sequence[bytes | None]) -> bytes:
    """TupleData for text values (``None``: NULL), as pgoutput writes it."""
    out = [struct.pack("!h", len(values))]
    for value in values:
        if value is None:
            out.append(b"n")
        else:
            out.append(b"t" + _U32.pack(len(value)) + value)
    return b"".join(out)
