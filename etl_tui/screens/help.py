"""`?`: the keys of the current screen and the ones that work everywhere, from the one key table."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from etl_tui.bindings import SCREENS, KeySpec, global_keys, screen_keys


def _key_table(title: str, specs: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, text in specs:
        table.add_row(key, text)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", key_display="?"),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, screen: str, *, readonly: bool) -> None:
        super().__init__()
        self._screen = screen
        self._readonly = readonly

    def _visible(self, specs: list[KeySpec]) -> list[tuple[str, str]]:
        return [(k.display, k.help) for k in specs if not (self._readonly and k.mutating)]

    def compose(self) -> ComposeResult:
        title = next((s.title for s in SCREENS if s.name == self._screen), self._screen)
        with VerticalScroll(id="dialog", classes="modal-dialog help"):
            yield Label(
                f"Keys · {title}" + (" · read-only: changing actions are off" if self._readonly else ""),
                classes="modal-title",
            )
            yield Static(_key_table("This screen", self._visible(screen_keys(self._screen))))
            yield Static(_key_table("Everywhere", [*self._visible(global_keys()), ("ctrl+p", "command palette")]))
            yield Static(_key_table("Screens", [(s.key, f"{s.title}: {s.help}") for s in SCREENS]))
            yield Label("esc or ? closes", classes="modal-hint")

    def action_close(self) -> None:
        self.dismiss(None)
