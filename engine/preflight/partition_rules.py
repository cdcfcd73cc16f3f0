"""Verdicts about partitioned tables: what the engine does with a partition tree
(``catalog.ensure_publication`` publishes via the partition root, ``catalog.check_partition_of``
refuses a partition named beside its parent)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.preflight.facts import TableFacts
from engine.preflight.findings import Check, Finding, Severity


def with_partition_findings(tables: Sequence[TableFacts], findings: Sequence[Finding]) -> list[Finding]:
    """``findings`` (the table findings) with the partition verdicts added. A partition refused
    beside its parent loses its ``ok`` table finding: it will not be replicated as a table."""
    own = partition_findings(tables)
    refused = {f.subject for f in own if f.severity is Severity.BLOCKER}
    kept = [f for f in findings if not (f.subject in refused and f.severity is Severity.OK)]
    return [*kept, *own]


def partition_findings(tables: Sequence[TableFacts]) -> list[Finding]:
    named = {t.table for t in tables if t.exists}
    out: list[Finding] = []
    for t in tables:
        name = str(t.table)
        parent = next((a for a in t.partition_of if a in named), None)
        if parent is not None:
            out.append(
                Finding(
                    Severity.BLOCKER,
                    Check.PARTITIONS,
                    name,
                    f"{name} is a partition of {parent}, which the pipeline replicates too: its rows arrive under "
                    f"{parent} already, so the engine stops {name} rather than hold its rows twice",
                    f"remove {name} from the pipeline's tables (console: Config, e); its rows are in {parent}'s "
                    "target table",
                )
            )
        elif t.relkind == "p":
            out.append(
                Finding(
                    Severity.INFO,
                    Check.PARTITIONS,
                    name,
                    f"{name} is partitioned: replicated under its parent, {t.partitions} partition(s), into one "
                    "target table; partitions created or attached later follow, and a row an UPDATE moves to "
                    "another partition stays one row",
                    "PostgreSQL does not send a TRUNCATE of a single partition, the rows a table already holds "
                    "when it is attached (ATTACH PARTITION), or the removal of a detached partition's rows: after "
                    f"such DDL, etl-tui pipeline resync <pipeline> --table '{name}'",
                )
            )
        elif t.partition_of:
            out.append(
                Finding(
                    Severity.INFO,
                    Check.PARTITIONS,
                    name,
                    f"{name} is a partition of {t.partition_of[0]}: replicated alone, as a table of its own",
                )
            )
    return out
