"""What the source database says about itself: settings, tables, keys, publications."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from engine.decoding.types import ColumnType, map_type
from engine.errors import PIPELINE_PLACEHOLDER, ErrorKind, RetryPolicy, SourceError, TableError
from engine.identifiers import TableName, quote_ident
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
# and the primary key (when there is one) for FULL. Generated columns: the STORED ones from
# PostgreSQL 18 on, where the publication sends them (publish_generated_columns); before 18
# pgoutput never sends them, so the target leaves them out rather than copy what the stream
# would leave NULL. VIRTUAL ones (18+) are never sent.
_COLUMNS_SQL = """
SELECT a.attname, a.atttypid, a.atttypmod, a.attnum,
       coalesce(a.attnum = ANY (
           SELECT unnest(i.indkey) FROM pg_index i
           WHERE i.indrelid = a.attrelid
             AND (CASE WHEN %s = 'i' THEN i.indisreplident ELSE i.indisprimary END)
       ), false) AS is_key
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
  AND (a.attgenerated = '' OR (a.attgenerated = 's' AND %s))
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
    rows = conn.execute(_COLUMNS_SQL, (ident, oid, publishes_generated_columns(conn))).fetchall()
    for name, type_oid, typmod, attnum, is_key in rows:
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
    """The tables ``publication`` names, or None when it does not exist.

    The relations named in it (``pg_publication_rel``), not the leaves ``pg_publication_tables``
    lists for a partitioned table published without ``publish_via_partition_root``: comparing
    those with the configured parent would add the parent again (DuplicateObject). A FOR ALL
    TABLES publication names none, so it is every table it publishes.
    """
    row = conn.execute("SELECT oid, puballtables FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
    if row is None:
        return None
    if row[1]:
        rows = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_publication_rel pr JOIN pg_class c ON c.oid = pr.prrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE pr.prpubid = %s",
            (row[0],),
        ).fetchall()
    return {TableName(s, t) for s, t in rows}


@dataclass(frozen=True)
class PartitionInfo:
    """Where a table stands in a partition tree."""

    table: TableName
    partitioned: bool  # a partitioned table: it holds no rows, its leaf partitions do
    leaves: int  # leaf partitions under it (0 unless partitioned)
    ancestors: tuple[TableName, ...]  # the tables it is a partition of, nearest first


_PARTITION_SQL = """
SELECT c.relkind = 'p',
       (SELECT count(*) FROM pg_partition_tree(c.oid) t WHERE t.isleaf AND t.relid <> c.oid),
       ARRAY(SELECT ARRAY[an.nspname::text, ac.relname::text]
             FROM pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, pos)
             JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace
             WHERE a.relid <> c.oid ORDER BY a.pos)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""


def partition_info(conn: psycopg.Connection, table: TableName) -> PartitionInfo:
    """The table's place in its partition tree (a plain table: not partitioned, no ancestors)."""
    row = conn.execute(_PARTITION_SQL, (table.schema, table.name)).fetchone()
    if row is None:
        return PartitionInfo(table, partitioned=False, leaves=0, ancestors=())
    ancestors = tuple(TableName(str(s), str(t)) for s, t in row[2])
    return PartitionInfo(table, partitioned=bool(row[0]), leaves=int(row[1]), ancestors=ancestors)


# Plain SQL over pg_inherits (not pg_partition_tree, which reads the catalog as of now): inside
# a copy's snapshot it gives the partitions that snapshot holds.
_LEAVES_SQL = """
WITH RECURSIVE tree(relid) AS (
    SELECT %(root)s::oid
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid
)
SELECT t.relid::bigint FROM tree t JOIN pg_class c ON c.oid = t.relid
WHERE c.relkind <> 'p' AND t.relid <> %(root)s::oid
"""

# Rows a partition held before it joined the tree under ``root``: older than the pg_inherits rows
# that attached it (PostgreSQL sends none of them, only changes made after the attach).
_OLDER_ROWS_SQL = """
SELECT min(age(i.xmin)) FROM pg_partition_ancestors(%(leaf)s::oid::regclass) a
JOIN pg_inherits i ON i.inhrelid = a.relid
WHERE a.relid IN (SELECT relid FROM pg_partition_tree(%(root)s::oid::regclass)) AND a.relid <> %(root)s::oid
"""


