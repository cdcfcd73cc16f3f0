"""A DataTable fed whole row lists every refresh but updated in place by row key.

Rebuilding a table each second would reset the cursor and scroll position and flicker (Textual
#6457 measured the cost of naive updates); instead unchanged cells are left alone, changed ones are
updated, and the cursor stays on the same key whatever rows come and go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.widgets import DataTable

from etl_tui.presenters.cells import Cell, Row
from etl_tui.widgets.styles import cell_text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None  # None: fit the content
    justify: Literal["left", "right"] = "left"


class KeyedTable(DataTable[Text]):
    DEFAULT_CSS = """
    KeyedTable { height: auto; }
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        row_height: int = 1,
        follow_tail: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._specs = tuple(columns)
        self._row_height = row_height
        self._follow_tail = follow_tail
        self._order: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        for c in self._specs:
            self.add_column(Text(c.label, justify=c.justify), key=c.key, width=c.width)

    @property
    def selected_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def sync(self, rows: Sequence[Row]) -> None:
        """Show exactly ``rows`` (in order), touching only what changed."""
        rows = _unique(rows)
        selected = self.selected_key
        old_index = self.cursor_row
        at_tail = not self._order or self.cursor_row >= len(self._order) - 1
        new_keys = [r.key for r in rows]
        by_key = {r.key: r for r in rows}
        surviving = [k for k in self._order if k in by_key]
        if surviving == new_keys[: len(surviving)]:
            # the common cases: nothing added or removed, rows appended (events), rows dropped
            for key in self._order:
                if key not in by_key:
                    self.remove_row(key)
                    del self._cells[key]
            for key in surviving:
                self._update_row(by_key[key])
            for row in rows[len(surviving) :]:
                self._add_row(row)
        else:
            self.clear()
            self._cells.clear()
            for row in rows:
                self._add_row(row)
        self._order = new_keys
        self._restore_cursor(selected, old_index, at_tail)

    def _add_row(self, row: Row) -> None:
        self.add_row(*self._texts(row.cells), key=row.key, height=self._row_height)
        self._cells[row.key] = row.cells

    def _update_row(self, row: Row) -> None:
        old = self._cells[row.key]
        if old == row.cells:
            return
        for spec, before, after in zip(self._specs, old, row.cells, strict=True):
            if before != after:
                self.update_cell(row.key, spec.key, cell_text(after, spec.justify), update_width=spec.width is None)
        self._cells[row.key] = row.cells

    def _texts(self, cells: tuple[Cell, ...]) -> list[Text]:
        return [cell_text(c, s.justify) for s, c in zip(self._specs, cells, strict=True)]

    def _restore_cursor(self, selected: str | None, old_index: int, at_tail: bool) -> None:
        if not self._order:
            return
        if self._follow_tail and at_tail:
            target = len(self._order) - 1
        elif selected is not None and selected in self._cells:
            target = self._order.index(selected)
        else:
            target = min(old_index, len(self._order) - 1)
        if target != self.cursor_row:
            self.move_cursor(row=target, animate=False)


def _unique(rows: Sequence[Row]) -> Sequence[Row]:
    """A repeated key would make DataTable raise; keep every row, suffixing repeats."""
    seen: dict[str, int] = {}
    out: list[Row] = []
    changed = False
    for row in rows:
        n = seen.get(row.key, 0)
        seen[row.key] = n + 1
        if n:
            row = Row(f"{row.key}#{n}", row.cells)
            changed = True
        out.append(row)
    return out if changed else rows
