"""Charts drawn with characters: sparklines, progress bars, and round axis ticks for the plot."""

from __future__ import annotations

import math
from collections.abc import Sequence

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """Newest sample at the right edge; longer series are averaged into ``width`` buckets."""
    if width <= 0:
        return ""
    if not values:
        return " " * width
    if len(values) > width:
        n = len(values)
        buckets = [values[i * n // width : (i + 1) * n // width] for i in range(width)]
        series = [sum(b) / len(b) for b in buckets]
    else:
        series = list(values)
    top = max(series)
    if top <= 0:
        chars = SPARK_CHARS[0] * len(series)
    else:
        last = len(SPARK_CHARS) - 1
        chars = "".join(SPARK_CHARS[min(last, max(0, round(v / top * last)))] for v in series)
    return chars.rjust(width)


def progress_bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (1, 2, 2.5 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step) + 1)]
