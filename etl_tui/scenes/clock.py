"""The fixed moment every scene is drawn at, and the units the scenes are written in.

The clock is fixed, so countdowns and ages render the same on every run.
"""

from __future__ import annotations

FIXED_NOW = 1_782_907_200.0  # 2026-07-01 12:00:00 UTC
MiB = 1024**2
GiB = 1024**3


def fixed_clock() -> float:
    return FIXED_NOW


def lsn(value: int) -> str:
    """An LSN as PostgreSQL prints it (1/A2B3C4D0)."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:08X}"
