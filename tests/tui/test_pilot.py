"""Keys → screens and backend calls, driven with Textual's pilot against the scenes' backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select, Static, TextArea

from engine.errors import EtlError
from engine.status.board import Board, ConfigView, SourceConfigView
from etl_tui.app import EtlApp
from etl_tui.commands import EtlCommands
from etl_tui.scenes.backend import SceneBackend
from etl_tui.scenes.clock import FIXED_NOW, fixed_clock
from etl_tui.screens.base import FilterInput
from etl_tui.screens.config import ConfigScreen
from etl_tui.screens.confirm import ConfirmModal, TypeNameModal
from etl_tui.screens.detail import DetailScreen
from etl_tui.screens.events import EventsScreen
from etl_tui.screens.forms import DestinationForm, PipelineForm, SourceForm
from etl_tui.screens.help import HelpScreen
from etl_tui.screens.pipelines import PipelinesScreen, PipelineTable
from etl_tui.screens.redis_state import RedisScreen
from etl_tui.screens.slots import SlotsScreen
from etl_tui.screens.throughput import ThroughputScreen
from etl_tui.widgets.keyed_table import KeyedTable

SIZE = (140, 40)
Scenario = Callable[[EtlApp, Pilot[None]], Awaitable[None]]


def drive(backend: SceneBackend, scenario: Scenario, **app_kw: object) -> EtlApp:
    """Run ``scenario`` against a fresh app (no pytest-asyncio needed)."""
    app = EtlApp(backend, clock=fixed_clock, **app_kw)  # type: ignore[arg-type]

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await scenario(app, pilot)

    asyncio.run(main())
    return app


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def press(pilot: Pilot[None], *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def notes(app: EtlApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def table_keys(app: EtlApp, selector: str) -> list[str]:
    return app.screen.query_one(selector, KeyedTable).keys


def test_number_keys_switch_screens() -> None:
    expected = {
        "2": DetailScreen,
        "3": ThroughputScreen,
        "4": SlotsScreen,
        "5": RedisScreen,
        "6": EventsScreen,
        "7": ConfigScreen,
        "1": PipelinesScreen,
    }

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, PipelinesScreen)
        for key, screen in expected.items():
            await press(pilot, key)
            assert isinstance(app.screen, screen), key
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        assert isinstance(app.screen, PipelinesScreen)

    drive(SceneBackend(), scenario)


def test_enter_opens_the_selected_pipeline() -> None:
    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "down", "down", "enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.selected_pipeline == "crm_sync"
        assert table_keys(app, "#tables") == ["public.contacts", "public.deals", "public.notes"]
        errors = str(app.screen.query_one("#errors", Static).render())
        assert "no primary key" in errors and "ALTER TABLE public.deals" in errors and "manual" in errors
        await press(pilot, "escape")
        assert isinstance(app.screen, PipelinesScreen)
        assert app.screen.query_one(PipelineTable).selected_key == "crm_sync"  # back where it was

    drive(SceneBackend(), scenario)


def test_start_and_pause_act_on_the_selected_pipeline() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "down", "s")
        await press(pilot, "down", "p")
        await press(pilot, "2", "s")  # the detail screen acts on the pipeline it shows
        assert any("start crm_sync: done" in n for n in notes(app))

    drive(backend, scenario)
    assert backend.calls == [
        ("start_pipeline", ("billing_sync",)),
        ("pause_pipeline", ("crm_sync",)),
        ("start_pipeline", ("crm_sync",)),
    ]


def test_retry_only_an_errored_table() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "down", "down", "enter")
        await press(pilot, "r")  # public.contacts is streaming: refused locally
        assert any("not errored" in n for n in notes(app))
        await press(pilot, "down", "r")

    drive(backend, scenario)
    assert backend.calls == [("retry_table", ("crm_sync", "public.deals"))]


def test_resync_requires_typing_the_table_name() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "down", "enter", "down", "R")
        assert isinstance(app.screen, TypeNameModal)
        await press(pilot, *"public.pay", "enter")  # not the whole name: nothing happens
        assert isinstance(app.screen, TypeNameModal)
        assert backend.calls == []
        await press(pilot, "escape")
        assert isinstance(app.screen, DetailScreen)
        await press(pilot, "R", *"public.payments", "enter")
        assert isinstance(app.screen, DetailScreen)

    drive(backend, scenario)
    assert backend.calls == [("resync_table", ("billing_sync", "public.payments"))]


def test_readonly_hides_and_refuses_every_change() -> None:
    backend = SceneBackend(readonly=True)

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        header = str(app.screen.query_one("#mode", Static).render())
        assert "READ-ONLY" in header
        shown = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert not shown & {"s", "p"}
        await press(pilot, "s")
        assert any("read-only" in n and "start the selected pipeline" in n for n in notes(app))
        await press(pilot, "2")
        shown = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert not shown & {"s", "p", "r", "R"}
        await press(pilot, "R", "r")
        assert not isinstance(app.screen, TypeNameModal)
        await press(pilot, "7")
        await press(pilot, "a", "e", "d")
        assert isinstance(app.screen, ConfigScreen)  # no form, no confirmation
        titles = [t for t, _, _ in EtlCommands(app.screen)._commands()]
        assert not [t for t in titles if t.startswith(("Add", "Edit", "Delete", "Start", "Pause"))]
        assert "Go to Pipelines (1)" in titles

    drive(backend, scenario)
    assert backend.calls == []


def test_palette_lists_screens_and_this_screens_actions() -> None:
    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        titles = [t for t, _, _ in EtlCommands(app.screen)._commands()]
        for expected in (
            "Go to Throughput (3)",
            "Go to Config (7)",
            "Start (s)",
            "Pause (p)",
            "Filter (/)",
            "Freeze (space)",
            "Screenshot (ctrl+s)",
            "Help (?)",
        ):
            assert expected in titles
        await press(pilot, "2")
        titles = [t for t, _, _ in EtlCommands(app.screen)._commands()]
        assert "Resync (R)" in titles and "Retry (r)" in titles

    drive(SceneBackend(), scenario)


def test_palette_runs_an_action() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "ctrl+p", *"pause", "enter")

    drive(backend, scenario)
    assert backend.calls == [("pause_pipeline", ("shop_sync",))]


def test_slash_filters_rows() -> None:
    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "slash", *"crm")
        assert table_keys(app, "#pipelines") == ["crm_sync"]
        await press(pilot, "enter")  # keeps the filter, back to the table
        assert isinstance(app.focused, PipelineTable)
        assert table_keys(app, "#pipelines") == ["crm_sync"]
        await press(pilot, "slash", "escape")
        assert len(table_keys(app, "#pipelines")) == 4
        assert not app.screen.query_one(FilterInput).display
        await press(pilot, "6", "slash", *"deals")
        assert len(table_keys(app, "#events")) == 1
        await press(pilot, "enter", "5", "slash", *"checkpoint")
        assert len(table_keys(app, "#keys")) == 4

    drive(SceneBackend(), scenario)


def test_space_freezes_without_moving_the_cursor() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        table = app.screen.query_one(PipelineTable)
        await press(pilot, "down", "down")
        await press(pilot, "space")
        assert app.frozen
        assert "PAUSED" in str(app.screen.query_one("#mode", Static).render())
        backend.with_pipeline("crm_sync", actual="streaming", last_error=None)
        app.refresh_now()
        await settle(pilot)
        assert "retrying" in str(table.get_cell("crm_sync", "state"))
        assert table.selected_key == "crm_sync"
        await press(pilot, "space")
        assert not app.frozen
        assert "streaming" in str(table.get_cell("crm_sync", "state"))
        assert table.selected_key == "crm_sync"

    drive(backend, scenario)


def test_cursor_follows_its_row_when_rows_come_and_go() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        table = app.screen.query_one(PipelineTable)
        await press(pilot, "down", "down")
        assert table.selected_key == "crm_sync"
        board = backend.current
        backend.current = replace(board, pipelines=tuple(p for p in board.pipelines if p.name != "shop_sync"))
        app.refresh_now()
        await settle(pilot)
        assert table.keys == ["billing_sync", "crm_sync", "legacy_sync"]
        assert table.selected_key == "crm_sync"
        backend.current = replace(board, pipelines=tuple(reversed(board.pipelines)))
        app.refresh_now()
        await settle(pilot)
        assert table.selected_key == "crm_sync"

    drive(backend, scenario)


def test_events_follow_the_tail() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "6")
        table = app.screen.query_one("#events", KeyedTable)
        assert table.cursor_row == len(backend.current.events) - 1
        extra = replace(backend.current.events[-1], at=FIXED_NOW, message="a newer event")
        backend.current = replace(backend.current, events=(*backend.current.events[1:], extra))
        app.refresh_now()
        await settle(pilot)
        assert table.selected_key is not None and table.selected_key.endswith("a newer event")

    drive(backend, scenario)


def test_stale_snapshot_warns() -> None:
    backend = SceneBackend()
    backend.current = replace(backend.current, taken_at=FIXED_NOW - 30)

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        assert "engine not publishing" in str(app.screen.query_one("#mode", Static).render())

    drive(backend, scenario)


def test_ctrl_s_writes_an_svg(tmp_path: Path) -> None:
    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "4", "ctrl+s")
        assert any("screenshot saved" in n for n in notes(app))

    drive(SceneBackend(), scenario, screenshot_dir=tmp_path)
    [svg] = list(tmp_path.glob("*.svg"))
    assert svg.name == "etl-tui-slots-20260701-120000.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<svg")


def test_backend_errors_show_reason_and_hint() -> None:
    backend = SceneBackend(fail_with=EtlError("pipeline shop_sync is locked", "wait for the resync to end"))

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "s")
        assert any(
            "start shop_sync failed" in n and "locked" in n and "hint: wait for the resync" in n for n in notes(app)
        )

    drive(backend, scenario)


def test_a_slow_backend_never_blocks_the_screen() -> None:
    gate = threading.Event()
    backend = SceneBackend(gate=gate)

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("3")  # the start call is still waiting on the gate
        await pilot.pause()
        assert isinstance(app.screen, ThroughputScreen)
        assert backend.calls == []
        gate.set()
        await settle(pilot)

    drive(backend, scenario)
    assert backend.calls == [("start_pipeline", ("shop_sync",))]


def test_redis_failure_is_shown_not_raised() -> None:
    class BrokenRedis(SceneBackend):
        def redis_keys(self, match: str = "etl:*", limit: int = 500) -> list:  # type: ignore[type-arg]
            raise EtlError("cannot reach Redis at redis://cache:6379", "check REDIS_URL")

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "5")
        status = str(app.screen.query_one("#redis-status", Static).render())
        assert "cannot reach Redis" in status and "check REDIS_URL" in status

    drive(BrokenRedis(), scenario)


def test_config_forms_send_typed_drafts() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "e")
        assert isinstance(app.screen, SourceForm)
        await press(pilot, "enter")  # DSN left as shown: keep the stored one
        await press(pilot, "e")
        app.screen.query_one("#password", Input).value = "n3w"
        await press(pilot, "enter")
        await press(pilot, "a")
        app.screen.query_one("#name", Input).value = "analytics"
        app.screen.query_one("#dsn", Input).value = "postgresql://etl@analytics-db/analytics"
        await press(pilot, "enter")
        await press(pilot, "tab", "tab", "a")  # the pipelines list
        form = app.screen
        form.query_one("#name", Input).value = "extra_sync"
        form.query_one("#tables", Input).value = "public.a"
        await press(pilot, "enter")
        assert isinstance(app.screen, type(form))  # no source chosen yet: the form says so and stays
        assert "choose a source" in str(app.screen.query_one("#form-error", Static).render())
        await press(pilot, "escape")

    drive(backend, scenario)
    assert backend.calls == [
        ("save_source", ("shop", None, "shop")),
        ("save_source", ("shop", "postgresql://replicator:n3w@db.internal:5432/shop", "shop")),
        ("save_source", ("analytics", "postgresql://etl@analytics-db/analytics", None)),
    ]


def test_pipeline_form_edits_column_types() -> None:
    backend = SceneBackend()
    tables = 'public.orders,public.order_items,public.customers,public."Order Items"'

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "tab", "tab", "e")  # the pipelines list: edit shop_sync
        form = app.screen
        assert isinstance(form, PipelineForm)
        area = form.query_one("#column_types", TextArea)
        assert area.text == 'public.orders.amount=decimal(38,12)\npublic."Order Items".note_value=text'
        area.text = "public.orders.amount=decimal(38,12)\npublic.orders.total=float"
        await press(pilot, "enter")  # in the name field
        assert app.screen is form  # refused: the form stays, with the parser's reason and hint
        error = str(form.query_one("#form-error", Static).render())
        assert "unknown column type 'float'" in error and "use one of: text, decimal(p,s)" in error
        area.focus()
        area.text = ""
        for key in [*"public.orders.total=text", "enter", *'public."Order Items".note_value=auto']:
            await pilot.press(key)  # typed: enter in the field starts another line
        assert app.screen is form
        await pilot.click("#save")
        await settle(pilot)
        assert isinstance(app.screen, ConfigScreen)

    drive(backend, scenario)
    assert backend.calls == [
        (
            "save_pipeline",
            (
                "shop_sync",
                "shop",
                "local",
                tables,
                "shop_sync",
                ("public.orders.total=text", 'public."Order Items".note_value=auto'),
            ),
        )
    ]


def test_a_new_pipeline_form_sends_its_column_types() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "tab", "tab", "a")
        form = app.screen
        assert isinstance(form, PipelineForm)
        assert form.query_one("#column_types", TextArea).text == ""
        form.query_one("#name", Input).value = "extra_sync"
        form.query_one("#source", Select).value = "crm"
        form.query_one("#destination", Select).value = "warehouse"
        form.query_one("#tables", Input).value = "public.deals"
        form.query_one(
            "#column_types", TextArea
        ).text = "public.deals.value=decimal(38,4), public.deals.fee=numeric(10,2)"
        await press(pilot, "enter")

    drive(backend, scenario)
    assert backend.calls == [
        (
            "save_pipeline",
            (
                "extra_sync",
                "crm",
                "warehouse",
                "public.deals",
                None,
                ("public.deals.value=decimal(38,4)", "public.deals.fee=numeric(10,2)"),
            ),
        )
    ]


@pytest.mark.parametrize("accepted", [True, False])
def test_a_config_write_reads_the_config_again(accepted: bool) -> None:
    class CountingReads(SceneBackend):
        reads = 0

        def config(self) -> ConfigView:
            self.reads += 1
            return super().config()

    gate = threading.Event()
    backend = CountingReads(gate=gate, fail_with=None if accepted else EtlError("source analytics is locked"))

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "a")
        app.screen.query_one("#name", Input).value = "analytics"
        app.screen.query_one("#dsn", Input).value = "postgresql://etl@analytics-db/analytics"
        reads = backend.reads
        await pilot.press("enter")  # the form closes; the write waits on the gate
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        # coming back from the form reads the config once, before the write ends
        await read_ended(pilot, screen, lambda: backend.reads, after=reads)
        assert "analytics" not in table_keys(app, "#sources")
        stored = backend.config_view
        backend.config_view = replace(
            stored, sources=(*stored.sources, SourceConfigView("analytics", "postgresql://etl@analytics-db/analytics"))
        )
        reads = backend.reads
        gate.set()
        await settle(pilot)
        await read_ended(pilot, screen, lambda: backend.reads, after=reads)
        assert "analytics" in table_keys(app, "#sources")  # read again once the write ended, accepted or not

    drive(backend, scenario)
    assert backend.calls == [("save_source", ("analytics", "postgresql://etl@analytics-db/analytics", None))]


async def read_ended(pilot: Pilot[None], screen: ConfigScreen, reads: Callable[[], int], *, after: int) -> None:
    """Until a config read started after ``after`` reads has ended (fails after 5 s)."""
    for _ in range(500):
        if reads() > after and not screen.stored.loading:
            return
        await pilot.pause(0.01)
    raise AssertionError("the config was not read again")


def shown(form: DestinationForm, field: str) -> bool:
    widget = form.query_one(f"#{field}")
    return widget.display and widget.parent is not None and widget.parent.display  # a row hides its field


def test_destination_form_creates_a_snowflake_destination(tmp_path: Path) -> None:
    key = tmp_path / "etl_key.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    backend = SceneBackend()

    def form_error(app: EtlApp) -> str:
        return str(app.screen.query_one("#form-error", Static).render())

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "tab", "a")
        form = app.screen
        assert isinstance(form, DestinationForm)
        assert shown(form, "path") and not shown(form, "account") and not shown(form, "transactions")
        form.query_one("#type", Select).value = "snowflake"
        await settle(pilot)
        assert not shown(form, "path") and shown(form, "account") and shown(form, "transactions")
        assert form.query_one("#landing_schema", Input).placeholder == "ETL_LANDING"
        for field, value in {
            "name": "wh",
            "account": "myorg-analytics",
            "user": "ETL_LOADER",
            "database": "ANALYTICS",
            "schema": "PUBLIC",
        }.items():
            form.query_one(f"#{field}", Input).value = value
        await press(pilot, "enter")
        assert app.screen is form and "has no credentials" in form_error(app)  # the CLI's check and words
        form.query_one("#password_env", Input).value = "SF_PASSWORD"
        form.query_one("#private_key_file", Input).value = str(key)
        await press(pilot, "enter")
        assert app.screen is form and "both a private key file and a password" in form_error(app)
        form.query_one("#password_env", Input).value = ""
        form.query_one("#port", Input).value = "8080"
        await press(pilot, "enter")
        assert app.screen is form and "--port needs --host" in form_error(app)
        form.query_one("#host", Input).value = "127.0.0.1"
        form.query_one("#protocol", Select).value = "http"
        form.query_one("#soft_deletes", Checkbox).value = True
        form.query_one("#transactions", Checkbox).value = False
        await press(pilot, "enter")
        assert not isinstance(app.screen, DestinationForm)

    drive(backend, scenario)
    assert backend.calls == [
        (
            "save_destination",
            (
                "wh",
                "snowflake",
                {
                    "account": "myorg-analytics",
                    "user": "ETL_LOADER",
                    "database": "ANALYTICS",
                    "schema": "PUBLIC",
                    "private_key_file": str(key),
                    "host": "127.0.0.1",
                    "port": "8080",
                    "protocol": "http",
                    "loader": "copy",
                    "transactions": "false",
                    "soft_deletes": "true",
                },
                None,
            ),
        )
    ]


def test_destination_form_edits_keep_the_stored_options() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "tab", "down", "down", "e")
        form = app.screen
        assert isinstance(form, DestinationForm)
        assert form.query_one("#account", Input).value == "myorg-analytics"
        assert form.query_one("#transactions", Checkbox).value  # stored config has no "transactions": on
        form.query_one("#private_key_file", Input).value = ""
        await press(pilot, "enter")
        assert app.screen is form  # without a key file or a password variable it cannot save
        await press(pilot, "escape")
        await press(pilot, "up", "e")  # a duckdb destination: its own fields only
        form = app.screen
        assert isinstance(form, DestinationForm)
        assert form.query_one("#path", Input).value == "/srv/warehouse.duckdb"
        assert not shown(form, "account") and not shown(form, "transactions")
        await press(pilot, "enter")

    drive(backend, scenario)
    assert backend.calls == [
        (
            "save_destination",
            (
                "warehouse",
                "duckdb",
                {"path": "/srv/warehouse.duckdb", "schema": "analytics", "landing_schema": "etl_landing"},
                "warehouse",
            ),
        )
    ]


def test_delete_requires_typing_the_name() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "7", "tab", "tab", "down", "d")
        assert isinstance(app.screen, TypeNameModal)
        await press(pilot, *"billing_sync", "enter")

    drive(backend, scenario)
    assert backend.calls == [("delete_pipeline", ("billing_sync",))]


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6", "7"])
def test_every_screen_survives_an_empty_engine(key: str) -> None:
    backend = SceneBackend()
    backend.current = replace(backend.current, pipelines=(), slots=(), events=(), health=())
    backend.keys = []

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, key, "s", "r", "slash", "x", "escape")

    drive(backend, scenario)
    assert backend.calls == []


def test_q_asks_before_stopping_the_console() -> None:
    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmModal)
        await press(pilot, "n")
        assert isinstance(app.screen, PipelinesScreen)
        assert app.is_running
        await press(pilot, "q", "y")
        assert not app.is_running

    drive(SceneBackend(), scenario)


def test_a_failing_snapshot_is_reported_once() -> None:
    class Flaky(SceneBackend):
        broken = False

        def board(self) -> Board:
            if self.broken:
                raise EtlError("status board unavailable")
            return super().board()

    backend = Flaky()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        backend.broken = True
        for _ in range(3):
            app.refresh_now()
        await settle(pilot)
        assert sum("status board unavailable" in n for n in notes(app)) == 1
        assert len(table_keys(app, "#pipelines")) == 4  # the last good snapshot stays on screen

    drive(backend, scenario)


def test_duplicate_keys_do_not_break_a_table() -> None:
    backend = SceneBackend()
    board = backend.current
    backend.current = replace(board, pipelines=(*board.pipelines, board.pipelines[0]))

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        assert table_keys(app, "#pipelines")[-1] == "shop_sync#1"

    drive(backend, scenario)


# ---- pre-flight checks (8) ---------------------------------------------------------------------------
def _panel(app: EtlApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def test_checks_screen_lists_findings_worst_first_with_the_selected_hint() -> None:
    from etl_tui.screens.checks import ChecksScreen

    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        assert backend.check_runs == 0  # nothing queries the sources until the screen is opened
        await press(pilot, "8")
        assert isinstance(app.screen, ChecksScreen)
        assert backend.check_runs == 1
        keys = table_keys(app, "#findings")
        assert keys[0].startswith("shop|legacy_sync|slot|")  # blockers first
        assert "4 blockers" in _panel(app, "#checks-status") and "blocked" in _panel(app, "#checks-status")
        detail = _panel(app, "#finding")
        assert "wal_status = lost" in detail and "hint: etl-tui pipeline resync legacy_sync" in detail
        await press(pilot, "down")
        assert "max_wal_senders = 10, 10 in use" in _panel(app, "#finding")
        await press(pilot, "slash", *"row security")
        assert table_keys(app, "#findings") == ["shop|shop_sync|row_security|public.customers#1"]
        await press(pilot, "escape")
        await press(pilot, "ctrl+r")
        assert backend.check_runs == 2
        await press(pilot, "1", "8")
        assert backend.check_runs == 2  # coming back shows the last run; ctrl+r runs again

    drive(backend, scenario)
    assert backend.calls == []  # checks change nothing


def test_checks_run_off_the_ui_thread_and_in_a_read_only_console() -> None:
    from etl_tui.screens.checks import ChecksScreen

    gate = threading.Event()
    backend = SceneBackend(gate=gate, readonly=True)

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await pilot.press("8")
        await pilot.pause()
        assert isinstance(app.screen, ChecksScreen)
        assert "running the checks" in _panel(app, "#checks-status")
        await pilot.press("3")  # the checks still wait on the gate
        await pilot.pause()
        assert isinstance(app.screen, ThroughputScreen)
        gate.set()
        await settle(pilot)
        await press(pilot, "8")
        assert backend.check_runs == 1 and "4 blockers" in _panel(app, "#checks-status")

    drive(backend, scenario)


def test_checks_that_cannot_run_say_why() -> None:
    from engine.preflight import CheckReport

    class NoConfigDb(SceneBackend):
        def run_checks(self, pipeline: str | None = None) -> CheckReport:
            raise EtlError("config DB error: connection refused", "check that the config DB is reachable")

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "8")
        status = _panel(app, "#checks-status")
        assert "could not run" in status and "config DB is reachable" in status
        assert table_keys(app, "#findings") == []

    drive(NoConfigDb(), scenario)


def test_checks_are_in_the_palette_and_help() -> None:
    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "8")
        titles = [title for title, _, _ in EtlCommands(app.screen)._commands()]
        assert "Go to Checks (8)" in titles and "Re-run (ctrl+r)" in titles
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)

    drive(SceneBackend(), scenario)


# ---- alerts (WAL / slots and Events) ------------------------------------------------------------------
def test_slots_screen_shows_firing_alerts_history_and_deliveries() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "4")
        alerts = app.screen.query_one("#alerts", KeyedTable)
        keys = alerts.keys
        assert keys[:3] == [f"firing|{a.key}" for a in backend.current.alerts]  # firing first
        assert len(keys) == 3 + len(backend.current.alert_history)
        title = str(alerts.border_title)
        assert "3 firing" in title and "webhook https://hooks.slack.com: 5 sent, 1 failed, 0 dropped" in title
        attention = str(app.screen.query_one("#slot-warnings", Static).render())
        assert "▲ wal_status · etl_legacy_sync_4: the slot cannot be used any more: resync" in attention
        # `/` narrows the alerts as well as the slots
        await press(pilot, "slash", *"legacy")
        assert table_keys(app, "#slots") == ["legacy_sync/etl_legacy_sync_4"]
        assert all("legacy" in k for k in app.screen.query_one("#alerts", KeyedTable).keys)
        # resolved: gone from the firing rows, the history keeps it
        from engine.monitoring.alerts import AlertStatus

        resolved = replace(backend.current.alerts[0], status=AlertStatus.RESOLVED, at=FIXED_NOW)
        backend.current = replace(
            backend.current, alerts=backend.current.alerts[1:], alert_history=(*backend.current.alert_history, resolved)
        )
        await press(pilot, "escape")
        app.refresh_now()
        await settle(pilot)
        keys = app.screen.query_one("#alerts", KeyedTable).keys
        assert not any(k.startswith("firing|wal_status") for k in keys) and len(keys) == 2 + 6
        assert any(k.endswith("|resolved|0") and "wal_status" in k for k in keys)
        assert "2 firing" in str(app.screen.query_one("#alerts", KeyedTable).border_title)

    drive(backend, scenario)


def test_events_screen_counts_firing_alerts_and_lists_alert_events() -> None:
    backend = SceneBackend()

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await press(pilot, "6")
        table = app.screen.query_one("#events", KeyedTable)
        assert str(table.border_title) == "Events · 3 alerts firing (4: WAL / slots)"
        alert_events = [e for e in backend.current.events if e.kind == "alert"]
        assert alert_events and all(any(e.message in k for k in table.keys) for e in alert_events)
        backend.current = replace(backend.current, alerts=(), alert_delivery=None)
        app.refresh_now()
        await settle(pilot)
        assert str(table.border_title) == "Events"

    drive(backend, scenario)
