"""What a pre-flight check reports: findings with a severity, grouped by source and pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    BLOCKER = "blocker"  # the pipeline cannot run (or a table cannot) until this is fixed
    WARNING = "warning"  # it runs, but the target may differ from the source or a later step may fail
    INFO = "info"  # worth knowing: estimates, behaviour to expect
    OK = "ok"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.BLOCKER: 3, Severity.WARNING: 2, Severity.INFO: 1, Severity.OK: 0}


class Check(StrEnum):
    """What was checked; the value is the stable id scripts see in ``--json``."""

    CONNECTION = "connection"
    WAL_LEVEL = "wal_level"
    REPLICATION_SLOTS = "replication_slots"
    WAL_SENDERS = "wal_senders"
    REPLICATION_ROLE = "replication_role"
    SLOT = "slot"
    PUBLICATION = "publication"
    TABLE = "table"
    SELECT_PRIVILEGE = "select_privilege"
    REPLICA_IDENTITY = "replica_identity"
    ROW_SECURITY = "row_security"
    COLUMN_TYPES = "column_types"
    UNCHANGED_TOAST = "unchanged_toast"
    COPY_ESTIMATE = "copy_estimate"
    PARTITIONS = "partitions"
    DESTINATION = "destination"

    @property
    def checked(self) -> str:
        return _TITLES[self]


_TITLES = {
    Check.CONNECTION: "the source is reachable and accepts the credentials",
    Check.WAL_LEVEL: "wal_level is logical",
    Check.REPLICATION_SLOTS: "a free replication slot for each pipeline (max_replication_slots)",
    Check.WAL_SENDERS: "a free WAL sender for each pipeline (max_wal_senders)",
    Check.REPLICATION_ROLE: "the role has REPLICATION (or is a superuser)",
    Check.SLOT: "the pipeline's replication slot is usable",
    Check.PUBLICATION: "the publication can be made to match the tables and publishes every change",
    Check.TABLE: "the table exists, can be read and can be replicated",
    Check.SELECT_PRIVILEGE: "the role may read the table (SELECT, USAGE on its schema)",
    Check.REPLICA_IDENTITY: "changes can be matched by key (primary key or REPLICA IDENTITY USING INDEX)",
    Check.ROW_SECURITY: "row-level security hides no rows from the copy",
    Check.COLUMN_TYPES: "every column type can be replicated",
    Check.UNCHANGED_TOAST: "columns an UPDATE may send as unchanged TOAST values",
    Check.COPY_ESTIMATE: "size and duration of the initial copy",
    Check.PARTITIONS: "a partitioned table replicates under its parent, and none of its partitions beside it",
    Check.DESTINATION: "the destination's configuration (no connection is made)",
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    check: Check
    subject: str  # what it is about: a setting, a table, the publication, the destination
    found: str
    hint: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "severity": self.severity.value,
            "check": self.check.value,
            "checked": self.check.checked,
            "subject": self.subject,
            "found": self.found,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class PipelineReport:
    pipeline: str
    destination: str
    destination_target: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class SourceReport:
    source: str
    dsn: str  # always redacted
    findings: tuple[Finding, ...]
    pipelines: tuple[PipelineReport, ...]

    def blocked(self, pipeline: PipelineReport) -> bool:
        """Whether the pipeline cannot start: a blocker of its own or of its source."""
        return any(f.severity is Severity.BLOCKER for f in (*self.findings, *pipeline.findings))


@dataclass(frozen=True)
class CheckRow:
    """One finding with where it belongs (the console lists them flat)."""

    source: str
    pipeline: str | None  # None: about the source as a whole
    finding: Finding


@dataclass(frozen=True)
class CheckReport:
    sources: tuple[SourceReport, ...]
    checked_at: float  # epoch seconds
    seconds: float  # how long the checks took

    def rows(self) -> Iterator[CheckRow]:
        for src in self.sources:
            for f in src.findings:
                yield CheckRow(src.source, None, f)
            for p in src.pipelines:
                for f in p.findings:
                    yield CheckRow(src.source, p.pipeline, f)

    def count(self, severity: Severity) -> int:
        return sum(1 for r in self.rows() if r.finding.severity is severity)

    @property
    def has_blockers(self) -> bool:
        return self.count(Severity.BLOCKER) > 0

    def as_json(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "seconds": round(self.seconds, 3),
            "summary": {s.value: self.count(s) for s in Severity},
            "sources": [
                {
                    "source": src.source,
                    "dsn": src.dsn,
                    "findings": [f.as_json() for f in src.findings],
                    "pipelines": [
                        {
                            "pipeline": p.pipeline,
                            "destination": p.destination,
                            "destination_target": p.destination_target,
                            "ready": not src.blocked(p),
                            "findings": [f.as_json() for f in p.findings],
                        }
                        for p in src.pipelines
                    ],
                }
                for src in self.sources
            ],
        }
