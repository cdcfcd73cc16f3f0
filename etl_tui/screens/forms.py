"""Create / edit forms for the config screen. Each dismisses with a typed draft (or None when
cancelled); the screen that opened it sends the draft to the backend from a worker."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

from engine.config.destination_options import Loader, SnowflakeProtocol, destination_config, parse_flag
from engine.config.models import DestinationType
from engine.errors import ConfigError
from engine.status.board import DestinationConfigView, PipelineConfigView, SourceConfigView
from etl_tui.presenters.forms import FormError, column_type_entries, required, source_dsn_for_save


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
    column_types: tuple[str, ...] = ()  # every override, each as --column-type takes it


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


def _field(label: str, widget: Input | Select[str] | TextArea) -> ComposeResult:
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


@dataclass(frozen=True)
class _Field:
    key: str
    label: str
    types: frozenset[DestinationType]
    placeholder: str = ""


_DUCKDB = frozenset({DestinationType.DUCKDB})
_SNOWFLAKE = frozenset({DestinationType.SNOWFLAKE})
_BOTH = _DUCKDB | _SNOWFLAKE
# Text fields, in form order; protocol, loader and the two switches follow them.
_DESTINATION_FIELDS = (
    _Field("path", "Path (duckdb file)", _DUCKDB, "./shop.duckdb"),
    _Field("account", "Account", _SNOWFLAKE, "myorg-myaccount"),
    _Field("user", "User", _SNOWFLAKE, "ETL_LOADER"),
    _Field("database", "Database", _SNOWFLAKE, "ANALYTICS"),
    _Field("schema", "Schema of the target tables", _BOTH),
    _Field("landing_schema", "Schema of the landing tables", _BOTH),
    _Field("warehouse", "Warehouse", _SNOWFLAKE, "optional: the user's default"),
    _Field("role", "Role", _SNOWFLAKE, "optional: the user's default"),
    _Field("private_key_file", "Private key file", _SNOWFLAKE, "key-pair authentication, e.g. ~/.snowflake/etl_key.p8"),
    _Field("private_key_passphrase_env", "Passphrase env var", _SNOWFLAKE, "optional: name of the variable"),
    _Field("password_env", "Password env var", _SNOWFLAKE, "instead of a key: name of the variable"),
    _Field("host", "Host", _SNOWFLAKE, "optional: an emulator or a proxy"),
    _Field("port", "Port", _SNOWFLAKE, "with a host"),
)
_SCHEMA_PLACEHOLDERS = {
    DestinationType.DUCKDB: ("main", "etl_landing"),
    DestinationType.SNOWFLAKE: ("required, e.g. PUBLIC", "ETL_LANDING"),
}


class DestinationForm(FormModal[DestinationDraft]):
    """One row per option, only those of the chosen type shown. Secrets are never typed here:
    a key file and the names of environment variables, checked as the command line checks them."""

    DEFAULT_CSS = """
    DestinationForm .form-row { height: 1; }
    DestinationForm .form-row Label { width: 30; color: $text-muted; }
    DestinationForm .form-row Input, DestinationForm .form-row Select { width: 1fr; }
    DestinationForm .form-switches { height: 1; margin-top: 1; }
    DestinationForm .form-switches Checkbox { width: auto; margin-right: 2; }
    """

    def __init__(self, original: DestinationConfigView | None = None) -> None:
        super().__init__()
        self.original = original
        self.TITLE_TEXT = f"Edit destination {original.name}" if original else "New destination"

    def compose_fields(self) -> ComposeResult:
        o = self.original
        options = dict(o.options) if o else {}
        types = [(t.value, t.value) for t in DestinationType]
        yield from _row("Name", Input(o.name if o else "", placeholder="local", id="name", compact=True), _BOTH)
        yield from _row(
            "Type",
            Select(types, value=o.type if o else types[0][1], allow_blank=False, id="type", compact=True),
            _BOTH,
        )
        for f in _DESTINATION_FIELDS:
            widget = Input(options.get(f.key, ""), placeholder=f.placeholder, id=f.key, compact=True)
            yield from _row(f.label, widget, f.types)
        yield from _row(
            "Protocol",
            Select(
                _choices(SnowflakeProtocol),
                value=options.get("protocol", "https"),
                allow_blank=False,
                id="protocol",
                compact=True,
            ),
            _SNOWFLAKE,
        )
        yield from _row(
            "Loader",
            Select(_choices(Loader), value=options.get("loader", "copy"), allow_blank=False, id="loader", compact=True),
            _SNOWFLAKE,
        )
        with Horizontal(classes="form-switches"):
            yield Checkbox(
                "Keep deleted rows (flagged _etl_deleted)",
                _flag(options, "soft_deletes", False),
                id="soft_deletes",
                compact=True,
            )
            yield Checkbox(
                "MERGE in a transaction (off only for emulators such as fakesnow)",
                _flag(options, "transactions", True),
                id="transactions",
                compact=True,
            )

    def on_mount(self) -> None:
        self._show(self._type())

    @on(Select.Changed, "#type")
    def _type_changed(self) -> None:
        self._show(self._type())

    def _type(self) -> DestinationType:
        return DestinationType(self.selected("type") or DestinationType.DUCKDB)

    def _show(self, type_: DestinationType) -> None:
        for row in self.query(".form-row"):
            row.display = row.has_class(f"for-{type_}")
        self.query_one("#transactions", Checkbox).display = type_ is DestinationType.SNOWFLAKE
        schema, landing = _SCHEMA_PLACEHOLDERS[type_]
        self.query_one("#schema", Input).placeholder = schema
        self.query_one("#landing_schema", Input).placeholder = landing

    def build(self) -> DestinationDraft:
        name = required(self.value("name"), "a name")
        type_ = self._type()
        options = {f.key: self.value(f.key).strip() for f in _DESTINATION_FIELDS if type_ in f.types}
        if type_ is DestinationType.SNOWFLAKE:
            if options.get("host"):
                options["protocol"] = self.selected("protocol")
            options["loader"] = self.selected("loader")
            if not self.query_one("#transactions", Checkbox).value:
                options["transactions"] = "false"
        if self.query_one("#soft_deletes", Checkbox).value:
            options["soft_deletes"] = "true"
        options = {k: v for k, v in options.items() if v}
        try:
            destination_config(type_, options, name=name)
        except ConfigError as exc:
            raise FormError(str(exc)) from None
        return DestinationDraft(name, str(type_), options, self.original.name if self.original else None)


def _row(label: str, widget: Input | Select[str], types: frozenset[DestinationType]) -> ComposeResult:
    with Horizontal(classes="form-row " + " ".join(f"for-{t}" for t in sorted(types))):
        yield Label(label)
        yield widget


def _choices(values: type[StrEnum]) -> list[tuple[str, str]]:
    return [(v.value, v.value) for v in values]


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    try:
        return parse_flag(options[key]) if key in options else default
    except ConfigError:
        return default


class PipelineForm(FormModal[PipelineDraft]):
    """Column types: overrides of the type an unbounded numeric column gets, as ``--column-type``
    takes them; a table takes a changed one when it is next copied."""

    # source and destination side by side, so the form and a two-line error fit in 40 rows
    DEFAULT_CSS = """
    PipelineForm .form-pair { height: auto; }
    PipelineForm .form-pair Vertical { height: auto; width: 1fr; }
    PipelineForm .form-pair Vertical:first-child { margin-right: 2; }
    PipelineForm #column_types { height: 5; }
    """

    def __init__(self, sources: list[str], destinations: list[str], original: PipelineConfigView | None = None) -> None:
        super().__init__()
        self.sources = sources
        self.destinations = destinations
        self.original = original
        self.TITLE_TEXT = f"Edit pipeline {original.name}" if original else "New pipeline"

    def compose_fields(self) -> ComposeResult:
        o = self.original
        yield from _field("Name", Input(o.name if o else "", placeholder="shop_sync", id="name"))
        with Horizontal(classes="form-pair"):
            with Vertical():
                yield from _field(
                    "Source",
                    Select(
                        [(s, s) for s in self.sources],
                        value=o.source if o else Select.NULL,
                        prompt="choose a source",
                        id="source",
                    ),
                )
            with Vertical():
                yield from _field(
                    "Destination",
                    Select(
                        [(d, d) for d in self.destinations],
                        value=o.destination if o else Select.NULL,
                        prompt="choose a destination",
                        id="destination",
                    ),
                )
        yield from _field(
            'Tables (comma-separated; quote names that need it: public."Order Items")',
            Input(",".join(o.tables) if o else "", placeholder="public.orders,public.customers", id="tables"),
        )
        yield from _field(
            "Column types (optional: schema.table.column=type, one per line or comma-separated)",
            TextArea(
                "\n".join(o.column_types) if o else "",
                placeholder="public.orders.amount=decimal(38,12)  (types: text, decimal(p,s), auto)",
                id="column_types",
            ),
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
            column_type_entries(self.query_one("#column_types", TextArea).text),
        )
