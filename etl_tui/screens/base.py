"""What every top-level screen shares: the header, the `/` filter, the footer, the read-only guard,
a redraw from the console's current board, and the outcome of its loaders."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input

from engine.status.board import Board
from etl_tui.bindings import spec_for_action
from etl_tui.console import Console
from etl_tui.screens.loader import Loaded
from etl_tui.widgets.header_bar import HeaderBar
from etl_tui.widgets.keyed_table import KeyedTable


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "screen.clear_filter", "Clear filter")]


class BoardScreen(Screen[None]):
    SCOPE: ClassVar[str] = ""
    """The screen's name: its app mode and its scope in the key table."""

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""

    @property
    def etl(self) -> Console:
        """The app hosting the screen, as far as screens may use it (``console`` is Textual's)."""
        return cast("Console", self.app)

    def compose(self) -> ComposeResult:
        yield HeaderBar()
        yield from self.compose_body()
        yield FilterInput(placeholder="filter rows (esc clears)", id="filter", classes="filter")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def show_board(self, board: Board, now: float) -> None:
        """Redraw the body from ``board`` (called about once a second, and on resume)."""

    def main_table(self) -> KeyedTable | None:
        return next(iter(self.query(KeyedTable)), None)

    def on_mount(self) -> None:
        self.query_one("#filter", FilterInput).display = False
        self.refresh_view()
        table = self.main_table()
        if table is not None:
            table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self, *, body: bool = True) -> None:
        etl = self.etl
        now = etl.now()
        self.query_one(HeaderBar).show(
            etl.board,
            now,
            readonly=etl.readonly,
            frozen=etl.frozen,
            current=self.SCOPE,
            selected_pipeline=etl.selected_pipeline,
        )
        if body:
            self.show_board(etl.board, now)

    def redraw(self) -> None:
        """Draw the body again from the board on screen (a filter or a loaded value changed)."""
        self.show_board(self.etl.board, self.etl.now())

    @on(Loaded)
    def _loaded(self, message: Loaded[Any]) -> None:
        message.stop()
        message.loader.finish(message)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False (not None) hides the binding from the footer as well as disabling it
        spec = spec_for_action(self.SCOPE, action)
        return not (spec is not None and spec.mutating and self.etl.readonly)

    # ---- `/` filter -------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.value = ""
        box.display = False
        self._set_filter("")
        self._focus_main()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            event.input.display = False
        self._focus_main()

    def _set_filter(self, text: str) -> None:
        self.filter_text = text
        self.redraw()

    def _focus_main(self) -> None:
        table = self.main_table()
        if table is not None:
            table.focus()
