"""The console driven by keys against a real engine on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from engine.config.models import PipelineStatus
from engine.config.repository import ConfigRepository
from engine.runtime.operations import Operations
from engine.settings import Settings
from etl_tui.app import EtlApp
from etl_tui.screens.forms import PipelineForm
from tests.integration.harness import duck_rows, source_rows
from tests.integration.scenarios import configure, setup_items

SIZE = (140, 40)


async def until(app: EtlApp, cond: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    """Wait in real time (the engine runs in threads) while the app keeps refreshing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.refresh_now()
        if cond():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_console(ops: Operations, scenario: Callable[[EtlApp, Pilot[None]], Awaitable[None]]) -> EtlApp:
    app = EtlApp(ops)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await scenario(app, pilot)

    ops.start()
    try:
        asyncio.run(main())
    finally:
        ops.stop()
    return app


def _status(settings: Settings) -> PipelineStatus:
    with ConfigRepository(settings.config_db_url) as repo:
        return repo.get_pipeline("p1").status


def _actual(app: EtlApp) -> str | None:
    view = app.backend.board().pipeline("p1")
    return view.actual if view else None


def test_pause_and_start_keys_drive_the_engine(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 100)
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")
    with ConfigRepository(settings.config_db_url) as repo:
        slot = repo.get_pipeline("p1").slot_name

    def slot_active() -> bool:
        rows = source_rows(source_dsn, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'")
        return bool(rows and rows[0][0])

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await until(app, lambda: _actual(app) == "streaming", what="streaming")
        await pilot.press("p")
        await until(app, lambda: _status(settings) is PipelineStatus.PAUSE, what="paused in the config DB")
        await until(app, lambda: not slot_active(), what="slot released")
        await until(app, lambda: _actual(app) == "stopped", what="console shows it stopped")
        await pilot.press("s")
        await until(app, lambda: _status(settings) is PipelineStatus.START, what="started in the config DB")
        await until(app, slot_active, what="slot in use again")
        await until(app, lambda: _actual(app) == "streaming", what="streaming again")

    run_console(Operations(settings), scenario)


def test_a_pipeline_edit_from_the_config_screen_is_applied(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 100)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE more (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO more SELECT g, 'v' || g FROM generate_series(1, 30) g")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    ops = Operations(settings)

    def table_ready() -> bool:
        view = ops.board().pipeline("p1")
        return view is not None and any(t.name == "public.more" and t.phase == "ready" for t in view.tables)

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await until(app, lambda: _actual(app) == "streaming", what="streaming")
        await pilot.press("7")
        await until(app, lambda: ops.config().pipelines, what="config loaded")
        await pilot.press("tab", "tab", "e")  # the pipelines list, edit the selected one
        await pilot.pause()
        assert isinstance(app.screen, PipelineForm)
        app.screen.query_one("#tables", Input).value = "public.items,public.more"
        await pilot.press("enter")
        await until(app, lambda: "public.more" in ops.config().pipelines[0].tables, what="written to the config DB")
        await until(app, lambda: ops.config().pipelines[0].applied, what="applied by the manager")
        await until(app, table_ready, what="the new table copied and streaming")

    run_console(ops, scenario)
    assert duck_rows(duck, "SELECT id, v FROM main.more ORDER BY id") == source_rows(
        source_dsn, "SELECT id, v FROM more ORDER BY id"
    )


def test_column_types_from_the_config_screen_reach_the_engine(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    setup_items(source_dsn, 20)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE amounts (id int PRIMARY KEY, amount numeric)")
        conn.execute("INSERT INTO amounts SELECT g, g * 1.25 FROM generate_series(1, 30) g")
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    ops = Operations(settings)

    def stored() -> tuple[tuple[str, ...], tuple[str, ...]]:
        view = ops.config().pipelines[0]
        return view.tables, view.column_types

    def amounts_ready() -> bool:
        view = ops.board().pipeline("p1")
        return view is not None and any(t.name == "public.amounts" and t.phase == "ready" for t in view.tables)

    async def edit(app: EtlApp, pilot: Pilot[None], tables: str, column_types: str) -> None:
        await pilot.press("e")  # the pipelines list is focused: edit p1
        await pilot.pause()
        form = app.screen
        assert isinstance(form, PipelineForm)
        form.query_one("#tables", Input).value = tables
        form.query_one("#column_types", TextArea).text = column_types
        await pilot.press("enter")

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await until(app, lambda: _actual(app) == "streaming", what="streaming")
        runner = next(iter(ops.manager.runners.values()))
        await pilot.press("7")
        await until(app, lambda: ops.config().pipelines, what="config loaded")
        await pilot.press("tab", "tab")
        # the engine refuses an override of a table the pipeline would not replicate: nothing is written
        await edit(app, pilot, "public.items,public.amounts", "public.elsewhere.amount=text")
        await until(
            app,
            lambda: any("does not replicate table public.elsewhere" in n.message for n in app._notifications),
            what="the refusal shown",
        )
        assert stored() == (("public.items",), ())
        await edit(app, pilot, "public.items,public.amounts", "public.amounts.amount=text")
        await until(app, lambda: stored() == (("public.amounts", "public.items"), ("public.amounts.amount=text",)))
        await until(app, lambda: ops.config().pipelines[0].applied, what="applied by the manager")
        await until(app, amounts_ready, what="amounts copied with its column type")
        assert next(iter(ops.manager.runners.values())) is not runner  # a changed spec: a new runner
        await pilot.press("e")  # shown filled when editing again
        await pilot.pause()
        assert app.screen.query_one("#column_types", TextArea).text == "public.amounts.amount=text"
        await pilot.press("escape")

    run_console(ops, scenario)
    assert duck_rows(
        duck, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'amounts' AND column_name = 'amount'"
    ) == [("VARCHAR",)]
    assert duck_rows(duck, "SELECT id, amount FROM main.amounts ORDER BY id") == source_rows(
        source_dsn, "SELECT id, amount::text FROM amounts ORDER BY id"
    )


def test_readonly_console_refuses_to_pause(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    setup_items(source_dsn, 10)
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items")

    async def scenario(app: EtlApp, pilot: Pilot[None]) -> None:
        await until(app, lambda: _actual(app) == "streaming", what="streaming")
        assert "READ-ONLY" in str(app.screen.query_one("#mode").render())
        await pilot.press("p")
        await asyncio.sleep(1.5)
        app.refresh_now()
        assert _status(settings) is PipelineStatus.START
        assert _actual(app) == "streaming"
        assert any("read-only" in n.message.lower() for n in app._notifications)

    run_console(Operations(settings, readonly=True), scenario)
