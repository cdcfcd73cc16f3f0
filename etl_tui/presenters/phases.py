"""A table's phase (engine.state.table_state.TablePhase values) as a label and a tone."""

from __future__ import annotations

from collections.abc import Mapping

from etl_tui.presenters.cells import Cell, Tone

COPY_PHASES = frozenset({"init", "data_sync", "finished_copy"})
"""Phases of a table that is not streaming yet: queued, copying, or catching up after its copy."""

PHASE_LABELS: Mapping[str, tuple[str, Tone]] = {
    "init": ("… queued", Tone.MUTED),
    "data_sync": ("⟳ copying", Tone.ACCENT),
    # copied; the stream is catching up to the copy's snapshot before the table counts as ready
    "finished_copy": ("↻ catching up", Tone.ACCENT),
    "ready": ("● streaming", Tone.OK),
    "errored": ("✖ errored", Tone.ERROR),
}


def phase_cell(phase: str) -> Cell:
    label, tone = PHASE_LABELS.get(phase, (phase, Tone.NORMAL))
    return Cell(label, tone)
