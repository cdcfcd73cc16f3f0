"""The one builder of a pipeline's status: :class:`PipelineView` and :class:`SlotView` from what
is known of the pipeline.

Both readers build them here — the console's collector (runner views in memory, the WAL
monitor's readings) and ``etl-tui status`` (views the runners published through Redis, one
reading of each source) — so the CLI and the console show the same values.

Where each figure comes from:

- desired state, names and targets: the pipeline's spec (the config DB);
- actual state, last error, lag age, change counts, copy progress, batches: the runner's view
  (None: no runner, or none published recently);
- table phases, with the reason and hint of an errored table: the state store (the runner's cache
  or Redis), written before any view that reflects it, so never older than the view;
- slot position and lag bytes: the source's slot (a WAL monitor reading); when the slot cannot be
  read, lag bytes are what the runner received minus what it confirmed.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.config.models import PipelineSpec
from engine.errors import RetryPolicy
from engine.identifiers import TableName
from engine.monitoring.slot_poller import SlotReading, SourceReading
from engine.pipeline.activity import ActivityView, RunnerState, RunnerView
from engine.source.lsn import format_lsn
from engine.state.table_state import TablePhase, TableState
from engine.status.board import BatchView, ErrorView, PipelineView, SlotView, TableView

__all__ = ["NO_RUNNER", "pipeline_view", "slot_reading", "slot_view"]

NO_RUNNER = "stopped"  # ``actual`` of a pipeline without a runner in the process that hosts the engine


def pipeline_view(
    spec: PipelineSpec,
    view: RunnerView | None,
    stored: Mapping[TableName, TableState],
    slot: SlotReading | None,
    *,
    now: float,
    activity: ActivityView | None = None,
    rows_per_second: tuple[float, ...] = (),
    without_runner: str = NO_RUNNER,
) -> PipelineView:
    """The status of ``spec``'s pipeline.

    ``view``: its runner's, None without one; ``stored``: the state store's table phases; ``slot``:
    the latest reading of its slot (None: unreadable or not read yet); ``activity``: what to count
    (default: the view's; without a view, what earlier runners of this process did);
    ``rows_per_second``: the rate history its reader keeps; ``without_runner``: ``actual`` when
    there is no view."""
    p = spec.pipeline
    if activity is None and view is not None:
        activity = view.activity
    lag_bytes = slot.confirmed_lag_bytes if slot is not None else None
    if lag_bytes is None and view is not None and view.received_lsn and view.acked_lsn:
        lag_bytes = max(0, view.received_lsn - view.acked_lsn)
    # the slot's own position when it could be read (what the source will keep), else the runner's
    confirmed = (slot.confirmed_lsn if slot is not None else None) or (view.acked_lsn if view is not None else None)
    batches: tuple[BatchView, ...] = ()
    if activity is not None:
        batches = tuple(
            BatchView(b.at, p.name, b.rows, b.tables, b.write_seconds, _lsn(b.checkpoint)) for b in activity.batches
        )
    return PipelineView(
        name=p.name,
        source=spec.source.name,
        destination=spec.destination.name,
        destination_target=spec.destination.describe(),
        desired=str(p.status),
        actual=str(view.state) if view is not None else without_runner,
        tables=tuple(_table_view(t, stored.get(t), activity) for t in p.tables),
        rows_per_second=rows_per_second,
        lag_bytes=lag_bytes,
        lag_seconds=view.lag_seconds(now) if view is not None else None,
        confirmed_lsn=_lsn(confirmed),
        last_error=_runner_error(view) if view is not None else None,
        batches=batches,
        slot=p.slot_name,
        publication=p.publication_name,
        source_dsn=spec.source.dsn_redacted,
    )


def slot_reading(spec: PipelineSpec, reading: SourceReading | None) -> SlotReading | None:
    """The pipeline's slot in a reading of its source (None: unreadable, or not watched yet)."""
    if reading is None or not reading.ok:
        return None
    return reading.slots.get(spec.pipeline.slot_name)


def slot_view(spec: PipelineSpec, reading: SourceReading | None, lag_history: tuple[int, ...] = ()) -> SlotView:
    """The pipeline's slot as a reading of its source shows it; ``lag_history``: the confirmed lag
    samples its reader keeps."""
    p = spec.pipeline
    row = slot_reading(spec, reading)
    growth = reading.growth_bytes_per_second if reading is not None else None
    if row is None:
        # unreadable, or not watched yet (the monitor reads the config a moment later): unknown
        detail = reading.detail if reading is not None and not reading.ok else "not polled yet"
        return SlotView(
            pipeline=p.name,
            slot=p.slot_name,
            source=spec.source.name,
            active=False,
            active_pid=None,
            wal_status=None,
            confirmed_lag_bytes=None,
            restart_lag_bytes=None,
            safe_wal_size=None,
            lag_history=lag_history,
            exists=False,
            error=f"cannot read the slot: {detail}",
            wal_growth_bytes_per_second=growth,
        )
    return SlotView(
        pipeline=p.name,
        slot=p.slot_name,
        source=spec.source.name,
        active=row.active,
        active_pid=row.active_pid,
        wal_status=row.wal_status,
        confirmed_lag_bytes=row.confirmed_lag_bytes,
        restart_lag_bytes=row.restart_lag_bytes,
        safe_wal_size=row.safe_wal_size,
        lag_history=lag_history,
        exists=row.exists,
        wal_growth_bytes_per_second=growth,
        exhaustion_seconds=row.exhaustion_seconds,
    )


def _table_view(table: TableName, st: TableState | None, activity: ActivityView | None) -> TableView:
    counts = activity.tables.get(table) if activity is not None else None
    progress = activity.copy_progress.get(table) if activity is not None else None
    phase = st.phase if st is not None else TablePhase.INIT
    error = None
    if st is not None and st.phase is TablePhase.ERRORED:
        error = ErrorView(
            kind=st.error_kind,
            reason=st.reason,
            hint=st.hint,
            retry_policy=str(st.retry_policy),
            next_retry_at=st.next_retry_at,
        )
    rows_copied = st.rows_copied if st is not None else 0
    copy_total = None
    if progress is not None and phase is TablePhase.DATA_SYNC:
        rows_copied, copy_total = progress
    return TableView(
        name=str(table),
        phase=str(phase),
        rows_copied=rows_copied,
        copy_total=copy_total,
        inserts=counts.inserts if counts else 0,
        updates=counts.updates if counts else 0,
        deletes=counts.deletes if counts else 0,
        last_event_at=counts.last_event_at if counts else None,
        error=error,
    )


def _runner_error(view: RunnerView) -> ErrorView | None:
    err = view.last_error
    if err is None:
        return None
    policy = err.retry
    if view.state is RunnerState.ERRORED and policy is RetryPolicy.TIMED:
        policy = RetryPolicy.MANUAL  # it gave up retrying: the operator's turn
    return ErrorView(
        kind=str(err.kind),
        reason=err.reason,
        hint=err.hint,
        retry_policy=str(policy),
        next_retry_at=view.next_retry_at if policy is RetryPolicy.TIMED else None,
    )


def _lsn(lsn: int | None) -> str | None:
    return format_lsn(lsn) if lsn else None
