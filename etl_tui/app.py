"""The console: eight screens over one :class:`~etl_tui.backend.Backend`.

Threading rule: the UI thread only reads ``backend.board()`` (a lock-guarded read of the
engine's status board) on a timer; every other backend call runs in a worker thread and reports
back with a message, so a slow config DB or Redis never freezes the screen.

Screens see the app only as a :class:`~etl_tui.console.Console`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.css.query import NoMatches
from textual.screen import Screen

from engine.status.board import Board
from etl_tui.backend import Backend
from etl_tui.bindings import SCREEN_NAMES, app_bindings, screen_keys
from etl_tui.commands import EtlCommands
from etl_tui.copy_rates import CopyRates
from etl_tui.messages import ActionFinished
from etl_tui.presenters.failure import Failure
from etl_tui.screens.base import BoardScreen
from etl_tui.screens.checks import ChecksScreen
from etl_tui.screens.config import ConfigScreen
from etl_tui.screens.confirm import ConfirmModal
from etl_tui.screens.detail import DetailScreen
from etl_tui.screens.events import EventsScreen
from etl_tui.screens.help import HelpScreen
from etl_tui.screens.pipelines import PipelinesScreen
from etl_tui.screens.redis_state import RedisScreen
from etl_tui.screens.slots import SlotsScreen
from etl_tui.screens.throughput import ThroughputScreen

if TYPE_CHECKING:
    from etl_tui.console import Console


class EtlApp(App[None]):
    """The etl-tui console.

    Args:
        backend: the engine seam (``engine.runtime.operations.Operations``, or the scenes in tests).
        refresh_seconds: how often the board is read.
        clock: epoch seconds; injected so countdowns and ages are deterministic in tests.
        screenshot_dir: where ctrl+s writes SVG screenshots.
    """

    TITLE = "etl-tui"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "pipelines": PipelinesScreen,
        "detail": DetailScreen,
        "throughput": ThroughputScreen,
        "slots": SlotsScreen,
        "redis": RedisScreen,
        "events": EventsScreen,
        "config": ConfigScreen,
        "checks": ChecksScreen,
    }
    DEFAULT_MODE = "pipelines"
    BINDINGS: ClassVar[list[BindingType]] = app_bindings()
    COMMANDS = App.COMMANDS | {EtlCommands}

    def __init__(
        self,
        backend: Backend,
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        screenshot_dir: str | Path = ".",
    ) -> None:
        super().__init__()
        self.backend = backend
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.screenshot_dir = Path(screenshot_dir)
        self.board = Board(taken_at=0.0)
        """The board on screen (kept while frozen)."""
        self.frozen = False
        """space: the operator is reading; stop taking new snapshots, keep the cursor."""
        self.selected_pipeline: str | None = None
        """The pipeline the detail screen shows and s / p act on (the home screen's cursor)."""
        self._copy_rates = CopyRates()
        self._board_failure: str | None = None

    # ---- what screens read (etl_tui.console.Console) -------------------------------------------------
    @property
    def readonly(self) -> bool:
        return self.backend.readonly

    def now(self) -> float:
        return self.clock()

    def copy_rates(self, pipeline: str) -> Mapping[str, float]:
        return self._copy_rates.rates(pipeline)

    # ---- refresh ----------------------------------------------------------------------------------
    def on_mount(self) -> None:
        # the first screen mounts before the app does: draw it again with a real board
        self.refresh_now()
        self.set_interval(self.refresh_seconds, self.refresh_now, name="board")

    def _take_board(self) -> None:
        try:
            board = self.backend.board()
        except Exception as exc:  # the header's age turns stale; say why once, not every second
            failure = Failure.of(exc)
            if failure.reason != self._board_failure:
                self._board_failure = failure.reason
                self.notify(failure.reason, title="cannot read the engine status", severity="error")
            return
        self._board_failure = None
        self.board = board
        self._copy_rates.observe(board)

    def refresh_now(self) -> None:
        """Read the latest board (unless frozen) and redraw the visible screens."""
        if not self.frozen:
            self._take_board()
        for screen in self.screen_stack:
            if isinstance(screen, BoardScreen) and screen.is_mounted:
                try:
                    screen.refresh_view(body=not self.frozen)
                except NoMatches:
                    # the timer can fire while the app is closing and the screen's widgets are
                    # already gone; a screen that is still there is drawn again on the next tick
                    continue

    def action_toggle_freeze(self) -> None:
        self.frozen = not self.frozen
        self.refresh_now()  # frozen: only the header changes (PAUSED); resumed: catch up at once

    # ---- navigation -------------------------------------------------------------------------------
    def show_screen(self, name: str) -> None:
        if name not in SCREEN_NAMES:
            raise ValueError(f"unknown screen {name!r}")
        self.switch_mode(name)

    def action_show_screen(self, name: str) -> None:
        self.show_screen(name)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.current_mode, readonly=self.readonly))

    def action_request_quit(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmModal(
                title="Quit etl-tui?",
                message="The engine runs inside this console: its pipelines stop (in-flight batches are "
                "written first) until it is started again. ctrl+q quits without asking.",
                confirm_label="Quit",
            ),
            answered,
        )

    def get_system_commands(self, screen: Screen[Any]) -> list[SystemCommand]:
        # ours already cover help, screenshot and quit; keep Textual's theme and layout commands
        ours = {"Keys", "Screenshot", "Quit"}
        return [c for c in super().get_system_commands(screen) if c.title not in ours]

    # ---- actions that change something --------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "refuse":
            # only catch a key that the current screen would use for a changing action
            return self.readonly and self._mutating_spec(str(parameters[0])) is not None
        return True

    def _mutating_spec(self, key: str) -> str | None:
        for spec in screen_keys(self.current_mode):
            if spec.key == key and spec.mutating:
                return spec.help
        return None

    def action_refuse(self, key: str) -> None:
        what = self._mutating_spec(key) or "that"
        self.notify(f"read-only console: cannot {what}", title="refused", severity="warning")

    def perform(self, label: str, call: Callable[[Backend], object]) -> None:
        """Run one changing backend call off the UI thread; the outcome arrives as a notification."""
        if self.readonly:
            self.notify(f"read-only console: cannot {label}", title="refused", severity="warning")
            return
        self._call_backend(label, call)

    @work(thread=True, group="backend-actions", exit_on_error=False)
    def _call_backend(self, label: str, call: Callable[[Backend], object]) -> None:
        try:
            call(self.backend)
        except Exception as exc:  # EtlError carries reason + hint; anything else still gets reported
            self.post_message(ActionFinished(label, Failure.of(exc)))
            return
        self.post_message(ActionFinished(label, None))

    @on(ActionFinished)
    def _action_finished(self, message: ActionFinished) -> None:
        if message.failure is None:
            self.notify(f"{message.label}: done", severity="information")
        else:
            f = message.failure
            self.notify(
                f"{f.reason}\nhint: {f.hint}" if f.hint else f.reason,
                title=f"{message.label} failed",
                severity="error",
                timeout=12,
            )
        self.refresh_now()

    # ---- screenshot -------------------------------------------------------------------------------
    def action_take_screenshot(self) -> None:
        svg = self.export_screenshot()  # rendering must happen on the UI thread; the write need not
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        path = self.screenshot_dir / f"etl-tui-{self.current_mode}-{stamp}.svg"
        self._write_screenshot(path, svg)

    @work(thread=True, group="screenshot", exit_on_error=False)
    def _write_screenshot(self, path: Path, svg: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(svg, encoding="utf-8")
        except OSError as exc:
            self.call_from_thread(self.notify, str(exc), title="screenshot not saved", severity="error")
            return
        self.call_from_thread(self.notify, str(path), title="screenshot saved")


if TYPE_CHECKING:

    def _a_console(app: EtlApp) -> Console:
        return app  # mypy proves here that the app provides everything a screen may use
