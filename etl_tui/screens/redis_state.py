"""The engine's Redis keys, read-only. SCAN runs in a worker thread: Redis may be slow or away."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from engine.status.board import Board, RedisKeyView
from etl_tui.bindings import screen_bindings
from etl_tui.messages import Failure, RedisKeysLoaded
from etl_tui.presenters import Cell, Tone, filter_rows, redis_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("key", "KEY"),
    Column("type", "TYPE"),
    Column("ttl", "TTL", justify="right"),
    Column("preview", "PREVIEW"),
)
MATCH = "etl:*"


class RedisScreen(BoardScreen):
    SCOPE = "redis"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("redis")

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[RedisKeyView] | None = None
        self._status = Cell("loading…", Tone.MUTED)

    def compose_body(self) -> ComposeResult:
        yield Static(id="redis-status", classes="summary")
        yield KeyedTable(COLUMNS, id="keys")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.load_keys()

    def action_reload(self) -> None:
        self.load_keys()

    def load_keys(self) -> None:
        self._status = Cell(f"scanning {MATCH} …", Tone.MUTED)
        self._show_status()
        self._scan()

    @work(thread=True, exclusive=True, group="redis-scan", exit_on_error=False)
    def _scan(self) -> None:
        try:
            keys = self.etl.backend.redis_keys(MATCH)
        except Exception as exc:  # reported on screen; the console must outlive a Redis outage
            self.post_message(RedisKeysLoaded(None, Failure.of(exc), MATCH))
            return
        self.post_message(RedisKeysLoaded(keys, None, MATCH))

    @on(RedisKeysLoaded)
    def _loaded(self, message: RedisKeysLoaded) -> None:
        if message.failure is not None:
            f = message.failure
            self._status = Cell(f"✖ cannot read Redis: {f.reason}", Tone.ERROR, sub=f"hint: {f.hint}" if f.hint else "")
        else:
            self.keys = message.keys or []
            self._status = Cell(
                f"{len(self.keys)} keys matching {message.match} (SCAN, read-only) · ctrl+r reads them again",
                Tone.NORMAL,
            )
        self._show_status()
        self.show_board(self.etl.board, self.etl.clock())

    def _show_status(self) -> None:
        self.query_one("#redis-status", Static).update(lines_text([self._status]))

    def show_board(self, board: Board, now: float) -> None:
        table = self.query_one("#keys", KeyedTable)
        table.border_title = "Keys"
        table.sync(filter_rows(redis_rows(self.keys or []), self.filter_text))
        self._show_status()
