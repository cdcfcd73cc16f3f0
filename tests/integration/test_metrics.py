"""The /metrics endpoint on real servers: what it says matches what was replicated."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.config.repository import ConfigRepository
from engine.errors import ConfigError
from engine.metrics import METRIC_NAMES, MetricsServer, start_metrics_server
from engine.pipeline.activity import RunnerState
from engine.settings import Settings
from engine.state.table_state import TablePhase
from tests.integration.harness import EngineThread, table_phase, wait_caught_up, wait_until
from tests.integration.scenarios import configure, setup_items

# A name no other test uses: the metrics are process-wide, and gauges are compared as they are.
PIPELINE = "metrics_p"
ITEMS = "public.items"


@dataclass(frozen=True)
class Scrape:
    families: frozenset[str]  # as queried: counters with their _total
    samples: tuple[tuple[str, dict[str, str], float], ...]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            v for n, lab, v in self.samples if n == name and all(lab.get(k) == want for k, want in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(n == name and all(lab.get(k) == v for k, v in labels.items()) for n, lab, _ in self.samples)


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    families: set[str] = set()
    samples: list[tuple[str, dict[str, str], float]] = []
    for family in text_string_to_metric_families(text):
        families.add(family.name + "_total" if family.type == "counter" else family.name)
        samples.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return Scrape(frozenset(families), tuple(samples))


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    server = start_metrics_server("127.0.0.1:0")
    yield server
    server.close()


def test_metrics_match_what_was_replicated(
    settings: Settings, source_dsn: str, tmp_path: Path, metrics_server: MetricsServer
) -> None:
    copied, inserts, updates, deletes = 2_000, 300, 120, 45
    setup_items(source_dsn, copied)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE nokey (a int, b text)")  # no primary key: this table errors alone
    configure(settings, source_dsn, tmp_path / "o.duckdb", f"{ITEMS},public.nokey", name=PIPELINE)
    url = metrics_server.url
    before = scrape(url)
    p = {"pipeline": PIPELINE}

    def delta(name: str, **labels: str) -> float:
        return scrape(url).value(name, **p, **labels) - before.value(name, **p, **labels)

    with EngineThread(settings) as engine:
        runner = engine.runner(PIPELINE)
        pid, slot = runner.spec.id, runner.spec.pipeline.slot_name
        wait_until(lambda: table_phase(settings, pid, ITEMS) == TablePhase.READY, 60, what="items ready")
        wait_until(lambda: runner.state is RunnerState.STREAMING, 30, what="streaming")

        with psycopg.connect(source_dsn, autocommit=True) as conn:
            for start in range(copied + 1, copied + inserts + 1, 100):  # a few transactions
                conn.execute(
                    "INSERT INTO items (id, name, qty, price) SELECT g, 'new', 1, 1"
                    " FROM generate_series(%s::int, %s::int) g",
                    (start, start + 99),
                )
            conn.execute("UPDATE items SET qty = qty + 1 WHERE id <= %s", (updates,))
            conn.execute("DELETE FROM items WHERE id > %s AND id <= %s", (copied - deletes, copied))
        wait_caught_up(source_dsn, slot)
        rows = "etl_rows_replicated_total"
        wait_until(
            lambda: (
                (
                    delta(rows, table=ITEMS, operation="insert"),
                    delta(rows, table=ITEMS, operation="update"),
                    delta(rows, table=ITEMS, operation="delete"),
                )
                == (inserts, updates, deletes)
            ),
            30,
            what="change counters",
        )
        # the lag gauge is set with the status, at most once a second
        wait_until(lambda: scrape(url).has("etl_replication_lag_seconds", **p, slot=slot), 10, what="lag")
        now = scrape(url)

        def d(name: str, **labels: str) -> float:
            return now.value(name, **p, **labels) - before.value(name, **p, **labels)

        # copy: every row, and the copy done
        assert d("etl_copy_rows_total", table=ITEMS) == copied
        assert now.value("etl_copy_progress_ratio", **p, table=ITEMS) == 1.0
        # streaming: exact change counts (checked above, once more at this scrape), batches and their timings
        assert d(rows, table=ITEMS, operation="insert") == inserts
        assert d(rows, table=ITEMS, operation="update") == updates
        assert d(rows, table=ITEMS, operation="delete") == deletes
        assert d("etl_replicated_bytes_total") > 0
        batches = d("etl_batches_total")
        assert batches >= 1
        assert d("etl_batch_flush_seconds_count") == batches
        assert d("etl_batch_flush_seconds_sum") > 0
        for phase in ("landing", "merge", "copy"):
            assert d("etl_destination_write_seconds_count", destination="duckdb", phase=phase) >= 1, phase
        assert d("etl_destination_write_seconds_count", phase="landing") == batches
        # Redis: every batch sets the checkpoint and adds to the counters
        redis_calls = "etl_redis_operation_seconds_count"
        for operation in ("load", "set", "set_checkpoint", "add_counters", "publish_status"):
            assert now.value(redis_calls, operation=operation) > before.value(redis_calls, operation=operation)
        # phases: one at a time
        phases = {ph.value: now.value("etl_table_phase", **p, table=ITEMS, phase=ph.value) for ph in TablePhase}
        assert phases == {ph.value: 1.0 if ph is TablePhase.READY else 0.0 for ph in TablePhase}
        assert now.value("etl_table_phase", **p, table="public.nokey", phase="errored") == 1.0
        assert now.value("etl_table_phase", **p, table="public.nokey") == 1.0
        assert d("etl_errors_total", kind="no_replica_identity") >= 1
        assert now.value("etl_replication_lag_seconds", **p, slot=slot) >= 0
        # every metric is served (the slot and alert ones without series until the WAL monitor sets them)
        assert set(METRIC_NAMES) <= now.families
        assert now.value("etl_up") == 1.0

        # a removed pipeline's series go with it
        with ConfigRepository(settings.config_db_url) as repo:
            repo.remove_pipeline(PIPELINE)
        wait_until(lambda: not scrape(url).has(rows, **p), 30, what="series of the removed pipeline gone")
        after = scrape(url)
        assert not [(n, lab) for n, lab, _ in after.samples if lab.get("pipeline") == PIPELINE]


def test_a_busy_port_is_a_config_error_naming_it(metrics_server: MetricsServer) -> None:
    with pytest.raises(ConfigError) as info:
        start_metrics_server(f"127.0.0.1:{metrics_server.port}")
    assert str(metrics_server.port) in info.value.reason
    assert "METRICS_ADDR" in info.value.hint
