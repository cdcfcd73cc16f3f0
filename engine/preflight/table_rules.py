"""Verdicts about a pipeline's tables and its publication, and the copy estimate.

Each verdict predicts what the engine will do when the pipeline starts (``runner._resolve_tables``,
``catalog.ensure_publication``): a blocker here is a table that would end ``errored``, or a
pipeline that would not start.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import ErrorKind
from engine.identifiers import TableName, display_ident
from engine.preflight.facts import PublicationFacts, ServerFacts, TableFacts
from engine.preflight.findings import Check, Finding, Severity
from engine.units import format_bytes

COPY_ROWS_PER_SECOND = 360_000
"""README, Performance: the initial copy of 1M rows ran at 362k rows/s into DuckDB (2-core VM)."""

_RELKINDS = {
    "v": "a view",
    "m": "a materialized view",
    "S": "a sequence",
    "f": "a foreign table",
    "c": "a composite type",
    "i": "an index",
    "I": "a partitioned index",
    "t": "a TOAST table",
}
# what the engine's own refusal is about, when the rules below missed it
_VERDICT_CHECKS = {
    ErrorKind.TABLE_MISSING.value: Check.TABLE,
    ErrorKind.NO_REPLICA_IDENTITY.value: Check.REPLICA_IDENTITY,
    ErrorKind.UNSUPPORTED_TYPE.value: Check.COLUMN_TYPES,
}


def table_findings(t: TableFacts, server: ServerFacts, pipeline: str) -> list[Finding]:
    name = str(t.table)
    if not t.exists:
        return [
            Finding(
                Severity.BLOCKER,
                Check.TABLE,
                name,
                f"{name} does not exist on the source (database {server.database})",
                "create it, or remove it from the pipeline's tables (console: Config, e)",
            )
        ]
    if t.relkind not in ("r", "p"):
        kind = _RELKINDS.get(t.relkind or "", f"relkind {t.relkind!r}")
        return [
            Finding(
                Severity.BLOCKER,
                Check.TABLE,
                name,
                f"{name} is {kind}, not a table: only tables can be replicated",
                "replicate the tables it reads from instead",
            )
        ]
    found = [*_privileges(t, server), *_identity(t), *_row_security(t, server), *_types(t)]
    if t.engine_verdict is not None and not any(f.severity is Severity.BLOCKER for f in found):
        v = t.engine_verdict
        found.append(Finding(Severity.BLOCKER, _VERDICT_CHECKS.get(v.kind, Check.TABLE), name, v.reason, v.hint))
    if any(f.severity is Severity.BLOCKER for f in found):
        return found  # how it would replicate matters once it can
    if not any(f.severity is Severity.WARNING for f in found):
        found.insert(0, Finding(Severity.OK, Check.TABLE, name, f"{name}: {_summary(t, server)}"))
    found.extend(_toast(t, pipeline))
    found.extend(_unbounded_numeric(t, pipeline))
    return found


def _summary(t: TableFacts, server: ServerFacts) -> str:
    keys = ", ".join(display_ident(c) for c in t.key_columns)
    origin = {"i": "the replica identity index", "f": "the primary key (REPLICA IDENTITY FULL)"}
    parts = [
        "partitioned table" if t.relkind == "p" else "table",
        f"key ({keys}) from {origin.get(t.replica_identity, 'the primary key')}",
        "readable",
        f"{len(t.columns)} column(s), all types supported",
        f"~{t.row_estimate:,} rows" if t.row_estimate is not None else "row count unknown (never analyzed)",
        _size(t.size_bytes),
    ]
    if t.row_security:
        bypass = "the owner" if t.owned and not _bypasses(server) else "the role"
        parts.append(f"row security on, bypassed by {bypass}")
    return ", ".join(parts)


def _privileges(t: TableFacts, server: ServerFacts) -> list[Finding]:
    role, name = display_ident(server.role), str(t.table)
    out = []
    if not t.schema_usage:
        out.append(
            Finding(
                Severity.BLOCKER,
                Check.SELECT_PRIVILEGE,
                name,
                f"role {role} has no USAGE on schema {display_ident(t.table.schema)}, so it cannot read {name}",
                f"GRANT USAGE ON SCHEMA {display_ident(t.table.schema)} TO {role};",
            )
        )
    if not t.can_select:
        out.append(
            Finding(
                Severity.BLOCKER,
                Check.SELECT_PRIVILEGE,
                name,
                f"role {role} may not SELECT from {name}: the initial copy would fail",
                f"GRANT SELECT ON {name} TO {role};",
            )
        )
    return out


def _identity(t: TableFacts) -> list[Finding]:
    name = str(t.table)
    add_key = (
        f"ALTER TABLE {name} ADD PRIMARY KEY (…); or, on NOT NULL columns, CREATE UNIQUE INDEX … ON {name} (…); "
        f"then ALTER TABLE {name} REPLICA IDENTITY USING INDEX …;"
    )
    if t.replica_identity == "n":
        return [
            Finding(
                Severity.BLOCKER,
                Check.REPLICA_IDENTITY,
                name,
                f"{name} has REPLICA IDENTITY NOTHING: its updates and deletes carry no key",
                f"ALTER TABLE {name} REPLICA IDENTITY DEFAULT;" if t.has_primary_key else add_key,
            )
        ]
    if t.key_columns:
        return []
    why = {
        "f": "has REPLICA IDENTITY FULL but no primary key: the engine matches rows by a key, and FULL names none",
        "i": "has REPLICA IDENTITY USING INDEX, but that index is gone",
    }.get(t.replica_identity, "has no primary key or replica identity index: changes cannot be matched by key")
    return [Finding(Severity.BLOCKER, Check.REPLICA_IDENTITY, name, f"{name} {why}", add_key)]


def _bypasses(server: ServerFacts) -> bool:
    return server.superuser or server.bypass_rls


def _row_security(t: TableFacts, server: ServerFacts) -> list[Finding]:
    # the table owner is exempt unless FORCE ROW LEVEL SECURITY; logical decoding never applies it
    if not t.row_security or _bypasses(server) or (t.owned and not t.force_row_security):
        return []
    role, name = display_ident(server.role), str(t.table)
    forced = " (FORCE ROW LEVEL SECURITY applies it to the owner too)" if t.owned else ""
    return [
        Finding(
            Severity.BLOCKER,
            Check.ROW_SECURITY,
            name,
            f"row-level security is on for {name} and role {role} does not bypass it{forced}: the initial copy "
            "would be refused and the table stop (it copies with row_security = off rather than miss the rows "
            "its policies hide)",
            f"ALTER ROLE {role} BYPASSRLS; (as a superuser), or ALTER TABLE {name} DISABLE ROW LEVEL SECURITY;",
        )
    ]


def _types(t: TableFacts) -> list[Finding]:
    bad = [c for c in t.columns if c.unsupported]
    if not bad:
        return []
    name = str(t.table)
    cols = "; ".join(f"column {display_ident(c.name)} ({c.type_name}): {c.unsupported}" for c in bad)
    return [
        Finding(
            Severity.BLOCKER,
            Check.COLUMN_TYPES,
            name,
            f"{name} has {len(bad)} column(s) the engine cannot replicate, so the table would stop: {cols}",
            bad[0].unsupported_hint,
        )
    ]


def _toast(t: TableFacts, pipeline: str) -> list[Finding]:
    # with REPLICA IDENTITY FULL the old row comes in full; DEFAULT and INDEX send only the key
    cols = [c for c in t.columns if c.toast_prone and not c.is_key]
    if t.replica_identity not in ("d", "i") or not cols:
        return []
    name = str(t.table)
    listed = ", ".join(f"{display_ident(c.name)} ({c.type_name})" for c in cols)
    return [
        Finding(
            Severity.INFO,
            Check.UNCHANGED_TOAST,
            name,
            f"{listed} may be stored out of line (TOAST): an UPDATE that leaves such a value alone sends it as "
            "'unchanged' and the target keeps its value; when that UPDATE also changes the key, the engine reads "
            "the value from the source (one query per such row)",
            "nothing to do; REPLICA IDENTITY FULL sends the old row whole and saves that query, at the cost of "
            "more WAL",
        )
    ]


def _unbounded_numeric(t: TableFacts, pipeline: str) -> list[Finding]:
    # engine/source/numeric_scale.py: measured at the copy, DECIMAL(38,s) or exact text
    cols = [c for c in t.columns if c.type_name == "numeric"]
    if not cols:
        return []
    name = str(t.table)
    listed = ", ".join(display_ident(c.name) for c in cols)
    first = display_ident(cols[0].name)
    return [
        Finding(
            Severity.INFO,
            Check.COLUMN_TYPES,
            name,
            f"{listed} {'is' if len(cols) == 1 else 'are'} unbounded numeric: at the initial copy the engine "
            "measures the values copied and gives each such column DECIMAL(38,s) with room to spare, or the "
            "values' exact text when no DECIMAL(38,s) holds them (NaN, Infinity, more than 38 digits); a later "
            "value that does not fit stops the table with the command that fixes it",
            f"to choose the type yourself (an override wins over the measurement): etl-tui pipeline edit {pipeline} "
            f"--column-type '{name}.{first}=text' (or =decimal(38,12)), then etl-tui pipeline resync {pipeline} "
            f"--table '{name}' if the table was copied already",
        )
    ]


def healthy(tables: Sequence[TableFacts], findings: Sequence[Finding]) -> list[TableName]:
    """The tables the engine would publish and copy: present, with no blocker of their own."""
    blocked = {f.subject for f in findings if f.severity is Severity.BLOCKER}
    return [t.table for t in tables if t.exists and str(t.table) not in blocked]


def publication_findings(
    pub: PublicationFacts, tables: Sequence[TableFacts], usable: Sequence[TableName], server: ServerFacts
) -> list[Finding]:
    """``usable``: the tables the engine would put in the publication (see :func:`healthy`)."""
    subject, ident = f"publication {pub.name}", display_ident(pub.name)
    role = display_ident(server.role)
    by_name = {t.table: t for t in tables}
    listed = ", ".join(str(t) for t in sorted(usable)) or "…"
    if not pub.exists:
        problems = []
        create = (
            f"as the tables' owner: CREATE PUBLICATION {ident} FOR TABLE {listed}; "
            "(the pipeline then uses it: it keeps an existing publication of that name)"
        )
        hint = create
        if not server.superuser and not server.create_on_database:
            problems.append(f"role {role} may not create it (no CREATE on database {server.database})")
            hint = f"GRANT CREATE ON DATABASE {display_ident(server.database)} TO {role}; or, {create}"
        foreign = [t for t in usable if not server.superuser and not by_name[t].owned]
        if foreign:
            problems.append(
                f"role {role} does not own {', '.join(str(t) for t in foreign)} (only a table's owner may publish it)"
            )
            hint = create
        if problems:
            found = f"{pub.name} does not exist yet and " + "; ".join(problems)
            return [Finding(Severity.BLOCKER, Check.PUBLICATION, subject, found, hint)]
        return [
            Finding(
                Severity.INFO,
                Check.PUBLICATION,
                subject,
                f"{pub.name} does not exist yet: the pipeline creates it for its {len(usable)} table(s)",
            )
        ]
    out: list[Finding] = []
    configured = set(by_name)
    extra = sorted(pub.tables - configured)
    if pub.all_tables:
        if extra:
            out.append(
                Finding(
                    Severity.BLOCKER,
                    Check.PUBLICATION,
                    subject,
                    f"{pub.name} is FOR ALL TABLES: it also publishes {len(extra)} table(s) the pipeline does not "
                    "replicate, and the engine cannot take them out",
                    f"DROP PUBLICATION {ident}; (the pipeline then creates its own, for its tables)",
                )
            )
    else:
        missing = sorted(set(usable) - pub.tables)
        may_alter = server.superuser or pub.owned
        if missing:
            sql = f"ALTER PUBLICATION {ident} ADD TABLE {', '.join(map(str, missing))};"
            fixable = may_alter and (server.superuser or all(by_name[t].owned for t in missing))
            out.append(_membership(subject, f"{pub.name} lacks {', '.join(map(str, missing))}", sql, fixable))
        if extra:
            sql = f"ALTER PUBLICATION {ident} DROP TABLE {', '.join(map(str, extra))};"
            found = f"{pub.name} also publishes {', '.join(map(str, extra))}, which the pipeline does not replicate"
            out.append(_membership(subject, found, sql, may_alter))
    unpublished = [a for a in ("insert", "update", "delete") if a not in pub.publishes]
    every = f"ALTER PUBLICATION {ident} SET (publish = 'insert, update, delete, truncate');"
    if unpublished:
        out.append(
            Finding(
                Severity.BLOCKER,
                Check.PUBLICATION,
                subject,
                f"{pub.name} does not publish {', '.join(unpublished)}: those changes would never reach the target",
                every,
            )
        )
    elif "truncate" not in pub.publishes:
        out.append(
            Finding(
                Severity.WARNING,
                Check.PUBLICATION,
                subject,
                f"{pub.name} does not publish truncate: a TRUNCATE on the source would leave the target's rows",
                every,
            )
        )
    if pub.filters:
        out.append(
            Finding(
                Severity.WARNING,
                Check.PUBLICATION,
                subject,
                f"{pub.name} publishes only part of some tables ({'; '.join(pub.filters)}): the stream would miss "
                "rows or columns the copy has",
                f"publish whole tables: ALTER PUBLICATION {ident} SET TABLE {listed};",
            )
        )
    if not out:
        out.append(
            Finding(
                Severity.OK,
                Check.PUBLICATION,
                subject,
                f"{pub.name} publishes insert, update, delete and truncate of exactly the pipeline's "
                f"{len(usable)} table(s)",
            )
        )
    return out


def _membership(subject: str, found: str, sql: str, fixable: bool) -> Finding:
    if fixable:
        return Finding(
            Severity.WARNING, Check.PUBLICATION, subject, found, f"the engine fixes it when the pipeline starts: {sql}"
        )
    return Finding(
        Severity.BLOCKER,
        Check.PUBLICATION,
        subject,
        f"{found}, and the role may not change the publication",
        f"as the owner of the publication and the tables: {sql}",
    )


def copy_estimate(tables: Sequence[TableFacts], usable: Sequence[TableName]) -> Finding:
    wanted = set(usable)
    copied = [t for t in tables if t.table in wanted]
    unknown = [str(t.table) for t in copied if t.row_estimate is None]
    rows = sum(t.row_estimate or 0 for t in copied)
    size = sum(t.size_bytes for t in copied)
    found = (
        f"{len(copied)} table(s), ~{rows:,} rows, {_size(size)}: {_duration(rows / COPY_ROWS_PER_SECOND)} "
        f"at {COPY_ROWS_PER_SECOND // 1000}k rows/s"
    )
    hint = (
        "an estimate from pg_table_size and reltuples, at the initial copy rate measured into DuckDB on a 2-core VM "
        "(README, Performance); wide rows, large values, a busy source or Snowflake take longer"
    )
    if unknown:
        found += f"; row count unknown for {', '.join(unknown)} (never analyzed)"
        hint += f"; ANALYZE {', '.join(unknown)}; gives the missing row counts"
    return Finding(Severity.INFO, Check.COPY_ESTIMATE, "initial copy", found, hint)


def _size(value: float) -> str:
    return format_bytes(value)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
