"""Tones (decided by the presenters) → Rich styles."""

from __future__ import annotations

from typing import Literal

from rich.text import Text

from etl_tui.presenters.cells import Cell, Tone

TONE_STYLES: dict[Tone, str] = {
    Tone.NORMAL: "",
    Tone.OK: "green",
    Tone.WARN: "yellow",
    Tone.ERROR: "bold red",
    Tone.MUTED: "dim",
    Tone.ACCENT: "cyan",
}


def cell_text(cell: Cell, justify: Literal["left", "right"] = "left") -> Text:
    # styles go on spans, not the Text itself, whose style would also colour the sub line
    text = Text(justify=justify)
    text.append(cell.text, style=TONE_STYLES[cell.tone])
    if cell.sub:
        text.append("\n")
        text.append(cell.sub, style=TONE_STYLES[cell.sub_tone])
    return text


def lines_text(cells: list[Cell]) -> Text:
    """Cells as lines of one Text (a cell's sub line, if any, follows it)."""
    text = Text()
    for i, cell in enumerate(cells):
        if i:
            text.append("\n")
        text.append_text(cell_text(cell))
    return text
