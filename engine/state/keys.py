"""The Redis key scheme, in one place. Every key starts with ``etl:``.

etl:pipeline:{id}:tables      hash  table (as JSON ``["schema", "name"]``) → TableState JSON
etl:pipeline:{id}:checkpoint  str   last commit end LSN durable at the destination (a cache of the
                                    destination's own record, which is authoritative)
etl:pipeline:{id}:slot        str   the slot this state belongs to; present once the slot exists, so a
                                    slot without state (Redis flushed) is detected, never silently re-copied
etl:pipeline:{id}:status      str   the runner's view (RunnerView) as JSON, version 1 (schema in
                                    engine.pipeline.view_codec): state, table phases, activity, last
                                    error, LSNs; republished about every second, expires after 30 s
etl:pipeline:{id}:counters    hash  ``{table}|{op}`` → rows applied (op: insert|update|delete|copy)
etl:pipeline:{id}:copy_requests  set  tables (as JSON ``["schema", "name"]``) an operator asked to copy
                                    again (resync, retry): a streaming runner takes them and copies each
                                    beside its stream; a runner starting takes them before its copy phase
etl:alerts:history            list  the WAL monitor's alert notifications (webhook payload JSON, see
                                    engine.monitoring.alerts), newest first, capped at 200 (LPUSH + LTRIM)
etl:alerts:firing             str   the alerts firing when the WAL monitor last changed them:
                                    ``{"updated_at": ISO time, "alerts": [payload, …]}``; deleted when
                                    none fire; read back at start so a restart neither repeats nor loses them
"""

from __future__ import annotations

PREFIX = "etl:"


def pipeline_prefix(pipeline_id: int) -> str:
    return f"{PREFIX}pipeline:{pipeline_id}:"


def tables(pipeline_id: int) -> str:
    return pipeline_prefix(pipeline_id) + "tables"


def checkpoint(pipeline_id: int) -> str:
    return pipeline_prefix(pipeline_id) + "checkpoint"


def slot(pipeline_id: int) -> str:
    return pipeline_prefix(pipeline_id) + "slot"


def status(pipeline_id: int) -> str:
    return pipeline_prefix(pipeline_id) + "status"


def counters(pipeline_id: int) -> str:
    return pipeline_prefix(pipeline_id) + "counters"


def copy_requests(pipeline_id: int) -> str:
    return pipeline_prefix(pipeline_id) + "copy_requests"


def alert_history() -> str:
    return f"{PREFIX}alerts:history"


def alert_firing() -> str:
    return f"{PREFIX}alerts:firing"
