"""A light look at a pipeline's destination: its configuration, files and environment, with no
connection made (a check must be safe to run anywhere, any time)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config.destination_options import Loader, destination_config, option_flag, unset_env_vars
from engine.config.models import Destination, DestinationType
from engine.errors import ConfigError
from engine.preflight.findings import Check, Finding, Severity

# where the engine reads each secret from (destination_options names the variables, never values)
_SECRETS = {"password_env": "the password", "private_key_passphrase_env": "the private key passphrase"}
_EDIT = "console: Config, e"


def destination_findings(dest: Destination) -> list[Finding]:
    subject = f"destination {dest.name}"
    try:
        config = destination_config(dest.type, dest.config, name=dest.name, check_files=True)
    except ConfigError as exc:
        return [Finding(Severity.BLOCKER, Check.DESTINATION, subject, exc.reason, exc.hint)]
    if dest.type is DestinationType.DUCKDB:
        return [_duckdb(config, subject)]
    return _snowflake(config, subject)


def _duckdb(config: Mapping[str, Any], subject: str) -> Finding:
    path = Path(str(config["path"])).expanduser()
    folder = path.parent
    if path.exists():
        if not path.is_file():
            return Finding(Severity.BLOCKER, Check.DESTINATION, subject, f"{path} is not a file", "give a file path")
        if not os.access(path, os.R_OK | os.W_OK):
            return Finding(
                Severity.BLOCKER,
                Check.DESTINATION,
                subject,
                f"DuckDB file {path} cannot be written by this user",
                "let the user that runs etl-tui read and write it",
            )
        return Finding(Severity.OK, Check.DESTINATION, subject, f"DuckDB file {path} exists and is writable")
    if not folder.is_dir():
        return Finding(
            Severity.BLOCKER,
            Check.DESTINATION,
            subject,
            f"folder {folder} of DuckDB file {path.name} does not exist",
            f"mkdir -p {folder}",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Finding(
            Severity.BLOCKER,
            Check.DESTINATION,
            subject,
            f"DuckDB file {path} cannot be created: folder {folder} is not writable",
            "let the user that runs etl-tui write there, or choose another path",
        )
    return Finding(Severity.OK, Check.DESTINATION, subject, f"DuckDB file {path} will be created on the first copy")


def _snowflake(config: Mapping[str, Any], subject: str) -> list[Finding]:
    out: list[Finding] = []
    for var in unset_env_vars(config):
        what = next(_SECRETS[k] for k in _SECRETS if config.get(k) == var)
        out.append(
            Finding(
                Severity.BLOCKER,
                Check.DESTINATION,
                subject,
                f"${var} is not set here: the engine reads {what} from it when it connects",
                f"export {var}=… in the environment etl-tui runs in (this check sees its own environment)",
            )
        )
    key_file = config.get("private_key_file")
    if key_file:
        out.extend(_key_file(Path(str(key_file)).expanduser(), config, subject))
    if config.get("loader") == Loader.STREAMING:
        if not key_file:
            out.append(
                Finding(
                    Severity.BLOCKER,
                    Check.DESTINATION,
                    subject,
                    "Snowpipe Streaming needs key-pair authentication, and this destination uses a password",
                    f"give {option_flag('private_key_file')} FILE instead of {option_flag('password_env')} ({_EDIT})",
                )
            )
        # find_spec of the top package only: importing the SDK prints to stdout
        if importlib.util.find_spec("snowflake.ingest") is None:
            out.append(
                Finding(
                    Severity.BLOCKER,
                    Check.DESTINATION,
                    subject,
                    "the loader is Snowpipe Streaming, whose SDK is not installed",
                    "pip install 'etl-tui[snowpipe]', or set the loader to copy",
                )
            )
    if config.get("transactions") is False and not config.get("host"):
        out.append(
            Finding(
                Severity.WARNING,
                Check.DESTINATION,
                subject,
                "transactions are off against Snowflake itself: a reader may see one table merged before another",
                f"{option_flag('transactions')} is meant for emulators; turn transactions back on ({_EDIT})",
            )
        )
    if not any(f.severity.rank >= Severity.WARNING.rank for f in out):
        auth = "key pair" if key_file else f"password from ${config.get('password_env')}"
        where = f"{config['account']}/{config['database']}.{config['schema']}"
        out.insert(
            0,
            Finding(
                Severity.OK,
                Check.DESTINATION,
                subject,
                f"Snowflake {where}: configuration complete ({auth}, loader {config.get('loader')}); "
                "the connection itself is not tried",
            ),
        )
    return out


def _key_file(path: Path, config: Mapping[str, Any], subject: str) -> list[Finding]:
    # destination_config has checked it can be read; only its kind is looked at, never shown
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        return [
            Finding(
                Severity.BLOCKER,
                Check.DESTINATION,
                subject,
                f"private key file {path} cannot be read ({exc.strerror or type(exc).__name__})",
                "let the user that runs etl-tui read it (e.g. chmod 600 as that user)",
            )
        ]
    if b"PRIVATE KEY-----" not in head:
        return [
            Finding(
                Severity.BLOCKER,
                Check.DESTINATION,
                subject,
                f"private key file {path} holds no PEM private key",
                "give the PEM file made with openssl pkcs8 -topk8 (-----BEGIN PRIVATE KEY-----)",
            )
        ]
    if b"ENCRYPTED PRIVATE KEY" in head and not config.get("private_key_passphrase_env"):
        return [
            Finding(
                Severity.BLOCKER,
                Check.DESTINATION,
                subject,
                f"private key file {path} is encrypted, and no passphrase variable is configured",
                f"give {option_flag('private_key_passphrase_env')} VAR naming the variable that holds it ({_EDIT})",
            )
        ]
    return []
