"""The vocabulary every presenter speaks and every widget draws: tones, cells, rows, the `/` filter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Tone(StrEnum):
    NORMAL = "normal"
    OK = "ok"
    WARN = "warn"
    ERROR = "error"
    MUTED = "muted"
    ACCENT = "accent"


_TONE_RANK = {Tone.NORMAL: 0, Tone.MUTED: 0, Tone.OK: 0, Tone.ACCENT: 1, Tone.WARN: 2, Tone.ERROR: 3}


def worst(*tones: Tone) -> Tone:
    return max(tones, key=_TONE_RANK.__getitem__, default=Tone.NORMAL)


@dataclass(frozen=True)
class Cell:
    """One table cell: a main line and an optional muted second line (two-line rows)."""

    text: str
    tone: Tone = Tone.NORMAL
    sub: str = ""
    sub_tone: Tone = Tone.MUTED


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[Cell, ...]

    def matches(self, query: str) -> bool:
        """Case-insensitive substring match over every cell, so `/` finds what the operator sees."""
        needle = query.strip().lower()
        if not needle:
            return True
        return any(needle in c.text.lower() or needle in c.sub.lower() for c in self.cells)


def filter_rows(rows: Iterable[Row], query: str) -> list[Row]:
    return [r for r in rows if r.matches(query)]
