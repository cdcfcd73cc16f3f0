"""Log lines: one per event, pipeline and table fields, JSON or text, passwords masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine.logs import LogFormat, configure_logging
from engine.redaction import redact_text


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _emit(fmt: LogFormat) -> list[str]:
    out = io.StringIO()
    configure_logging(fmt, "INFO", stream=out)
    log = logging.getLogger("etl.pipeline")
    log.warning("table %s: copied %d rows", "public.orders", 12, extra={"pipeline": "shop", "table": "public.orders"})
    log.info("cannot connect to postgresql://etl:s3cret@db:5432/shop (password=hunter2 sslmode=require)")
    try:
        raise RuntimeError("boom with redis://:topsecret@cache:6379/0")
    except RuntimeError:
        log.exception("failed")
    log.debug("not shown at INFO")
    return out.getvalue().splitlines()


def test_json_lines_carry_fields_and_no_secret(restore_logging: None) -> None:
    lines = _emit(LogFormat.JSON)
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(entries) == 3
    first = entries[0]
    assert first["message"] == "table public.orders: copied 12 rows"
    assert (first["pipeline"], first["table"], first["level"], first["logger"]) == (
        "shop",
        "public.orders",
        "warning",
        "etl.pipeline",
    )
    assert first["ts"].endswith("+00:00")
    assert "pipeline" not in entries[1]
    assert "exception" in entries[2] and "RuntimeError" in entries[2]["exception"]
    text = "\n".join(lines)
    for secret in ("s3cret", "hunter2", "topsecret"):
        assert secret not in text
    assert "postgresql://etl:****@db:5432/shop" in entries[1]["message"]


def test_text_lines_show_fields(restore_logging: None) -> None:
    lines = _emit(LogFormat.TEXT)
    assert lines[0].endswith("table public.orders: copied 12 rows [pipeline=shop table=public.orders]")
    assert "WARNING" in lines[0]
    assert not any(secret in "\n".join(lines) for secret in ("s3cret", "hunter2", "topsecret"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dsn postgresql://u:p%40ss@h/db end", "dsn postgresql://u:****@h/db end"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:****@h:5432/db"),
        ("host=h password='it''s' user=u", "host=h password=**** user=u"),
        ("https://h/x?user=a&password=b&z=1", "https://h/x?user=a&password=****&z=1"),
        ("no secret here: http://host:8080/path", "no secret here: http://host:8080/path"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
