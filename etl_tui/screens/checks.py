"""Pre-flight checks, as ``etl-tui check`` reports them: every finding with its severity, what was
checked, what was found and a hint. The checks query each source, so they run in a worker thread:
on the first visit and on ctrl+r, never on a timer."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.preflight import CheckReport, CheckRow, Severity
from engine.preflight.text_report import MARKS, count_label
from engine.status.board import Board
from etl_tui.bindings import screen_bindings
from etl_tui.messages import Failure
from etl_tui.presenters import Cell, Row, Tone, filter_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

COLUMNS = (
    Column("severity", "SEVERITY"),
    Column("where", "WHERE"),
    Column("check", "CHECK"),
    Column("subject", "SUBJECT"),
    Column("found", "FOUND"),
)
FOUND_WIDTH = 62  # the rest is in the panel below, with the hint
TONES = {Severity.BLOCKER: Tone.ERROR, Severity.WARNING: Tone.WARN, Severity.INFO: Tone.ACCENT, Severity.OK: Tone.OK}


class ChecksLoaded(Message):
    def __init__(self, report: CheckReport | None, failure: Failure | None, run: int) -> None:
        super().__init__()
        self.report = report
        self.failure = failure
        self.run = run


# ---- what is shown (pure) ---------------------------------------------------------------------------
def _where(row: CheckRow) -> str:
    return row.pipeline if row.pipeline is not None else f"source {row.source}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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
            Cell(_shorten(f.found, FOUND_WIDTH)),
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
    at = time.strftime("%H:%M:%S", time.localtime(report.checked_at))
    verdict = "blocked: fix the blockers first" if report.has_blockers else "no blockers"
    return Cell(
        f"{counts}   · {verdict}",
        TONES[worst] if worst is not Severity.INFO else Tone.OK,
        sub=f"checked at {at} in {report.seconds:.1f}s · ctrl+r runs them again · the same as `etl-tui check`",
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


# ---- the screen -------------------------------------------------------------------------------------
class ChecksScreen(BoardScreen):
    SCOPE = "checks"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("checks")
    DEFAULT_CSS = """
    ChecksScreen #findings { height: 1fr; }
    ChecksScreen #finding { max-height: 12; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.report: CheckReport | None = None
        self._check_failure: Failure | None = None
        self._checking = False
        self._run_id = 0
        self._by_key: dict[str, CheckRow] = {}

    def compose_body(self) -> ComposeResult:
        yield Static(id="checks-status", classes="summary")
        yield KeyedTable(COLUMNS, id="findings")
        yield Static(id="finding", classes="panel")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.report is None and not self._checking:
            self.run_checks()

    def action_rerun_checks(self) -> None:
        self.run_checks()

    def run_checks(self) -> None:
        self._run_id += 1
        self._checking = True
        self._show_status()
        self._check(self._run_id)

    @work(thread=True, exclusive=True, group="preflight", exit_on_error=False)
    def _check(self, run: int) -> None:
        try:
            report = self.etl.backend.run_checks()
        except Exception as exc:  # shown on screen: the config DB may be away
            self.post_message(ChecksLoaded(None, Failure.of(exc), run))
            return
        self.post_message(ChecksLoaded(report, None, run))

    @on(ChecksLoaded)
    def _loaded(self, message: ChecksLoaded) -> None:
        if message.run != self._run_id:
            return  # a run that finished after a newer one began
        self._checking = False
        self._check_failure = message.failure
        if message.report is not None:
            self.report = message.report
        self.show_board(self.etl.board, self.etl.clock())

    def _show_status(self) -> None:
        cell = status_cell(self.report, self._check_failure, self._checking)
        self.query_one("#checks-status", Static).update(lines_text([cell]))

    def show_board(self, board: Board, now: float) -> None:
        self._show_status()
        pairs = finding_rows(self.report)
        rows = filter_rows((row for row, _ in pairs), self.filter_text)
        self._by_key = {row.key: found for row, found in pairs}
        table = self.query_one("#findings", KeyedTable)
        table.border_title = f"Findings ({len(rows)} of {len(pairs)})" if self.filter_text else "Findings"
        table.sync(rows)
        self._show_detail()

    @on(DataTable.RowHighlighted, "#findings")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        key = self.query_one("#findings", KeyedTable).selected_key
        panel = self.query_one("#finding", Static)
        panel.border_title = "Finding"
        panel.update(lines_text(detail_cells(self._by_key.get(key) if key else None)))
