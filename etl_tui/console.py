"""What a screen may use of the app that hosts it, and nothing more.

Screens type against :class:`Console` instead of the concrete app: the board on screen, the clock,
the operator's pipeline selection, navigation, and the backend, whose calls may block and so run
only in worker threads (changes through :meth:`Console.perform`, reads through a screen's loader).
Notifications need nothing from here: every screen has Textual's ``notify``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from engine.status.board import Board
from etl_tui.backend import Backend


class Console(Protocol):
    @property
    def board(self) -> Board:
        """The board on screen (kept while frozen)."""
        ...

    @property
    def frozen(self) -> bool:
        """space: the operator is reading; the board stays as it is."""
        ...

    @property
    def readonly(self) -> bool:
        """Changing actions are refused (--readonly): screens hide their keys."""
        ...

    @property
    def backend(self) -> Backend:
        """The engine seam. Its calls may block: only worker threads make them."""
        ...

    selected_pipeline: str | None
    """The pipeline the detail screen shows and s / p act on (the home screen's cursor)."""

    def now(self) -> float:
        """Epoch seconds by the app's clock (fixed in tests, so ages and countdowns are too)."""
        ...

    def copy_rates(self, pipeline: str) -> Mapping[str, float]:
        """Measured initial-copy rows/s of the pipeline's tables (those measured so far)."""
        ...

    def show_screen(self, name: str) -> None: ...

    def perform(self, label: str, call: Callable[[Backend], object]) -> None:
        """Run one changing backend call in a worker; its outcome arrives as a notification
        (refused in a read-only console)."""
        ...
