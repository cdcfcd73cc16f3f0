"""Create / edit forms for the config screen. Each dismisses with a typed draft (or None when
cancelled); the screen that opened it sends the draft to the backend from a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from engine.config.models import DestinationType
from engine.status_board import DestinationConfigView, PipelineConfigView, SourceConfigView
from etl_tui.presenters import FormError, required, source_dsn_for_save


@dataclass(frozen=True)
class SourceDraft:
    name: str
    dsn: str | None  # None: keep the stored DSN (the form never sees the password)
    original: str | None  # the name being edited; None creates


@dataclass(frozen=True)
class DestinationDraft:
    name: str
    type: str
    options: dict[str, str]
    original: str | None


@dataclass(frozen=True)
class PipelineDraft:
    name: str
    source: str
    destination: str
    tables: str  # as on the command line: public.a,public."Order Items"
    original: str | None


DraftT = TypeVar("DraftT")


class FormModal(ModalScreen[DraftT | None], Generic[DraftT]):
    """Fields, an error line, Save / Cancel. Enter in any field saves; esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    TITLE_TEXT = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="modal-dialog"):
            yield Label(self.TITLE_TEXT, classes="modal-title")
            yield from self.compose_fields()
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def compose_fields(self) -> ComposeResult:
        raise NotImplementedError

    def build(self) -> DraftT:
        """The draft from the fields; raises FormError with what to correct."""
        raise NotImplementedError

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def selected(self, field_id: str) -> str:
        choice = self.query_one(f"#{field_id}", Select).value
        return choice if isinstance(choice, str) else ""

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def action_save(self) -> None:
        try:
            draft = self.build()
        except FormError as exc:
            self.query_one("#form-error", Static).update(f"✖ {exc}")
            return
        self.dismiss(draft)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _field(label: str, widget: Input | Select[str]) -> ComposeResult:
    yield Label(label, classes="field-label")
    yield widget


class SourceForm(FormModal[SourceDraft]):
    def __init__(self, original: SourceConfigView | None = None) -> None:
        super().__init__()
        self.original = original
        self.TITLE_TEXT = f"Edit source {original.name}" if original else "New source"

    def compose_fields(self) -> ComposeResult:
        o = self.original
        yield from _field("Name", Input(o.name if o else "", placeholder="shop", id="name"))
        yield from _field(
            "DSN (password shown as ****; leave it as is to keep the stored one)" if o else "DSN",
            Input(o.dsn_redacted if o else "", placeholder="postgresql://replicator@db.internal:5432/shop", id="dsn"),
        )
        yield from _field(
            "Password (optional: goes into the DSN; empty keeps the one in the DSN)",
            Input("", password=True, id="password"),
        )

    def build(self) -> SourceDraft:
        dsn = source_dsn_for_save(
            self.value("dsn"),
            self.value("password"),
            original_redacted=self.original.dsn_redacted if self.original else None,
        )
        return SourceDraft(required(self.value("name"), "a name"), dsn, self.original.name if self.original else None)


class DestinationForm(FormModal[DestinationDraft]):
    def __init__(self, original: DestinationConfigView | None = None) -> None:
        super().__init__()
        self.original = original
        self.TITLE_TEXT = f"Edit destination {original.name}" if original else "New destination"

    def compose_fields(self) -> ComposeResult:
        o = self.original
        options = dict(o.options) if o else {}
        types = [(t.value, t.value) for t in DestinationType]
        yield from _field("Name", Input(o.name if o else "", placeholder="local", id="name"))
        yield from _field(
            "Type", Select(types, value=o.type if o else types[0][1], allow_blank=False, id="type")
        )
        yield from _field("Path (duckdb file)", Input(options.get("path", ""), placeholder="./shop.duckdb", id="path"))
        yield from _field("Schema of the target tables", Input(options.get("schema", "main"), id="schema"))
        yield from _field(
            "Schema of the landing tables", Input(options.get("landing_schema", "etl_landing"), id="landing_schema")
        )

    def build(self) -> DestinationDraft:
        type_ = self.selected("type")
        options = {
            "path": self.value("path").strip(),
            "schema": self.value("schema").strip() or "main",
            "landing_schema": self.value("landing_schema").strip() or "etl_landing",
        }
        if type_ == DestinationType.DUCKDB and not options["path"]:
            raise FormError("a duckdb destination needs the path of its database file")
        return DestinationDraft(
            required(self.value("name"), "a name"), type_, options, self.original.name if self.original else None
        )


class PipelineForm(FormModal[PipelineDraft]):
    def __init__(
        self, sources: list[str], destinations: list[str], original: PipelineConfigView | None = None
    ) -> None:
        super().__init__()
        self.sources = sources
        self.destinations = destinations
        self.original = original
        self.TITLE_TEXT = f"Edit pipeline {original.name}" if original else "New pipeline"

    def compose_fields(self) -> ComposeResult:
        o = self.original
        yield from _field("Name", Input(o.name if o else "", placeholder="shop_sync", id="name"))
        yield from _field(
            "Source",
            Select([(s, s) for s in self.sources], value=o.source if o else Select.NULL, prompt="choose a source",
                   id="source"),
        )
        yield from _field(
            "Destination",
            Select([(d, d) for d in self.destinations], value=o.destination if o else Select.NULL,
                   prompt="choose a destination", id="destination"),
        )
        yield from _field(
            'Tables (comma-separated; quote names that need it: public."Order Items")',
            Input(",".join(o.tables) if o else "", placeholder="public.orders,public.customers", id="tables"),
        )

    def build(self) -> PipelineDraft:
        source = self.selected("source")
        destination = self.selected("destination")
        if not source:
            raise FormError("choose a source")
        if not destination:
            raise FormError("choose a destination")
        return PipelineDraft(
            required(self.value("name"), "a name"),
            source,
            destination,
            required(self.value("tables"), "at least one table"),
            self.original.name if self.original else None,
        )
