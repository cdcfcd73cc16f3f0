"""Pure formatting: status board values → the strings, rows and tones the console shows.

Nothing here imports Textual or touches the network, so every label an operator reads (bytes,
durations, countdowns, ETAs, phases, colours) is decided in one place and unit-tested with plain
asserts. Widgets only map a :class:`Tone` to a style.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlsplit, urlunsplit

from engine.monitoring.alerts import Alert, AlertStatus, DeliveryStats, Severity
from engine.redaction import MASK
from engine.status.board import (
    BatchView,
    Board,
    ConfigView,
    ErrorView,
    EventView,
    HealthView,
    PipelineView,
    RedisKeyView,
    SlotView,
    TableView,
)
from engine.units import format_bytes, format_seconds

# ---- thresholds -----------------------------------------------------------------------------------
STALE_AFTER_SECONDS = 5.0
"""A snapshot older than this means the engine stopped publishing (a hung engine must not look idle)."""
LAG_WARN_BYTES = 64 * 1024**2
LAG_ERROR_BYTES = 1024**3
LAG_WARN_SECONDS = 60.0
LAG_ERROR_SECONDS = 600.0
LAG_SECONDS_MATTER_FROM_BYTES = 1024**2
"""Below this much WAL behind, the age of the last applied commit only says the source is idle."""
HEADROOM_WARN_FRACTION = 0.25
EXHAUSTION_ERROR_SECONDS = 3600.0
"""Safe WAL running out sooner than this is an emergency (the default ALERT_EXHAUSTION_SECONDS)."""
EXHAUSTION_WARN_SECONDS = 24 * 3600.0
SPARK_CHARS = "▁▂▃▄▅▆▇█"


class Tone(StrEnum):
    NORMAL = "normal"
    OK = "ok"
    WARN = "warn"
    ERROR = "error"
    MUTED = "muted"
    ACCENT = "accent"


_TONE_RANK = {Tone.NORMAL: 0, Tone.MUTED: 0, Tone.OK: 0, Tone.ACCENT: 1, Tone.WARN: 2, Tone.ERROR: 3}


def worst(*tones: Tone) -> Tone:
    return max(tones, key=_TONE_RANK.__getitem__, default=Tone.NORMAL)


@dataclass(frozen=True)
class Cell:
    """One table cell: a main line and an optional muted second line (two-line rows)."""

    text: str
    tone: Tone = Tone.NORMAL
    sub: str = ""
    sub_tone: Tone = Tone.MUTED


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[Cell, ...]

    def matches(self, query: str) -> bool:
        """Case-insensitive substring match over every cell, so `/` finds what the operator sees."""
        needle = query.strip().lower()
        if not needle:
            return True
        return any(needle in c.text.lower() or needle in c.sub.lower() for c in self.cells)


def filter_rows(rows: Iterable[Row], query: str) -> list[Row]:
    return [r for r in rows if r.matches(query)]


# ---- units ----------------------------------------------------------------------------------------
def human_bytes(n: int | float | None) -> str:
    return "—" if n is None else format_bytes(n)


def human_count(n: int | float) -> str:
    value = float(n)
    if abs(value) < 1000:
        return f"{value:.0f}"
    for unit in ("k", "M", "G"):
        value /= 1000
        if abs(value) < 1000 or unit == "G":
            return f"{value:.1f}{unit}"
    raise AssertionError("unreachable")


def human_rate(rows_per_second: float | None) -> str:
    return "—" if rows_per_second is None else f"{human_count(rows_per_second)}/s"


def human_duration(seconds: float | None) -> str:
    return "—" if seconds is None else format_seconds(seconds)


def ago(at: float | None, now: float) -> str:
    if at is None:
        return "—"
    return f"{human_duration(max(0.0, now - at))} ago"


def clock_time(at: float) -> str:
    """Wall-clock time of day in the operator's local time zone."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


