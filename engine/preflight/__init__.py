"""Pre-flight checks (``etl-tui check``, the console's Checks screen): what would stop a pipeline,
or make its target differ from its source, found before it runs, each with a hint to fix it."""

from engine.preflight.findings import Check, CheckReport, CheckRow, Finding, PipelineReport, Severity, SourceReport
from engine.preflight.runner import run_preflight

__all__ = [
    "Check",
    "CheckReport",
    "CheckRow",
    "Finding",
    "PipelineReport",
    "Severity",
    "SourceReport",
    "run_preflight",
]
