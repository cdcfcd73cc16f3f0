"""Rows/s per pipeline over the last minute, and what the latest batches cost the destination."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual_plotext import PlotextPlot

from engine.status.board import Board
from etl_tui.bindings import screen_bindings
from etl_tui.presenters.cells import filter_rows
from etl_tui.presenters.charts import nice_ticks
from etl_tui.presenters.throughput import batch_rows, throughput_summary_rows
from etl_tui.presenters.units import human_count
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable

SUMMARY_COLUMNS = (
    Column("pipeline", "PIPELINE"),
    Column("now", "NOW", justify="right"),
    Column("avg", "AVG 60s", justify="right"),
    Column("peak", "PEAK", justify="right"),
    Column("batches", "BATCHES", justify="right"),
    Column("size", "ROWS/BATCH", justify="right"),
    Column("p50", "WRITE p50", justify="right"),
    Column("p95", "WRITE p95", justify="right"),
)
BATCH_COLUMNS = (
    Column("at", "TIME"),
    Column("pipeline", "PIPELINE"),
    Column("rows", "ROWS", justify="right"),
    Column("tables", "TABLES", justify="right"),
    Column("write", "WRITE", justify="right"),
    Column("speed", "ROWS/S", justify="right"),
    Column("lsn", "CHECKPOINT LSN"),
)
# fixed per pipeline order, so a line keeps its colour from one refresh to the next
LINE_COLORS = ("cyan", "green", "orange", "magenta", "blue", "red", "yellow")


class ThroughputScreen(BoardScreen):
    SCOPE = "throughput"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("throughput")

    def __init__(self) -> None:
        super().__init__()
        self._plotted: tuple[tuple[str, tuple[float, ...]], ...] | None = None

    def compose_body(self) -> ComposeResult:
        yield PlotextPlot(id="plot")
        yield KeyedTable(SUMMARY_COLUMNS, id="summary")
        yield KeyedTable(BATCH_COLUMNS, id="batches")

    def main_table(self) -> KeyedTable | None:
        return self.query_one("#batches", KeyedTable)

    def show_board(self, board: Board, now: float) -> None:
        self._plot(board)
        summary = self.query_one("#summary", KeyedTable)
        summary.border_title = "Per pipeline"
        summary.sync(throughput_summary_rows(board))
        batches = self.query_one("#batches", KeyedTable)
        batches.border_title = "Latest batches (newest first; WRITE = landing + MERGE + checkpoint)"
        batches.sync(filter_rows(batch_rows(board), self.filter_text))

    def _plot(self, board: Board) -> None:
        series = tuple((p.name, p.rows_per_second) for p in board.pipelines)
        if series == self._plotted:
            return  # re-plotting identical data costs a full redraw
        self._plotted = series
        widget = self.query_one("#plot", PlotextPlot)
        widget.border_title = "Rows/s, last 60 s (one sample a second)"
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        for i, (name, samples) in enumerate(series):
            if samples:
                xs = list(range(1 - len(samples), 1))
                plt.plot(xs, list(samples), label=name, marker="braille", color=LINE_COLORS[i % len(LINE_COLORS)])
        top = max((max(samples) for _, samples in series if samples), default=0.0)
        ticks = nice_ticks(top)
        plt.yticks(ticks, [human_count(t) for t in ticks])
        plt.ylim(0, ticks[-1])
        plt.xticks([-60, -45, -30, -15, 0], ["-60s", "-45s", "-30s", "-15s", "now"])
        plt.xlim(-60, 0)
        widget.refresh()