def partition_leaves(conn: psycopg.Connection, root_oid: int) -> frozenset[int]:
    """The oids of the leaf partitions under ``root_oid`` (empty: not partitioned, or no partitions)."""
    return frozenset(int(r[0]) for r in conn.execute(_LEAVES_SQL, {"root": root_oid}).fetchall())


def existing_oids(conn: psycopg.Connection, oids: Iterable[int]) -> set[int]:
    """Which of ``oids`` are still relations (a dropped table's oid is gone)."""
    rows = conn.execute("SELECT oid::bigint FROM pg_class WHERE oid = ANY (%s::oid[])", (list(oids),)).fetchall()
    return {int(r[0]) for r in rows}


def is_partitioned(conn: psycopg.Connection, oid: int) -> bool:
    row = conn.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = %s::oid", (oid,)).fetchone()
    return bool(row and row[0])


def holds_rows_from_before_attach(conn: psycopg.Connection, root_oid: int, leaf_oid: int) -> bool:
    """Whether partition ``leaf_oid`` holds rows written before it was attached under
    ``root_oid`` (a row written in the attaching transaction counts: it was not sent either)."""
    row = conn.execute(_OLDER_ROWS_SQL, {"leaf": leaf_oid, "root": root_oid}).fetchone()
    if row is None or row[0] is None:
        return False
    name = conn.execute("SELECT %s::oid::regclass::text", (leaf_oid,)).fetchone()
    if name is None:
        return False
    # age() wraps for a frozen row older than 2^31 transactions (xmin keeps its value): negative
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM ONLY {} WHERE age(xmin) >= %s OR age(xmin) < 0)").format(
        sql.SQL(str(name[0]))
    )
    found = conn.execute(query, (int(row[0]),)).fetchone()
    return bool(found and found[0])


def check_partition_of(conn: psycopg.Connection, table: TableName, configured: Iterable[TableName]) -> None:
    """Refuse a partition named beside a table it is a partition of: the publication sends its
    changes under that ancestor already (``publish_via_partition_root``), so it would hold every
    row twice."""
    named = set(configured)
    parent = next((a for a in partition_info(conn, table).ancestors if a in named), None)
    if parent is None:
        return
    raise TableError(
        str(table),
        f"table {table} is a partition of {parent}, which the pipeline replicates too: its rows arrive under "
        f"{parent} already, so replicating {table} as well would hold them twice",
        f"remove {table} from the pipeline's --tables (its rows are in the target table of {parent})",
        kind=ErrorKind.CONFIG,
        retry=RetryPolicy.MANUAL,
    )


def _table_list(tables: Iterable[TableName]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in sorted(tables))


GENERATED_COLUMNS_VERSION = 180000  # pgoutput sends stored generated columns from PostgreSQL 18 on


def publishes_generated_columns(conn: psycopg.Connection) -> bool:
    """Whether the pipelines' publications send stored generated columns on this server."""
    return server_version(conn) >= GENERATED_COLUMNS_VERSION


def _publication_options(conn: psycopg.Connection) -> sql.Composable:
    options = "publish_via_partition_root = true"
    if publishes_generated_columns(conn):
        options += ", publish_generated_columns = stored"
    return sql.SQL(options)


