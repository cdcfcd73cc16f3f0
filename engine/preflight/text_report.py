"""A check report as text for a terminal: by source, then by pipeline; problems get their
finding and hint on lines of their own, passed checks one line each."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from engine.preflight.findings import CheckReport, Finding, Severity

MARKS = {Severity.BLOCKER: "✖", Severity.WARNING: "▲", Severity.INFO: "•", Severity.OK: "✔"}


def render_text(report: CheckReport, width: int = 100) -> str:
    lines: list[str] = []
    for src in report.sources:
        lines.append(f"source {src.source} · {src.dsn}")
        lines += _findings(src.findings, "  ", width)
        for p in src.pipelines:
            verdict = "blocked" if src.blocked(p) else "ready"
            lines.append(f"  pipeline {p.pipeline} → {p.destination} ({p.destination_target}) · {verdict}")
            lines += _findings(p.findings, "    ", width)
        lines.append("")
    lines.append(summary(report))
    return "\n".join(lines)


def summary(report: CheckReport) -> str:
    counts = ", ".join(count_label(report.count(s), s) for s in Severity)
    if not report.sources:
        return "no pipelines to check; add one with `etl-tui pipeline add`"
    verdict = "blocked: fix the blockers first" if report.has_blockers else "no blockers"
    return f"{counts} · {verdict} (checked in {report.seconds:.1f}s)"


def count_label(n: int, severity: Severity) -> str:
    plural = "s" if n != 1 and severity in (Severity.BLOCKER, Severity.WARNING) else ""
    return f"{n} {severity.value}{plural}"


def _findings(findings: Iterable[Finding], indent: str, width: int) -> list[str]:
    out = []
    for f in findings:
        head = f"{indent}{MARKS[f.severity]} {f.severity.value:<9}{f.check.value.replace('_', ' ')} · "
        if f.severity is Severity.OK:
            out += textwrap.wrap(
                f"{head}{f.found}", width, subsequent_indent=" " * (len(indent) + 11), break_on_hyphens=False
            )
            continue
        out.append(head + f.subject)
        body = " " * (len(indent) + 11)
        out += textwrap.wrap(f.found, width, initial_indent=body, subsequent_indent=body, break_on_hyphens=False)
        if f.hint:
            out += textwrap.wrap(
                f"hint: {f.hint}", width, initial_indent=body, subsequent_indent=body + "      ", break_on_hyphens=False
            )
    return out
