"""Pre-flight checks, as ``etl-tui check`` reports them: every finding with its severity, what was
checked, what was found and a hint. The checks query each source, so they run in a worker thread:
on the first visit and on ctrl+r, never on a timer."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Static

from engine.preflight import CheckReport, CheckRow
from engine.status.board import Board
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.cells import filter_rows
from etl_tui.presenters.checks import detail_cells, finding_rows, status_cell
from etl_tui.screens.base import BoardScreen
from etl_tui.screens.loader import Loader
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("severity", "SEVERITY"),
    Column("where", "WHERE"),
    Column("check", "CHECK"),
    Column("subject", "SUBJECT"),
    Column("found", "FOUND"),
)


class ChecksScreen(BoardScreen):
    SCOPE = "checks"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("checks")
    DEFAULT_CSS = """
    ChecksScreen #findings { height: 1fr; }
    ChecksScreen #finding { max-height: 12; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.checks: Loader[CheckReport] = Loader(self, lambda backend: backend.run_checks(), group="preflight")
        self._by_key: dict[str, CheckRow] = {}

    @property
    def report(self) -> CheckReport | None:
        """The latest report that arrived (None until the checks have run once)."""
        return self.checks.value

    def compose_body(self) -> ComposeResult:
        yield Static(id="checks-status", classes="summary")
        yield KeyedTable(COLUMNS, id="findings")
        yield Static(id="finding", classes="panel")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.report is None and not self.checks.loading:
            self.run_checks()

    def action_rerun_checks(self) -> None:
        self.run_checks()

    def run_checks(self) -> None:
        self.checks.load()

    def show_board(self, board: Board, now: float) -> None:
        status = status_cell(self.report, self.checks.failure, self.checks.loading)
        self.query_one("#checks-status", Static).update(lines_text([status]))
        pairs = finding_rows(self.report)
        rows = filter_rows((row for row, _ in pairs), self.filter_text)
        self._by_key = {row.key: found for row, found in pairs}
        table = self.query_one("#findings", KeyedTable)
        table.border_title = f"Findings ({len(rows)} of {len(pairs)})" if self.filter_text else "Findings"
        table.sync(rows)
        self._show_detail()

    @on(DataTable.RowHighlighted, "#findings")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        key = self.query_one("#findings", KeyedTable).selected_key
        panel = self.query_one("#finding", Static)
        panel.border_title = "Finding"
        panel.update(lines_text(detail_cells(self._by_key.get(key) if key else None)))
