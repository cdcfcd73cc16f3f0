"""What the source database says about itself: settings, tables, keys, publications."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from engine.decoding.types import ColumnType, map_type
from engine.errors import ErrorKind, RetryPolicy, SourceError, TableError
from engine.identifiers import TableName
from engine.source.pg_types import load_type_info


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type_oid: int
    typmod: int
    ctype: ColumnType
    is_key: bool
    attnum: int = 0  # position in pg_attribute: a rename keeps it, ADD COLUMN takes a new one

    @property
    def signature(self) -> ColumnSignature:
        return ColumnSignature(self.name, self.type_oid, self.typmod, self.attnum, self.is_key)


@dataclass(frozen=True)
class ColumnSignature:
    """What a destination records about each column of a target table it keeps in step."""

    name: str
    type_oid: int
    typmod: int
    attnum: int
    is_key: bool

    def as_json(self) -> list[object]:
        return [self.name, self.type_oid, self.typmod, self.attnum, self.is_key]

    @classmethod
    def from_json(cls, value: list[object]) -> ColumnSignature:
        name, oid, typmod, attnum, is_key = value
        return cls(str(name), int(oid), int(typmod), int(attnum), bool(is_key))  # type: ignore[call-overload]


@dataclass(frozen=True)
class TableSchema:
    table: TableName
    oid: int
    columns: tuple[ColumnSchema, ...]
    replica_identity: str  # d(efault: primary key) | i(ndex) | f(ull) | n(othing)

    @property
    def key_columns(self) -> tuple[ColumnSchema, ...]:
        return tuple(c for c in self.columns if c.is_key)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def signature(self) -> tuple[ColumnSignature, ...]:
        return tuple(c.signature for c in self.columns)


def server_version(conn: psycopg.Connection) -> int:
    return int(conn.info.server_version)


def check_wal_level(conn: psycopg.Connection, source_name: str) -> None:
    row = conn.execute("SHOW wal_level").fetchone()
    level = row[0] if row else "unknown"
    if level != "logical":
        raise SourceError(
            f'source "{source_name}" has wal_level={level}; logical replication needs wal_level=logical',
            "run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
            kind=ErrorKind.SOURCE_SETTINGS,
            retry=RetryPolicy.MANUAL,
        )


def check_replication_role(conn: psycopg.Connection, source_name: str) -> None:
    row = conn.execute(
        "SELECT rolreplication OR rolsuper, current_user FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row and not row[0]:
        raise SourceError(
            f'role "{row[1]}" on source "{source_name}" lacks the REPLICATION attribute',
            f'run ALTER ROLE "{row[1]}" WITH REPLICATION; as a superuser',
            kind=ErrorKind.SOURCE_PRIVILEGE,
            retry=RetryPolicy.MANUAL,
        )


_TABLE_SQL = """
SELECT c.oid, c.relreplident, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

