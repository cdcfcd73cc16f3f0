"""The home screen: one row per pipeline (state, rows/s, lag, tables, last error), and the selected
pipeline's tables and slot in brief."""

from __future__ import annotations

from dataclasses import dataclass

from engine.status.board import Board, PipelineView, SlotView
from etl_tui.presenters.cells import Cell, Row, Tone, worst
from etl_tui.presenters.charts import sparkline
from etl_tui.presenters.lag import lag_tone
from etl_tui.presenters.phases import COPY_PHASES, PHASE_LABELS
from etl_tui.presenters.retries import retry_label
from etl_tui.presenters.slots import headroom_cell
from etl_tui.presenters.units import human_bytes, human_count, human_duration, human_rate, truncate

_ACTUAL_TONES = {
    "streaming": Tone.OK,
    "copying": Tone.ACCENT,
    "starting": Tone.ACCENT,
    "retrying": Tone.WARN,
    "errored": Tone.ERROR,
    "stopped": Tone.MUTED,
}


def state_cell(p: PipelineView) -> Cell:
    """Actual state on top, desired below; a disagreement is a warning (the manager has not caught up)."""
    icon = {"streaming": "▶", "copying": "▶", "starting": "…", "retrying": "↻", "errored": "✖"}.get(p.actual, "■")
    tone = _ACTUAL_TONES.get(p.actual, Tone.NORMAL)
    desired_pause = p.desired == "pause"
    if desired_pause and p.actual == "stopped":
        return Cell("⏸ paused", Tone.MUTED, sub="desired pause")
    if desired_pause or (p.desired == "start" and p.actual == "stopped"):
        tone = worst(tone, Tone.WARN)
        return Cell(f"{icon} {p.actual}", tone, sub=f"desired {p.desired} (pending)", sub_tone=Tone.WARN)
    return Cell(f"{icon} {p.actual}", tone, sub=f"desired {p.desired}")


def lag_cell(p: PipelineView) -> Cell:
    if p.lag_bytes is None and p.lag_seconds is None:
        return Cell("—", Tone.MUTED)
    # seconds are the age of the last applied commit: on an idle source they grow with nothing pending
    sub = f"commit age {human_duration(p.lag_seconds)}" if p.lag_seconds is not None else ""
    return Cell(human_bytes(p.lag_bytes), lag_tone(p.lag_bytes, p.lag_seconds), sub=sub)


def throughput_cell(p: PipelineView, width: int = 16) -> Cell:
    samples = p.rows_per_second
    current = samples[-1] if samples else None
    peak = max(samples) if samples else None
    tone = Tone.MUTED if not current else Tone.NORMAL
    return Cell(
        f"{sparkline(samples, width)} {human_rate(current):>8}",
        tone,
        sub=f"60s peak {human_rate(peak)}" if peak else "no rows in 60s",
    )


@dataclass(frozen=True)
class TableCounts:
    total: int
    ready: int
    copying: int
    errored: int


def table_counts(p: PipelineView) -> TableCounts:
    phases = [t.phase for t in p.tables]
    return TableCounts(
        total=len(phases),
        ready=phases.count("ready"),
        copying=sum(1 for ph in phases if ph in COPY_PHASES),
        errored=phases.count("errored"),
    )


def tables_cell(p: PipelineView) -> Cell:
    c = table_counts(p)
    if c.total == 0:
        return Cell("no tables", Tone.MUTED)
    extra = [f"{c.copying} copying"] * bool(c.copying) + [f"{c.errored} errored"] * bool(c.errored)
    tone = Tone.ERROR if c.errored else Tone.ACCENT if c.copying else Tone.OK
    return Cell(f"{c.ready}/{c.total} ready", tone, sub=" · ".join(extra))


def error_cell(p: PipelineView, now: float, width: int = 36) -> Cell:
    if p.last_error is not None:
        e = p.last_error
        return Cell(
            retry_label(e, now),
            Tone.ERROR if e.retry_policy != "timed" else Tone.WARN,
            sub=truncate(e.reason, width),
            sub_tone=Tone.NORMAL,
        )
    for t in p.tables:
        if t.error is not None:
            return Cell(
                f"{t.name}: {retry_label(t.error, now)}",
                Tone.ERROR,
                sub=truncate(t.error.reason, width),
                sub_tone=Tone.NORMAL,
            )
    return Cell("—", Tone.MUTED)


def pipeline_rows(board: Board, now: float) -> list[Row]:
    return [
        Row(
            p.name,
            (
                Cell(p.name, Tone.NORMAL, sub=f"{p.source} → {p.destination}"),
                state_cell(p),
                throughput_cell(p),
                lag_cell(p),
                tables_cell(p),
                error_cell(p, now),
            ),
        )
        for p in board.pipelines
    ]


def table_brief_lines(p: PipelineView, now: float, width: int = 30) -> list[Cell]:
    """The home screen's compact per-table view of the selected pipeline."""
    lines = []
    for t in p.tables:
        label, tone = PHASE_LABELS.get(t.phase, (t.phase, Tone.NORMAL))
        if t.phase == "data_sync" and t.copy_total:
            detail = f"{min(t.rows_copied / t.copy_total, 1.0) * 100:.0f}% of ~{human_count(t.copy_total)}"
        elif t.error is not None:
            detail = retry_label(t.error, now)
        elif t.phase == "ready":
            detail = f"{human_count(t.inserts + t.updates + t.deletes)} changes"
        else:
            detail = ""
        lines.append(Cell(f"{truncate(t.name, width):<{width}} {label:<14} {detail}".rstrip(), tone))
    return lines or [Cell("no tables", Tone.MUTED)]


def slot_brief_lines(s: SlotView | None) -> list[Cell]:
    if s is None:
        return [Cell("no slot reported yet", Tone.MUTED)]
    active = ("active, pid " + str(s.active_pid)) if s.active and s.active_pid else "active" if s.active else "inactive"
    headroom = headroom_cell(s)
    lines = [
        Cell(f"{s.slot} on source {s.source}"),
        Cell(f"{active} · wal_status {s.wal_status or '—'}", Tone.OK if s.active and not s.warning else Tone.WARN),
        Cell(
            f"confirmed lag {human_bytes(s.confirmed_lag_bytes)} · restart lag {human_bytes(s.restart_lag_bytes)}",
            lag_tone(s.confirmed_lag_bytes, None),
        ),
        Cell(f"safe WAL {headroom.text}  {headroom.sub}", headroom.tone),
        Cell(f"lag {sparkline(s.lag_history, 30)}", Tone.MUTED),
    ]
    if s.warning:
        lines.append(Cell(f"⚠ {s.warning}", Tone.ERROR))
    return lines
