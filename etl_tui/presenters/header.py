"""The header every screen shows: health of each component, the console's mode, the board's age."""

from __future__ import annotations

import re
from collections.abc import Sequence

from engine.status.board import HealthView
from etl_tui.presenters.cells import Cell, Tone
from etl_tui.presenters.units import human_duration

STALE_AFTER_SECONDS = 5.0
"""A board older than this means the engine stopped publishing (a hung engine must not look idle)."""

_COMPONENT = re.compile(r'^(source|destination) "(.*)"$')


def health_label(component: str) -> str:
    """'source "shop"' → 'src shop'; other names as they are."""
    m = _COMPONENT.match(component)
    if not m:
        return component
    return f"{'src' if m.group(1) == 'source' else 'dst'} {m.group(2)}"


def health_cells(health: Sequence[HealthView]) -> list[Cell]:
    return [
        Cell(f"{'●' if h.ok else '✖'} {health_label(h.component)}", Tone.OK if h.ok else Tone.ERROR, sub=h.detail)
        for h in health
    ]


def mode_cell(*, readonly: bool, frozen: bool) -> Cell:
    parts = (["READ-ONLY"] if readonly else []) + (["PAUSED"] if frozen else [])
    if not parts:
        return Cell("LIVE", Tone.OK)
    return Cell(" · ".join(parts), Tone.WARN if frozen else Tone.ACCENT)


def freshness_cell(taken_at: float, now: float, *, frozen: bool) -> Cell:
    if taken_at <= 0:
        return Cell("no status yet: engine not publishing", Tone.WARN)
    age = max(0.0, now - taken_at)
    if frozen:
        return Cell(f"frozen · data from {human_duration(age)} ago", Tone.ACCENT)
    if age > STALE_AFTER_SECONDS:
        return Cell(f"updated {human_duration(age)} ago: engine not publishing", Tone.WARN)
    return Cell(f"updated {human_duration(age)} ago", Tone.MUTED)
