"""Table lifecycle (ARCHITECTURE.md, "A table's phases"), named as Supabase `etl` names them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
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

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON values: what the state store keeps and the published status carries."""
        d: dict[str, Any] = asdict(self)
        d["phase"], d["retry_policy"] = str(self.phase), str(self.retry_policy)
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableState:
        d = dict(data)
        d["phase"] = TablePhase(d["phase"])
        d["retry_policy"] = RetryPolicy(d.get("retry_policy", "none"))
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
