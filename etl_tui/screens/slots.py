"""Replication slots: the WAL each one holds back on its source, and what is about to go wrong."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from engine.status_board import BoardSnapshot
from etl_tui.bindings import screen_bindings
from etl_tui.presenters import Cell, Tone, filter_rows, slot_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("slot", "SLOT"),
    Column("active", "ACTIVE"),
    Column("wal_status", "WAL STATUS"),
    Column("confirmed", "CONFIRMED LAG", justify="right"),
    Column("restart", "RESTART LAG", justify="right"),
    Column("headroom", "SAFE WAL"),
    Column("history", "LAG (60 samples)"),
    Column("warning", "WARNING"),
)
NOTES = [
    Cell(
        "CONFIRMED LAG: WAL written since the last change durable at the destination (what a restart replays).",
        Tone.MUTED,
    ),
    Cell(
        "RESTART LAG: WAL the source keeps for this slot. SAFE WAL: how much more it may keep before "
        "max_slot_wal_keep_size lets PostgreSQL remove it (the slot is then lost).",
        Tone.MUTED,
    ),
    Cell(
        "An inactive slot still holds WAL back: the source disk fills until the pipeline runs again or is removed.",
        Tone.MUTED,
    ),
]


class SlotsScreen(BoardScreen):
    SCOPE = "slots"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("slots")

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, row_height=2, id="slots")
        yield Static(id="slot-warnings", classes="panel")
        yield Static(lines_text(NOTES), id="slot-notes", classes="notes")

    def show_board(self, board: BoardSnapshot, now: float) -> None:
        table = self.query_one("#slots", KeyedTable)
        table.border_title = f"Replication slots ({len(board.slots)})"
        table.sync(filter_rows(slot_rows(board), self.filter_text))
        warned = [s for s in board.slots if s.warning]
        panel = self.query_one("#slot-warnings", Static)
        panel.border_title = f"Warnings ({len(warned)})"
        panel.update(
            lines_text(
                [Cell(f"⚠ {s.slot} ({s.pipeline}, source {s.source}): {s.warning}", Tone.ERROR) for s in warned]
                or [Cell("no slot needs attention", Tone.OK)]
            )
        )