# Key columns: the primary key for REPLICA IDENTITY DEFAULT, the identity index for USING INDEX,
# and the primary key (when there is one) for FULL.
_COLUMNS_SQL = """
SELECT a.attname, a.atttypid, a.atttypmod, a.attnum,
       coalesce(a.attnum = ANY (
           SELECT unnest(i.indkey) FROM pg_index i
           WHERE i.indrelid = a.attrelid
             AND (CASE WHEN %s = 'i' THEN i.indisreplident ELSE i.indisprimary END)
       ), false) AS is_key
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""


def describe_table(conn: psycopg.Connection, table: TableName) -> TableSchema:
    """Columns, types and key of ``table``; a :class:`TableError` says what is wrong and how to fix it."""
    row = conn.execute(_TABLE_SQL, (table.schema, table.name)).fetchone()
    if row is None:
        raise TableError(
            str(table),
            f"table {table} does not exist on the source",
            "create it, or remove it from the pipeline's --tables",
            kind=ErrorKind.TABLE_MISSING,
            retry=RetryPolicy.MANUAL,
        )
    oid, ident, relkind = int(row[0]), str(row[1]), str(row[2])
    if relkind not in ("r", "p"):
        raise TableError(
            str(table),
            f"{table} is not a table (relkind {relkind!r}); views and sequences cannot be replicated",
            "replicate the underlying tables instead",
            kind=ErrorKind.TABLE_MISSING,
            retry=RetryPolicy.MANUAL,
        )
    columns: list[ColumnSchema] = []
    for name, type_oid, typmod, attnum, is_key in conn.execute(_COLUMNS_SQL, (ident, oid)).fetchall():
        # an unsupported type raises UnsupportedTypeError: a TableError naming table and column
        ctype = map_type(load_type_info(conn, int(type_oid), int(typmod)), str(table), name)
        columns.append(ColumnSchema(name, int(type_oid), int(typmod), ctype, bool(is_key), int(attnum)))
    schema = TableSchema(table, oid, tuple(columns), ident)
    if ident == "n" or not schema.key_columns:
        fix = (
            f"add a primary key (ALTER TABLE {table} ADD PRIMARY KEY (…)) or a unique index on NOT NULL "
            f"columns and ALTER TABLE {table} REPLICA IDENTITY USING INDEX <index>"
        )
        reason = (
            f"table {table} has REPLICA IDENTITY NOTHING, so updates and deletes carry no key"
            if ident == "n"
            else f"table {table} has no primary key or replica identity index, so changes cannot be matched by key"
        )
        raise TableError(str(table), reason, fix, kind=ErrorKind.NO_REPLICA_IDENTITY, retry=RetryPolicy.MANUAL)
    return schema


def check_select_privilege(conn: psycopg.Connection, table: TableName) -> None:
    row = conn.execute("SELECT has_table_privilege(%s::regclass, 'SELECT')", (table.sql,)).fetchone()
    if row and not row[0]:
        raise TableError(
            str(table),
            f"the source role may not SELECT from {table}",
            f"GRANT SELECT ON {table} TO <role>;",
            kind=ErrorKind.SOURCE_PRIVILEGE,
            retry=RetryPolicy.MANUAL,
        )


def publication_tables(conn: psycopg.Connection, publication: str) -> set[TableName] | None:
    """Tables in ``publication``, or None when it does not exist."""
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
    ).fetchall()
    return {TableName(s, t) for s, t in rows}


def _table_list(tables: Iterable[TableName]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in sorted(tables))


def ensure_publication(conn: psycopg.Connection, publication: str, tables: Iterable[TableName]) -> None:
    """Create the publication, or bring its table list in line with ``tables``."""
    wanted = set(tables)
    current = publication_tables(conn, publication)
    pub = sql.Identifier(publication)
    try:
        if current is None:
            if wanted:
                conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(pub, _table_list(wanted)))
            else:
                conn.execute(sql.SQL("CREATE PUBLICATION {}").format(pub))
            return
        if wanted - current:
            conn.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(pub, _table_list(wanted - current)))
        if current - wanted:
            conn.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(pub, _table_list(current - wanted)))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SourceError(
            f"cannot create or change publication {publication}: {exc}".strip(),
            "the source role needs CREATE on the database and ownership of the tables (or create the publication "
            "yourself with the same name)",
            kind=ErrorKind.SOURCE_PRIVILEGE,
            retry=RetryPolicy.MANUAL,
        ) from exc


def drop_publication(conn: psycopg.Connection, publication: str) -> None:
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))


@dataclass(frozen=True)
class SlotInfo:
    name: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    confirmed_flush_lsn: int | None
    restart_lsn: int | None
    wal_status: str | None
    current_wal_lsn: int


_SLOT_SQL = """
SELECT slot_name, plugin, database, active, active_pid,
       (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, (restart_lsn - '0/0'::pg_lsn)::bigint, wal_status,
       (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint
FROM pg_replication_slots WHERE slot_name = %s
"""


def slot_info(conn: psycopg.Connection, slot: str) -> SlotInfo | None:
    row = conn.execute(_SLOT_SQL, (slot,)).fetchone()
    if row is None:
        return None
    return SlotInfo(
        name=row[0],
        plugin=row[1],
        database=row[2],
        active=bool(row[3]),
        active_pid=row[4],
        confirmed_flush_lsn=None if row[5] is None else int(row[5]),
        restart_lsn=None if row[6] is None else int(row[6]),
        wal_status=row[7],
        current_wal_lsn=int(row[8]),
    )


def drop_slot(conn: psycopg.Connection, slot: str) -> bool:
    """Drop ``slot`` (only on an explicit operator action: I4). Returns whether it existed."""
    info = slot_info(conn, slot)
    if info is None:
        return False
    deadline = time.monotonic() + 15
    while info is not None and info.active and info.active_pid:
        conn.execute("SELECT pg_terminate_backend(%s)", (info.active_pid,))
        if time.monotonic() > deadline:
            raise SourceError(f"slot {slot} is still in use by pid {info.active_pid}", "stop the process using it")
        time.sleep(0.1)
        info = slot_info(conn, slot)
    if info is not None:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return True
