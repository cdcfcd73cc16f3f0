"""What the console calls: the engine it hosts, its status board, and the operator's actions.

:class:`Operations` runs the :class:`~engine.runtime.manager.Manager` and the status
:class:`~engine.status.collector.Collector` in threads, and implements the console's ``Backend`` seam
(``etl_tui.backend``) structurally, without importing it. Every action goes through the config DB
(and, for a resync, the engine's admin functions) — never around it — so the manager reconciles
the running engine exactly as it would after the same command on the CLI. Each action is logged
as a ``config`` event with what changed; DSNs appear only redacted.

Methods may block on I/O (the console calls them from worker threads); :meth:`board` does not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
import redis

from engine.config.destination_options import destination_config
from engine.config.models import DestinationType, PipelineSpec, PipelineStatus, parse_column_type
from engine.config.repository import ColumnTypeChange, ConfigRepository
from engine.errors import ConfigError, ErrorKind, EtlError, RetryPolicy
from engine.identifiers import TableName, display_ident, parse_table_list, parse_table_name
from engine.monitoring.wal_monitor import WalMonitor
from engine.pipeline.activity import EventKind, RunnerEvent
from engine.preflight import CheckReport, run_preflight
from engine.runtime import admin
from engine.runtime.manager import Manager
from engine.runtime.service import engine_services
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase
from engine.status.board import (
    Board,
    BoardFeed,
    ConfigView,
    DestinationConfigView,
    EventView,
    PipelineConfigView,
    RedisKeyView,
    SourceConfigView,
)
from engine.status.collector import Collector, event_view
from engine.status.redis_keys import inspect_keys

log = logging.getLogger("etl.operations")

# Shown first, in this order, in a destination's options; any others follow by name.
_OPTION_ORDER = ("path", "schema", "landing_schema")
# Options that say where the target tables and the checkpoint are (the landing schema is scratch).
# options that say where a destination's tables are: they cannot change under running pipelines
_WHERE_DATA_LIVES = ("path", "schema", "account", "database", "host", "port")


class ReadOnlyError(EtlError):
    """The console runs with --readonly: nothing may change."""

    kind = ErrorKind.CONFIG
    retry = RetryPolicy.NONE

    def __init__(self, action: str) -> None:
        super().__init__(
            f"read-only console: {action} is not allowed",
            "restart the console without --readonly to make changes",
        )


def _redis_client(url: str, timeout: float) -> redis.Redis:
    # No PING here: the console opens even when Redis is down, and says so in its health row.
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0), health_check_interval=30
    )


class Operations:
    def __init__(
        self,
        settings: Settings,
        *,
        readonly: bool = False,
        feed: BoardFeed | None = None,
        manager: Manager | None = None,
        interval: float = 1.0,
    ) -> None:
        self._settings = settings
        self._readonly = readonly
        self.feed = feed or BoardFeed()
        self.manager = manager or Manager(
            settings.config_db_url,
            _redis_client(settings.redis_url, 10.0),
            limits=settings.batch,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
        # the console's own client, with short timeouts: a stuck Redis shows up as unhealthy quickly
        self._redis = _redis_client(settings.redis_url, 3.0)
        self.monitor = WalMonitor.from_settings(settings, self.manager)
        self.collector = Collector(
            self.manager, settings.config_db_url, self._redis, self.feed, interval=interval, monitor=self.monitor
        )
        self._services = ExitStack()  # the metrics endpoint and the WAL monitor, while the engine runs
        self._stop = threading.Event()
        self._engine: threading.Thread | None = None
        self._reader: ConfigRepository | None = None  # for config(), which the console calls often
        self._reader_lock = threading.Lock()
        self._migrated = False

    @property
    def readonly(self) -> bool:
        return self._readonly

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the engine and the collector in background threads."""
        if self._engine is not None:
            return
        self._stop.clear()
        self._engine = threading.Thread(target=self.manager.run, args=(self._stop,), name="manager", daemon=True)
        self._engine.start()
        self._services.enter_context(
            engine_services(self._settings, self.manager, monitor=self.monitor, on_problem=self._problem)
        )
        self.collector.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Drain and stop every runner (as SIGTERM does headless), then the collector."""
        self._stop.set()
        if self._engine is not None:
            self._engine.join(timeout)
            if self._engine.is_alive():
                log.warning("the engine did not stop within %.0fs", timeout)
            self._engine = None
        self.collector.stop()
        self._services.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self._redis.close()

    def _problem(self, exc: EtlError) -> None:
        """Something beside replication failed to start (the metrics port): shown as an event."""
        self.collector.record(
            event_view(RunnerEvent(time.time(), "", EventKind.ERROR, f"{exc.reason} (hint: {exc.hint})"))
        )

    def __enter__(self) -> Operations:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- reading -------------------------------------------------------------------------------
    def board(self) -> Board:
        return self.feed.latest()

    def redis_keys(self, match: str = "etl:*", limit: int = 500) -> list[RedisKeyView]:
        return inspect_keys(self._redis, match, limit)

    def config(self) -> ConfigView:
        with self._reader_lock, _config_db_errors():
            try:
                if self._reader is None:
                    self._reader = self._connect()
                sources, destinations, specs = self._reader.load_config()
            except BaseException:
                if self._reader is not None:
                    self._reader.close()
                self._reader = None
                raise
        running = self.manager.running_specs()
        return ConfigView(
            sources=tuple(SourceConfigView(s.name, s.dsn_redacted) for s in sources),
            destinations=tuple(
                DestinationConfigView(d.name, str(d.type), d.describe(), _options(d.config)) for d in destinations
            ),
            pipelines=tuple(
                PipelineConfigView(
                    name=s.name,
                    source=s.source.name,
                    destination=s.destination.name,
                    status=str(s.pipeline.status),
                    tables=tuple(str(t) for t in s.pipeline.tables),
                    applied=_applied(s, running.get(s.id)),
                    column_types=tuple(str(o) for o in s.pipeline.column_types),
                )
                for s in specs
            ),
        )

    # ---- pipeline actions ----------------------------------------------------------------------
    def start_pipeline(self, name: str) -> None:
        self._check("start a pipeline")
        with self._repository() as repo:
            repo.set_pipeline_status(name, PipelineStatus.START)
        self._changed(f"pipeline {name}: start requested", pipeline=name)

    def pause_pipeline(self, name: str) -> None:
        self._check("pause a pipeline")
        with self._repository() as repo:
            repo.set_pipeline_status(name, PipelineStatus.PAUSE)
        self._changed(f"pipeline {name}: pause requested", pipeline=name)

    def retry_table(self, pipeline: str, table: str) -> None:
        """Copy an errored table again (the cause fixed): the same operation as a table resync."""
        self._check("retry a table")
        target = parse_table_name(table)
        with self._repository() as repo:
            spec = _spec(repo, pipeline)
            st = PipelineState(self._redis, spec.id).load().get(target)
            if st is None or st.phase is not TablePhase.ERRORED:
                raise ConfigError(
                    f"table {target} of pipeline {pipeline} is not errored "
                    f"({st.phase if st is not None else 'not started'})",
                    "resync it instead to copy it again",
                )
            report = admin.resync_pipeline(repo, self._settings, pipeline, [target])
        self._changed(f"table {target}: retry requested — {report}", pipeline=pipeline, table=str(target))

    def resync_table(self, pipeline: str, table: str) -> None:
        self._check("resync a table")
        target = parse_table_name(table)
        with self._repository() as repo:
            report = admin.resync_pipeline(repo, self._settings, pipeline, [target])
        self._changed(f"table {target}: resync requested — {report}", pipeline=pipeline, table=str(target))

    # ---- config edits --------------------------------------------------------------------------
    def save_source(self, name: str, dsn: str | None, *, original: str | None = None) -> None:
        """Create (``original`` None) or edit a source; ``dsn`` None keeps the stored one."""
        self._check("change a source")
        dsn = dsn.strip() if dsn else None
        with self._repository() as repo:
            if original is None:
                if not dsn:
                    raise ConfigError(f"source {name!r} needs a DSN", "e.g. postgresql://user:password@host:5432/db")
                src = repo.add_source(name, dsn)
                self._changed(f'source "{name}" created ({src.dsn_redacted})')
                return
            old = repo.get_source(original)
            src = repo.update_source(original, new_name=name if name != original else None, dsn=dsn)
        changes = []
        if src.name != old.name:
            changes.append(f'renamed from "{old.name}"')
        if src.dsn != old.dsn:
            changes.append(f"DSN {old.dsn_redacted} → {src.dsn_redacted}")
        self._changed(f'source "{src.name}" edited: {", ".join(changes) or "nothing changed"}')

    def delete_source(self, name: str) -> None:
        self._check("delete a source")
        with self._repository() as repo:
            repo.remove_source(name)
        self._changed(f'source "{name}" deleted')

    def save_destination(self, name: str, type_: str, options: dict[str, str], *, original: str | None = None) -> None:
        self._check("change a destination")
        try:
            kind = DestinationType(type_)
        except ValueError:
            allowed = ", ".join(t.value for t in DestinationType)
            raise ConfigError(f"unknown destination type {type_!r}", f"use one of: {allowed}") from None
        config = destination_config(kind, options, name=name)
        with self._repository() as repo:
            if original is None:
                dest = repo.add_destination(name, kind, config)
                self._changed(f'destination "{name}" created ({dest.describe()})')
                return
            old = repo.get_destination(original)
            moved = [k for k in _WHERE_DATA_LIVES if old.config.get(k) != config.get(k)] + (
                ["type"] if old.type is not kind else []
            )
            users = [s.name for s in repo.load_specs() if s.destination.id == old.id]
            if moved and users:
                # The pipelines' tables and checkpoints are in the old place: pointing them elsewhere
                # would stream changes into empty tables there.
                raise ConfigError(
                    f"destination {original} is used by pipeline(s) {', '.join(users)}: "
                    f"its {' and '.join(moved)} cannot change",
                    "create a new destination and switch the pipeline to it (its tables are copied there again)",
                )
            dest = repo.update_destination(
                original, new_name=name if name != original else None, type_=kind, config=config
            )
        changes = []
        if dest.name != old.name:
            changes.append(f'renamed from "{old.name}"')
        for key in sorted(set(old.config) | set(dest.config)):
            before, after = old.config.get(key), dest.config.get(key)
            if before != after:
                changes.append(f"{key} {before!s} → {after!s}")
        self._changed(f'destination "{dest.name}" edited: {", ".join(changes) or "nothing changed"}')

    def delete_destination(self, name: str) -> None:
        self._check("delete a destination")
        with self._repository() as repo:
            repo.remove_destination(name)
        self._changed(f'destination "{name}" deleted')

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
        """Create (``original`` None, started at once) or edit a pipeline. ``tables`` as on the
        command line: public.a,public."Order Items". ``column_types``: every override the pipeline
        is to have, each as ``--column-type`` takes it (those left out are removed); None keeps the
        stored ones."""
        self._check("change a pipeline")
        wanted = parse_table_list(tables)
        typed = [parse_column_type(c) for c in column_types] if column_types is not None else None
        with self._repository() as repo:
            if original is None:
                checked = _checked_column_types(name, wanted, typed or ()).values()
                repo.add_pipeline(name, source, destination, wanted, PipelineStatus.START, checked)
                created = f"pipeline {name} created: {source} → {destination}, tables {', '.join(map(str, wanted))}"
                stored = repo.get_pipeline(name).column_types
                if stored:
                    created += "; column types " + ", ".join(map(str, stored))
                self._changed(created, pipeline=name)
                return
            old = _spec(repo, original)
            # refused before anything is written, so a bad override leaves the pipeline as it was
            type_changes = _column_type_changes(old, wanted, typed) if typed is not None else []
            if source != old.source.name:
                # The slot lives on the old source: moving would orphan it there (WAL kept forever)
                # and leave the new source without the changes made before.
                raise ConfigError(
                    f"pipeline {original} cannot move from source {old.source.name} to {source}: "
                    "its replication slot lives on the old source",
                    "delete the pipeline (that drops its slot) and create a new one on the other source",
                )
            new_destination = destination != old.destination.name
            repo.update_pipeline(
                original,
                new_name=name if name != original else None,
                destination=destination if new_destination else None,
                tables=wanted,
            )
            if type_changes:
                # after the tables, so an override may name a table added in the same save; the
                # changed spec restarts the runner, and a table takes its type when next copied
                repo.set_column_types(name, type_changes)
            report = ""
            if new_destination:
                # The new destination has none of the rows copied so far: copy every table again
                # there (the slot stays, so nothing is lost between the copies and the stream).
                report = admin.resync_pipeline(repo, self._settings, name, list(wanted))
        before, after = set(old.pipeline.tables), set(wanted)
        changes = []
        if name != original:
            changes.append(f"renamed from {original}")
        if new_destination:
            changes.append(f"destination {old.destination.name} → {destination} ({report})")
        if after - before:
            changes.append("tables added: " + ", ".join(map(str, sorted(after - before))))
        if before - after:
            changes.append("tables removed: " + ", ".join(map(str, sorted(before - after))))
        if type_changes:
            changes.append(
                "column types: "
                + ", ".join(
                    f"{t}.{display_ident(c)}={target.spelling if target else 'auto'}" for t, c, target in type_changes
                )
            )
        self._changed(f"pipeline {name} edited: {'; '.join(changes) or 'nothing changed'}", pipeline=name)

    def delete_pipeline(self, name: str) -> None:
        """Remove the pipeline, drop its slot and publication, and clear its state (as the CLI)."""
        self._check("delete a pipeline")
        with self._repository() as repo:
            report = admin.remove_pipeline(repo, self._settings, name)
        warned = "warning:" in report
        self._changed(
            f"pipeline {name} deleted: {'; '.join(report.splitlines())}",
            pipeline=name,
            level="warning" if warned else "info",
        )

    # ---- pre-flight checks ---------------------------------------------------------------------
    def run_checks(self, pipeline: str | None = None) -> CheckReport:
        """What ``etl-tui check`` reports; it only reads, so a read-only console may run it too."""
        with self._repository() as repo:
            specs = [s for s in repo.load_specs() if pipeline in (None, s.name)]
        return run_preflight(specs)

    # ---- internals -----------------------------------------------------------------------------
    def _check(self, action: str) -> None:
        if self._readonly:
            raise ReadOnlyError(action)

    def _connect(self) -> ConfigRepository:
        repo = ConfigRepository(self._settings.config_db_url, migrate=not self._migrated)
        self._migrated = True
        return repo

    @contextmanager
    def _repository(self) -> Iterator[ConfigRepository]:
        """A connection of the action's own: a resync may wait many seconds for the slot, and must
        not hold up config() meanwhile."""
        with _config_db_errors():
            repo = self._connect()
            try:
                yield repo
            finally:
                repo.close()

    def _changed(
        self, message: str, *, pipeline: str | None = None, table: str | None = None, level: str = "info"
    ) -> None:
        self.collector.record(EventView(time.time(), level, EventKind.CONFIG, message, pipeline, table))
        self.collector.refresh_config()


@contextmanager
def _config_db_errors() -> Iterator[None]:
    """Driver errors the repository does not classify, as the engine's errors (the console shows
    reason and hint of an EtlError)."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise ConfigError(f"refused by the config DB: {str(exc).strip()}", "check the names you gave") from exc
    except psycopg.Error as exc:
        raise EtlError(
            f"config DB error: {str(exc).strip()}",
            "check that the config DB is reachable",
            kind=ErrorKind.CONFIG_DB,
            retry=RetryPolicy.TIMED,
        ) from exc


