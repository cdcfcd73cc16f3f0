"""Confirmations with typed results (Posting-style). Destructive actions make the operator type the
object's name (k9s #3506), so a slip of a finger cannot resync a table or delete a pipeline."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class TypeNameModal(ModalScreen[bool]):
    """Dismisses with True only once ``expected`` has been typed exactly."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, *, title: str, message: str, expected: str, confirm_label: str) -> None:
        super().__init__()
        self._title = title
        self._message = message
        self._expected = expected
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="modal-dialog danger"):
            yield Label(self._title, classes="modal-title")
            yield Static(self._message, classes="modal-message")
            yield Label(f"Type [b]{self._expected}[/b] to confirm:", markup=True)
            yield Input(placeholder=self._expected, id="confirm-name")
            with Horizontal(classes="modal-buttons"):
                yield Button(self._confirm_label, variant="error", id="confirm", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm-name", Input).focus()

    @on(Input.Changed, "#confirm-name")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value != self._expected

    @on(Input.Submitted, "#confirm-name")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value == self._expected:
            self.dismiss(True)
        else:
            self.notify(f"type {self._expected} exactly, or press esc", severity="warning")

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.query_one("#confirm-name", Input).value == self._expected:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmModal(ModalScreen[bool]):
    """A yes / no question for reversible but disruptive steps (y or enter confirms)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, *, title: str, message: str, confirm_label: str) -> None:
        super().__init__()
        self._title = title
        self._message = message
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="modal-dialog"):
            yield Label(self._title, classes="modal-title")
            yield Static(self._message, classes="modal-message")
            with Horizontal(classes="modal-buttons"):
                yield Button(f"{self._confirm_label} (y)", variant="primary", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
