"""The :class:`~engine.preflight.facts.SourceCatalog` of a live source: read-only catalog queries.

Everything here works for an unprivileged role (pg_class, pg_roles, pg_replication_slots,
pg_stat_replication and pg_publication are readable by all), so the checks see what the
pipeline's own role sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from engine.config.models import Source
from engine.decoding.types import map_type
from engine.errors import TableError, UnsupportedTypeError
from engine.identifiers import TableName
from engine.preflight.facts import ColumnFacts, EngineVerdict, PublicationFacts, ServerFacts, SlotFacts, TableFacts
from engine.source import catalog
from engine.source.connection import connect_source
from engine.source.pg_types import load_type_info

# a stuck catalog (locks, a dying server) must not hang `etl-tui check`
STATEMENT_TIMEOUT = "30s"

_SERVER_SQL = """
SELECT current_setting('server_version'), current_database(), r.rolname, r.rolsuper, r.rolreplication,
       r.rolbypassrls, has_database_privilege(current_database(), 'CREATE'),
       current_setting('wal_level'),
       current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots),
       current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication)
FROM pg_roles r WHERE r.rolname = current_user
"""

# A partitioned table holds no rows itself: its size and row count are its leaf partitions'.
_TABLE_SQL = """
WITH rel AS (
    SELECT c.oid, c.relkind, c.relreplident, c.relrowsecurity, c.relforcerowsecurity, c.relowner, n.oid AS nsp
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %s AND c.relname = %s
), leaves AS (
    SELECT l.oid, l.reltuples FROM rel JOIN pg_class l
      ON l.oid = rel.oid AND rel.relkind <> 'p'
      OR rel.relkind = 'p' AND l.oid IN (SELECT relid FROM pg_partition_tree(rel.oid) WHERE isleaf)
)
SELECT rel.oid, rel.relkind, rel.relreplident, rel.relrowsecurity, rel.relforcerowsecurity,
       pg_get_userbyid(rel.relowner), pg_has_role(rel.relowner, 'USAGE'),
       has_schema_privilege(rel.nsp, 'USAGE'), has_table_privilege(rel.oid, 'SELECT'),
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel.oid AND i.indisprimary),
       (SELECT coalesce(sum(pg_table_size(leaves.oid)), 0)::bigint FROM leaves),
       (SELECT CASE WHEN bool_or(leaves.reltuples < 0) THEN -1 ELSE coalesce(sum(leaves.reltuples), 0) END
        FROM leaves)::bigint
FROM rel
"""

# Key columns as catalog.describe_table picks them: the identity index for USING INDEX, else the
# primary key.
_COLUMNS_SQL = """
SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod), a.attstorage, t.typlen,
       coalesce(a.attnum = ANY (
           SELECT unnest(i.indkey) FROM pg_index i
           WHERE i.indrelid = a.attrelid
             AND (CASE WHEN %s = 'i' THEN i.indisreplident ELSE i.indisprimary END)
       ), false)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

_PUBLICATION_SQL = """
SELECT p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, pg_has_role(p.pubowner, 'USAGE')
FROM pg_publication p WHERE p.pubname = %s
"""

# Row filters and column lists came in PostgreSQL 15.
_FILTERS_SQL = """
SELECT pr.prrelid::regclass::text, pg_get_expr(pr.prqual, pr.prrelid),
       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
        WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs))
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
WHERE p.pubname = %s AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL)
ORDER BY 1
"""


