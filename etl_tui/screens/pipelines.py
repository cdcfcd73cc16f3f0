"""Home: one row per pipeline, and below it the selected pipeline's tables and slot, then the
latest events."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from engine.status.board import Board
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.cells import Cell, Tone, filter_rows
from etl_tui.presenters.events import event_line
from etl_tui.presenters.pipelines import pipeline_rows, slot_brief_lines, table_brief_lines
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("name", "PIPELINE"),
    Column("state", "STATE"),
    Column("rate", "ROWS/S (60s)"),
    Column("lag", "LAG"),
    Column("tables", "TABLES"),
    Column("error", "LAST ERROR"),
)
RECENT_EVENTS = 20  # newest first; the panel clips the oldest


class PipelineTable(KeyedTable):
    # the table sees enter first; binding it here (shown) puts "Open" in the footer
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", key_display="⏎", id="open-pipeline")
    ]


class PipelinesScreen(BoardScreen):
    SCOPE = "pipelines"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("pipelines")

    def compose_body(self) -> ComposeResult:
        yield PipelineTable(COLUMNS, row_height=2, id="pipelines")
        yield Static("no pipelines: add one on the Config screen (7)", id="empty", classes="empty")
        with Horizontal(id="selected"):
            yield Static(id="selected-tables", classes="panel")
            yield Static(id="selected-slot", classes="panel")
        yield Static(id="recent-events", classes="panel")

    def show_board(self, board: Board, now: float) -> None:
        table = self.query_one(PipelineTable)
        table.sync(filter_rows(pipeline_rows(board, now), self.filter_text))
        self.query_one("#empty", Static).display = not board.pipelines
        self._show_selected(board, now)
        events = self.query_one("#recent-events", Static)
        events.border_title = "Recent events, newest first (6: all)"
        recent = [event_line(ev) for ev in reversed(board.events[-RECENT_EVENTS:])]
        events.update(lines_text(recent or [Cell("no events yet", Tone.MUTED)]))

    def _show_selected(self, board: Board, now: float) -> None:
        name = self.query_one(PipelineTable).selected_key
        pipeline = board.pipeline(name) if name else None
        tables = self.query_one("#selected-tables", Static)
        slot_panel = self.query_one("#selected-slot", Static)
        if pipeline is None:
            tables.border_title = "Tables"
            tables.update("")
            slot_panel.border_title = "Slot"
            slot_panel.update("")
            return
        tables.border_title = f"{pipeline.name} · tables (⏎ for details)"
        tables.update(lines_text(table_brief_lines(pipeline, now)))
        slot = next((s for s in board.slots if s.pipeline == pipeline.name), None)
        slot_panel.border_title = f"{pipeline.name} · slot"
        slot_panel.update(lines_text(slot_brief_lines(slot)))

    @on(DataTable.RowHighlighted, "#pipelines")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.etl.selected_pipeline = event.row_key.value
        self.refresh_view(body=False)
        self._show_selected(self.etl.board, self.etl.now())

    @on(DataTable.RowSelected, "#pipelines")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.etl.selected_pipeline = event.row_key.value
        self.etl.show_screen("detail")

    def _selected_name(self) -> str | None:
        name = self.query_one(PipelineTable).selected_key
        if name is None:
            self.notify("no pipeline selected", severity="warning")
        return name

    def action_open_detail(self) -> None:
        if self._selected_name():
            self.etl.show_screen("detail")

    def action_start_pipeline(self) -> None:
        if name := self._selected_name():
            self.etl.perform(f"start {name}", lambda backend: backend.start_pipeline(name))

    def action_pause_pipeline(self) -> None:
        if name := self._selected_name():
            self.etl.perform(f"pause {name}", lambda backend: backend.pause_pipeline(name))
