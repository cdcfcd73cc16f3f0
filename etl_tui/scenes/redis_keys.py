"""The engine's Redis keys in the scenes: four pipelines' tables, checkpoints, slots, status, counters."""

from __future__ import annotations

from engine.status.board import RedisKeyView
from etl_tui.scenes.clock import lsn


def redis_keys() -> list[RedisKeyView]:
    pipelines = {1: "shop_sync", 2: "billing_sync", 3: "crm_sync", 4: "legacy_sync"}
    keys = []
    for pid, name in pipelines.items():
        prefix = f"etl:pipeline:{pid}:"
        keys += [
            RedisKeyView(
                prefix + "tables",
                "hash",
                None,
                '{"public.orders": {"phase": "ready", "snapshot_lsn": "1/2A000000"}, …}'
                if pid == 1
                else f"{{… {name} table phases …}}",
            ),
            RedisKeyView(prefix + "checkpoint", "string", None, lsn(0x1_A2B3_C4D0 + pid)),
            RedisKeyView(prefix + "slot", "string", None, f"etl_{name}_{pid}"),
            RedisKeyView(prefix + "status", "string", 30, f'{{"pipeline": "{name}", "state": "…", "at": …}}'),
            RedisKeyView(
                prefix + "counters", "hash", None, '{"public.orders|insert": "48210", …}' if pid == 1 else "{…}"
            ),
        ]
    return keys
