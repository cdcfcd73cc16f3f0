"""Quantities as people read them, the same everywhere: console, CLI, alerts, checks."""

from __future__ import annotations

__all__ = ["format_bytes", "format_seconds"]


def format_bytes(n: float) -> str:
    """``0 B``, ``512 B``, ``1.5 KiB`` … ``2.0 TiB`` (binary units; negative values keep the sign)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``, ``1d 04h`` (negative counts as 0)."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"