def _spec(repo: ConfigRepository, name: str) -> PipelineSpec:
    spec = next((s for s in repo.load_specs() if s.name == name), None)
    if spec is None:
        raise ConfigError(f"pipeline {name!r} does not exist", "see `etl-tui pipeline list`")
    return spec


def _checked_column_types(
    pipeline: str, tables: Sequence[TableName], typed: Sequence[ColumnTypeChange]
) -> dict[tuple[TableName, str], ColumnTypeChange]:
    """``typed`` by column; an override of a table the pipeline would not replicate, or a column
    given twice, is a ConfigError."""
    replicated = set(tables)
    wanted: dict[tuple[TableName, str], ColumnTypeChange] = {}
    for table, column, target in typed:
        if table not in replicated:
            listed = ", ".join(str(t) for t in sorted(replicated))
            raise ConfigError(
                f"column type {table}.{display_ident(column)}: pipeline {pipeline} does not replicate table {table}",
                f"name one of its tables ({listed}), or add the table to its tables",
            )
        if (table, column) in wanted:
            raise ConfigError(
                f"column type {table}.{display_ident(column)} is given twice", "give each column one type"
            )
        wanted[(table, column)] = (table, column, target)
    return wanted


def _column_type_changes(
    old: PipelineSpec, tables: Sequence[TableName], typed: Sequence[ColumnTypeChange]
) -> list[ColumnTypeChange]:
    """What turns the stored overrides into ``typed`` (an override left out becomes ``auto``);
    empty when they are the same, so saving the form unchanged does not restart the runner."""
    wanted = _checked_column_types(old.name, tables, typed)
    stored = {(o.table, o.column): o.target for o in old.pipeline.column_types}
    changes = [c for key, c in wanted.items() if c[2] != stored.get(key)]
    # overrides of removed tables go with them (the repository drops them)
    kept = set(tables)
    changes += [(t, c, None) for (t, c) in stored if (t, c) not in wanted and t in kept]
    return changes


def _applied(spec: PipelineSpec, running: PipelineSpec | None) -> bool:
    """Whether the engine runs exactly this definition: a started pipeline by a runner started
    with it (same generation, source and destination), a paused one by no runner at all."""
    if spec.pipeline.status is PipelineStatus.PAUSE:
        return running is None
    return running == spec


def _options(config: Any) -> tuple[tuple[str, str], ...]:
    keys = [k for k in _OPTION_ORDER if k in config] + sorted(k for k in config if k not in _OPTION_ORDER)
    return tuple((k, str(config[k])) for k in keys)
