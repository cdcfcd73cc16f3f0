"""What runs beside the pipelines in `etl-tui --no-ui`: /metrics at METRICS_ADDR (a busy port
is reported, never a crash), JSON log lines with pipeline and table fields and no secret."""

from __future__ import annotations

import dataclasses
import json
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from engine.settings import Settings
from tests.integration.harness import duck_rows, engine_process, source_rows, wait_until
from tests.integration.scenarios import DUCK_ITEMS_SQL, ITEMS_SQL, configure, setup_items


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "etl_rows_replicated_total" and sample.labels.get("operation") != "insert":
                continue
            key = sample.name + ("{" + sample.labels.get("table", "") + "}" if "table" in sample.labels else "")
            values[key] = values.get(key, 0.0) + sample.value
    return values


def test_headless_engine_serves_metrics_and_writes_json_logs(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    port = _free_port()
    settings = dataclasses.replace(settings, metrics_addr=f"127.0.0.1:{port}")
    setup_items(source_dsn, 500)
    duck = tmp_path / "o.duckdb"
    configure(settings, source_dsn, duck, "public.items")
    log = tmp_path / "engine.log"
    with engine_process(settings, "--log-format", "json", log_path=log):
        wait_until(lambda: _scrape(port).get("etl_copy_rows_total{public.items}") == 500, 60, what="copy")
        assert _scrape(port)["etl_up"] == 1
        wait_until(lambda: duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL), 60)
    lines = log.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert entries and len(entries) == len([line for line in lines if line.strip()]), "every line is JSON"
    copied = [e for e in entries if "copied 500 rows" in e["message"]]
    assert copied and copied[0]["pipeline"] == "p1" and copied[0]["table"] == "public.items"
    assert any(f"127.0.0.1:{port}/metrics" in e["message"] for e in entries)


def test_a_busy_metrics_port_is_reported_and_replication_goes_on(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = dataclasses.replace(settings, metrics_addr=f"127.0.0.1:{port}")
        setup_items(source_dsn, 100)
        duck = tmp_path / "o.duckdb"
        configure(settings, source_dsn, duck, "public.items")
        log = tmp_path / "engine.log"
        with engine_process(settings, log_path=log) as proc:
            wait_until(lambda: duck_rows(duck, DUCK_ITEMS_SQL) == source_rows(source_dsn, ITEMS_SQL), 60)
            assert proc.poll() is None, "the engine keeps running"
        text = log.read_text()
        assert f"port {port} on 127.0.0.1 is already in use" in text
        assert "METRICS_ADDR" in text
