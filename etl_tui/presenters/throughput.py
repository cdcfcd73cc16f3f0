"""The throughput screen: rows/s per pipeline, batch sizes, and what the latest batches cost the
destination."""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.status.board import BatchView, Board
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.units import clock_time, human_count, human_ms, human_rate


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def throughput_summary_rows(board: Board) -> list[Row]:
    rows = []
    for p in board.pipelines:
        samples = p.rows_per_second
        writes = [b.write_seconds for b in p.batches]
        sizes = [b.rows for b in p.batches]
        p50, p95 = percentile(writes, 50), percentile(writes, 95)
        rows.append(
            Row(
                p.name,
                (
                    Cell(p.name),
                    Cell(human_rate(samples[-1] if samples else None)),
                    Cell(human_rate(sum(samples) / len(samples) if samples else None)),
                    Cell(human_rate(max(samples) if samples else None)),
                    Cell(str(len(p.batches))),
                    Cell(human_count(sum(sizes) / len(sizes)) if sizes else "—"),
                    Cell(human_ms(p50)),
                    Cell(human_ms(p95), Tone.WARN if p95 is not None and p95 >= 1.0 else Tone.NORMAL),
                ),
            )
        )
    return rows


def recent_batches(board: Board, limit: int = 50) -> list[BatchView]:
    batches = [b for p in board.pipelines for b in p.batches]
    batches.sort(key=lambda b: b.at, reverse=True)
    return batches[:limit]


def batch_rows(board: Board, limit: int = 50) -> list[Row]:
    return [
        Row(
            f"{b.pipeline}@{b.at!r}",
            (
                Cell(clock_time(b.at)),
                Cell(b.pipeline),
                Cell(human_count(b.rows)),
                Cell(str(b.tables)),
                Cell(human_ms(b.write_seconds), Tone.WARN if b.write_seconds >= 1.0 else Tone.NORMAL),
                Cell(human_rate(b.rows / b.write_seconds) if b.write_seconds > 0 else "—", Tone.MUTED),
                Cell(b.checkpoint_lsn or "—", Tone.MUTED),
            ),
        )
        for b in recent_batches(board, limit)
    ]
