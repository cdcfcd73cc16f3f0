"""Replication slots: the WAL each one holds back on its source, how fast the source writes WAL
and when safe WAL runs out, what is about to go wrong, and the alerts the engine raised."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from engine.status.board import Board
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.alerts import alert_rows, alerts_title, firing_alert_lines
from etl_tui.presenters.cells import Cell, Tone, filter_rows
from etl_tui.presenters.slots import slot_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("slot", "SLOT"),
    Column("active", "ACTIVE"),
    Column("wal_status", "WAL STATUS"),
    Column("confirmed", "CONFIRMED", justify="right"),
    Column("restart", "RESTART", justify="right"),
    Column("headroom", "SAFE WAL"),
    Column("history", "TREND"),
    Column("warning", "WARNING"),
    Column("wal_rate", "WAL RATE", justify="right"),
    Column("exhaustion", "RUNS OUT", justify="right"),
)
ALERT_COLUMNS = (
    Column("at", "TIME"),
    Column("state", "ALERT"),
    Column("rule", "RULE"),
    Column("pipeline", "PIPELINE"),
    Column("slot", "SLOT"),
    Column("value", "VALUE"),
    Column("duration", "DURATION"),
)
NOTES = [
    Cell(
        "CONFIRMED: lag since the last change durable at the destination (what a restart replays). RESTART: WAL the "
        "source keeps for the slot.",
        Tone.MUTED,
    ),
    Cell(
        "SAFE WAL: what it may still keep before PostgreSQL may remove it (max_slot_wal_keep_size; the slot is then "
        "lost). RUNS OUT: at WAL RATE.",
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
    DEFAULT_CSS = """
    SlotsScreen #alerts {
        height: 1fr;
        min-height: 5;
    }
    """

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, row_height=2, id="slots")
        yield Static(id="slot-warnings", classes="panel")
        yield KeyedTable(ALERT_COLUMNS, id="alerts")
        yield Static(lines_text(NOTES), id="slot-notes", classes="notes")

    def show_board(self, board: Board, now: float) -> None:
        table = self.query_one("#slots", KeyedTable)
        table.border_title = f"Replication slots ({len(board.slots)})"
        table.sync(filter_rows(slot_rows(board), self.filter_text))
        warned = [s for s in board.slots if s.warning]
        panel = self.query_one("#slot-warnings", Static)
        panel.border_title = f"Warnings ({len(warned)}) · firing alerts ({len(board.alerts)})"
        lines = [Cell(f"⚠ {s.slot} ({s.pipeline}, source {s.source}): {s.warning}", Tone.ERROR) for s in warned]
        panel.update(lines_text(lines + firing_alert_lines(board) or [Cell("no slot needs attention", Tone.OK)]))
        alerts = self.query_one("#alerts", KeyedTable)
        alerts.border_title = alerts_title(board)
        alerts.sync(filter_rows(alert_rows(board, now), self.filter_text))
