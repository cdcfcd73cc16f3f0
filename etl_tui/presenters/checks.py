"""The checks screen: pre-flight findings as ``etl-tui check`` reports them, worst first, with the
selected finding and its hint spelled out."""

from __future__ import annotations

from engine.preflight import CheckReport, CheckRow, Severity
from engine.preflight.text_report import MARKS, count_label
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.failure import Failure
from etl_tui.presenters.units import clock_time, truncate

FOUND_WIDTH = 62  # the rest is in the panel below, with the hint
TONES = {Severity.BLOCKER: Tone.ERROR, Severity.WARNING: Tone.WARN, Severity.INFO: Tone.ACCENT, Severity.OK: Tone.OK}


def _where(row: CheckRow) -> str:
    return row.pipeline if row.pipeline is not None else f"source {row.source}"


def finding_rows(report: CheckReport | None) -> list[tuple[Row, CheckRow]]:
    """Worst first; within a severity, in the report's order (by source, then pipeline)."""
    if report is None:
        return []
    ordered = sorted(report.rows(), key=lambda r: -r.finding.severity.rank)
    seen: dict[str, int] = {}
    out = []
    for r in ordered:
        f = r.finding
        base = f"{r.source}|{r.pipeline or ''}|{f.check}|{f.subject}"
        seen[base] = seen.get(base, 0) + 1
        cells = (
            Cell(f"{MARKS[f.severity]} {f.severity.value}", TONES[f.severity]),
            Cell(_where(r), Tone.NORMAL if r.pipeline is not None else Tone.MUTED),
            Cell(f.check.value.replace("_", " ")),
            Cell(f.subject),
            Cell(truncate(f.found, FOUND_WIDTH)),
        )
        out.append((Row(f"{base}#{seen[base]}", cells), r))
    return out


def status_cell(report: CheckReport | None, failure: Failure | None, running: bool) -> Cell:
    if running:
        return Cell("running the checks… (each source is queried; nothing is changed)", Tone.MUTED)
    if failure is not None:
        return Cell(f"✖ the checks could not run: {failure.reason}", Tone.ERROR, sub=failure.hint)
    if report is None:
        return Cell("no checks run yet · ctrl+r runs them", Tone.MUTED)
    if not report.sources:
        return Cell("no pipelines to check; add one on the Config screen (7)", Tone.MUTED)
    counts = "   ".join(f"{MARKS[s]} {count_label(report.count(s), s)}" for s in Severity)
    worst = max((r.finding.severity for r in report.rows()), key=lambda s: s.rank, default=Severity.OK)
    verdict = "blocked: fix the blockers first" if report.has_blockers else "no blockers"
    return Cell(
        f"{counts}   · {verdict}",
        TONES[worst] if worst is not Severity.INFO else Tone.OK,
        sub=f"checked at {clock_time(report.checked_at)} in {report.seconds:.1f}s · ctrl+r runs them again · "
        "the same as `etl-tui check`",
    )


def detail_cells(row: CheckRow | None) -> list[Cell]:
    if row is None:
        return [Cell("no finding selected", Tone.MUTED)]
    f = row.finding
    where = f"pipeline {row.pipeline} (source {row.source})" if row.pipeline is not None else f"source {row.source}"
    cells = [
        Cell(f"{MARKS[f.severity]} {f.severity.value}: {f.check.checked}", TONES[f.severity]),
        Cell(f"{where} · {f.subject}", Tone.MUTED),
        Cell(f.found),
    ]
    if f.hint:
        cells.append(Cell(f"hint: {f.hint}", Tone.ACCENT))
    return cells
