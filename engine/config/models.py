"""Config values as the repository returns them: immutable, safe to hand to other threads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from engine.errors import ConfigError
from engine.identifiers import TableName, display_ident, parse_table_name
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


class NumericTargetKind(StrEnum):
    TEXT = "text"  # the value's exact decimal text, as PostgreSQL prints it
    DECIMAL = "decimal"  # DECIMAL(p,s) in DuckDB, NUMBER(p,s) in Snowflake


MAX_DECIMAL_PRECISION = 38  # Arrow's decimal128, DuckDB's DECIMAL and Snowflake's NUMBER
AUTO = "auto"  # the spelling that removes an override: the engine chooses again
_DECIMAL_SPELLING = re.compile(r"(?:decimal|numeric|number)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\Z", re.IGNORECASE)
_TYPE_SPELLINGS = "text, decimal(p,s) (1 <= p <= 38, 0 <= s <= p) or auto"


@dataclass(frozen=True)
class NumericTarget:
    """What a numeric column becomes at the destination: exact text or DECIMAL(p,s)."""

    kind: NumericTargetKind
    precision: int = 0
    scale: int = 0

    @property
    def spelling(self) -> str:
        """As the command line, the config DB and the state store write it."""
        if self.kind is NumericTargetKind.TEXT:
            return "text"
        return f"decimal({self.precision},{self.scale})"

    @classmethod
    def parse(cls, text: str, where: str = "") -> NumericTarget:
        """``text`` or ``decimal(p,s)`` (also ``numeric(p,s)``); ``where`` names it in the error."""
        spelled = text.strip()
        if spelled.lower() in ("text", "varchar", "string"):
            return cls(NumericTargetKind.TEXT)
        m = _DECIMAL_SPELLING.match(spelled)
        if m is not None:
            precision, scale = int(m.group(1)), int(m.group(2))
            if 1 <= precision <= MAX_DECIMAL_PRECISION and scale <= precision:
                return cls(NumericTargetKind.DECIMAL, precision, scale)
        at = f" in {where}" if where else ""
        raise ConfigError(f"unknown column type {spelled!r}{at}", f"use one of: {_TYPE_SPELLINGS}")


@dataclass(frozen=True)
class ColumnTypeOverride:
    """``public.orders.amount=decimal(38,12)``: the type one column of a pipeline gets at the
    destination instead of the one the engine would choose."""

    table: TableName
    column: str
    target: NumericTarget

    def __str__(self) -> str:
        return f"{self.table}.{display_ident(self.column)}={self.target.spelling}"


def parse_column_type(text: str) -> tuple[TableName, str, NumericTarget | None]:
    """``schema.table.column=type`` as ``--column-type`` takes it; the type None means ``auto``
    (no override). Quote names that need it: ``public."Order Items"."Net Amount"=text``."""
    name, eq, spelled = _split_outside_quotes(text, "=")
    example = "e.g. public.orders.amount=text or public.orders.amount=decimal(38,12)"
    if not eq or not name.strip() or not spelled.strip():
        raise ConfigError(f"column type {text!r} is not schema.table.column=type", example)
    table_text, dot, column_text = _split_outside_quotes(name.strip(), ".")
    if not dot:
        raise ConfigError(f"column type {text!r} names no table", example)
    table = parse_table_name(table_text)
    column = _identifier(column_text.strip(), text)
    if spelled.strip().lower() == AUTO:
        return table, column, None
    return table, column, NumericTarget.parse(spelled, f"--column-type {text!r}")


def _split_outside_quotes(text: str, sep: str) -> tuple[str, str, str]:
    """Split at the last ``sep`` that is not inside double quotes."""
    in_quotes = False
    at = -1
    for i, ch in enumerate(text):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes:
            at = i
    if at < 0:
        return text, "", ""
    return text[:at], sep, text[at + 1 :]


def _identifier(text: str, whole: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        name = text[1:-1]
        if '"' in name.replace('""', ""):
            raise ConfigError(f"column name {text!r} in {whole!r} is badly quoted", 'double a quote inside one: "a""b"')
        return name.replace('""', '"')
    if not text or '"' in text or any(ch.isspace() for ch in text):
        raise ConfigError(f"column name {text!r} in {whole!r} is not valid", 'quote it: public.t."Net Amount"=text')
    return text.lower()


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
    column_types: tuple[ColumnTypeOverride, ...] = ()  # by table, then column

    def column_type(self, table: TableName, column: str) -> NumericTarget | None:
        """The override for one column, if any."""
        for o in self.column_types:
            if o.table == table and o.column == column:
                return o.target
        return None


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