class PostgresCatalog:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def server(self) -> ServerFacts:
        row = self._conn.execute(_SERVER_SQL).fetchone()
        assert row is not None  # current_user is always in pg_roles
        return ServerFacts(
            version=str(row[0]),
            database=str(row[1]),
            role=str(row[2]),
            superuser=bool(row[3]),
            replication=bool(row[4]),
            bypass_rls=bool(row[5]),
            create_on_database=bool(row[6]),
            wal_level=str(row[7]),
            max_replication_slots=int(row[8]),
            slots_in_use=int(row[9]),
            max_wal_senders=int(row[10]),
            wal_senders_in_use=int(row[11]),
        )

    def slot(self, name: str) -> SlotFacts:
        info = catalog.slot_info(self._conn, name)
        if info is None:
            return SlotFacts(name, exists=False)
        return SlotFacts(
            name,
            exists=True,
            active=info.active,
            wal_status=info.wal_status,
            plugin=info.plugin,
            database=info.database,
        )

    def table(self, table: TableName) -> TableFacts:
        row = self._conn.execute(_TABLE_SQL, (table.schema, table.name)).fetchone()
        if row is None:
            return TableFacts(table, relkind=None)
        oid, relkind, ident = int(row[0]), str(row[1]), str(row[2])
        columns = self._columns(table, oid, ident) if relkind in ("r", "p") else ()
        tree = catalog.partition_info(self._conn, table)
        return TableFacts(
            table,
            relkind=relkind,
            replica_identity=ident,
            key_columns=tuple(c.name for c in columns if c.is_key),
            has_primary_key=bool(row[9]),
            schema_usage=bool(row[7]),
            can_select=bool(row[8]),
            owner=str(row[5]),
            owned=bool(row[6]),
            row_security=bool(row[3]),
            force_row_security=bool(row[4]),
            size_bytes=int(row[10]),
            row_estimate=None if int(row[11]) < 0 else int(row[11]),
            columns=columns,
            engine_verdict=self._engine_verdict(table) if relkind in ("r", "p") else None,
            partitions=tree.leaves,
            partition_of=tree.ancestors,
        )

    def _columns(self, table: TableName, oid: int, ident: str) -> tuple[ColumnFacts, ...]:
        out = []
        for name, type_oid, typmod, type_name, storage, typlen, is_key in self._conn.execute(
            _COLUMNS_SQL, (ident, oid)
        ).fetchall():
            unsupported = hint = ""
            try:
                map_type(load_type_info(self._conn, int(type_oid), int(typmod)), str(table), name)
            except UnsupportedTypeError as exc:
                unsupported, hint = exc.detail, exc.hint
            except LookupError as exc:  # the type was dropped meanwhile
                unsupported, hint = str(exc), "run the check again"
            out.append(
                ColumnFacts(
                    str(name),
                    str(type_name),
                    is_key=bool(is_key),
                    toast_prone=int(typlen) == -1 and str(storage) in ("x", "e"),
                    unsupported=unsupported,
                    unsupported_hint=hint,
                )
            )
        return tuple(out)

    def _engine_verdict(self, table: TableName) -> EngineVerdict | None:
        # the rules must never pass a table the engine would refuse
        try:
            catalog.describe_table(self._conn, table)
        except TableError as exc:
            return EngineVerdict(str(exc.kind), exc.reason, exc.hint)
        except LookupError:  # a type dropped meanwhile: the column facts say so already
            return None
        return None

    def publication(self, name: str) -> PublicationFacts:
        row = self._conn.execute(_PUBLICATION_SQL, (name,)).fetchone()
        if row is None:
            return PublicationFacts(name, exists=False)
        actions = ("insert", "update", "delete", "truncate")
        filters: tuple[str, ...] = ()
        if self._conn.info.server_version >= 150000:
            filters = tuple(
                _filter_text(str(rel), qual, cols) for rel, qual, cols in self._conn.execute(_FILTERS_SQL, (name,))
            )
        return PublicationFacts(
            name,
            exists=True,
            owned=bool(row[5]),
            all_tables=bool(row[0]),
            publishes=frozenset(a for a, on in zip(actions, row[1:5], strict=True) if on),
            tables=frozenset(catalog.publication_tables(self._conn, name) or ()),
            filters=filters,
        )


def _filter_text(relation: str, qual: str | None, columns: str | None) -> str:
    parts = [f"row filter ({qual})" if qual else "", f"only columns ({columns})" if columns else ""]
    return f"{relation}: " + "; ".join(p for p in parts if p)


@contextmanager
def open_postgres_catalog(source: Source) -> Iterator[PostgresCatalog]:
    """Connect as the pipeline would (same DSN and session settings); a failure is a SourceError."""
    conn = connect_source(source.dsn, f'source "{source.name}"', application_name="etl-tui check")
    try:
        conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        yield PostgresCatalog(conn)
    finally:
        conn.close()
