"""A destination's options → the config stored for it, or a :class:`ConfigError` saying what to fix.

The one check behind ``etl-tui destination add``, the console's destination form and
:func:`engine.destinations.factory.open_destination`. Options come typed from the command line
(``True``, ``8443``) or as text from the console (``"true"``, ``"8443"``); empty text and ``None``
mean "not given". Secrets never pass through here: a Snowflake destination names its private key
*file* and the *environment variables* holding the passphrase or password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.config.models import DestinationType
from engine.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "OPTIONS",
    "Loader",
    "SnowflakeProtocol",
    "destination_config",
    "option_flag",
    "parse_flag",
    "unset_env_vars",
]


class Loader(StrEnum):
    """How a Snowflake destination loads its landing tables."""

    COPY = "copy"  # Parquet → PUT → COPY INTO
    STREAMING = "streaming"  # Snowpipe Streaming (optional extra)


class SnowflakeProtocol(StrEnum):
    HTTPS = "https"
    HTTP = "http"  # emulators only


OPTIONS: Mapping[DestinationType, tuple[str, ...]] = {
    DestinationType.DUCKDB: ("path", "schema", "landing_schema", "soft_deletes"),
    DestinationType.SNOWFLAKE: (
        "account",
        "user",
        "database",
        "schema",
        "landing_schema",
        "warehouse",
        "role",
        "private_key_file",
        "private_key_passphrase_env",
        "password_env",
        "host",
        "port",
        "protocol",
        "loader",
        "soft_deletes",
        "transactions",
    ),
}
DEFAULTS: Mapping[DestinationType, Mapping[str, str]] = {
    DestinationType.DUCKDB: {"schema": "main", "landing_schema": "etl_landing"},
    DestinationType.SNOWFLAKE: {"landing_schema": "ETL_LANDING", "loader": Loader.COPY.value},
}
_REQUIRED: Mapping[DestinationType, tuple[str, ...]] = {
    DestinationType.DUCKDB: ("path",),
    DestinationType.SNOWFLAKE: ("account", "user", "database", "schema"),
}
_EXAMPLES = {
    "path": "./shop.duckdb",
    "account": "myorg-myaccount",
    "user": "ETL_LOADER",
    "database": "ANALYTICS",
    "schema": "PUBLIC",
}
_FLAGS = {"soft_deletes": "--soft-deletes", "transactions": "--no-transactions"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def option_flag(option: str) -> str:
    """The command-line flag of an option (hints name it; the console's fields carry the same words)."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def parse_flag(value: object, option: str = "flag") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{option} must be true or false, not {value!r}", "use true or false")


def destination_config(
    type_: DestinationType, options: Mapping[str, object], *, name: str, check_files: bool = True
) -> dict[str, Any]:
    """The config to store for destination ``name``; ``check_files`` also opens the private key
    file (when adding; the engine reads it again each time it connects)."""
    given = _given(options)
    where = f'{type_} destination "{name}"'
    _refuse_foreign(type_, given, where)
    missing = [k for k in _REQUIRED[type_] if k not in given]
    if missing:
        raise ConfigError(
            f"{where} needs {', '.join(missing)}",
            "give " + ", ".join(f"{option_flag(k)} (e.g. {_EXAMPLES[k]})" for k in missing),
        )
    config: dict[str, Any] = {k: str(given[k]) for k in OPTIONS[type_] if k in given and k not in _TYPED}
    for key, default in DEFAULTS[type_].items():
        config.setdefault(key, default)
    if "soft_deletes" in given and parse_flag(given["soft_deletes"], option_flag("soft_deletes")):
        config["soft_deletes"] = True
    if type_ is DestinationType.SNOWFLAKE:
        _snowflake(config, given, where, check_files=check_files)
    return {k: config[k] for k in OPTIONS[type_] if k in config}


def unset_env_vars(config: Mapping[str, Any]) -> list[str]:
    """The environment variables a destination reads its secrets from that are not set here."""
    names = [config.get("password_env"), config.get("private_key_passphrase_env")]
    return [n for n in names if n and not os.environ.get(n)]


# ---- internals ------------------------------------------------------------------------------------
# options whose stored value is not text
_TYPED = frozenset({"soft_deletes", "transactions", "port"})


def _given(options: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, str):
            value = value.strip()
            if not value:
                continue
        out[key] = value
    return out


def _refuse_foreign(type_: DestinationType, given: Mapping[str, object], where: str) -> None:
    foreign = [k for k in given if k not in OPTIONS[type_]]
    if not foreign:
        return
    others = [t for t in DestinationType if t is not type_ and all(k in OPTIONS[t] for k in foreign)]
    flags = ", ".join(option_flag(k) for k in foreign)
    if others:
        what = f"a {others[0]} option" if len(foreign) == 1 else f"{others[0]} options"
        raise ConfigError(
            f"{where} does not take {flags} ({what})",
            f"leave {flags} out, or use --type {others[0]}",
        )
    allowed = ", ".join(option_flag(k) for k in OPTIONS[type_])
    raise ConfigError(f"{where} does not take {flags}", f"a {type_} destination takes {allowed}")


def _snowflake(config: dict[str, Any], given: Mapping[str, object], where: str, *, check_files: bool) -> None:
    account = config["account"]
    if "://" in account or account.lower().endswith("snowflakecomputing.com"):
        raise ConfigError(
            f"{where}: {account!r} is a URL, not an account identifier",
            "give the part before .snowflakecomputing.com, e.g. --account myorg-myaccount",
        )
    key_file, password_env = config.get("private_key_file"), config.get("password_env")
    if key_file and password_env:
        raise ConfigError(
            f"{where} has both a private key file and a password variable",
            "choose one: --private-key-file (key-pair authentication) or --password-env",
        )
    if not key_file and not password_env:
        raise ConfigError(
            f"{where} has no credentials",
            "give --private-key-file FILE (key-pair authentication) or --password-env VAR "
            "(the name of an environment variable holding the password)",
        )
    if config.get("private_key_passphrase_env") and not key_file:
        raise ConfigError(
            f"{where}: --private-key-passphrase-env only applies to a private key file",
            "leave it out, or authenticate with --private-key-file",
        )
    for key in ("password_env", "private_key_passphrase_env"):
        if key in config and not _ENV_NAME.match(config[key]):
            # never echoed: a secret pasted here must not end up in a terminal or a log
            raise ConfigError(
                f"{where}: {option_flag(key)} takes the name of an environment variable, not its value",
                f"e.g. export SNOWFLAKE_SECRET=… and give {option_flag(key)} SNOWFLAKE_SECRET",
            )
    if key_file and check_files:
        _check_key_file(key_file, where)
    _endpoint(config, given, where)
    if config["loader"] not in tuple(Loader):
        raise ConfigError(
            f"{where}: unknown loader {config['loader']!r}",
            "use --loader copy (PUT + COPY INTO, the default) or --loader streaming (Snowpipe Streaming)",
        )
    if "transactions" in given and not parse_flag(given["transactions"], "transactions"):
        config["transactions"] = False


def _endpoint(config: dict[str, Any], given: Mapping[str, object], where: str) -> None:
    host = config.get("host")
    if not host:
        for key in ("port", "protocol"):
            if key in given:
                raise ConfigError(
                    f"{where}: {option_flag(key)} needs --host",
                    "--host, --port and --protocol point at another endpoint (an emulator or a proxy); "
                    "leave them all out to reach <account>.snowflakecomputing.com",
                )
        return
    if "port" in given:
        port = given["port"]
        number = port if isinstance(port, int) and not isinstance(port, bool) else None
        if isinstance(port, str) and port.isdigit():
            number = int(port)
        if number is None or not 0 < number < 65536:
            raise ConfigError(f"{where}: port {port!r} is not a port number", "give a number from 1 to 65535")
        config["port"] = number
    protocol = str(given.get("protocol", SnowflakeProtocol.HTTPS)).lower()
    if protocol not in tuple(SnowflakeProtocol):
        raise ConfigError(
            f"{where}: protocol {given.get('protocol')!r} is not https or http",
            "use --protocol https (or http, for a local emulator)",
        )
    config["protocol"] = protocol


def _check_key_file(key_file: str, where: str) -> None:
    path = Path(key_file).expanduser()
    hint = "give the path of the PEM private key registered for the user (key-pair authentication)"
    if not path.exists():
        raise ConfigError(f"{where}: private key file {key_file} does not exist", hint)
    if not path.is_file():
        raise ConfigError(f"{where}: private key file {key_file} is not a file", hint)
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ConfigError(
            f"{where}: private key file {key_file} cannot be read ({exc.strerror or type(exc).__name__})",
            "let the user that runs etl-tui read it (e.g. chmod 600 as that user)",
        ) from None
