"""The engine's Redis keys, read-only. SCAN runs in a worker thread: Redis may be slow or away."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from engine.status.board import Board, RedisKeyView
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.cells import filter_rows
from etl_tui.presenters.redis_keys import redis_rows, redis_status_cell
from etl_tui.screens.base import BoardScreen
from etl_tui.screens.loader import Loader
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
        self.keys: Loader[list[RedisKeyView]] = Loader(
            self, lambda backend: backend.redis_keys(MATCH), group="redis-scan"
        )

    def compose_body(self) -> ComposeResult:
        yield Static(id="redis-status", classes="summary")
        yield KeyedTable(COLUMNS, id="keys")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.keys.load()

    def action_reload(self) -> None:
        self.keys.load()

    def show_board(self, board: Board, now: float) -> None:
        table = self.query_one("#keys", KeyedTable)
        table.border_title = "Keys"
        table.sync(filter_rows(redis_rows(self.keys.value or []), self.filter_text))
        status = redis_status_cell(self.keys.value, self.keys.failure, scanning=self.keys.loading, match=MATCH)
        self.query_one("#redis-status", Static).update(lines_text([status]))
