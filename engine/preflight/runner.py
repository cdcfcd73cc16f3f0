"""Run every check for some pipelines, one connection per source."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from engine.config.models import PipelineSpec, Source
from engine.errors import ErrorKind, EtlError
from engine.preflight import partition_rules, server_rules, table_rules
from engine.preflight.destination_rules import destination_findings
from engine.preflight.facts import SourceCatalog
from engine.preflight.findings import Check, CheckReport, Finding, PipelineReport, Severity, SourceReport
from engine.preflight.postgres_catalog import open_postgres_catalog
from engine.redaction import scrub

CatalogOpener = Callable[[Source], AbstractContextManager[SourceCatalog]]


def run_preflight(
    specs: Sequence[PipelineSpec],
    *,
    open_catalog: CatalogOpener = open_postgres_catalog,
    clock: Callable[[], float] = time.time,
) -> CheckReport:
    """Check ``specs`` against their sources and destinations; never raises for what it finds."""
    started, at = time.monotonic(), clock()
    groups: dict[int, list[PipelineSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.source.id, []).append(spec)
    reports = tuple(_check_source(group[0].source, group, open_catalog) for group in groups.values())
    return CheckReport(reports, checked_at=at, seconds=time.monotonic() - started)


def _check_source(source: Source, specs: Sequence[PipelineSpec], open_catalog: CatalogOpener) -> SourceReport:
    try:
        with open_catalog(source) as cat:
            findings, pipelines = _with_catalog(cat, specs)
    except EtlError as exc:  # unreachable, wrong password, no such database: a finding, not a crash
        hint = exc.hint
        if exc.kind is ErrorKind.SOURCE_UNREACHABLE:  # the engine's hint also says it retries; a check does not
            hint = "check that the server is running and reachable from this host (host, port, firewall)"
        failed = Finding(Severity.BLOCKER, Check.CONNECTION, f"source {source.name}", _clean(exc.reason, source), hint)
        return _unchecked(source, specs, failed)
    except psycopg.Error as exc:  # the connection dropped, or a catalog query was refused or timed out
        failed = Finding(
            Severity.BLOCKER,
            Check.CONNECTION,
            f"source {source.name}",
            _clean(f'source "{source.name}": the checks stopped: {str(exc).strip()}', source),
            "run the check again; if it persists, check the server's log",
        )
        return _unchecked(source, specs, failed)
    return SourceReport(source.name, source.dsn_redacted, tuple(findings), tuple(pipelines))


def _with_catalog(cat: SourceCatalog, specs: Sequence[PipelineSpec]) -> tuple[list[Finding], list[PipelineReport]]:
    server = cat.server()
    slots = [(spec.name, cat.slot(spec.pipeline.slot_name)) for spec in specs]
    findings = [
        server_rules.connection(server),
        server_rules.wal_level(server),
        server_rules.replication_role(server),
        server_rules.slot_capacity(server, slots),
        server_rules.wal_sender_capacity(server, slots),
    ]
    pipelines = []
    for spec, (_, slot) in zip(specs, slots, strict=True):
        tables = [cat.table(t) for t in spec.pipeline.tables]
        table_findings = [f for t in tables for f in table_rules.table_findings(t, server, spec.name)]
        table_findings = partition_rules.with_partition_findings(tables, table_findings)
        usable = table_rules.healthy(tables, table_findings)
        pub = cat.publication(spec.pipeline.publication_name)
        own = [
            server_rules.pipeline_slot(spec.name, slot, server),
            *table_rules.publication_findings(pub, tables, usable, server),
            *table_findings,
            table_rules.copy_estimate(tables, usable),
            *destination_findings(spec.destination),
        ]
        pipelines.append(_pipeline_report(spec, own))
    return findings, pipelines


def _unchecked(source: Source, specs: Sequence[PipelineSpec], failed: Finding) -> SourceReport:
    """The source could not be read: its pipelines get only the destination checks."""
    pipelines = tuple(_pipeline_report(s, destination_findings(s.destination)) for s in specs)
    return SourceReport(source.name, source.dsn_redacted, (failed,), pipelines)


def _pipeline_report(spec: PipelineSpec, findings: Sequence[Finding]) -> PipelineReport:
    return PipelineReport(spec.name, spec.destination.name, spec.destination.describe(), tuple(findings))


def _clean(message: str, source: Source) -> str:
    # driver messages may echo parts of the DSN: never let the password through
    try:
        password = conninfo_to_dict(source.dsn).get("password")
    except psycopg.Error:
        password = None
    return scrub(message, [str(password)] if password else [])
