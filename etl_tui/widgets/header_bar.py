"""The two header lines every screen shows: connection health, mode and freshness; then the
screens with their keys (so the number keys need no footer space)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from engine.status.board import Board
from etl_tui.bindings import SCREENS
from etl_tui.presenters.header import freshness_cell, health_cells, mode_cell
from etl_tui.widgets.styles import TONE_STYLES


class HeaderBar(Vertical):
    DEFAULT_CSS = """
    HeaderBar { height: 2; dock: top; background: $panel; }
    HeaderBar Horizontal { height: 1; }
    HeaderBar #health { width: 1fr; }
    HeaderBar #mode { width: auto; }
    HeaderBar #tabs { height: 1; background: $boost; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(id="health")
            yield Static(id="mode")
        yield Static(id="tabs")

    def show(
        self,
        board: Board,
        now: float,
        *,
        readonly: bool,
        frozen: bool,
        current: str,
        selected_pipeline: str | None,
    ) -> None:
        health = Text.assemble((" etl-tui ", "bold"), " ")
        details = []
        for cell in health_cells(board.health):
            health.append(cell.text, style=TONE_STYLES[cell.tone])
            health.append("  ")
            if cell.sub:
                details.append(f"{cell.text}: {cell.sub}")
        self.query_one("#health", Static).update(health)
        self.query_one("#health", Static).tooltip = "\n".join(details) or None

        mode = mode_cell(readonly=readonly, frozen=frozen)
        fresh = freshness_cell(board.taken_at, now, frozen=frozen)
        self.query_one("#mode", Static).update(
            Text.assemble(
                (f" {mode.text} ", f"reverse {TONE_STYLES[mode.tone]}".strip()),
                " ",
                (fresh.text, TONE_STYLES[fresh.tone]),
                " ",
            )
        )

        tabs = Text(" ")
        for spec in SCREENS:
            title = spec.title
            if spec.name == "detail" and selected_pipeline:
                title = f"{title}: {selected_pipeline}"
            style = "reverse bold" if spec.name == current else ""
            tabs.append(f" {spec.key} ", style=f"bold {style}".strip())
            tabs.append(f"{title} ", style=style)
            tabs.append(" ")
        self.query_one("#tabs", Static).update(tabs)
