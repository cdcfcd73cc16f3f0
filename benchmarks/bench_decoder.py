"""Micro-benchmark of the pgoutput decoder (the engine's per-row hot path).

Run: python benchmarks/bench_decoder.py [--messages N] [--repeat R]

Prints the best-of-R throughput of decoding N hand-built payloads, shaped like
what a walsender sends for a 5-column table (int, text, timestamptz, numeric,
bool).
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable, Sequence

from engine.decoding.pgoutput import Decoder, Message, decode_message

RELID = 16_385
ROW: tuple[bytes, ...] = (b"123456", b"hello world", b"2024-01-01 12:34:56.789+00", b"3.14159", b"t")
KEY_ONLY: tuple[bytes | None, ...] = (b"123455", None, None, None, None)


def _tuple_data(values: Sequence[bytes | None]) -> bytes:
    out = struct.pack(">H", len(values))
    for value in values:
        out += b"n" if value is None else b"t" + struct.pack(">I", len(value)) + value
    return out


def _payloads() -> dict[str, list[bytes]]:
    insert = b"I" + struct.pack(">IB", RELID, ord("N")) + _tuple_data(ROW)
    update_key = b"U" + struct.pack(">IB", RELID, ord("K")) + _tuple_data(KEY_ONLY) + b"N" + _tuple_data(ROW)
    begin = b"B" + struct.pack(">QqI", 0x16_B374D848, 757_382_400_000_000, 748)
    commit = b"C" + struct.pack(">BQQq", 0, 0x16_B374D848, 0x16_B374D880, 757_382_400_000_000)
    return {
        "Insert (5 columns)": [insert],
        "Update with old key (5 columns)": [update_key],
        "Begin/Commit": [begin, commit],
    }


def _best_rate(decode: Callable[[bytes], Message], payloads: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for payload in payloads:
            decode(payload)
        best = min(best, time.perf_counter() - start)
    return len(payloads) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per timed run")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs; the best one counts")
    args = parser.parse_args()

    decoders: dict[str, Callable[[bytes], Message]] = {
        "Decoder.decode": Decoder(2).decode,
        "decode_message": decode_message,
    }
    print(f"{'message':34} {'decoder':16} {'msgs/s':>12} {'ns/msg':>8}")
    for label, shape in _payloads().items():
        payloads = shape * (args.messages // len(shape))
        for name, decode in decoders.items():
            rate = _best_rate(decode, payloads, args.repeat)
            print(f"{label:34} {name:16} {rate:12,.0f} {1e9 / rate:8,.0f}")


if __name__ == "__main__":
    main()
