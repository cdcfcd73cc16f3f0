"""One value a screen loads off the UI thread: Redis keys, the stored config, pre-flight checks.

A worker calls the backend (which may be slow or away); meanwhile the screen shows that it is
loading, then draws the value or why there is none. A failed load keeps the last value (shown
with the failure), and a result that arrives after a newer load began is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar

from textual.message import Message

from etl_tui.backend import Backend
from etl_tui.presenters.failure import Failure

if TYPE_CHECKING:
    from etl_tui.screens.base import BoardScreen

T = TypeVar("T")


class Loaded(Message, Generic[T]):
    """A loader's worker ended: ``failure`` None means ``value`` arrived."""

    def __init__(self, loader: Loader[T], run: int, value: T | None, failure: Failure | None) -> None:
        super().__init__()
        self.loader = loader
        self.run = run
        self.value = value
        self.failure = failure


class Loader(Generic[T]):
    """Loads ``fetch(backend)`` for ``screen`` in a worker of ``group`` (a newer load supersedes an
    older one); the screen's ``redraw`` runs when a load starts and when it ends."""

    def __init__(self, screen: BoardScreen, fetch: Callable[[Backend], T], *, group: str) -> None:
        self._screen = screen
        self._fetch = fetch
        self._group = group
        self._run = 0
        self.value: T | None = None
        """The last value loaded (None until one arrives)."""
        self.failure: Failure | None = None
        """Why the latest load failed (None after a success)."""
        self.loading = False

    def load(self) -> None:
        self._run += 1
        self.loading = True
        self._screen.redraw()
        self._screen.run_worker(
            partial(self._work, self._screen.etl.backend, self._run),
            thread=True,
            exclusive=True,
            group=self._group,
            exit_on_error=False,
        )

    def _work(self, backend: Backend, run: int) -> None:
        try:
            value = self._fetch(backend)
        except Exception as exc:  # shown on screen: the console must outlive a config DB or Redis outage
            self._screen.post_message(Loaded(self, run, None, Failure.of(exc)))
            return
        self._screen.post_message(Loaded(self, run, value, None))

    def finish(self, message: Loaded[T]) -> None:
        """Take the outcome of a load (on the UI thread)."""
        if message.run != self._run:
            return  # a load that ended after a newer one began
        self.loading = False
        self.failure = message.failure
        if message.failure is None:
            self.value = message.value
        self._screen.redraw()
