"""Log lines: plain text for people, JSON for log shippers; never a secret either way.

Every line is one event. Records carry ``pipeline`` and ``table`` when they concern one (the
runner logs with ``extra={"pipeline": ..., "table": ...}``); both formats show them. A filter
masks passwords in anything that looks like a DSN or URL before a line is written, whatever
the message quoted (a driver error, a config value).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from engine.redaction import redact_text

__all__ = ["JsonFormatter", "LogFormat", "RedactingFilter", "TextFormatter", "configure_logging"]

_FIELDS = ("pipeline", "table")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class RedactingFilter(logging.Filter):
    """Render the message once, masked; the formatters then use it as is."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string still gets logged, masked
            message = f"{record.msg} {record.args}"
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{name}={value}" for name in _FIELDS if (value := getattr(record, name, None))]
        if fields:
            first, nl, rest = line.partition("\n")  # keep a traceback below the fields
            line = f"{first} [{' '.join(fields)}]{nl}{rest}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    fmt: LogFormat | str = LogFormat.TEXT,
    level: str = "INFO",
    *,
    stream: IO[str] | None = None,
    path: Path | None = None,
) -> logging.Handler:
    """Send every log record to ``path`` (a file) or ``stream`` (stderr by default), one line
    per event in ``fmt``; replaces handlers set before."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    new: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path is not None else logging.StreamHandler(stream)
    )
    new.setFormatter(JsonFormatter() if LogFormat(fmt) is LogFormat.JSON else TextFormatter())
    new.addFilter(RedactingFilter())
    root.addHandler(new)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return new
