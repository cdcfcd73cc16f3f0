"""Messages that worker threads post back to the UI thread (post_message is thread-safe; touching
widgets from a worker is not)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine.status.board import ConfigView, RedisKeyView


@dataclass
class Failure:
    reason: str
    hint: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """reason + hint of an EtlError; anything else by its message (it is still worth showing)."""
        reason = getattr(exc, "reason", None)
        if isinstance(reason, str):
            return cls(reason, str(getattr(exc, "hint", "") or ""))
        return cls(str(exc) or type(exc).__name__)


class ActionFinished(Message):
    """A changing backend call ended: ``failure`` None means it was accepted."""

    def __init__(self, label: str, failure: Failure | None, *, config_changed: bool) -> None:
        super().__init__()
        self.label = label
        self.failure = failure
        self.config_changed = config_changed


class RedisKeysLoaded(Message):
    def __init__(self, keys: list[RedisKeyView] | None, failure: Failure | None, match: str) -> None:
        super().__init__()
        self.keys = keys
        self.failure = failure
        self.match = match


class ConfigLoaded(Message):
    def __init__(self, config: ConfigView | None, failure: Failure | None) -> None:
        super().__init__()
        self.config = config
        self.failure = failure
