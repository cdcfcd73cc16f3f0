"""How far behind is worrying: the tone of a pipeline's or a slot's lag."""

from __future__ import annotations

from etl_tui.presenters.cells import Tone, worst

LAG_WARN_BYTES = 64 * 1024**2
LAG_ERROR_BYTES = 1024**3
LAG_WARN_SECONDS = 60.0
LAG_ERROR_SECONDS = 600.0
LAG_SECONDS_MATTER_FROM_BYTES = 1024**2
"""Below this much WAL behind, the age of the last applied commit only says the source is idle."""


def lag_tone(lag_bytes: int | None, lag_seconds: float | None) -> Tone:
    tone = Tone.NORMAL
    if lag_bytes is not None:
        if lag_bytes >= LAG_ERROR_BYTES:
            tone = Tone.ERROR
        elif lag_bytes >= LAG_WARN_BYTES:
            tone = Tone.WARN
    if lag_seconds is not None and (lag_bytes or 0) >= LAG_SECONDS_MATTER_FROM_BYTES:
        if lag_seconds >= LAG_ERROR_SECONDS:
            tone = worst(tone, Tone.ERROR)
        elif lag_seconds >= LAG_WARN_SECONDS:
            tone = worst(tone, Tone.WARN)
    return tone
