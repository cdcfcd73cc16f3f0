"""The reconnect delay of the threads that keep a connection of their own: the WAL monitor's
source pollers and config DB reads, and the status collector's config DB reads."""

from __future__ import annotations

MAX_RECONNECT_DELAY = 30.0


class Backoff:
    """When a failed connection may be tried again: 1 s, then doubling up to ``cap``."""

    def __init__(self, cap: float = MAX_RECONNECT_DELAY) -> None:
        self.next_at = 0.0
        self.delay = 1.0
        self._cap = cap

    def failed(self, now: float) -> None:
        self.next_at = now + self.delay
        self.delay = min(self.delay * 2, self._cap)

    def succeeded(self) -> None:
        self.next_at, self.delay = 0.0, 1.0
