"""The one place that reads and writes the config DB.

The CLI, the manager and (later) the console all go through :class:`ConfigRepository`; nothing
else issues SQL against the config DB. Every write fires ``NOTIFY etl_config`` (by trigger), so a
running manager reacts at once.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from engine.config.migrations import apply_migrations
from engine.config.models import (
    ColumnTypeOverride,
    Destination,
    DestinationType,
    NumericTarget,
    Pipeline,
    PipelineSpec,
    PipelineStatus,
    Source,
)
from engine.errors import ConfigDbError, ConfigError
from engine.identifiers import TableName
from engine.postgres_errors import classify_connect_error

NOTIFY_CHANNEL = "etl_config"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


def validate_object_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"{kind} name {name!r} is not allowed",
            "use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 100 characters)",
        )
    return name


def connect_config_db(url: str, *, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10, application_name="etl-tui config")
    except psycopg.Error as exc:
        err = classify_connect_error(exc, "config DB", url)
        raise ConfigDbError(err.reason, err.hint.replace("source add", "CONFIG_DB_URL")) from exc


class ConfigRepository:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self._url = url
        self._conn = connect_config_db(url)
        if migrate:
            apply_migrations(self._conn)

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ConfigRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        try:
            with self._conn.transaction(), self._conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except pg_errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or str(exc)
            raise ConfigError(f"already exists: {detail}", "choose another name or remove the old one") from exc
        except psycopg.OperationalError as exc:
            raise ConfigDbError(f"config DB error: {exc}", "check that the config DB is reachable") from exc

    # ---- sources ---------------------------------------------------------------------------
    def add_source(self, name: str, dsn: str) -> Source:
        validate_object_name("source", name)
        with self._tx() as cur:
            cur.execute("INSERT INTO sources (name, dsn) VALUES (%s, %s) RETURNING id, name, dsn", (name, dsn))
            return _source(cur.fetchone())

    def list_sources(self) -> list[Source]:
        with self._tx() as cur:
            cur.execute("SELECT id, name, dsn FROM sources ORDER BY name")
            return [_source(r) for r in cur.fetchall()]

    def get_source(self, name: str) -> Source:
        with self._tx() as cur:
            cur.execute("SELECT id, name, dsn FROM sources WHERE name = %s", (name,))
            row = cur.fetchone()
        if row is None:
            raise ConfigError(f"source {name!r} does not exist", "see `etl-tui source list`")
        return _source(row)

    def update_source(self, name: str, *, new_name: str | None = None, dsn: str | None = None) -> Source:
        """Rename ``name`` and/or change its DSN (None keeps it). Pipelines using it follow: their
        runners restart with the new definition."""
        if new_name is not None:
            validate_object_name("source", new_name)
        with self._tx() as cur:
            cur.execute(
                "UPDATE sources SET name = coalesce(%s, name), dsn = coalesce(%s, dsn), updated_at = now()"
                " WHERE name = %s RETURNING id, name, dsn",
                (new_name, dsn, name),
            )
            row = cur.fetchone()
        if row is None:
            raise ConfigError(f"source {name!r} does not exist", "see `etl-tui source list`")
        return _source(row)

    def remove_source(self, name: str) -> None:
        source = self.get_source(name)
        with self._tx() as cur:
            cur.execute("SELECT name FROM pipelines WHERE source_id = %s ORDER BY name", (source.id,))
            users = [r["name"] for r in cur.fetchall()]
            if users:
                raise ConfigError(
                    f"source {name!r} is used by pipeline(s) {', '.join(users)}",
                    "remove those pipelines first",
                )
            cur.execute("DELETE FROM sources WHERE id = %s", (source.id,))

    # ---- destinations ----------------------------------------------------------------------
    def add_destination(self, name: str, type_: DestinationType, config: dict[str, Any]) -> Destination:
        validate_object_name("destination", name)
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO destinations (name, type, config) VALUES (%s, %s, %s) RETURNING id, name, type, config",
                (name, str(type_), json.dumps(config)),
            )
            return _destination(cur.fetchone())

    def list_destinations(self) -> list[Destination]:
        with self._tx() as cur:
            cur.execute("SELECT id, name, type, config FROM destinations ORDER BY name")
            return [_destination(r) for r in cur.fetchall()]

    def get_destination(self, name: str) -> Destination:
        with self._tx() as cur:
            cur.execute("SELECT id, name, type, config FROM destinations WHERE name = %s", (name,))
            row = cur.fetchone()
        if row is None:
            raise ConfigError(f"destination {name!r} does not exist", "see `etl-tui destination list`")
        return _destination(row)

    def update_destination(
        self,
        name: str,
        *,
        new_name: str | None = None,
        type_: DestinationType | None = None,
        config: dict[str, Any] | None = None,
    ) -> Destination:
        """Rename ``name`` and/or replace its type and settings (None keeps them)."""
        if new_name is not None:
            validate_object_name("destination", new_name)
        with self._tx() as cur:
            cur.execute(
                "UPDATE destinations SET name = coalesce(%s, name), type = coalesce(%s, type),"
                " config = coalesce(%s::jsonb, config), updated_at = now()"
                " WHERE name = %s RETURNING id, name, type, config",
                (
                    new_name,
                    str(type_) if type_ is not None else None,
                    json.dumps(config) if config is not None else None,
                    name,
                ),
            )
            row = cur.fetchone()
        if row is None:
            raise ConfigError(f"destination {name!r} does not exist", "see `etl-tui destination list`")
        return _destination(row)

    def remove_destination(self, name: str) -> None:
        dest = self.get_destination(name)
        with self._tx() as cur:
            cur.execute("SELECT name FROM pipelines WHERE destination_id = %s ORDER BY name", (dest.id,))
            users = [r["name"] for r in cur.fetchall()]
            if users:
                raise ConfigError(
                    f"destination {name!r} is used by pipeline(s) {', '.join(users)}",
                    "remove those pipelines first",
                )
            cur.execute("DELETE FROM destinations WHERE id = %s", (dest.id,))

    # ---- pipelines -------------------------------------------------------------------------
    def add_pipeline(
        self,
        name: str,
        source: str,
        destination: str,
        tables: Iterable[TableName],
        status: PipelineStatus = PipelineStatus.START,
        column_types: Iterable[ColumnTypeChange] = (),
    ) -> Pipeline:
        """``column_types``: overrides as :func:`~engine.config.models.parse_column_type` reads
        them (a None type, ``auto``, sets none)."""
        validate_object_name("pipeline", name)
        tables = list(tables)
        overrides = _checked_overrides(name, tables, column_types)
        src = self.get_source(source)
        dst = self.get_destination(destination)
        with self._tx() as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('pipelines', 'id'))")
            row = cur.fetchone()
            assert row is not None
            pid = int(next(iter(row.values())))
            token = secrets.token_hex(4)
            cur.execute(
                "INSERT INTO pipelines (id, name, source_id, destination_id, status, publication_name, slot_name)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                # slot names are global on the source server: a random part keeps two installations
                # (two config DBs) replicating one server apart
                (pid, name, src.id, dst.id, str(status), f"etl_pub_{pid}_{token}", f"etl_slot_{pid}_{token}"),
            )
            cur.executemany(
                "INSERT INTO pipeline_tables (pipeline_id, schema_name, table_name) VALUES (%s, %s, %s)",
                [(pid, t.schema, t.name) for t in tables],
            )
            _write_overrides(cur, pid, overrides)
        return self.get_pipeline(name)

    def _pipelines(self, where: str = "", params: tuple[Any, ...] = ()) -> list[Pipeline]:
        with self._tx() as cur:
            cur.execute(
                "SELECT p.id, p.name, p.source_id, p.destination_id, p.status, p.publication_name, p.slot_name,"
                " extract(epoch FROM p.updated_at)::float8 AS generation,"
                " coalesce(array_agg(t.schema_name ORDER BY t.schema_name, t.table_name)"
                "   FILTER (WHERE t.table_name IS NOT NULL), '{}') AS schemas,"
                " coalesce(array_agg(t.table_name ORDER BY t.schema_name, t.table_name)"
                "   FILTER (WHERE t.table_name IS NOT NULL), '{}') AS names,"
                " (SELECT coalesce(json_agg(json_build_array(c.schema_name, c.table_name, c.column_name, c.type)"
                "   ORDER BY c.schema_name, c.table_name, c.column_name), '[]')"
                "  FROM pipeline_column_types c WHERE c.pipeline_id = p.id) AS column_types"
                " FROM pipelines p LEFT JOIN pipeline_tables t ON t.pipeline_id = p.id"
                f" {where} GROUP BY p.id ORDER BY p.name",  # `where` is a constant of this module
                params,
            )
            return [_pipeline(r) for r in cur.fetchall()]

    def list_pipelines(self) -> list[Pipeline]:
        return self._pipelines()

    def get_pipeline(self, name: str) -> Pipeline:
        found = self._pipelines("WHERE p.name = %s", (name,))
        if not found:
            raise ConfigError(f"pipeline {name!r} does not exist", "see `etl-tui pipeline list`")
        return found[0]

    def set_pipeline_status(self, name: str, status: PipelineStatus) -> Pipeline:
        with self._tx() as cur:
            cur.execute(
                "UPDATE pipelines SET status = %s, updated_at = now() WHERE name = %s RETURNING id",
                (str(status), name),
            )
            if cur.fetchone() is None:
                raise ConfigError(f"pipeline {name!r} does not exist", "see `etl-tui pipeline list`")
        return self.get_pipeline(name)

    def set_pipeline_tables(self, name: str, tables: Iterable[TableName]) -> Pipeline:
        pipeline = self.get_pipeline(name)
        wanted = set(tables)
        with self._tx() as cur:
            cur.execute("DELETE FROM pipeline_tables WHERE pipeline_id = %s", (pipeline.id,))
            cur.executemany(
                "INSERT INTO pipeline_tables (pipeline_id, schema_name, table_name) VALUES (%s, %s, %s)",
                [(pipeline.id, t.schema, t.name) for t in sorted(wanted)],
            )
            _drop_orphan_overrides(cur, pipeline.id)
            cur.execute("UPDATE pipelines SET updated_at = now() WHERE id = %s", (pipeline.id,))
        return self.get_pipeline(name)

    def set_column_types(self, name: str, changes: Iterable[ColumnTypeChange]) -> Pipeline:
        """Set (or, with a None type, remove) column type overrides of pipeline ``name``. Each
        table must be one of the pipeline's; the runner restarts with them, and a table takes them
        when it is next copied (``etl-tui pipeline resync <name> --table …``)."""
        pipeline = self.get_pipeline(name)
        changes = list(changes)
        _checked_overrides(name, pipeline.tables, changes)
        with self._tx() as cur:
            for table, column, target in changes:
                key = (pipeline.id, table.schema, table.name, column)
                if target is None:
                    cur.execute(
                        "DELETE FROM pipeline_column_types"
                        " WHERE pipeline_id = %s AND schema_name = %s AND table_name = %s AND column_name = %s",
                        key,
                    )
                else:
                    cur.execute(
                        "INSERT INTO pipeline_column_types (pipeline_id, schema_name, table_name, column_name, type)"
                        " VALUES (%s, %s, %s, %s, %s)"
                        " ON CONFLICT (pipeline_id, schema_name, table_name, column_name)"
                        " DO UPDATE SET type = excluded.type",
                        (*key, target.spelling),
                    )
            cur.execute("UPDATE pipelines SET updated_at = now() WHERE id = %s", (pipeline.id,))
        return self.get_pipeline(name)

    def update_pipeline(
        self,
        name: str,
        *,
        new_name: str | None = None,
        source: str | None = None,
        destination: str | None = None,
        tables: Iterable[TableName] | None = None,
    ) -> Pipeline:
        """Change a pipeline's name, source, destination and/or tables (None keeps each) in one
        transaction. Its slot and publication names stay: they were fixed at creation, so a renamed
        pipeline keeps its slot."""
        if new_name is not None:
            validate_object_name("pipeline", new_name)
        pipeline = self.get_pipeline(name)
        source_id = self.get_source(source).id if source is not None else pipeline.source_id
        destination_id = self.get_destination(destination).id if destination is not None else pipeline.destination_id
        with self._tx() as cur:
            cur.execute(
                "UPDATE pipelines SET name = %s, source_id = %s, destination_id = %s, updated_at = now()"
                " WHERE id = %s RETURNING id",
                (new_name or pipeline.name, source_id, destination_id, pipeline.id),
            )
            if cur.fetchone() is None:
                raise ConfigError(f"pipeline {name!r} does not exist", "see `etl-tui pipeline list`")
            if tables is not None:
                cur.execute("DELETE FROM pipeline_tables WHERE pipeline_id = %s", (pipeline.id,))
                cur.executemany(
                    "INSERT INTO pipeline_tables (pipeline_id, schema_name, table_name) VALUES (%s, %s, %s)",
                    [(pipeline.id, t.schema, t.name) for t in sorted(set(tables))],
                )
                _drop_orphan_overrides(cur, pipeline.id)
        return self.get_pipeline(new_name or pipeline.name)

    def remove_pipeline(self, name: str) -> Pipeline:
        pipeline = self.get_pipeline(name)
        with self._tx() as cur:
            cur.execute("DELETE FROM pipelines WHERE id = %s", (pipeline.id,))
        return pipeline

    def load_specs(self) -> list[PipelineSpec]:
        """Every pipeline with its source and destination, read in one transaction."""
        with self._conn.transaction():
            pipelines = self._pipelines()
            sources = {s.id: s for s in self.list_sources()}
            dests = {d.id: d for d in self.list_destinations()}
        return [PipelineSpec(p, sources[p.source_id], dests[p.destination_id]) for p in pipelines]

    def load_config(self) -> tuple[list[Source], list[Destination], list[PipelineSpec]]:
        """Every source, destination and pipeline (also those no pipeline uses), in one transaction."""
        with self._conn.transaction():
            pipelines = self._pipelines()
            sources = self.list_sources()
            dests = self.list_destinations()
        by_source = {s.id: s for s in sources}
        by_dest = {d.id: d for d in dests}
        specs = [PipelineSpec(p, by_source[p.source_id], by_dest[p.destination_id]) for p in pipelines]
        return sources, dests, specs


# One --column-type: table, column and type (None: auto, i.e. no override).
ColumnTypeChange = tuple[TableName, str, NumericTarget | None]


def _checked_overrides(
    pipeline: str, tables: Iterable[TableName], changes: Iterable[ColumnTypeChange]
) -> list[ColumnTypeOverride]:
    """The overrides to store; a table the pipeline does not replicate is a ConfigError."""
    replicated = set(tables)
    out: list[ColumnTypeOverride] = []
    for table, column, target in changes:
        if table not in replicated:
            listed = ", ".join(str(t) for t in sorted(replicated)) or "none"
            raise ConfigError(
                f"--column-type {table}.{column}: pipeline {pipeline} does not replicate table {table}",
                f"name one of its tables ({listed}), or add the table to the pipeline first",
            )
        if target is not None:
            out.append(ColumnTypeOverride(table, column, target))
    return out


def _write_overrides(
    cur: psycopg.Cursor[dict[str, Any]], pipeline_id: int, overrides: list[ColumnTypeOverride]
) -> None:
    cur.executemany(
        "INSERT INTO pipeline_column_types (pipeline_id, schema_name, table_name, column_name, type)"
        " VALUES (%s, %s, %s, %s, %s)",
        [(pipeline_id, o.table.schema, o.table.name, o.column, o.target.spelling) for o in overrides],
    )


def _drop_orphan_overrides(cur: psycopg.Cursor[dict[str, Any]], pipeline_id: int) -> None:
    # an override lives only as long as its table is replicated
    cur.execute(
        "DELETE FROM pipeline_column_types c WHERE c.pipeline_id = %s AND NOT EXISTS ("
        " SELECT 1 FROM pipeline_tables t WHERE t.pipeline_id = c.pipeline_id"
        " AND t.schema_name = c.schema_name AND t.table_name = c.table_name)",
        (pipeline_id,),
    )


def _source(row: dict[str, Any] | None) -> Source:
    assert row is not None
    return Source(id=row["id"], name=row["name"], dsn=row["dsn"])


def _destination(row: dict[str, Any] | None) -> Destination:
    assert row is not None
    return Destination(id=row["id"], name=row["name"], type=DestinationType(row["type"]), config=row["config"])


def _pipeline(row: dict[str, Any]) -> Pipeline:
    return Pipeline(
        id=row["id"],
        name=row["name"],
        source_id=row["source_id"],
        destination_id=row["destination_id"],
        status=PipelineStatus(row["status"]),
        publication_name=row["publication_name"],
        slot_name=row["slot_name"],
        tables=tuple(TableName(s, n) for s, n in zip(row["schemas"], row["names"], strict=True)),
        generation=float(row["generation"]),
        column_types=tuple(
            ColumnTypeOverride(TableName(schema, name), column, NumericTarget.parse(spelled))
            for schema, name, column, spelled in row["column_types"]
        ),
    )
