"""Table lifecycle (ARCHITECTURE.md, "A table's phases"), named as Supabase `etl` names them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from engine.errors import EtlError, RetryPolicy


class TablePhase(StrEnum):
    INIT = "init"  # known, not copied yet
    DATA_SYNC = "data_sync"  # copy in progress (a crash here means: copy again from scratch)
    FINISHED_COPY = "finished_copy"  # copied at snapshot_lsn; the stream applies changes after it
    READY = "ready"  # streaming; never copied again unless resynced
    ERRORED = "errored"

    @property
    def streams(self) -> bool:
        """Whether the stream applies this table's changes."""
        return self in (TablePhase.FINISHED_COPY, TablePhase.READY)


@dataclass(frozen=True)
class TableState:
    phase: TablePhase
    snapshot_lsn: int = 0  # changes committed before this LSN are in the copy
    rows_copied: int = 0
    reason: str = ""
    hint: str = ""
    error_kind: str = ""
    retry_policy: RetryPolicy = RetryPolicy.NONE
    next_retry_at: float | None = None
    updated_at: float = 0.0
    # the type the copy chose for each unbounded numeric column ("decimal(38,12)", "text"): the
    # stream converts with it for the table's life, after any restart (engine/source/numeric_scale.py)
    column_types: Mapping[str, str] = field(default_factory=dict)
    # a partitioned table: the oids of the partitions its copy held, then of those the stream has
    # seen join since (None: not recorded); one that left, or joined with older rows, means a copy
    partitions: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON values: what the state store keeps and the published status carries."""
        d: dict[str, Any] = asdict(self)
        d["phase"], d["retry_policy"] = str(self.phase), str(self.retry_policy)
        d["column_types"] = dict(self.column_types)
        d["partitions"] = None if self.partitions is None else list(self.partitions)
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableState:
        d = dict(data)
        d["phase"] = TablePhase(d["phase"])
        d["retry_policy"] = RetryPolicy(d.get("retry_policy", "none"))
        d["column_types"] = {str(k): str(v) for k, v in (d.get("column_types") or {}).items()}
        if d.get("partitions") is not None:
            d["partitions"] = tuple(int(p) for p in d["partitions"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str | bytes) -> TableState:
        return cls.from_dict(json.loads(text))

    def moved(self, phase: TablePhase, **changes: Any) -> TableState:
        return replace(self, phase=phase, updated_at=time.time(), **changes)

    def errored(self, err: EtlError) -> TableState:
        return self.moved(
            TablePhase.ERRORED,
            reason=err.reason,
            hint=err.hint,
            error_kind=str(err.kind),
            retry_policy=err.retry,
        )


def finished_copy(during: TableState | None, snapshot_lsn: int, rows: int) -> TableState:
    """The state of a table just copied at ``snapshot_lsn``; ``during``, its state while copying,
    holds what the copy chose and saw (column types, partitions), which the table keeps."""
    chosen = during.column_types if during is not None else {}
    partitions = during.partitions if during is not None else None
    return TableState(
        TablePhase.FINISHED_COPY,
        snapshot_lsn=snapshot_lsn,
        rows_copied=rows,
        column_types=chosen,
        partitions=partitions,
    )
