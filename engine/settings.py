"""Settings from the environment and a ``.env`` file (every variable is listed in ``.env.example``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from engine.batching.limits import BatchLimits
from engine.errors import ConfigError
from engine.redaction import redact_dsn

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_METRICS_ADDR = "[::]:9000"
DEFAULT_WAL_MONITOR_INTERVAL_MS = 2000


@dataclass(frozen=True)
class AlertThresholds:
    """When the rules fire (0 turns a rule off); read from the ALERT_* variables."""

    lag_bytes: int = 1024**3
    """ALERT_LAG_BYTES: WAL behind the slot's confirmed position."""
    lag_seconds: int = 600
    """ALERT_LAG_SECONDS: age of the oldest change not yet at the destination."""
    inactive_seconds: int = 300
    """ALERT_INACTIVE_SECONDS: how long a slot may go unread while its pipeline should run."""
    exhaustion_seconds: int = 3600
    """ALERT_EXHAUSTION_SECONDS: predicted time left before safe_wal_size runs out."""
    repeat_seconds: int = 3600
    """ALERT_REPEAT_SECONDS: reminder interval while an alert keeps firing (0: never)."""
    resolve_fraction: float = 0.8
    """A numeric alert clears below this share of its threshold (hysteresis)."""
    resolve_readings: int = 2
    """Consecutive clear readings before an alert is resolved."""


@dataclass(frozen=True)
class Settings:
    config_db_url: str
    redis_url: str
    metrics_addr: str = DEFAULT_METRICS_ADDR
    alert_webhook_url: str | None = None
    batch: BatchLimits = field(default_factory=BatchLimits)
    alerts: AlertThresholds = field(default_factory=AlertThresholds)
    wal_monitor_interval: float = DEFAULT_WAL_MONITOR_INTERVAL_MS / 1000
    """Seconds between two readings of each source's slots (WAL_MONITOR_INTERVAL_MS)."""
    heartbeat_seconds: float = 0.0
    """HEARTBEAT_INTERVAL_MS: while a pipeline has nothing to apply, write a logical message this
    often on its source so its slot keeps advancing (0: off)."""

    def __repr__(self) -> str:  # never show a password, even in a traceback
        return (
            f"Settings(config_db_url={redact_dsn(self.config_db_url)!r}, "
            f"redis_url={redact_dsn(self.redis_url)!r}, metrics_addr={self.metrics_addr!r})"
        )


def load_dotenv_file(path: Path | None = None) -> None:
    """Load ``.env`` from the working directory; real environment variables win."""
    from dotenv import load_dotenv

    load_dotenv(path or Path.cwd() / ".env", override=False)


def _config_db_url_from_parts(env: dict[str, str]) -> str | None:
    host = env.get("CONFIG_DB_HOST")
    if not host:
        return None
    user = quote(env.get("CONFIG_DB_USER", "postgres"), safe="")
    password = env.get("CONFIG_DB_PASSWORD")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    port = env.get("CONFIG_DB_PORT", "5432")
    name = quote(env.get("CONFIG_DB_NAME", "etl_config"), safe="")
    return f"postgresql://{auth}@{host}:{port}/{name}"


def load_settings(env: dict[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    if env is None:
        if dotenv:
            load_dotenv_file()
        env = dict(os.environ)
    url = env.get("CONFIG_DB_URL") or _config_db_url_from_parts(env)
    if not url:
        raise ConfigError(
            "no config database is set",
            "set CONFIG_DB_URL (e.g. postgresql://user@host:5432/etl_config) or CONFIG_DB_HOST/PORT/NAME/"
            "USER/PASSWORD in the environment or .env; `etl-tui demo` needs none of this",
        )
    return Settings(
        config_db_url=url,
        redis_url=env.get("REDIS_URL", DEFAULT_REDIS_URL),
        metrics_addr=env.get("METRICS_ADDR", DEFAULT_METRICS_ADDR),
        alert_webhook_url=_webhook_url(env.get("ALERT_WEBHOOK_URL") or None),
        batch=BatchLimits(
            max_rows=_positive(env, "BATCH_MAX_ROWS", BatchLimits.max_rows),
            max_bytes=_positive(env, "BATCH_MAX_BYTES", BatchLimits.max_bytes),
            max_fill_seconds=_positive(env, "BATCH_MAX_FILL_MS", int(BatchLimits.max_fill_seconds * 1000)) / 1000,
        ),
        alerts=AlertThresholds(
            lag_bytes=_non_negative(env, "ALERT_LAG_BYTES", AlertThresholds.lag_bytes),
            lag_seconds=_non_negative(env, "ALERT_LAG_SECONDS", AlertThresholds.lag_seconds),
            inactive_seconds=_non_negative(env, "ALERT_INACTIVE_SECONDS", AlertThresholds.inactive_seconds),
            exhaustion_seconds=_non_negative(env, "ALERT_EXHAUSTION_SECONDS", AlertThresholds.exhaustion_seconds),
            repeat_seconds=_non_negative(env, "ALERT_REPEAT_SECONDS", AlertThresholds.repeat_seconds),
        ),
        wal_monitor_interval=_positive(env, "WAL_MONITOR_INTERVAL_MS", DEFAULT_WAL_MONITOR_INTERVAL_MS) / 1000,
        heartbeat_seconds=_non_negative(env, "HEARTBEAT_INTERVAL_MS", 0) / 1000,
    )


def _webhook_url(url: str | None) -> str | None:
    """Only http(s): urllib would also open file: and ftp: URLs. The URL is a secret (Slack puts a
    token in its path), so errors name its scheme and host only."""
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"ALERT_WEBHOOK_URL is not an http(s) URL (scheme {parts.scheme or 'missing'!r})",
            "give e.g. https://hooks.slack.com/services/… or unset ALERT_WEBHOOK_URL",
        )
    return url.strip()


def _whole(env: dict[str, str], name: str, default: int, *, zero_turns_off: bool) -> int:
    """A whole number from the environment: at least 1, or at least 0 where 0 turns a feature off."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowest = 0 if zero_turns_off else 1
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if value < lowest:
        if zero_turns_off:
            raise ConfigError(
                f"{name}={raw!r} is not a whole number of 0 or more",
                f"unset {name}, give e.g. {default}, or 0 to turn it off",
            )
        raise ConfigError(f"{name}={raw!r} is not a positive whole number", f"unset {name} or give e.g. {default}")
    return value


def _non_negative(env: dict[str, str], name: str, default: int) -> int:
    return _whole(env, name, default, zero_turns_off=True)


def _positive(env: dict[str, str], name: str, default: int) -> int:
    return _whole(env, name, default, zero_turns_off=False)
