"""Config values as the repository returns them: immutable, safe to hand to other threads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from engine.identifiers import TableName
from engine.redaction import redact_dsn


class PipelineStatus(StrEnum):
    """What the operator wants (the *desired* state); the runner reports the actual one."""

    START = "start"
    PAUSE = "pause"


class DestinationType(StrEnum):
    DUCKDB = "duckdb"
    SNOWFLAKE = "snowflake"


@dataclass(frozen=True)
class Source:
    id: int
    name: str
    dsn: str = field(repr=False)

    @property
    def dsn_redacted(self) -> str:
        return redact_dsn(self.dsn)

    def __repr__(self) -> str:
        return f"Source(id={self.id}, name={self.name!r}, dsn={self.dsn_redacted!r})"


@dataclass(frozen=True)
class Destination:
    id: int
    name: str
    type: DestinationType
    config: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    def describe(self) -> str:
        if self.type is DestinationType.DUCKDB:
            return f"duckdb:{self.config.get('path')}"
        if self.type is DestinationType.SNOWFLAKE:
            # where the tables are; the credentials are never part of it
            c = self.config
            return f"snowflake:{c.get('account')}/{c.get('database')}.{c.get('schema')}"
        return str(self.type)


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    source_id: int
    destination_id: int
    status: PipelineStatus
    publication_name: str
    slot_name: str
    tables: tuple[TableName, ...]
    # changes on every edit of the pipeline (including `pipeline start` on a started one), so the
    # manager restarts its runner: that is how an operator retries after fixing a cause
    generation: float = 0.0


@dataclass(frozen=True)
class PipelineSpec:
    """Everything a runner needs, read in one consistent snapshot of the config DB."""

    pipeline: Pipeline
    source: Source
    destination: Destination

    @property
    def id(self) -> int:
        return self.pipeline.id

    @property
    def name(self) -> str:
        return self.pipeline.name
