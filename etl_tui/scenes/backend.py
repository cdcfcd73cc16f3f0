"""A backend over the scenes that records every action instead of changing anything: what the
snapshot and pilot tests and ``python -m etl_tui.screenshots`` drive the console with."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.errors import ErrorKind, EtlError
from engine.preflight import CheckReport
from engine.status.board import Board, ConfigView, RedisKeyView
from etl_tui.scenes.board import board
from etl_tui.scenes.checks import check_report
from etl_tui.scenes.config import config
from etl_tui.scenes.redis_keys import redis_keys


class SceneBackend:
    """A :class:`~etl_tui.backend.Backend` over the scenes that records every action.

    ``gate``: when given, every action waits for it (to prove the UI stays responsive meanwhile).
    ``fail_with``: actions raise it instead of succeeding.
    """

    def __init__(
        self,
        *,
        readonly: bool = False,
        gate: threading.Event | None = None,
        fail_with: EtlError | None = None,
    ) -> None:
        self._readonly = readonly
        self.current = board()
        self.config_view = config()
        self.keys = redis_keys()
        self.gate = gate
        self.fail_with = fail_with
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self._lock = threading.Lock()

    @property
    def readonly(self) -> bool:
        return self._readonly

    def board(self) -> Board:
        return self.current

    def redis_keys(self, match: str = "etl:*", limit: int = 500) -> list[RedisKeyView]:
        return [k for k in self.keys if fnmatch.fnmatchcase(k.key, match)][:limit]

    def config(self) -> ConfigView:
        return self.config_view

    check_runs = 0  # how often run_checks was called

    def run_checks(self, pipeline: str | None = None) -> CheckReport:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.check_runs += 1
        report = check_report()
        if pipeline is None:
            return report
        sources = tuple(
            replace(src, pipelines=tuple(p for p in src.pipelines if p.pipeline == pipeline))
            for src in report.sources
            if any(p.pipeline == pipeline for p in src.pipelines)
        )
        return replace(report, sources=sources)

    def _act(self, name: str, *args: object) -> None:
        if self._readonly:
            raise EtlError(
                "the console is read-only", "start it without --readonly to change anything", kind=ErrorKind.CONFIG
            )
        if self.gate is not None:
            self.gate.wait(timeout=30)
        with self._lock:
            self.calls.append((name, args))
        if self.fail_with is not None:
            raise self.fail_with

    def start_pipeline(self, name: str) -> None:
        self._act("start_pipeline", name)

    def pause_pipeline(self, name: str) -> None:
        self._act("pause_pipeline", name)

    def retry_table(self, pipeline: str, table: str) -> None:
        self._act("retry_table", pipeline, table)

    def resync_table(self, pipeline: str, table: str) -> None:
        self._act("resync_table", pipeline, table)

    def save_source(self, name: str, dsn: str | None, *, original: str | None = None) -> None:
        self._act("save_source", name, dsn, original)

    def delete_source(self, name: str) -> None:
        self._act("delete_source", name)

    def save_destination(self, name: str, type_: str, options: dict[str, str], *, original: str | None = None) -> None:
        self._act("save_destination", name, type_, dict(options), original)

    def delete_destination(self, name: str) -> None:
        self._act("delete_destination", name)

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
        types = tuple(column_types) if column_types is not None else None
        self._act("save_pipeline", name, source, destination, tables, original, types)

    def delete_pipeline(self, name: str) -> None:
        self._act("delete_pipeline", name)

    def with_pipeline(self, name: str, **changes: Any) -> None:
        """Replace fields of one pipeline in the published board (tests of live updates)."""
        pipelines = tuple(replace(p, **changes) if p.name == name else p for p in self.current.pipelines)
        self.current = replace(self.current, pipelines=pipelines)
