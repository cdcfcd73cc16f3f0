"""The events screen and the home screen's recent-events strip: what the engine reported."""

from __future__ import annotations

from collections.abc import Sequence

from engine.status.board import EventView
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.units import clock_time, truncate

_LEVEL_TONES = {"info": Tone.NORMAL, "warning": Tone.WARN, "error": Tone.ERROR}
_LEVEL_LABELS = {"info": "INFO", "warning": "WARN", "error": "ERROR"}


def event_rows(events: Sequence[EventView]) -> list[Row]:
    """Oldest first (newest at the bottom, like a log); keys stay stable as the window slides."""
    seen: dict[tuple[float, str], int] = {}
    rows = []
    for ev in events:
        ident = (ev.at, ev.message)
        n = seen.get(ident, 0)
        seen[ident] = n + 1
        tone = _LEVEL_TONES.get(ev.level, Tone.NORMAL)
        rows.append(
            Row(
                f"{ev.at!r}|{n}|{ev.message}",
                (
                    Cell(clock_time(ev.at), Tone.MUTED),
                    Cell(_LEVEL_LABELS.get(ev.level, ev.level.upper()), tone),
                    Cell(ev.kind),
                    Cell(ev.pipeline or "—", Tone.NORMAL if ev.pipeline else Tone.MUTED),
                    Cell(ev.table or "—", Tone.NORMAL if ev.table else Tone.MUTED),
                    Cell(ev.message, tone),
                ),
            )
        )
    return rows


def event_line(ev: EventView, width: int = 110) -> Cell:
    """One line of the home screen's recent-events strip."""
    where = " ".join(x for x in (ev.pipeline, ev.table) if x)
    text = f"{clock_time(ev.at)} {_LEVEL_LABELS.get(ev.level, ev.level.upper()):<5} {where + ' ' if where else ''}"
    return Cell(truncate(text + ev.message, width), _LEVEL_TONES.get(ev.level, Tone.NORMAL))
