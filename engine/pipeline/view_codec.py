"""The runner's :class:`~engine.pipeline.activity.RunnerView` as it is published through Redis.

The runner publishes ``encode_view(self.view(), name, time.time())`` about once a second (key
``etl:pipeline:{id}:status``, see :mod:`engine.state.keys`); another process (``etl-tui status``)
reads it back with :func:`decode_view` and so gets the same view the console gets in process.
The payload is plain JSON, version 1::

    {
      "version": 1,
      "pipeline": "p1",                   # the pipeline's name
      "published_at": 1719835200.5,       # epoch seconds
      "state": "streaming",               # RunnerState
      "tables": {"public.orders": {TableState fields}},   # as the runner knows them (may be empty)
      "activity": {
        "tables": {"public.orders": {"inserts": 3, "updates": 1, "deletes": 0, "last_event_at": 1719835199.9}},
        "copy_progress": {"public.\\"Order Items\\"": [5000, 12000]},   # rows so far, estimate
        "batches": [{"at": ..., "rows": 4, "tables": 1, "write_seconds": 0.02, "checkpoint_lsn": "0/16B3748"}],
        "rows_applied": 4, "rows_copied": 5000
      },
      "last_error": {"kind": "source_unreachable", "reason": "...", "hint": "...", "retry_policy": "timed"},
      "next_retry_at": 1719835210.0,
      "acked_lsn": "0/16B3748", "received_lsn": "0/16B3800",   # PostgreSQL's LSN text, or null
      "applied_commit_at": 1719835199.8, "caught_up_at": 1719835200.4
    }

Table names are written as PostgreSQL prints them (``public."Order Items"``) and parsed back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from types import MappingProxyType
from typing import Any

from engine.errors import ErrorKind, EtlError, RetryPolicy
from engine.identifiers import parse_table_name
from engine.pipeline.activity import ActivityView, AppliedBatch, RunnerState, RunnerView, TableActivity
from engine.source.lsn import format_lsn, parse_lsn
from engine.state.table_state import TableState

__all__ = ["VERSION", "decode_view", "encode_view", "fresh_view", "published_at"]

VERSION = 1


def encode_view(view: RunnerView, pipeline: str, published_at: float) -> dict[str, Any]:
    """``view`` as a JSON-ready dict (the payload above)."""
    activity = view.activity
    return {
        "version": VERSION,
        "pipeline": pipeline,
        "published_at": published_at,
        "state": str(view.state),
        "tables": {str(t): st.as_dict() for t, st in view.tables.items()},
        "activity": {
            "tables": {str(t): asdict(a) for t, a in activity.tables.items()},
            "copy_progress": {str(t): [done, estimate] for t, (done, estimate) in activity.copy_progress.items()},
            "batches": [
                {
                    "at": b.at,
                    "rows": b.rows,
                    "tables": b.tables,
                    "write_seconds": b.write_seconds,
                    "checkpoint_lsn": _lsn_text(b.checkpoint),
                }
                for b in activity.batches
            ],
            "rows_applied": activity.rows_applied,
            "rows_copied": activity.rows_copied,
        },
        "last_error": None if view.last_error is None else _error(view.last_error),
        "next_retry_at": view.next_retry_at,
        "acked_lsn": _lsn_text(view.acked_lsn),
        "received_lsn": _lsn_text(view.received_lsn),
        "applied_commit_at": view.applied_commit_at,
        "caught_up_at": view.caught_up_at,
    }


def decode_view(data: Mapping[str, Any]) -> RunnerView:
    """The view a payload of :func:`encode_view` describes. Raises ``ValueError`` for anything
    else (another version, a missing or malformed field)."""
    if data.get("version") != VERSION:
        raise ValueError(f"status payload version {data.get('version')!r}, expected {VERSION}")
    try:
        activity = data["activity"]
        progress = {parse_table_name(t): (int(p[0]), int(p[1])) for t, p in activity["copy_progress"].items()}
        return RunnerView(
            state=RunnerState(data["state"]),
            tables=MappingProxyType(
                {parse_table_name(t): TableState.from_dict(st) for t, st in data["tables"].items()}
            ),
            activity=ActivityView(
                tables=MappingProxyType(
                    {parse_table_name(t): _decode_activity(a) for t, a in activity["tables"].items()}
                ),
                copy_progress=MappingProxyType(progress),
                batches=tuple(
                    AppliedBatch(
                        at=float(b["at"]),
                        rows=int(b["rows"]),
                        tables=int(b["tables"]),
                        write_seconds=float(b["write_seconds"]),
                        checkpoint=_lsn(b["checkpoint_lsn"]),
                    )
                    for b in activity["batches"]
                ),
                rows_applied=int(activity["rows_applied"]),
                rows_copied=int(activity["rows_copied"]),
            ),
            last_error=_decode_error(data["last_error"]),
            next_retry_at=_seconds(data["next_retry_at"]),
            acked_lsn=_lsn(data["acked_lsn"]),
            received_lsn=_lsn(data["received_lsn"]),
            applied_commit_at=_seconds(data["applied_commit_at"]),
            caught_up_at=_seconds(data["caught_up_at"]),
        )
    except (KeyError, TypeError, IndexError, AttributeError) as exc:  # ValueError passes as it is
        raise ValueError(f"malformed status payload: {exc!r}") from exc
    except EtlError as exc:  # a table name that does not parse
        raise ValueError(f"malformed status payload: {exc.reason}") from exc


def published_at(data: Mapping[str, Any]) -> float:
    """When the payload was published (epoch seconds; 0 when it does not say)."""
    value = data.get("published_at")
    return float(value) if isinstance(value, int | float) else 0.0


def fresh_view(data: Mapping[str, Any] | None, now: float, stale_after: float) -> RunnerView | None:
    """The view a payload holds, if it was published within ``stale_after`` seconds of ``now``
    (None: nothing published, or no engine publishes it any more). Raises ``ValueError`` for a
    payload this version cannot read."""
    if data is None or now - published_at(data) > stale_after:
        return None
    return decode_view(data)


def _decode_activity(d: Mapping[str, Any]) -> TableActivity:
    return TableActivity(
        inserts=int(d["inserts"]),
        updates=int(d["updates"]),
        deletes=int(d["deletes"]),
        last_event_at=_seconds(d["last_event_at"]),
    )


def _error(err: EtlError) -> dict[str, str]:
    return {"kind": str(err.kind), "reason": err.reason, "hint": err.hint, "retry_policy": str(err.retry)}


def _decode_error(d: Mapping[str, Any] | None) -> EtlError | None:
    if d is None:
        return None
    return EtlError(str(d["reason"]), str(d["hint"]), kind=ErrorKind(d["kind"]), retry=RetryPolicy(d["retry_policy"]))


def _lsn_text(lsn: int | None) -> str | None:
    return format_lsn(lsn) if lsn else None


def _lsn(text: str | None) -> int | None:
    return parse_lsn(text) if text else None


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)
