"""Everything the engine reported, oldest first; the cursor follows new events while it sits on
the last row (like `tail -f`), and stays put once the operator moves it up."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType

from engine.status.board import Board
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.cells import filter_rows
from etl_tui.presenters.events import event_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable

COLUMNS = (
    Column("at", "TIME"),
    Column("level", "LEVEL"),
    Column("kind", "KIND"),
    Column("pipeline", "PIPELINE"),
    Column("table", "TABLE"),
    Column("message", "MESSAGE"),
)


class EventsScreen(BoardScreen):
    SCOPE = "events"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("events")

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, follow_tail=True, id="events")

    def show_board(self, board: Board, now: float) -> None:
        table = self.query_one("#events", KeyedTable)
        rows = filter_rows(event_rows(board.events), self.filter_text)
        if self.filter_text:
            table.border_title = f"Events ({len(rows)} of {len(board.events)})"
        elif board.alerts:
            n = len(board.alerts)
            table.border_title = f"Events · {n} alert{'s' if n != 1 else ''} firing (4: WAL / slots)"
        else:
            table.border_title = "Events"
        table.sync(rows)
