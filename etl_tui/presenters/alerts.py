"""Alerts, on the WAL / slots screen: what is firing and for how long, every notification so far,
and whether the webhook delivers them."""

from __future__ import annotations

from engine.status.board import Alert, AlertStatus, Board, DeliveryStats, Severity
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.units import clock_time, human_bytes, human_duration


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
