"""What the console needs from the engine: one seam, so screens can be tested over scenes.

The real implementation is :class:`engine.runtime.operations.Operations` (engine threads, config DB,
Redis); tests use the deterministic :mod:`etl_tui.scenes`. Every method may block on I/O: the app
calls them from worker threads, never from the UI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.preflight import CheckReport
from engine.status.board import Board, ConfigView, RedisKeyView


class Backend(Protocol):
    @property
    def readonly(self) -> bool: ...

    def board(self) -> Board:
        """The latest published board (cheap: no I/O)."""
        ...

    def redis_keys(self, match: str = "etl:*", limit: int = 500) -> list[RedisKeyView]:
        """The engine's keys by SCAN (never KEYS), read-only."""
        ...

    def config(self) -> ConfigView: ...

    def run_checks(self, pipeline: str | None = None) -> CheckReport:
        """Pre-flight checks of every pipeline (or one), as ``etl-tui check``: slow (it queries each
        source) but read-only, so allowed in a read-only console."""
        ...

    # ---- actions (each raises engine.errors.EtlError with reason and hint on failure, and
    # ReadOnlyError when the console runs with --readonly) -------------------------------------
    def start_pipeline(self, name: str) -> None: ...

    def pause_pipeline(self, name: str) -> None: ...

    def retry_table(self, pipeline: str, table: str) -> None: ...

    def resync_table(self, pipeline: str, table: str) -> None: ...

    def save_source(self, name: str, dsn: str | None, *, original: str | None = None) -> None:
        """Create (original None) or edit a source; dsn None keeps the stored one (masked in forms)."""
        ...

    def delete_source(self, name: str) -> None: ...

    def save_destination(
        self, name: str, type_: str, options: dict[str, str], *, original: str | None = None
    ) -> None: ...

    def delete_destination(self, name: str) -> None: ...

    def save_pipeline(
        self,
        name: str,
        source: str,
        destination: str,
        tables: str,
        *,
        original: str | None = None,
        column_types: Sequence[str] | None = None,
    ) -> None:
        """``tables`` as on the command line: public.a,public."Order Items". ``column_types``: every
        override the pipeline is to have, each as ``--column-type`` takes it
        (public.orders.amount=text); those left out are removed, None keeps the stored ones."""
        ...

    def delete_pipeline(self, name: str) -> None: ...
