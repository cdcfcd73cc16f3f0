"""What the checks read from a source, as plain values behind one :class:`SourceCatalog` seam.

The rules (``server_rules``, ``table_rules``) only see these values, so every verdict (slot
arithmetic, replica identity, row security, …) can be tested without a server; the PostgreSQL
reader is :mod:`engine.preflight.postgres_catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.identifiers import TableName


@dataclass(frozen=True)
class ServerFacts:
    version: str  # as the server prints it, e.g. "15.4"
    database: str
    role: str
    superuser: bool
    replication: bool  # the REPLICATION attribute
    bypass_rls: bool
    create_on_database: bool  # may CREATE (a publication) in this database
    wal_level: str
    max_replication_slots: int
    slots_in_use: int  # every slot of the cluster, of any database and kind
    max_wal_senders: int
    wal_senders_in_use: int


@dataclass(frozen=True)
class SlotFacts:
    name: str
    exists: bool
    active: bool = False
    wal_status: str | None = None
    plugin: str | None = None
    database: str | None = None


@dataclass(frozen=True)
class ColumnFacts:
    name: str
    type_name: str
    is_key: bool = False
    toast_prone: bool = False  # variable-length and stored extended/external: may be TOASTed
    unsupported: str = ""  # why the engine cannot replicate its type ("" when it can)
    unsupported_hint: str = ""


@dataclass(frozen=True)
class EngineVerdict:
    """What the engine's own table check (``catalog.describe_table``) says, when it refuses."""

    kind: str
    reason: str
    hint: str


@dataclass(frozen=True)
class TableFacts:
    table: TableName
    relkind: str | None  # r(table), p(artitioned), v(iew), …; None: no such relation
    replica_identity: str = "d"  # d(efault) | i(ndex) | f(ull) | n(othing)
    key_columns: tuple[str, ...] = ()  # what changes are matched by, as the engine sees it
    has_primary_key: bool = False
    schema_usage: bool = True
    can_select: bool = True
    owner: str = ""
    owned: bool = False  # the role has its owner's privileges
    row_security: bool = False
    force_row_security: bool = False
    size_bytes: int = 0
    row_estimate: int | None = None  # None: never analyzed
    columns: tuple[ColumnFacts, ...] = ()
    engine_verdict: EngineVerdict | None = None
    partitions: int = 0  # leaf partitions of a partitioned table
    partition_of: tuple[TableName, ...] = ()  # the tables it is a partition of, nearest first

    @property
    def exists(self) -> bool:
        return self.relkind is not None


@dataclass(frozen=True)
class PublicationFacts:
    name: str
    exists: bool
    owned: bool = False
    all_tables: bool = False
    publishes: frozenset[str] = frozenset()  # of insert, update, delete, truncate
    tables: frozenset[TableName] = frozenset()
    filters: tuple[str, ...] = ()  # "public.t: row filter (…)", "public.t: columns (a, b)"


class SourceCatalog(Protocol):
    def server(self) -> ServerFacts: ...

    def slot(self, name: str) -> SlotFacts: ...

    def table(self, table: TableName) -> TableFacts: ...

    def publication(self, name: str) -> PublicationFacts: ...
