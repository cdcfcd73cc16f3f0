"""The pipeline manager: makes the running pipelines match the config DB.

It listens on the config DB's ``etl_config`` channel (so an edit takes effect at once) and also
polls, in case a notice was missed or the config DB was away. A runner is started for every
pipeline whose status is ``start``, stopped (gracefully) when it is paused or removed, and
restarted when its definition changes.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable

import psycopg
import redis

from engine.batching.limits import BatchLimits
from engine.config.models import PipelineSpec, PipelineStatus
from engine.config.repository import NOTIFY_CHANNEL, ConfigRepository, connect_config_db
from engine.errors import EtlError
from engine.identifiers import TableName
from engine.metrics import METRICS
from engine.pipeline.activity import PipelineActivity, RunnerEvent
from engine.pipeline.runner import PipelineRunner
from engine.source.schema_cache import SchemaCaches

log = logging.getLogger("etl.manager")


def _only_restarted(running: PipelineSpec | None, wanted: PipelineSpec) -> bool:
    """True when ``wanted`` differs from the running spec only by its generation (`pipeline start`)."""
    if running is None or running.pipeline.generation == wanted.pipeline.generation:
        return False
    return dataclasses.replace(wanted.pipeline, generation=running.pipeline.generation) == running.pipeline and (
        wanted.source,
        wanted.destination,
    ) == (running.source, running.destination)


def _tables_added(running: PipelineSpec | None, wanted: PipelineSpec) -> set[TableName] | None:
    """The tables ``wanted`` adds when that is all it changes (besides its generation)."""
    if running is None:
        return None
    before, after = set(running.pipeline.tables), set(wanted.pipeline.tables)
    if not after > before:
        return None
    same = dataclasses.replace(wanted.pipeline, generation=running.pipeline.generation, tables=running.pipeline.tables)
    if same != running.pipeline or (wanted.source, wanted.destination) != (running.source, running.destination):
        return None
    return after - before


def tune_gc() -> None:
    """Streaming allocates millions of short-lived objects a second (messages, ints); with the
    default threshold the cyclic collector runs thousands of times a second and walks every
    long-lived object each full pass. The engine makes few reference cycles, so collect rarely
    and leave what exists at start-up (modules, config) out of the passes."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class Manager:
    def __init__(
        self,
        config_db_url: str,
        redis_client: redis.Redis,
        *,
        limits: BatchLimits | None = None,
        heartbeat_seconds: float = 0.0,
        poll_interval: float = 5.0,
        on_event: Callable[[RunnerEvent], None] | None = None,
    ) -> None:
        self._url = config_db_url
        self._redis = redis_client
        self._limits = limits
        self._heartbeat = heartbeat_seconds
        self._poll = poll_interval
        self._on_event = on_event
        self._listeners: tuple[Callable[[RunnerEvent], None], ...] = ()
        self._runners: dict[int, PipelineRunner] = {}
        self._specs: dict[int, PipelineSpec] = {}
        self._activity: dict[int, PipelineActivity] = {}
        self._names: dict[int, str] = {}  # the name each pipeline's metrics carry
        self.schema_caches = SchemaCaches()  # one per source, shared by its pipelines
        # Readers get these copies, replaced (never mutated) after each change, so they never wait
        # for a reconcile that is draining a runner.
        self._runners_view: dict[int, PipelineRunner] = {}
        self._specs_view: dict[int, PipelineSpec] = {}
        self._lock = threading.Lock()
        self.last_reconcile: float = 0.0
        self.config_error: EtlError | None = None

    @property
    def runners(self) -> dict[int, PipelineRunner]:
        return dict(self._runners_view)

    def running_specs(self) -> dict[int, PipelineSpec]:
        """The definition each running runner was started with, by pipeline id."""
        return dict(self._specs_view)

    def activity(self, pipeline_id: int) -> PipelineActivity | None:
        """What the pipeline did in this process, across runner restarts (None: never ran)."""
        return self._activity.get(pipeline_id)

    def add_listener(self, listener: Callable[[RunnerEvent], None]) -> None:
        """Also send every runner event to ``listener`` (after ``on_event``), from the runner's thread."""
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Callable[[RunnerEvent], None]) -> None:
        self._listeners = tuple(fn for fn in self._listeners if fn is not listener)

    def _emit(self, event: RunnerEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # an observer must never stop replication
                log.exception("event listener failed")

    def _publish_view(self) -> None:
        self._runners_view = dict(self._runners)
        self._specs_view = dict(self._specs)

    def reconcile(self, specs: list[PipelineSpec]) -> None:
        wanted = {s.id: s for s in specs if s.pipeline.status is PipelineStatus.START}
        with self._lock:
            for pid, runner in list(self._runners.items()):
                spec = wanted.get(pid)
                # `pipeline start` of a pipeline already started: a streaming runner copies its
                # errored tables again beside its stream, and the other tables go on
                if (
                    spec is not None
                    and runner.is_alive()
                    and _only_restarted(self._specs.get(pid), spec)
                    and runner.retry_errored_tables()
                ):
                    log.info("pipeline %s started again: its errored tables are copied again", spec.name)
                    self._specs[pid] = spec
                    continue
                # tables added to a streaming pipeline are copied beside its stream
                added = _tables_added(self._specs.get(pid), spec) if spec is not None else None
                if spec is not None and added and runner.is_alive() and runner.adopt_tables(spec, added):
                    log.info("pipeline %s: %s added, copied beside the stream", spec.name, ", ".join(map(str, added)))
                    self._specs[pid] = spec
                    continue
                if spec is None or spec != self._specs.get(pid) or not runner.is_alive():
                    why = "paused or removed" if spec is None else "changed" if runner.is_alive() else "ended"
                    log.info("pipeline %s %s: stopping its runner", runner.spec.name, why)
                    runner.stop()
                    runner.join()
                    del self._runners[pid]
                    self._specs.pop(pid, None)
                    self._publish_view()
            known = {s.id for s in specs}
            for pid in [pid for pid in self._activity if pid not in known and pid not in self._runners]:
                del self._activity[pid]  # the pipeline was removed
                self._forget_metrics(pid)
            for pid, spec in wanted.items():
                if pid not in self._runners:
                    if self._names.get(pid, spec.name) != spec.name:
                        self._forget_metrics(pid)  # renamed: the old name's series would never change again
                    self._names[pid] = spec.name
                    activity = self._activity.setdefault(pid, PipelineActivity())
                    runner = PipelineRunner(
                        spec,
                        self._redis,
                        limits=self._limits,
                        heartbeat_seconds=self._heartbeat,
                        on_event=self._emit,
                        activity=activity,
                        schema_cache=self.schema_caches.for_source(spec.source.id),
                    )
                    self._runners[pid] = runner
                    self._specs[pid] = spec
                    runner.start()
            self._publish_view()
        self.last_reconcile = time.time()

    def _forget_metrics(self, pid: int) -> None:
        name = self._names.pop(pid, None)
        if name is not None and name not in self._names.values():
            METRICS.forget_pipeline(name)

    def run(self, stop: threading.Event) -> None:
        """Reconcile until ``stop`` is set, then stop every runner gracefully."""
        tune_gc()
        listener: psycopg.Connection | None = None
        repo: ConfigRepository | None = None
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    if repo is None:
                        repo = ConfigRepository(self._url)
                        listener = connect_config_db(self._url)
                        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.reconcile(repo.load_specs())
                    self.config_error = None
                    backoff = 1.0
                    assert listener is not None
                    # Wake on a notice, or after the poll interval, or soon after `stop`.
                    deadline = time.monotonic() + self._poll
                    while not stop.is_set() and time.monotonic() < deadline:
                        if any(True for _ in listener.notifies(timeout=0.5, stop_after=1)):
                            # coalesce a burst of edits into one reconcile
                            for _ in listener.notifies(timeout=0.05):
                                pass
                            break
                except (EtlError, psycopg.Error) as exc:
                    self.config_error = exc if isinstance(exc, EtlError) else None
                    log.warning(
                        "config DB unavailable (%s); running pipelines keep going; retry in %.0fs",
                        exc,
                        backoff,
                    )
                    for conn in (listener, repo):
                        try:
                            if conn is not None:
                                conn.close()
                        except Exception:
                            pass
                    listener, repo = None, None
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self.shutdown()
            for conn in (listener, repo):
                if conn is not None:
                    conn.close()

    def shutdown(self) -> None:
        with self._lock:
            runners = list(self._runners.values())
            self._runners.clear()
            self._specs.clear()
            self._publish_view()
        for runner in runners:
            runner.stop()
        for runner in runners:
            runner.join()
