"""The pure formatting layer: every label the console shows, without Textual."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from engine.state.table_state import TablePhase
from engine.status.board import Board, ErrorView, PipelineView, SlotView, TableView
from etl_tui.copy_rates import CopyRates
from etl_tui.presenters.cells import Cell, Row, Tone, filter_rows
from etl_tui.presenters.charts import nice_ticks, progress_bar, sparkline
from etl_tui.presenters.detail import copy_eta, copy_rate_estimate, table_rows
from etl_tui.presenters.events import event_rows
from etl_tui.presenters.forms import FormError, column_type_entries, source_dsn_for_save, with_password
from etl_tui.presenters.header import freshness_cell, health_label, mode_cell
from etl_tui.presenters.lag import lag_tone
from etl_tui.presenters.phases import PHASE_LABELS
from etl_tui.presenters.pipelines import error_cell, pipeline_rows, state_cell, table_counts, tables_cell
from etl_tui.presenters.retries import retry_label
from etl_tui.presenters.slots import headroom_cell, short_warning, slot_rows
from etl_tui.presenters.throughput import percentile
from etl_tui.presenters.units import ago, human_bytes, human_count, human_duration, human_rate
from etl_tui.scenes.board import board as scene_board
from etl_tui.scenes.clock import FIXED_NOW
from etl_tui.scenes.events import events as scene_events

NOW = FIXED_NOW


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "—"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (int(4.1 * 1024**2), "4.1 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (5 * 1024**4, "5.0 TiB"),
        (-int(0.4 * 1024**3), "-409.6 MiB"),
    ],
)
def test_human_bytes(n: int | None, text: str) -> None:
    assert human_bytes(n) == text


def test_human_count_and_rate() -> None:
    assert human_count(999) == "999"
    assert human_count(1200) == "1.2k"
    assert human_count(45_300) == "45.3k"
    assert human_count(2_500_000) == "2.5M"
    assert human_rate(1234.0) == "1.2k/s"
    assert human_rate(None) == "—"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0, "0s"),
        (0.4, "0s"),
        (42, "42s"),
        (59.6, "1m 00s"),
        (552, "9m 12s"),
        (7380, "2h 03m"),
        (2 * 86400 + 3600 * 4, "2d 04h"),
        (-5, "0s"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_ago() -> None:
    assert ago(NOW - 14, NOW) == "14s ago"
    assert ago(None, NOW) == "—"
    assert ago(NOW + 3, NOW) == "0s ago"  # clocks of two hosts disagree: never a negative age


def test_sparkline() -> None:
    assert sparkline([], 4) == "    "
    assert sparkline([0, 0, 0], 3) == "▁▁▁"
    assert sparkline([0, 4, 8], 3) == "▁▅█"
    assert sparkline([8], 4) == "   █"  # newest at the right edge
    assert len(sparkline(list(range(60)), 16)) == 16
    assert sparkline(list(range(60)), 16)[-1] == "█"


def test_progress_bar_and_ticks() -> None:
    assert progress_bar(0.5, 10) == "█████░░░░░"
    assert progress_bar(1.7, 4) == "████"
    assert progress_bar(-1, 4) == "░░░░"
    assert nice_ticks(45_541) == [0, 20_000, 40_000, 60_000]
    assert nice_ticks(0) == [0.0, 1.0]


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95


def test_retry_countdown() -> None:
    timed = ErrorView("x", "r", "h", "timed", next_retry_at=NOW + 12)
    assert retry_label(timed, NOW) == "retry in 12s"
    assert retry_label(timed, NOW + 11.5) == "retry in 1s"  # rounded up: not "0s" before it happens
    assert retry_label(timed, NOW + 12) == "retrying now"
    assert retry_label(replace(timed, next_retry_at=NOW + 75), NOW) == "retry in 1m 15s"
    assert retry_label(replace(timed, next_retry_at=None), NOW) == "retrying"
    assert retry_label(replace(timed, retry_policy="manual"), NOW) == "manual retry"
    assert retry_label(replace(timed, retry_policy="none"), NOW) == "no retry"


def test_header_cells() -> None:
    assert health_label('source "shop"') == "src shop"
    assert health_label('destination "local"') == "dst local"
    assert health_label("Redis") == "Redis"
    assert mode_cell(readonly=False, frozen=False) == Cell("LIVE", Tone.OK)
    assert mode_cell(readonly=False, frozen=True).text == "PAUSED"
    assert mode_cell(readonly=True, frozen=False).text == "READ-ONLY"
    assert mode_cell(readonly=True, frozen=True).text == "READ-ONLY · PAUSED"


def test_freshness_turns_stale() -> None:
    assert freshness_cell(NOW - 1, NOW, frozen=False) == Cell("updated 1s ago", Tone.MUTED)
    stale = freshness_cell(NOW - 12, NOW, frozen=False)
    assert stale.tone == Tone.WARN
    assert "engine not publishing" in stale.text
    assert freshness_cell(NOW - 12, NOW, frozen=True).tone == Tone.ACCENT  # frozen on purpose: not a fault
    assert freshness_cell(0.0, NOW, frozen=False).tone == Tone.WARN


def _pipeline(**kw: Any) -> PipelineView:
    base = PipelineView("p", "src", "dst", "duckdb:x", "start", "streaming")
    return replace(base, **kw)


def test_state_cell_desired_vs_actual() -> None:
    assert state_cell(_pipeline()).tone == Tone.OK
    assert state_cell(_pipeline(desired="pause", actual="stopped")).text == "⏸ paused"
    pending = state_cell(_pipeline(desired="pause", actual="streaming"))
    assert pending.tone == Tone.WARN
    assert "pending" in pending.sub
    assert state_cell(_pipeline(desired="start", actual="stopped")).tone == Tone.WARN
    assert state_cell(_pipeline(actual="errored")).tone == Tone.ERROR


def test_lag_tone_ignores_seconds_on_an_idle_source() -> None:
    assert lag_tone(1024, 3600) == Tone.NORMAL  # nothing pending: the age only says the source is idle
    assert lag_tone(100 * 1024**2, 1) == Tone.WARN
    assert lag_tone(2 * 1024**3, 1) == Tone.ERROR
    assert lag_tone(10 * 1024**2, 900) == Tone.ERROR


def test_table_counts() -> None:
    p = scene_board().pipeline("billing_sync")
    assert p is not None
    counts = table_counts(p)
    assert (counts.total, counts.ready, counts.copying, counts.errored) == (4, 1, 3, 0)
    cell = tables_cell(p)
    assert cell.text == "1/4 ready"
    assert cell.sub == "3 copying"


def test_pipeline_rows_from_the_scenes() -> None:
    rows = pipeline_rows(scene_board(), NOW)
    assert [r.key for r in rows] == ["shop_sync", "billing_sync", "crm_sync", "legacy_sync"]
    crm = rows[2]
    assert crm.cells[5].text == "retry in 12s"
    assert crm.cells[0].sub == "crm → warehouse"
    assert crm.cells[4].sub == "1 errored"
    legacy = rows[3]
    assert legacy.cells[5].text == "no retry"
    assert legacy.cells[5].tone == Tone.ERROR


def test_error_cell_falls_back_to_an_errored_table() -> None:
    table_error = ErrorView("no_replica_identity", "no key", "add one", "manual")
    p = _pipeline(tables=(TableView("public.deals", "errored", error=table_error),))
    cell = error_cell(p, NOW)
    assert cell.text == "public.deals: manual retry"
    assert cell.sub == "no key"
    assert error_cell(_pipeline(), NOW).text == "—"


def test_every_phase_has_a_label() -> None:
    assert set(PHASE_LABELS) == {p.value for p in TablePhase}


def test_copy_progress_and_eta() -> None:
    assert copy_eta(600, 1000, 100.0) == "4s"
    assert copy_eta(600, None, 100.0) == "—"
    assert copy_eta(600, 1000, None) == "—"
    assert copy_eta(1200, 1000, 100.0) == "finishing"  # the total is an estimate
    p = scene_board().pipeline("billing_sync")
    assert p is not None
    rows = {r.key: r for r in table_rows(p, NOW)}
    payments = rows["public.payments"]
    assert payments.cells[1].text == "⟳ copying"
    assert payments.cells[2].text.endswith("62%")
    assert payments.cells[3].text == "620.0k / ~1.0M"
    assert payments.cells[4].text != "—"
    assert rows["public.refunds"].cells[1].text == "… queued"
    assert rows["public.ledger"].cells[1].text == "↻ catching up"
    assert rows["public.invoices"].cells[1].text == "● streaming"


def test_copy_rate_prefers_measurement() -> None:
    p = scene_board().pipeline("billing_sync")
    assert p is not None
    assert copy_rate_estimate(p, "public.payments", {"public.payments": 500.0}) == 500.0
    assert copy_rate_estimate(p, "public.payments", {}) == p.rows_per_second[-1]


def test_copy_rates_across_snapshots() -> None:
    rates = CopyRates()

    def snap(at: float, copied: int, phase: str = "data_sync") -> Board:
        table = TableView("public.t", phase, rows_copied=copied, copy_total=10_000)
        return Board(taken_at=at, pipelines=(_pipeline(tables=(table,)),))

    rates.observe(snap(100.0, 1000))
    assert rates.rates("p") == {}
    rates.observe(snap(100.0, 1000))  # the same snapshot read twice adds nothing
    rates.observe(snap(102.0, 3000))
    assert rates.rates("p") == {"public.t": 1000.0}
    rates.observe(snap(103.0, 100))  # a restarted copy starts a new measurement
    assert rates.rates("p") == {}
    rates.observe(snap(104.0, 100, phase="ready"))
    assert rates.rates("p") == {}


def test_slot_rows_and_headroom() -> None:
    rows = {r.key: r for r in slot_rows(scene_board())}
    lost = rows["legacy_sync/etl_legacy_sync_4"]
    assert lost.cells[2] == Cell("lost", Tone.ERROR)
    assert lost.cells[7].text == "slot lost"
    inactive = rows["crm_sync/etl_crm_sync_3"]
    assert inactive.cells[1] == Cell("○ inactive", Tone.WARN)
    assert inactive.cells[7].text == "slot inactive"
    assert rows["shop_sync/etl_shop_sync_1"].cells[1].text == "● pid 4411"
    unlimited = SlotView("p", "s", "src", True, 1, "reserved", 0, 0, None)
    assert headroom_cell(unlimited).text == "unlimited"
    tight = replace(unlimited, restart_lag_bytes=900, safe_wal_size=100)
    assert headroom_cell(tight).tone == Tone.WARN
    assert short_warning(None) == "—"


def test_events_oldest_first_with_stable_keys() -> None:
    events = scene_events()
    rows = event_rows(events)
    assert len(rows) == len(events)
    assert rows[0].cells[0].text == "11:49:50"  # UTC, pinned by the conftest
    assert rows[-1].cells[5].text.startswith("batch of 5.6k rows")
    assert len({r.key for r in rows}) == len(rows)
    assert [r.key for r in event_rows(events[1:])] == [r.key for r in rows[1:]]  # the window slides


def test_filter_rows() -> None:
    rows = [Row("a", (Cell("shop_sync", sub="shop → local"),)), Row("b", (Cell("crm_sync"),))]
    assert [r.key for r in filter_rows(rows, "CRM")] == ["b"]
    assert [r.key for r in filter_rows(rows, "local")] == ["a"]  # second lines count too
    assert len(filter_rows(rows, "  ")) == 2


def test_source_dsn_keeps_the_stored_one() -> None:
    shown = "postgresql://replicator:****@db:5432/shop"
    assert source_dsn_for_save(shown, "", original_redacted=shown) is None
    assert source_dsn_for_save("", "", original_redacted=shown) is None
    assert (
        source_dsn_for_save(shown, "n3w/pw", original_redacted=shown) == "postgresql://replicator:n3w%2Fpw@db:5432/shop"
    )
    with pytest.raises(FormError):
        source_dsn_for_save("postgresql://replicator:****@db2:5432/shop", "", original_redacted=shown)
    with pytest.raises(FormError):
        source_dsn_for_save("", "", original_redacted=None)
    assert source_dsn_for_save("postgresql://u@h/db", "", original_redacted=None) == "postgresql://u@h/db"


def test_with_password() -> None:
    assert with_password("postgresql://u@h:5432/db", "s3cret") == "postgresql://u:s3cret@h:5432/db"
    assert with_password("host=h user=u password=****", "it's") == "host=h user=u password='it\\'s'"
    assert with_password("host=h user=u", "pw") == "host=h user=u password='pw'"
    with pytest.raises(FormError):
        with_password("postgresql://h/db", "pw")
    with pytest.raises(FormError):
        with_password("host=h password=old", "pw")


# ---- WAL rate, time to exhaustion, alerts ---------------------------------------------------------
def test_column_type_entries_split_at_lines_and_commas_outside_quotes_and_parentheses() -> None:
    typed = 'public.orders.amount=decimal(38, 12), public."a,b".x=text\n\n  s.t."Net (gross)"=auto ,\n'
    assert column_type_entries(typed) == (
        "public.orders.amount=decimal(38, 12)",
        'public."a,b".x=text',
        's.t."Net (gross)"=auto',
    )
    assert column_type_entries("  \n ") == ()


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("public.orders.amount=float", "unknown column type 'float'"),
        ("public.orders.amount=decimal(39,2)", "use one of: text, decimal(p,s)"),
        ("amount=text", "names no table"),
        ("public.orders.amount", "is not schema.table.column=type"),
        ("public.t.a=text\npublic.t.A=auto", "name the same column"),
    ],
)
def test_column_type_entries_refuse_what_the_command_line_refuses(typed: str, says: str) -> None:
    with pytest.raises(FormError, match=re.escape(says)):
        column_type_entries(typed)


def test_slot_rows_show_wal_rate_and_when_safe_wal_runs_out() -> None:
    from etl_tui.presenters.slots import exhaustion_cell, wal_rate_cell
    from etl_tui.presenters.units import human_byte_rate

    rows = {r.key: r for r in slot_rows(scene_board())}
    billing = rows["billing_sync/etl_billing_sync_2"]
    assert billing.cells[8] == Cell("2.0 MiB/s") and billing.cells[9] == Cell("10m 14s", Tone.ERROR)
    assert rows["crm_sync/etl_crm_sync_3"].cells[9] == Cell("5h 32m", Tone.WARN)
    assert rows["shop_sync/etl_shop_sync_1"].cells[9] == Cell("—", Tone.MUTED)  # keeps up: never runs out
    assert rows["legacy_sync/etl_legacy_sync_4"].cells[9] == Cell("ran out", Tone.ERROR)
    slot = SlotView("p", "s", "src", True, 1, "reserved", 0, 0, None)
    assert wal_rate_cell(slot) == Cell("—", Tone.MUTED)
    assert exhaustion_cell(replace(slot, exhaustion_seconds=3 * 86_400.0)) == Cell("3d 00h")
    assert human_byte_rate(-5.0) == "0 B/s" and human_byte_rate(None) == "—"


def test_alert_rows_firing_first_then_history_newest_first() -> None:
    from etl_tui.presenters.alerts import alert_rows, alert_value, alerts_title, delivery_label, firing_alert_lines

    board = scene_board()
    rows = alert_rows(board, FIXED_NOW)
    assert [r.key.split("|")[0] for r in rows[:3]] == ["firing"] * 3
    lost = rows[0].cells
    assert (lost[1], lost[2].text, lost[4].text, lost[5].text) == (
        Cell("● critical", Tone.ERROR),
        "wal_status",
        "etl_legacy_sync_4",
        "lost",
    )
    assert lost[6].text == "firing for 9m 00s"
    assert rows[2].cells[5] == Cell("220.0 MiB > 200.0 MiB", Tone.WARN)
    assert rows[1].cells[5].text == "10m 14s < 1h 00m"  # time left: lower is worse
    history = rows[3:]
    assert [r.cells[1].text for r in history] == ["▲ fired", "▲ fired", "▲ fired", "✓ resolved", "▲ fired"]
    resolved = history[3].cells
    assert (
        resolved[1].tone is Tone.OK and resolved[5].text == "2s (limit 10m 00s)" and resolved[6].text == "lasted 2m 00s"
    )
    assert len({r.key for r in rows}) == len(rows)
    assert alert_value(replace(board.alerts[2], repeat=2)) == "220.0 MiB > 200.0 MiB"
    assert alerts_title(board) == "Alerts: 3 firing · webhook https://hooks.slack.com: 5 sent, 1 failed, 0 dropped"
    assert alerts_title(replace(board, alerts=(), alert_delivery=None)) == (
        "Alerts: none firing · no ALERT_WEBHOOK_URL: alerts are recorded, not sent"
    )
    assert delivery_label(board.alert_delivery).tone is Tone.WARN  # a delivery failed
    lines = firing_alert_lines(board)
    assert lines[0].text.startswith("▲ wal_status · etl_legacy_sync_4: ") and lines[0].tone is Tone.ERROR
    assert lines[2].tone is Tone.WARN


def test_alert_events_from_notifications() -> None:
    from engine.monitoring.alerts import AlertStatus
    from engine.status.collector import alert_event

    firing = scene_board().alerts[2]
    event = alert_event(firing)
    assert (event.level, event.kind, event.pipeline) == ("warning", "alert", "billing_sync")
    assert event.message == f"firing lag_bytes: {firing.summary}"
    assert alert_event(replace(firing, repeat=2)).message.startswith("still firing lag_bytes (reminder 2): ")
    assert alert_event(scene_board().alerts[0]).level == "error"  # critical
    resolved = alert_event(replace(firing, status=AlertStatus.RESOLVED, summary="back to normal"))
    assert (resolved.level, resolved.message) == ("info", "resolved lag_bytes: back to normal")
    rows = event_rows([event])
    assert rows[0].cells[2].text == "alert" and rows[0].cells[1] == Cell("WARN", Tone.WARN)
