"""How big a batch may grow before it is written (settings: BATCH_MAX_ROWS, BATCH_MAX_BYTES,
BATCH_MAX_FILL_MS)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchLimits:
    max_rows: int = 100_000
    max_bytes: int = 64 << 20
    # how long the first change of a batch may wait: the floor of commit → visible latency
    max_fill_seconds: float = 1.0
