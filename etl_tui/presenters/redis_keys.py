"""The Redis screen: the engine's keys, their type, expiry and a preview of the value, and how the
scan went."""

from __future__ import annotations

from collections.abc import Sequence

from engine.status.board import RedisKeyView
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.failure import Failure
from etl_tui.presenters.units import human_duration, truncate


def redis_rows(keys: Sequence[RedisKeyView]) -> list[Row]:
    return [
        Row(
            k.key,
            (
                Cell(k.key),
                Cell(k.type),
                Cell(
                    "no expiry" if k.ttl_seconds is None else human_duration(k.ttl_seconds),
                    Tone.MUTED if k.ttl_seconds is None else Tone.NORMAL,
                ),
                Cell(truncate(k.preview.replace("\n", " "), 90), Tone.MUTED),
            ),
        )
        for k in sorted(keys, key=lambda k: k.key)
    ]


def redis_status_cell(
    keys: Sequence[RedisKeyView] | None, failure: Failure | None, *, scanning: bool, match: str
) -> Cell:
    if scanning:
        return Cell(f"scanning {match} …", Tone.MUTED)
    if failure is not None:
        return Cell(
            f"✖ cannot read Redis: {failure.reason}", Tone.ERROR, sub=f"hint: {failure.hint}" if failure.hint else ""
        )
    if keys is None:
        return Cell("loading…", Tone.MUTED)
    return Cell(f"{len(keys)} keys matching {match} (SCAN, read-only) · ctrl+r reads them again", Tone.NORMAL)
