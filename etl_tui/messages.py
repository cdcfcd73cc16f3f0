"""Messages that worker threads post back to the UI thread (post_message is thread-safe; touching
widgets from a worker is not)."""

from __future__ import annotations

from textual.message import Message

from etl_tui.presenters.failure import Failure


class ActionFinished(Message):
    """A changing backend call ended: ``failure`` None means it was accepted."""

    def __init__(self, label: str, failure: Failure | None) -> None:
        super().__init__()
        self.label = label
        self.failure = failure


class ConfigChanged(Message):
    """A write to the config DB ended (accepted or not): the config screen reads the stored config
    again. Posted by the screen that wrote, on itself, from the write's worker thread; it bubbles
    to the app, so another view of the config can react to it too."""
