"""Copy speed per table, measured across snapshots (a TableView carries counts, not rates)."""

from __future__ import annotations

from collections import deque

from engine.status.board import Board


class CopyRates:
    """Rows/s of each table's initial copy over a sliding window of snapshots."""

    def __init__(self, window_seconds: float = 30.0) -> None:
        self._window = window_seconds
        self._samples: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def observe(self, board: Board) -> None:
        live: set[tuple[str, str]] = set()
        for p in board.pipelines:
            for t in p.tables:
                if t.phase != "data_sync":
                    continue
                key = (p.name, t.name)
                live.add(key)
                samples = self._samples.setdefault(key, deque())
                # the same board is read several times a second when the engine publishes slower
                if samples and samples[-1][0] >= board.taken_at:
                    continue
                if samples and t.rows_copied < samples[-1][1]:
                    samples.clear()  # the copy restarted (resync): the old samples describe another copy
                samples.append((board.taken_at, t.rows_copied))
                while len(samples) > 2 and board.taken_at - samples[0][0] > self._window:
                    samples.popleft()
        for key in set(self._samples) - live:
            del self._samples[key]

    def rates(self, pipeline: str) -> dict[str, float]:
        """Measured rows/s by table name, for the tables of ``pipeline`` with at least two samples."""
        out: dict[str, float] = {}
        for (p, table), samples in self._samples.items():
            if p != pipeline or len(samples) < 2:
                continue
            (t0, r0), (t1, r1) = samples[0], samples[-1]
            if t1 > t0:
                out[table] = (r1 - r0) / (t1 - t0)
        return out
