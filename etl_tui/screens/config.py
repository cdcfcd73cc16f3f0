"""Sources, destinations and pipelines as stored in the config DB; create / edit / delete them.

Saving writes the desired state only; the running engine picks it up, and a pipeline shows
"pending" until the engine runs exactly what is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from engine.status.board import Board, ConfigView
from etl_tui.backend import Backend
from etl_tui.bindings import screen_bindings
from etl_tui.messages import ConfigChanged
from etl_tui.presenters.cells import Row, filter_rows
from etl_tui.presenters.config import config_status_cell, destination_rows, pipeline_config_rows, source_rows
from etl_tui.screens.base import BoardScreen
from etl_tui.screens.confirm import TypeNameModal
from etl_tui.screens.forms import (
    DestinationDraft,
    DestinationForm,
    PipelineDraft,
    PipelineForm,
    SourceDraft,
    SourceForm,
)
from etl_tui.screens.loader import Loader
from etl_tui.widgets.keyed_table import Column, KeyedTable
from etl_tui.widgets.styles import lines_text

SOURCE_COLUMNS = (Column("name", "NAME"), Column("dsn", "DSN (password masked)"))
DESTINATION_COLUMNS = (
    Column("name", "NAME"),
    Column("type", "TYPE"),
    Column("target", "TARGET"),
    Column("options", "OPTIONS"),
)
PIPELINE_COLUMNS = (
    Column("name", "NAME"),
    Column("source", "SOURCE"),
    Column("destination", "DESTINATION"),
    Column("status", "STATUS"),
    Column("tables", "TABLES"),
    Column("applied", "ENGINE"),
)
KIND_TITLES = {"sources": "source", "destinations": "destination", "config-pipelines": "pipeline"}


class ConfigScreen(BoardScreen):
    SCOPE = "config"
    BINDINGS: ClassVar[list[BindingType]] = screen_bindings("config")

    def __init__(self) -> None:
        super().__init__()
        self.stored: Loader[ConfigView] = Loader(self, lambda backend: backend.config(), group="config-read")
        self._list = "sources"

    @property
    def config(self) -> ConfigView | None:
        """The config as last read from the config DB (None until it has been read)."""
        return self.stored.value

    def compose_body(self) -> ComposeResult:
        yield Static(id="config-status", classes="summary")
        yield KeyedTable(SOURCE_COLUMNS, id="sources", classes="config-list")
        yield KeyedTable(DESTINATION_COLUMNS, id="destinations", classes="config-list")
        yield KeyedTable(PIPELINE_COLUMNS, id="config-pipelines", classes="config-list")

    def main_table(self) -> KeyedTable | None:
        return self.query_one(f"#{self._list}", KeyedTable)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.load_config()

    def on_descendant_focus(self) -> None:
        # a/e/d act on the list the operator last focused (highlight events fire on every refresh)
        focused = self.focused
        if isinstance(focused, KeyedTable) and focused.id in KIND_TITLES:
            self._list = focused.id

    # ---- loading ----------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self.load_config()

    def load_config(self) -> None:
        self.stored.load()

    @on(ConfigChanged)
    def _config_changed(self) -> None:
        self.load_config()

    def show_board(self, board: Board, now: float) -> None:
        status = config_status_cell(self.stored.value, self.stored.failure, readonly=self.etl.readonly)
        self.query_one("#config-status", Static).update(lines_text([status]))
        config = self.config or ConfigView()
        lists: list[tuple[str, str, Callable[[ConfigView], list[Row]]]] = [
            ("sources", "Sources", source_rows),
            ("destinations", "Destinations", destination_rows),
            ("config-pipelines", "Pipelines", pipeline_config_rows),
        ]
        for table_id, title, rows_of in lists:
            table = self.query_one(f"#{table_id}", KeyedTable)
            rows = rows_of(config)
            table.border_title = f"{title} ({len(rows)})"
            table.sync(filter_rows(rows, self.filter_text))

    # ---- actions ----------------------------------------------------------------------------------
    def _kind(self) -> str:
        return KIND_TITLES[self._list]

    def _selected(self) -> str | None:
        key = self.query_one(f"#{self._list}", KeyedTable).selected_key
        if key is None:
            self.notify(f"no {self._kind()} selected", severity="warning")
        return key

    def action_add_item(self) -> None:
        self._open_form(None)

    def action_edit_item(self) -> None:
        name = self._selected()
        if name is not None:
            self._open_form(name)

    def _open_form(self, name: str | None) -> None:
        config = self.config or ConfigView()
        if self._list == "sources":
            source = next((s for s in config.sources if s.name == name), None)

            def save_source(d: SourceDraft | None) -> None:
                if d is not None:
                    self._save(
                        f"save source {d.name}", lambda backend: backend.save_source(d.name, d.dsn, original=d.original)
                    )

            self.app.push_screen(SourceForm(source), save_source)
        elif self._list == "destinations":
            dest = next((d for d in config.destinations if d.name == name), None)

            def save_destination(d: DestinationDraft | None) -> None:
                if d is not None:
                    self._save(
                        f"save destination {d.name}",
                        lambda backend: backend.save_destination(d.name, d.type, d.options, original=d.original),
                    )

            self.app.push_screen(DestinationForm(dest), save_destination)
        else:
            pipeline = next((p for p in config.pipelines if p.name == name), None)

            def save_pipeline(d: PipelineDraft | None) -> None:
                if d is not None:
                    self._save(
                        f"save pipeline {d.name}",
                        lambda backend: backend.save_pipeline(
                            d.name, d.source, d.destination, d.tables, original=d.original, column_types=d.column_types
                        ),
                    )

            self.app.push_screen(
                PipelineForm([s.name for s in config.sources], [d.name for d in config.destinations], pipeline),
                save_pipeline,
            )

    def action_delete_item(self) -> None:
        name = self._selected()
        if name is None:
            return
        kind = self._kind()
        deletes: dict[str, Callable[[Backend], None]] = {
            "source": lambda backend: backend.delete_source(name),
            "destination": lambda backend: backend.delete_destination(name),
            "pipeline": lambda backend: backend.delete_pipeline(name),
        }
        consequence = {
            "source": "Pipelines that read from it must be removed first.",
            "destination": "Pipelines that write to it must be removed first. The destination's data stays.",
            "pipeline": "Its replication slot, publication and state are dropped; target tables stay.",
        }[kind]

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._save(f"delete {kind} {name}", deletes[kind])

        self.app.push_screen(
            TypeNameModal(title=f"Delete {kind} {name}?", message=consequence, expected=name, confirm_label="Delete"),
            confirmed,
        )

    def _save(self, label: str, write: Callable[[Backend], None]) -> None:
        def write_then_announce(backend: Backend) -> None:
            try:
                write(backend)
            finally:  # accepted or refused, the list shows what is stored now
                self.post_message(ConfigChanged())

        self.etl.perform(label, write_then_announce)
