"""Explicit operator actions that touch the source and the state store as well as the config DB:
removing a pipeline and resyncing it. These are the only places a slot is ever dropped (I4)."""

from __future__ import annotations

import time

from engine.config.models import PipelineSpec, PipelineStatus
from engine.config.repository import ConfigRepository
from engine.errors import ConfigError, EtlError, StateStoreError
from engine.identifiers import TableName
from engine.pipeline.activity import RunnerState
from engine.pipeline.view_codec import fresh_view
from engine.settings import Settings
from engine.source import catalog
from engine.source.connection import connect_source
from engine.state.store import PipelineState, connect_redis
from engine.state.table_state import TablePhase, TableState

RELEASE_WAIT_SECONDS = 30.0
STOPPED_WAIT_SECONDS = 10.0


def _wait_slot_released(conn: object, slot: str, timeout: float = RELEASE_WAIT_SECONDS) -> bool:
    """Give a running engine time to drain and let go of the slot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = catalog.slot_info(conn, slot)  # type: ignore[arg-type]
        if info is None or not info.active:
            return True
        time.sleep(0.2)
    return False


def _wait_runner_stopped(state: PipelineState, timeout: float = STOPPED_WAIT_SECONDS) -> None:
    """After letting go of its slot, a stopping runner publishes its last status ("stopped"):
    wait for it, so that clearing the state store comes after and leaves no key behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            view = fresh_view(state.published_status(), time.time(), timeout)
        except (StateStoreError, ValueError):
            return  # not a runner's status: nothing to wait for, and clear() removes it
        if view is None or view.state is RunnerState.STOPPED:
            return  # no engine publishes this pipeline, or its runner has said its last word
        time.sleep(0.1)


def remove_pipeline(repo: ConfigRepository, settings: Settings, name: str, *, keep_slot: bool = False) -> str:
    spec = next((s for s in repo.load_specs() if s.name == name), None)
    if spec is None:
        raise ConfigError(f"pipeline {name!r} does not exist", "see `etl-tui pipeline list`")
    repo.remove_pipeline(name)  # a running manager stops the runner on the notice
    lines = [f"pipeline {name} removed from the config DB"]
    if keep_slot:
        lines.append(
            f"slot {spec.pipeline.slot_name} and publication {spec.pipeline.publication_name} kept (--keep-slot)"
        )
    else:
        try:
            with connect_source(spec.source.dsn, f'source "{spec.source.name}"') as conn:
                _wait_slot_released(conn, spec.pipeline.slot_name)
                dropped = catalog.drop_slot(conn, spec.pipeline.slot_name)
                catalog.drop_publication(conn, spec.pipeline.publication_name)
            lines.append(
                f"slot {spec.pipeline.slot_name} {'dropped' if dropped else 'did not exist'}; "
                f"publication {spec.pipeline.publication_name} dropped"
            )
        except EtlError as exc:
            lines.append(
                f"warning: could not drop slot {spec.pipeline.slot_name} on the source ({exc.reason}); "
                "drop it by hand so it does not retain WAL: "
                f"SELECT pg_drop_replication_slot('{spec.pipeline.slot_name}')"
            )
    try:
        state = PipelineState(connect_redis(settings.redis_url), spec.id)
        _wait_runner_stopped(state)
        state.clear()
        lines.append("state store keys removed")
    except EtlError as exc:
        lines.append(f"warning: state store not cleaned ({exc.reason})")
    lines.append(f"target tables in {spec.destination.describe()} were left as they are")
    return "\n".join(lines)


def resync_pipeline(
    repo: ConfigRepository, settings: Settings, name: str, tables: list[TableName] | None = None
) -> str:
    """Copy tables again. Without ``tables`` the whole pipeline starts over with a new slot."""
    spec = next((s for s in repo.load_specs() if s.name == name), None)
    if spec is None:
        raise ConfigError(f"pipeline {name!r} does not exist", "see `etl-tui pipeline list`")
    unknown = [str(t) for t in tables or [] if t not in spec.pipeline.tables]
    if unknown:
        raise ConfigError(f"pipeline {name} does not replicate {', '.join(unknown)}", "see `etl-tui pipeline list`")
    if tables is not None:
        return _resync_tables(spec, settings, tables)
    was = spec.pipeline.status
    repo.set_pipeline_status(name, PipelineStatus.PAUSE)
    try:
        state = PipelineState(connect_redis(settings.redis_url), spec.id)
        with connect_source(spec.source.dsn, f'source "{spec.source.name}"') as conn:
            if not _wait_slot_released(conn, spec.pipeline.slot_name):
                raise EtlError(
                    f"the engine running pipeline {name} did not release slot {spec.pipeline.slot_name} in time",
                    "try again, or stop that engine first",
                )
            catalog.drop_slot(conn, spec.pipeline.slot_name)
            _wait_runner_stopped(state)
            state.clear()
    finally:
        repo.set_pipeline_status(name, was)
    what = f"pipeline {name}: slot dropped and state cleared; every table is copied again"
    return what + (" when the engine runs" if was is PipelineStatus.START else " when the pipeline is started")


def _resync_tables(spec: PipelineSpec, settings: Settings, tables: list[TableName]) -> str:
    """Copy ``tables`` again without stopping the pipeline: a streaming runner takes the request
    within a second and copies them beside its stream; otherwise the next start copies them."""
    state = PipelineState(connect_redis(settings.redis_url), spec.id)
    for table in tables:
        state.set(table, TableState(TablePhase.INIT))  # what `status` shows until the runner takes it
    state.request_copy(tables)
    what = f"pipeline {spec.name}: {', '.join(map(str, tables))} will be copied again"
    try:
        view = fresh_view(state.published_status(), time.time(), STOPPED_WAIT_SECONDS)
    except (StateStoreError, ValueError):
        view = None
    if view is not None and view.state is RunnerState.STREAMING:
        return what + " beside the stream; the other tables go on"
    running = spec.pipeline.status is PipelineStatus.START
    return what + (" when the engine runs" if running else " when the pipeline is started")
