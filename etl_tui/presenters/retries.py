"""When an error is retried, as a countdown or as what the operator has to do."""

from __future__ import annotations

import math

from engine.status.board import ErrorView
from etl_tui.presenters.units import human_duration


def retry_label(error: ErrorView, now: float) -> str:
    """ "retry in 12s" for a timed retry, otherwise what the operator has to do."""
    if error.retry_policy == "timed":
        if error.next_retry_at is None:
            return "retrying"
        left = error.next_retry_at - now
        # rounded up: "retry in 0s" would be a lie while the retry has not happened yet
        return "retrying now" if left <= 0 else f"retry in {human_duration(math.ceil(left))}"
    if error.retry_policy == "manual":
        return "manual retry"
    return "no retry"


def retry_help(error: ErrorView, now: float) -> str:
    """The retry policy spelled out, for the detail screen."""
    if error.retry_policy == "timed":
        return f"timed: {retry_label(error, now)} (backoff, no action needed)"
    if error.retry_policy == "manual":
        return "manual: fix the cause, then press r to retry"
    return "none: fix the cause, then resync (R)"
