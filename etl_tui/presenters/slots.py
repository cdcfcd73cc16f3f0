"""The WAL / slots screen: each replication slot's activity, lag, safe WAL left, the rate its
source writes WAL and when safe WAL runs out."""

from __future__ import annotations

from engine.status.board import Board, SlotView
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.charts import progress_bar, sparkline
from etl_tui.presenters.lag import lag_tone
from etl_tui.presenters.units import human_byte_rate, human_bytes, human_duration, truncate

HEADROOM_WARN_FRACTION = 0.25
EXHAUSTION_ERROR_SECONDS = 3600.0
"""Safe WAL running out sooner than this is an emergency (the default ALERT_EXHAUSTION_SECONDS)."""
EXHAUSTION_WARN_SECONDS = 24 * 3600.0
SLOT_TREND_WIDTH = 8

_WAL_STATUS_TONES = {"reserved": Tone.OK, "extended": Tone.WARN, "unreserved": Tone.ERROR, "lost": Tone.ERROR}


def headroom_cell(s: SlotView, bar: int = 10) -> Cell:
    """safe_wal_size is what the slot may still fall behind before PostgreSQL may remove its WAL;
    restart lag + safe size approximates the whole budget (max_slot_wal_keep_size)."""
    if s.safe_wal_size is None:
        return Cell("unlimited", Tone.MUTED, sub="max_slot_wal_keep_size -1")
    used = max(0, s.restart_lag_bytes or 0)
    budget = used + max(0, s.safe_wal_size)
    fraction = max(0, s.safe_wal_size) / budget if budget else 0.0
    tone = Tone.ERROR if s.safe_wal_size <= 0 else Tone.WARN if fraction < HEADROOM_WARN_FRACTION else Tone.OK
    return Cell(
        human_bytes(s.safe_wal_size), tone, sub=f"{progress_bar(fraction, bar)} {fraction * 100:3.0f}%", sub_tone=tone
    )


def short_warning(warning: str | None, width: int = 24) -> str:
    """ "slot lost: WAL needed was removed; …" → "slot lost" (the whole text is in the warnings panel)."""
    if not warning:
        return "—"
    return truncate(warning.split(":", 1)[0], width)


def wal_rate_cell(s: SlotView) -> Cell:
    """How fast the slot's source writes WAL (the same for every slot of a source)."""
    rate = s.wal_growth_bytes_per_second
    return Cell(human_byte_rate(rate), Tone.MUTED if not rate or rate < 1 else Tone.NORMAL)


def exhaustion_cell(s: SlotView) -> Cell:
    """When safe_wal_size runs out at the current rate; — when unbounded or nothing eats into it."""
    if s.wal_status == "lost":
        return Cell("ran out", Tone.ERROR)
    left = s.exhaustion_seconds
    if left is None:
        return Cell("—", Tone.MUTED)
    tone = (
        Tone.ERROR if left < EXHAUSTION_ERROR_SECONDS else Tone.WARN if left < EXHAUSTION_WARN_SECONDS else Tone.NORMAL
    )
    return Cell(human_duration(left), tone)


def slot_rows(board: Board) -> list[Row]:
    rows = []
    for s in board.slots:
        warning = s.warning
        if not s.exists:
            active = Cell("—", Tone.MUTED)
        elif s.active:
            active = Cell(f"● pid {s.active_pid}" if s.active_pid else "● active", Tone.OK)
        else:
            active = Cell("○ inactive", Tone.WARN)
        rows.append(
            Row(
                f"{s.pipeline}/{s.slot}",
                (
                    Cell(s.slot, Tone.ERROR if warning else Tone.NORMAL, sub=f"{s.pipeline} · source {s.source}"),
                    active,
                    Cell(s.wal_status or "—", _WAL_STATUS_TONES.get(s.wal_status or "", Tone.MUTED)),
                    Cell(human_bytes(s.confirmed_lag_bytes), lag_tone(s.confirmed_lag_bytes, None)),
                    Cell(human_bytes(s.restart_lag_bytes), lag_tone(s.restart_lag_bytes, None)),
                    headroom_cell(s, bar=6),
                    Cell(
                        sparkline(s.lag_history, SLOT_TREND_WIDTH),
                        Tone.MUTED if not any(s.lag_history) else Tone.NORMAL,
                    ),
                    Cell(short_warning(warning), Tone.ERROR if warning else Tone.MUTED),
                    wal_rate_cell(s),
                    exhaustion_cell(s),
                ),
            )
        )
    return rows