def ensure_publication(
    conn: psycopg.Connection, publication: str, tables: Iterable[TableName]
) -> dict[TableName, TableError]:
    """Create the publication, or bring its table list in line with ``tables``; returns the
    tables the role may not add (it does not own them): each stops alone, the others go on.

    It publishes via the partition root: every partition's changes (also of partitions attached
    later, and of a row an UPDATE moves to another partition) arrive under the partitioned table
    the pipeline names, with its relid and name, never under the leaves'.
    """
    wanted = set(tables)
    current = publication_tables(conn, publication)
    pub = sql.Identifier(publication)
    refused: dict[TableName, TableError] = {}
    try:
        if current is None:
            try:
                if wanted:
                    conn.execute(
                        sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH ({})").format(
                            pub, _table_list(wanted), _publication_options(conn)
                        )
                    )
                else:
                    conn.execute(sql.SQL("CREATE PUBLICATION {} WITH ({})").format(pub, _publication_options(conn)))
                return refused
            except psycopg.errors.InsufficientPrivilege:
                if not wanted:
                    raise
                # a table the role does not own: create it empty, then add the tables one by one
                conn.execute(sql.SQL("CREATE PUBLICATION {} WITH ({})").format(pub, _publication_options(conn)))
                current = set()
        _publish_via_root(conn, publication, wanted)
        _publish_generated(conn, publication, wanted)
        missing = wanted - current
        if missing:
            try:
                conn.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(pub, _table_list(missing)))
            except psycopg.errors.InsufficientPrivilege:
                for table in sorted(missing):
                    try:
                        conn.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(pub, _table_list([table])))
                    except psycopg.errors.InsufficientPrivilege as exc:
                        refused[table] = _not_addable(conn, publication, table, exc)
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
    return refused


def _not_addable(conn: psycopg.Connection, publication: str, table: TableName, exc: psycopg.Error) -> TableError:
    row = conn.execute("SELECT current_user").fetchone()
    role = quote_ident(str(row[0])) if row else "<role>"
    add = sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(sql.Identifier(publication), _table_list([table]))
    return TableError(
        str(table),
        f"the source role may not add {table} to publication {publication}: {str(exc).strip()}",
        f"as the table's owner: {add.as_string(conn)}; (or ALTER TABLE {table.sql} OWNER TO {role};), "
        f"then `etl-tui pipeline start {PIPELINE_PLACEHOLDER}`",
        kind=ErrorKind.SOURCE_PRIVILEGE,
        retry=RetryPolicy.MANUAL,
    )


def _publish_generated(conn: psycopg.Connection, publication: str, tables: set[TableName]) -> None:
    """Make an existing publication send stored generated columns (PostgreSQL 18+) when one of
    its tables has such a column: the copy fills them, so the stream must send them too."""
    if not publishes_generated_columns(conn):
        return
    row = conn.execute("SELECT pubgencols FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
    if row is None or row[0] == "s" or not tables:
        return
    with_generated = conn.execute(
        "SELECT DISTINCT attrelid::regclass::text FROM pg_attribute WHERE attrelid = ANY (%s::regclass[])"
        " AND attgenerated = 's' AND NOT attisdropped ORDER BY 1",
        ([t.sql for t in tables],),
    ).fetchall()
    if not with_generated:
        return
    names = ", ".join(str(r[0]) for r in with_generated)
    _set_publication_option(
        conn,
        publication,
        "publish_generated_columns = stored",
        f"does not send stored generated columns, which {names} have",
    )


def _publish_via_root(conn: psycopg.Connection, publication: str, tables: set[TableName]) -> None:
    """Make an existing publication publish via the partition root when it is to hold a
    partitioned table. Only then: a publication the operator made (and the role may not alter)
    is left as it is when it holds none."""
    row = conn.execute("SELECT pubviaroot FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
    if row is None or row[0]:
        return
    partitioned = sorted(t for t in tables if partition_info(conn, t).partitioned)
    if not partitioned:
        return
    names = ", ".join(map(str, partitioned))
    _set_publication_option(
        conn,
        publication,
        "publish_via_partition_root = true",
        f"does not publish via the partition root, so the changes of partitioned {names} would arrive "
        "under their partitions' names",
    )


def _set_publication_option(conn: psycopg.Connection, publication: str, option: str, why: str) -> None:
    """``ALTER PUBLICATION … SET (option)``; a role that may not gets the statement to run as the owner."""
    statement = sql.SQL("ALTER PUBLICATION {} SET ({})").format(sql.Identifier(publication), sql.SQL(option))
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SourceError(
            f"publication {publication} {why}, and the role may not change it ({str(exc).strip()})",
            f"as the owner of the publication: {statement.as_string(conn)};",
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
