"""Verdicts about a source as a whole: wal_level, the role, and room for slots and WAL senders.

Capacity is counted for every checked pipeline on the source together, since they share it. The
engine holds, per pipeline, one slot of its own plus a temporary one while a table is copied
(``copy_phase.copy_tables``), and one WAL sender while it creates, copies or streams.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.identifiers import display_ident
from engine.preflight.facts import ServerFacts, SlotFacts
from engine.preflight.findings import Check, Finding, Severity

RESTART = "then restart PostgreSQL (this setting needs a restart)"


def connection(server: ServerFacts) -> Finding:
    return Finding(
        Severity.OK,
        Check.CONNECTION,
        f"database {server.database}",
        f'connected as role "{server.role}" (PostgreSQL {server.version})',
    )


def wal_level(server: ServerFacts) -> Finding:
    if server.wal_level == "logical":
        return Finding(Severity.OK, Check.WAL_LEVEL, "wal_level", "wal_level = logical")
    return Finding(
        Severity.BLOCKER,
        Check.WAL_LEVEL,
        "wal_level",
        f"wal_level = {server.wal_level}: logical replication needs wal_level = logical",
        f"ALTER SYSTEM SET wal_level = logical; {RESTART}",
    )


def replication_role(server: ServerFacts) -> Finding:
    role = display_ident(server.role)
    if server.superuser or server.replication:
        what = "is a superuser" if server.superuser else "has REPLICATION"
        return Finding(Severity.OK, Check.REPLICATION_ROLE, f"role {role}", f"role {role} {what}")
    return Finding(
        Severity.BLOCKER,
        Check.REPLICATION_ROLE,
        f"role {role}",
        f"role {role} lacks the REPLICATION attribute: it cannot create a slot or stream changes",
        f"ALTER ROLE {role} WITH REPLICATION; (as a superuser)",
    )


def slot_capacity(server: ServerFacts, slots: Sequence[tuple[str, SlotFacts]]) -> Finding:
    """``slots``: (pipeline, its slot) for every checked pipeline on this source."""
    limit, used = server.max_replication_slots, server.slots_in_use
    free = max(0, limit - used)
    new = [pipeline for pipeline, slot in slots if not slot.exists]
    # a new pipeline copies its tables at once: its own slot plus a temporary one meanwhile
    needed = 2 * len(new)
    state = f"max_replication_slots = {limit}, {used} in use, {free} free"
    hint = (
        "drop slots nobody uses (SELECT slot_name, active FROM pg_replication_slots; "
        "SELECT pg_drop_replication_slot('…');) or ALTER SYSTEM SET max_replication_slots = "
        f"{max(limit, used) + needed + 1}; {RESTART}"
    )
    if new:
        need = f"{needed} needed: a slot for {_names(new)} and a temporary one during each initial copy"
    else:
        need = "every pipeline's slot exists; a table resync needs 1 more (temporary) while it copies"
    if free < needed:
        return Finding(Severity.BLOCKER, Check.REPLICATION_SLOTS, "max_replication_slots", f"{state}; {need}", hint)
    if free == 0 and slots:  # (new pipelines free their temporary slots again after copying)
        return Finding(
            Severity.WARNING,
            Check.REPLICATION_SLOTS,
            "max_replication_slots",
            f"{state}; {need}, and none is free: a table resync could not copy",
            hint,
        )
    return Finding(Severity.OK, Check.REPLICATION_SLOTS, "max_replication_slots", f"{state}; {need}")


def wal_sender_capacity(server: ServerFacts, slots: Sequence[tuple[str, SlotFacts]]) -> Finding:
    limit, used = server.max_wal_senders, server.wal_senders_in_use
    free = max(0, limit - used)
    # a pipeline streaming now already holds its sender (its slot is active)
    idle = [pipeline for pipeline, slot in slots if not slot.active]
    state = f"max_wal_senders = {limit}, {used} in use, {free} free"
    need = f"{len(idle)} needed ({_names(idle)})" if idle else "every pipeline already streams"
    hint = (
        "stop replication clients nobody needs (SELECT pid, application_name FROM pg_stat_replication;) or "
        f"ALTER SYSTEM SET max_wal_senders = {max(limit, used) + len(idle) + 1}; {RESTART}"
    )
    if limit == 0:
        return Finding(
            Severity.BLOCKER,
            Check.WAL_SENDERS,
            "max_wal_senders",
            "max_wal_senders = 0: replication connections are disabled",
            hint,
        )
    if free < len(idle):
        return Finding(Severity.BLOCKER, Check.WAL_SENDERS, "max_wal_senders", f"{state}; {need}", hint)
    return Finding(Severity.OK, Check.WAL_SENDERS, "max_wal_senders", f"{state}; {need}")


def pipeline_slot(pipeline: str, slot: SlotFacts, server: ServerFacts) -> Finding:
    subject = f"slot {slot.name}"
    if not slot.exists:
        return Finding(
            Severity.INFO,
            Check.SLOT,
            subject,
            f"slot {slot.name} does not exist yet: the pipeline creates it when it starts, then copies its tables",
        )
    drop = f"SELECT pg_drop_replication_slot('{slot.name}'); if nothing uses it (the pipeline then starts afresh)"
    if slot.plugin != "pgoutput" or slot.database != server.database:
        return Finding(
            Severity.BLOCKER,
            Check.SLOT,
            subject,
            f"a slot named {slot.name} exists but decodes with {slot.plugin or 'no plugin (physical)'} "
            f"for database {slot.database or '-'}; the pipeline needs a pgoutput slot on {server.database}",
            drop,
        )
    resync = f"etl-tui pipeline resync {pipeline} (new slot, every table copied again)"
    if slot.wal_status == "lost":
        return Finding(
            Severity.BLOCKER,
            Check.SLOT,
            subject,
            f"slot {slot.name} was invalidated (wal_status = lost): the WAL it needed is gone",
            f"{resync}; consider raising max_slot_wal_keep_size",
        )
    if slot.wal_status == "unreserved":
        return Finding(
            Severity.WARNING,
            Check.SLOT,
            subject,
            f"slot {slot.name} holds more WAL than max_slot_wal_keep_size allows (wal_status = unreserved): "
            "it is lost at the next checkpoint unless the pipeline catches up",
            "start the pipeline now, or raise max_slot_wal_keep_size",
        )
    state = "active (the pipeline streams)" if slot.active else "inactive"
    return Finding(
        Severity.OK, Check.SLOT, subject, f"slot {slot.name} exists, {state}, wal_status = {slot.wal_status or '-'}"
    )


def _names(pipelines: Sequence[str]) -> str:
    return ", ".join(pipelines)
