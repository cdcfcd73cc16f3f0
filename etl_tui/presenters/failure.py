"""An exception as the operator reads it: its reason and, for an EtlError, the hint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
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
