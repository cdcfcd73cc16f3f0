"""One pipeline's tables: phase, copy progress and ETA, change counts; errored tables explained."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Static

from engine.status.board import Board, PipelineView, TableView
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.cells import Cell, Tone, filter_rows
from etl_tui.presenters.detail import pipeline_summary, table_error_lines, table_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.screens.confirm import TypeNameModal
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("table", "TABLE"),
    Column("phase", "PHASE"),
    Column("progress", "COPY PROGRESS"),
    Column("rows", "ROWS COPIED", justify="right"),
    Column("eta", "ETA", justify="right"),
    Column("inserts", "INSERTS", justify="right"),
    Column("updates", "UPDATES", justify="right"),
    Column("deletes", "DELETES", justify="right"),
    Column("last", "LAST EVENT", justify="right"),
)


class DetailScreen(BoardScreen):
    SCOPE = "detail"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("detail")

    def compose_body(self) -> ComposeResult:
        yield Static(id="summary", classes="summary")
        yield KeyedTable(COLUMNS, id="tables")
        yield Static(id="errors", classes="panel")

    def pipeline(self, board: Board | None = None) -> PipelineView | None:
        board = board or self.etl.board
        name = self.etl.selected_pipeline
        found = board.pipeline(name) if name else None
        return found or (board.pipelines[0] if board.pipelines else None)

    def show_board(self, board: Board, now: float) -> None:
        p = self.pipeline(board)
        table = self.query_one("#tables", KeyedTable)
        summary = self.query_one("#summary", Static)
        if p is None:
            summary.update(lines_text([Cell("no pipelines yet", Tone.MUTED)]))
            table.sync([])
            self.query_one("#errors", Static).display = False
            return
        summary.update(lines_text(pipeline_summary(p, now)))
        table.border_title = f"{p.name} · {len(p.tables)} tables"
        table.sync(filter_rows(table_rows(p, now, self.etl.copy_rates(p.name)), self.filter_text))
        self._show_errors(p, now)

    def _show_errors(self, p: PipelineView, now: float) -> None:
        errors = self.query_one("#errors", Static)
        errored = [t for t in p.tables if t.error is not None]
        errors.display = bool(errored)
        if not errored:
            return
        # the table under the cursor first: that is the one r / R act on
        selected = self.query_one("#tables", KeyedTable).selected_key
        errored.sort(key=lambda t: t.name != selected)
        lines: list[Cell] = []
        for t in errored:
            lines.extend(table_error_lines(t, now))
        errors.border_title = f"Errored tables ({len(errored)})"
        errors.update(lines_text(lines))

    @on(DataTable.RowHighlighted, "#tables")
    def _highlighted(self) -> None:
        p = self.pipeline()
        if p is not None:
            self._show_errors(p, self.etl.now())

    def _selected_table(self) -> tuple[PipelineView, TableView] | None:
        p = self.pipeline()
        key = self.query_one("#tables", KeyedTable).selected_key
        t = next((t for t in p.tables if t.name == key), None) if p else None
        if p is None or t is None:
            self.notify("no table selected", severity="warning")
            return None
        return p, t

    def action_back(self) -> None:
        self.etl.show_screen("pipelines")

    def action_start_pipeline(self) -> None:
        if p := self.pipeline():
            self.etl.perform(f"start {p.name}", lambda backend: backend.start_pipeline(p.name))

    def action_pause_pipeline(self) -> None:
        if p := self.pipeline():
            self.etl.perform(f"pause {p.name}", lambda backend: backend.pause_pipeline(p.name))

    def action_retry_table(self) -> None:
        picked = self._selected_table()
        if picked is None:
            return
        p, t = picked
        if t.phase != "errored":
            self.notify(f"{t.name} is not errored; nothing to retry", severity="warning")
            return
        self.etl.perform(f"retry {t.name}", lambda backend: backend.retry_table(p.name, t.name))

    def action_resync_table(self) -> None:
        picked = self._selected_table()
        if picked is None:
            return
        p, t = picked

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.etl.perform(f"resync {t.name}", lambda backend: backend.resync_table(p.name, t.name))

        self.app.push_screen(
            TypeNameModal(
                title=f"Resync {t.name} in {p.name}?",
                message="The table is copied again from scratch and its target rows are replaced; "
                "its changes keep streaming afterwards. Other tables are not touched.",
                expected=t.name,
                confirm_label="Resync",
            ),
            confirmed,
        )
