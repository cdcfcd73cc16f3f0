"""Numbers as the console prints them: sizes, counts, rates, durations, ages, times of day."""

from __future__ import annotations

import time

from engine.units import format_bytes, format_seconds


def human_bytes(n: int | float | None) -> str:
    return "—" if n is None else format_bytes(n)


def human_count(n: int | float) -> str:
    value = float(n)
    if abs(value) < 1000:
        return f"{value:.0f}"
    for unit in ("k", "M", "G"):
        value /= 1000
        if abs(value) < 1000 or unit == "G":
            return f"{value:.1f}{unit}"
    raise AssertionError("unreachable")


def human_rate(rows_per_second: float | None) -> str:
    return "—" if rows_per_second is None else f"{human_count(rows_per_second)}/s"


def human_byte_rate(bytes_per_second: float | None) -> str:
    return "—" if bytes_per_second is None else f"{human_bytes(max(0.0, bytes_per_second))}/s"


def human_duration(seconds: float | None) -> str:
    return "—" if seconds is None else format_seconds(seconds)


def human_ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else human_duration(seconds)


def ago(at: float | None, now: float) -> str:
    if at is None:
        return "—"
    return f"{human_duration(max(0.0, now - at))} ago"


def clock_time(at: float) -> str:
    """Wall-clock time of day in the operator's local time zone."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
