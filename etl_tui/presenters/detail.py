"""The detail screen: one pipeline's heading, its tables (phase, copy progress and ETA, change
counts) and what went wrong with the errored ones."""

from __future__ import annotations

from collections.abc import Mapping

from engine.status.board import PipelineView, TableView
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.charts import progress_bar
from etl_tui.presenters.phases import phase_cell
from etl_tui.presenters.pipelines import state_cell
from etl_tui.presenters.retries import retry_help, retry_label
from etl_tui.presenters.units import ago, human_bytes, human_count, human_duration


def copy_eta(rows_copied: int, copy_total: int | None, rows_per_second: float | None) -> str:
    if copy_total is None or not rows_per_second or rows_per_second <= 0:
        return "—"
    remaining = copy_total - rows_copied
    if remaining <= 0:
        return "finishing"
    return human_duration(remaining / rows_per_second)


def copy_rate_estimate(p: PipelineView, table: str, tracked: Mapping[str, float]) -> float | None:
    """Measured copy rate of ``table`` if known, else the pipeline's current rows/s shared by the
    tables still copying (while a pipeline copies, its throughput is mostly the copy)."""
    if table in tracked:
        return tracked[table]
    copying = [t for t in p.tables if t.phase == "data_sync"]
    if not copying or not p.rows_per_second or p.rows_per_second[-1] <= 0:
        return None
    return p.rows_per_second[-1] / len(copying)


def table_rows(p: PipelineView, now: float, copy_rates: Mapping[str, float] | None = None) -> list[Row]:
    rates = copy_rates or {}
    rows = []
    for t in p.tables:
        progress = Cell("—", Tone.MUTED)
        copied = Cell(human_count(t.rows_copied) if t.rows_copied else "—", Tone.MUTED)
        eta = Cell("—", Tone.MUTED)
        if t.phase == "data_sync":
            if t.copy_total:
                fraction = t.rows_copied / t.copy_total if t.copy_total else 0.0
                progress = Cell(f"{progress_bar(fraction, 12)} {min(fraction, 1.0) * 100:3.0f}%", Tone.ACCENT)
                copied = Cell(f"{human_count(t.rows_copied)} / ~{human_count(t.copy_total)}")
            else:
                progress = Cell("copying", Tone.ACCENT)
                copied = Cell(human_count(t.rows_copied))
            eta = Cell(copy_eta(t.rows_copied, t.copy_total, copy_rate_estimate(p, t.name, rates)))
        elif t.phase == "init":
            progress = Cell("waiting to copy", Tone.MUTED)
        rows.append(
            Row(
                t.name,
                (
                    Cell(t.name),
                    phase_cell(t.phase),
                    progress,
                    copied,
                    eta,
                    Cell(human_count(t.inserts)),
                    Cell(human_count(t.updates)),
                    Cell(human_count(t.deletes)),
                    Cell(ago(t.last_event_at, now), Tone.MUTED if t.last_event_at is None else Tone.NORMAL),
                ),
            )
        )
    return rows


def pipeline_summary(p: PipelineView, now: float) -> list[Cell]:
    """The detail screen's heading: what this pipeline is and where it stands."""
    state = state_cell(p)
    lines = [
        Cell(f"{p.name}  {p.source} → {p.destination} ({p.destination_target})", Tone.ACCENT),
        Cell(
            f"{state.text} ({state.sub}) · lag {human_bytes(p.lag_bytes)}"
            + (f", last commit {human_duration(p.lag_seconds)} ago" if p.lag_seconds is not None else "")
            + f" · confirmed LSN {p.confirmed_lsn or '—'}",
            state.tone,
        ),
    ]
    if p.last_error is not None:
        e = p.last_error
        lines.append(Cell(f"✖ {e.kind}: {e.reason} · {retry_label(e, now)}", Tone.ERROR, sub=f"hint: {e.hint}"))
    return lines


def table_error_lines(t: TableView, now: float) -> list[Cell]:
    if t.error is None:
        return []
    e = t.error
    return [
        Cell(f"✖ {t.name} ({e.kind})", Tone.ERROR),
        Cell(f"  reason: {e.reason}"),
        Cell(f"  hint:   {e.hint or '—'}"),
        Cell(f"  retry:  {retry_help(e, now)}", Tone.WARN if e.retry_policy == "timed" else Tone.NORMAL),
    ]
