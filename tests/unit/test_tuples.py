"""The bulk TupleData reader agrees with the per-message decoder, and rejects malformed input."""

from __future__ import annotations

import random
import struct

import pytest

from engine.decoding.pgoutput import UNCHANGED_TOAST, Decoder, Insert, Update
from engine.decoding.tuples import parse_tuple_columns, skip_tuple
from engine.errors import PgOutputError


def _tuple(values: list[object]) -> bytes:
    out = [struct.pack("!h", len(values))]
    for v in values:
        if v is None:
            out.append(b"n")
        elif v is UNCHANGED_TOAST:
            out.append(b"u")
        else:
            assert isinstance(v, bytes)
            out.append(b"t" + struct.pack("!I", len(v)) + v)
    return b"".join(out)


def _insert(relid: int, values: list[object]) -> bytes:
    return b"I" + struct.pack("!I", relid) + b"N" + _tuple(values)


def test_matches_the_decoder_on_random_rows() -> None:
    rnd = random.Random(3)
    choices: list[object] = [None, b"", b"x", "ünï\x00code".encode(), b"a" * 300, UNCHANGED_TOAST]
    rows = [[rnd.choice(choices) for _ in range(5)] for _ in range(500)]
    payloads = [_insert(16384, r) for r in rows]
    parsed = parse_tuple_columns(payloads, [6] * len(payloads), 5)
    decoder = Decoder(1)
    for r, payload in enumerate(payloads):
        msg = decoder.decode(payload)
        assert isinstance(msg, Insert)
        for c in range(5):
            want = msg.new[c]
            got = parsed.values[c][r].as_py()
            mask = parsed.unchanged[c]
            if want is UNCHANGED_TOAST:
                assert got is None and mask is not None and mask[r]
            else:
                assert got == want
                assert mask is None or not mask[r]


def test_new_tuple_of_an_update_with_an_old_key() -> None:
    old, new = [b"1", None], [b"2", b"two"]
    payload = b"U" + struct.pack("!I", 7) + b"K" + _tuple(old) + b"N" + _tuple(new)
    new_at = skip_tuple(payload, 6) + 1
    parsed = parse_tuple_columns([payload, payload], [6, new_at], 2)
    assert parsed.values[0].to_pylist() == [b"1", b"2"]
    assert parsed.values[1].to_pylist() == [None, b"two"]
    msg = Decoder(1).decode(payload)
    assert isinstance(msg, Update) and msg.new == (b"2", b"two")


def test_empty_batch() -> None:
    parsed = parse_tuple_columns([], [], 3)
    assert [len(a) for a in parsed.values] == [0, 0, 0]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (_insert(1, [b"abc"])[:-1], "runs past the end"),
        (_insert(1, [b"a", b"b"]), "2 columns where the relation has 1"),
        (b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1) + b"b" + struct.pack("!I", 1) + b"x", "binary"),
        (b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1), "ends inside its tuple data"),
        (b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1) + b"t\x00\x00", "ends inside a value length"),
    ],
)
def test_malformed_tuple_data_is_a_clear_error(payload: bytes, reason: str) -> None:
    with pytest.raises(PgOutputError, match=reason):
        parse_tuple_columns([payload], [6], 1)


def test_skip_tuple_rejects_truncation() -> None:
    with pytest.raises(PgOutputError, match=r"runs past the end|truncated"):
        skip_tuple(_insert(1, [b"abcdef"])[:-2], 6)