# ---- small charts ---------------------------------------------------------------------------------
def sparkline(values: Sequence[float], width: int) -> str:
    """Newest sample at the right edge; longer series are averaged into ``width`` buckets."""
    if width <= 0:
        return ""
    if not values:
        return " " * width
    if len(values) > width:
        n = len(values)
        buckets = [values[i * n // width : (i + 1) * n // width] for i in range(width)]
        series = [sum(b) / len(b) for b in buckets]
    else:
        series = list(values)
    top = max(series)
    if top <= 0:
        chars = SPARK_CHARS[0] * len(series)
    else:
        last = len(SPARK_CHARS) - 1
        chars = "".join(SPARK_CHARS[min(last, max(0, round(v / top * last)))] for v in series)
    return chars.rjust(width)


def progress_bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (1, 2, 2.5 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step) + 1)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# ---- errors and countdowns ------------------------------------------------------------------------
def retry_label(error: ErrorView, now: float) -> str:
    """ "retry in 12s" for a timed retry, otherwise what the operator has to do."""
    if error.retry_policy == "timed":
        if error.next_retry_at is None:
            return "retrying"
        left = error.next_retry_at - now
        # rounded up: "retry in 0s" would be a lie while the retry has not happened yet
        return "retrying now" if left <= 0 else f"retry in {human_duration(math.ceil(left))}"
    if error.retry_policy == "manual":
        return "manual retry"
    return "no retry"


def retry_help(error: ErrorView, now: float) -> str:
    """The retry policy spelled out, for the detail screen."""
    if error.retry_policy == "timed":
        return f"timed: {retry_label(error, now)} (backoff, no action needed)"
    if error.retry_policy == "manual":
        return "manual: fix the cause, then press r to retry"
    return "none: fix the cause, then resync (R)"


# ---- header ---------------------------------------------------------------------------------------
_COMPONENT = re.compile(r'^(source|destination) "(.*)"$')


def health_label(component: str) -> str:
    """'source "shop"' → 'src shop'; other names as they are."""
    m = _COMPONENT.match(component)
    if not m:
        return component
    return f"{'src' if m.group(1) == 'source' else 'dst'} {m.group(2)}"


def health_cells(health: Sequence[HealthView]) -> list[Cell]:
    return [
        Cell(f"{'●' if h.ok else '✖'} {health_label(h.component)}", Tone.OK if h.ok else Tone.ERROR, sub=h.detail)
        for h in health
    ]


def mode_cell(*, readonly: bool, frozen: bool) -> Cell:
    parts = (["READ-ONLY"] if readonly else []) + (["PAUSED"] if frozen else [])
    if not parts:
        return Cell("LIVE", Tone.OK)
    return Cell(" · ".join(parts), Tone.WARN if frozen else Tone.ACCENT)


def freshness_cell(taken_at: float, now: float, *, frozen: bool) -> Cell:
    if taken_at <= 0:
        return Cell("no snapshot yet: engine not publishing", Tone.WARN)
    age = max(0.0, now - taken_at)
    if frozen:
        return Cell(f"frozen · data from {human_duration(age)} ago", Tone.ACCENT)
    if age > STALE_AFTER_SECONDS:
        return Cell(f"updated {human_duration(age)} ago: engine not publishing", Tone.WARN)
    return Cell(f"updated {human_duration(age)} ago", Tone.MUTED)


# ---- pipelines ------------------------------------------------------------------------------------
COPY_PHASES = frozenset({"init", "data_sync", "finished_copy", "sync_wait", "catchup", "sync_done"})

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


def lag_tone(lag_bytes: int | None, lag_seconds: float | None) -> Tone:
    tone = Tone.NORMAL
    if lag_bytes is not None:
        if lag_bytes >= LAG_ERROR_BYTES:
            tone = Tone.ERROR
        elif lag_bytes >= LAG_WARN_BYTES:
            tone = Tone.WARN
    if lag_seconds is not None and (lag_bytes or 0) >= LAG_SECONDS_MATTER_FROM_BYTES:
        if lag_seconds >= LAG_ERROR_SECONDS:
            tone = worst(tone, Tone.ERROR)
        elif lag_seconds >= LAG_WARN_SECONDS:
            tone = worst(tone, Tone.WARN)
    return tone


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


# ---- tables of one pipeline -----------------------------------------------------------------------
PHASE_LABELS: Mapping[str, tuple[str, Tone]] = {
    "init": ("… queued", Tone.MUTED),
    "data_sync": ("⟳ copying", Tone.ACCENT),
    "finished_copy": ("✓ copied", Tone.ACCENT),
    "sync_wait": ("↻ catching up", Tone.ACCENT),
    "catchup": ("↻ catching up", Tone.ACCENT),
    "sync_done": ("↻ catching up", Tone.ACCENT),
    "ready": ("● streaming", Tone.OK),
    "errored": ("✖ errored", Tone.ERROR),
}


def phase_cell(phase: str) -> Cell:
    label, tone = PHASE_LABELS.get(phase, (phase, Tone.NORMAL))
    return Cell(label, tone)


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


# ---- throughput -----------------------------------------------------------------------------------
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


def human_ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else human_duration(seconds)


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


# ---- slots ----------------------------------------------------------------------------------------
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


SLOT_TREND_WIDTH = 8


def short_warning(warning: str | None, width: int = 24) -> str:
    """ "slot lost: WAL needed was removed; …" → "slot lost" (the whole text is in the warnings panel)."""
    if not warning:
        return "—"
    return truncate(warning.split(":", 1)[0], width)


def human_byte_rate(bytes_per_second: float | None) -> str:
    return "—" if bytes_per_second is None else f"{human_bytes(max(0.0, bytes_per_second))}/s"


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


# ---- alerts ---------------------------------------------------------------------------------------
def alert_tone(a: Alert) -> Tone:
    if a.status == AlertStatus.RESOLVED:
        return Tone.OK
    return Tone.ERROR if a.severity == Severity.CRITICAL else Tone.WARN


def alert_value(a: Alert) -> str:
    """ "220.0 MiB > 200.0 MiB", "10m 14s < 1h 00m", "lost"."""

    def fmt(v: float | str | None) -> str:
        if v is None or isinstance(v, str):
            return "—" if v is None else v
        return human_bytes(v) if a.unit == "bytes" else human_duration(v) if a.unit == "seconds" else f"{v:g}"

    if a.threshold is None:
        return fmt(a.value)
    if a.status == AlertStatus.RESOLVED:
        return f"{fmt(a.value)} (limit {fmt(a.threshold)})"
    # time left is bad when short; everything else when large
    sign = "<" if a.rule == "wal_exhaustion" else ">"
    return f"{fmt(a.value)} {sign} {fmt(a.threshold)}"


def delivery_label(d: DeliveryStats | None) -> Cell:
    if d is None:
        return Cell("no ALERT_WEBHOOK_URL: alerts are recorded, not sent", Tone.MUTED)
    tone = Tone.WARN if d.failed or d.dropped else Tone.MUTED
    return Cell(f"webhook {d.target}: {d.delivered} sent, {d.failed} failed, {d.dropped} dropped", tone)


def alerts_title(board: Board) -> str:
    n = len(board.alerts)
    return f"Alerts: {n or 'none'} firing · {delivery_label(board.alert_delivery).text}"


def firing_alert_lines(board: Board) -> list[Cell]:
    """Each firing alert and what to do about it (the alerts table has the figures)."""
    return [Cell(f"▲ {a.rule} · {a.slot}: {a.hint}", alert_tone(a)) for a in board.alerts]


def alert_rows(board: Board, now: float) -> list[Row]:
    """The firing alerts (how long so far), then every notification, newest first."""
    rows = [
        Row(
            f"firing|{a.key}",
            (
                Cell(clock_time(a.started_at)),
                Cell(f"● {a.severity}", alert_tone(a)),
                Cell(str(a.rule)),
                Cell(a.pipeline),
                Cell(a.slot),
                Cell(alert_value(a), alert_tone(a)),
                Cell(f"firing for {human_duration(now - a.started_at)}", alert_tone(a)),
            ),
        )
        for a in board.alerts
    ]
    for a in reversed(board.alert_history):
        if a.status == AlertStatus.RESOLVED:
            state, lasted = "✓ resolved", f"lasted {human_duration(a.at - a.started_at)}"
        else:
            state, lasted = (f"↻ reminder {a.repeat}" if a.repeat else "▲ fired"), "—"
        rows.append(
            Row(
                f"{a.at!r}|{a.key}|{a.status}|{a.repeat}",
                (
                    Cell(clock_time(a.at), Tone.MUTED),
                    Cell(state, alert_tone(a)),
                    Cell(str(a.rule)),
                    Cell(a.pipeline),
                    Cell(a.slot),
                    Cell(alert_value(a)),
                    Cell(lasted, Tone.MUTED),
                ),
            )
        )
    return rows


# ---- events ---------------------------------------------------------------------------------------
_LEVEL_TONES = {"info": Tone.NORMAL, "warning": Tone.WARN, "error": Tone.ERROR}
_LEVEL_LABELS = {"info": "INFO", "warning": "WARN", "error": "ERROR"}


def event_rows(events: Sequence[EventView]) -> list[Row]:
    """Oldest first (newest at the bottom, like a log); keys stay stable as the window slides."""
    seen: dict[tuple[float, str], int] = {}
    rows = []
    for ev in events:
        ident = (ev.at, ev.message)
        n = seen.get(ident, 0)
        seen[ident] = n + 1
        tone = _LEVEL_TONES.get(ev.level, Tone.NORMAL)
        rows.append(
            Row(
                f"{ev.at!r}|{n}|{ev.message}",
                (
                    Cell(clock_time(ev.at), Tone.MUTED),
                    Cell(_LEVEL_LABELS.get(ev.level, ev.level.upper()), tone),
                    Cell(ev.kind),
                    Cell(ev.pipeline or "—", Tone.NORMAL if ev.pipeline else Tone.MUTED),
                    Cell(ev.table or "—", Tone.NORMAL if ev.table else Tone.MUTED),
                    Cell(ev.message, tone),
                ),
            )
        )
    return rows


def event_line(ev: EventView, width: int = 110) -> Cell:
    """One line of the home screen's recent-events strip."""
    where = " ".join(x for x in (ev.pipeline, ev.table) if x)
    text = f"{clock_time(ev.at)} {_LEVEL_LABELS.get(ev.level, ev.level.upper()):<5} {where + ' ' if where else ''}"
    return Cell(truncate(text + ev.message, width), _LEVEL_TONES.get(ev.level, Tone.NORMAL))


# ---- Redis ----------------------------------------------------------------------------------------
def redis_rows(keys: Sequence[RedisKeyView]) -> list[Row]:
    return [
        Row(
            k.key,
            (
                Cell(k.key),
                Cell(k.type),
                Cell(
                    "no expiry" if k.ttl_seconds is None else human_duration(k.ttl_seconds),
                    Tone.MUTED if k.ttl_seconds is None else Tone.NORMAL,
                ),
                Cell(truncate(k.preview.replace("\n", " "), 90), Tone.MUTED),
            ),
        )
        for k in sorted(keys, key=lambda k: k.key)
    ]


# ---- config ---------------------------------------------------------------------------------------
def source_rows(config: ConfigView) -> list[Row]:
    return [Row(s.name, (Cell(s.name), Cell(s.dsn_redacted))) for s in config.sources]


# Options a destination's TARGET column already shows (duckdb:PATH, snowflake:ACCOUNT/DATABASE.SCHEMA).
_IN_TARGET = {"duckdb": ("path",), "snowflake": ("account", "database", "schema")}


def destination_rows(config: ConfigView) -> list[Row]:
    return [
        Row(
            d.name,
            (
                Cell(d.name),
                Cell(d.type),
                Cell(d.target),
                Cell(
                    ", ".join(f"{k}={v}" for k, v in d.options if k not in _IN_TARGET.get(d.type, ("path",))),
                    Tone.MUTED,
                ),
            ),
        )
        for d in config.destinations
    ]


def pipeline_config_rows(config: ConfigView) -> list[Row]:
    return [
        Row(
            p.name,
            (
                Cell(p.name),
                Cell(p.source),
                Cell(p.destination),
                Cell(p.status, Tone.MUTED if p.status == "pause" else Tone.NORMAL),
                Cell(truncate(", ".join(p.tables), 64)),
                Cell("applied", Tone.OK) if p.applied else Cell("pending", Tone.WARN),
            ),
        )
        for p in config.pipelines
    ]


# ---- forms ----------------------------------------------------------------------------------------
class FormError(ValueError):
    """A form value the operator must correct (shown inside the form)."""


def source_dsn_for_save(typed: str, password: str, *, original_redacted: str | None) -> str | None:
    """The DSN to send when a source form is saved; None keeps the stored one.

    The form never holds the stored password: editing shows the redacted DSN. Leaving it as shown
    (or empty) keeps the stored DSN; a password typed in the masked field goes into the DSN.
    """
    typed = typed.strip()
    editing = original_redacted is not None
    if editing and typed in ("", original_redacted) and not password:
        return None
    if not typed:
        if editing:
            typed = original_redacted or ""
        else:
            raise FormError("a DSN is required, e.g. postgresql://replicator@db:5432/shop")
    if password:
        return with_password(typed, password)
    if MASK in typed:
        raise FormError(f"the DSN still holds the mask {MASK}: type the password in the password field")
    return typed


def with_password(dsn: str, password: str) -> str:
    """Put ``password`` into a libpq URL or key=value DSN (replacing a masked one)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        userinfo, at, hostinfo = parts.netloc.rpartition("@")
        if not at or not userinfo:
            raise FormError("the DSN names no user to give the password to: add user@ before the host")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{quote(password, safe='')}@{hostinfo}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    escaped = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if re.search(rf"\bpassword\s*=\s*{re.escape(MASK)}", dsn, re.IGNORECASE):
        return re.sub(
            rf"(\bpassword\s*=\s*){re.escape(MASK)}", lambda m: m.group(1) + escaped, dsn, flags=re.IGNORECASE
        )
    if re.search(r"\bpassword\s*=", dsn, re.IGNORECASE):
        raise FormError("the DSN already has a password: leave the password field empty or remove it from the DSN")
    return f"{dsn} password={escaped}"


def required(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise FormError(f"{what} is required")
    return value
