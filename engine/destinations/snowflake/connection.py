"""Connecting to Snowflake with the official connector: key-pair or password authentication.

Secrets never live in :class:`SnowflakeConfig`: it names the private key *file* and the
environment variables that hold the passphrase or password, and the values are read only while
connecting. Error messages name the account and user, never a secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import snowflake.connector
from cryptography.hazmat.primitives import serialization
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from engine.errors import DestinationError, ErrorKind, RetryPolicy

__all__ = ["SnowflakeConfig", "connect"]

LOGIN_TIMEOUT_SECONDS = 60
NETWORK_TIMEOUT_SECONDS = 300

# Connector error numbers that mean "the credentials, user or role were refused".
_AUTH_ERRNOS = frozenset({390100, 390101, 390102, 390103, 390104, 390114, 390144, 390186, 390189, 390191, 394304})
# Connector error numbers that mean "the server could not be reached".
_UNREACHABLE_ERRNOS = frozenset({250001, 250003, 251011, 251012, 251013})


@dataclass(frozen=True)
class SnowflakeConfig:
    account: str
    user: str
    database: str
    schema: str
    landing_schema: str = "ETL_LANDING"
    warehouse: str | None = None
    role: str | None = None
    private_key_file: str | None = None
    private_key_passphrase_env: str | None = None
    password_env: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str = "https"

    def __repr__(self) -> str:
        # Only names of environment variables and of the key file are held, never their
        # contents; they are still shown by name only, so a repr is always safe to log.
        if self.private_key_file:
            passphrase = (
                f", passphrase from ${self.private_key_passphrase_env}" if self.private_key_passphrase_env else ""
            )
            auth = f"key-pair ({self.private_key_file}{passphrase})"
        elif self.password_env:
            auth = f"password from ${self.password_env}"
        else:
            auth = "none"
        endpoint = f", host={self.host}:{self.port or ''}/{self.protocol}" if self.host else ""
        return (
            f"SnowflakeConfig(account={self.account!r}, user={self.user!r}, database={self.database!r}, "
            f"schema={self.schema!r}, landing_schema={self.landing_schema!r}, warehouse={self.warehouse!r}, "
            f"role={self.role!r}, auth={auth}{endpoint})"
        )

    __str__ = __repr__

    @property
    def who(self) -> str:
        return f"user {self.user!r} on Snowflake account {self.account!r}"


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def env_secret(config: SnowflakeConfig, name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise DestinationError(
            f"{what} for {config.who} is expected in environment variable ${name}, which is not set",
            f"export {name} before starting the engine",
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        )
    return value


def _private_key_der(config: SnowflakeConfig, key_file: str) -> tuple[bytes, list[str]]:
    passphrase: str | None = None
    if config.private_key_passphrase_env:
        passphrase = env_secret(config, config.private_key_passphrase_env, "the private key passphrase")
    try:
        pem = Path(key_file).expanduser().read_bytes()
    except OSError as exc:
        raise DestinationError(
            f"cannot read the private key file {key_file} for {config.who}: {exc.strerror or type(exc).__name__}",
            "check the key file path and its permissions",
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        ) from None
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError) as exc:
        detail = _scrub(str(exc), [passphrase or ""])
        raise DestinationError(
            f"the private key in {key_file} for {config.who} cannot be loaded ({detail})",
            "check the key file and its passphrase (an encrypted key needs private_key_passphrase_env)",
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        ) from None
    der = key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return der, [passphrase or ""]


def connect(config: SnowflakeConfig) -> SnowflakeConnection:
    """Open a session; any failure becomes a :class:`DestinationError` with a reason and a hint."""
    kwargs: dict[str, Any] = {
        "account": config.account,
        "user": config.user,
        "database": config.database,
        "schema": config.schema,
        "session_parameters": {
            # timestamptz values travel as UTC instants; a session in another time zone must not
            # reinterpret a wall-clock reading of them
            "TIMEZONE": "UTC",
            "QUOTED_IDENTIFIERS_IGNORE_CASE": False,
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
        },
        "login_timeout": LOGIN_TIMEOUT_SECONDS,
        "network_timeout": NETWORK_TIMEOUT_SECONDS,
        "application": "etl-tui",
    }
    for name in ("warehouse", "role", "host", "port"):
        value = getattr(config, name)
        if value is not None:
            kwargs[name] = value
    if config.host is not None:
        kwargs["protocol"] = config.protocol
    secrets: list[str] = []
    if config.private_key_file:
        der, secrets = _private_key_der(config, config.private_key_file)
        kwargs["private_key"] = der
        kwargs["authenticator"] = "SNOWFLAKE_JWT"
    elif config.password_env:
        password = env_secret(config, config.password_env, "the password")
        kwargs["password"] = password
        secrets = [password]
    else:
        raise DestinationError(
            f"no credentials configured for {config.who}",
            "set a private key file (key-pair authentication) or a password environment variable",
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        )
    try:
        return snowflake.connector.connect(**kwargs)
    except sf_errors.Error as exc:
        raise classify(exc, config, secrets) from None
    except OSError as exc:
        raise DestinationError(
            f"cannot reach Snowflake for {config.who}: {_scrub(str(exc), secrets)}",
            "check the account name / host and the network (proxy, firewall)",
        ) from None


def classify(exc: Exception, config: SnowflakeConfig, secrets: list[str] | None = None) -> DestinationError:
    """Turn a connector error into a classified :class:`DestinationError` (secrets scrubbed)."""
    errno = getattr(exc, "errno", None)
    msg = getattr(exc, "msg", None) or str(exc)
    detail = _scrub(str(msg), secrets or [])
    code = f" [{errno}]" if errno else ""
    if errno in _AUTH_ERRNOS or isinstance(exc, sf_errors.ForbiddenError):
        return DestinationError(
            f"Snowflake refused the login of {config.who}{code}: {detail}",
            "check the user, its role and the registered public key / password",
            retry=RetryPolicy.MANUAL,
        )
    if errno in _UNREACHABLE_ERRNOS or isinstance(exc, sf_errors.OperationalError | sf_errors.InterfaceError):
        return DestinationError(
            f"cannot reach Snowflake for {config.who}{code}: {detail}",
            "check the account name / host and the network (proxy, firewall); retrying",
        )
    return DestinationError(
        f"Snowflake error for {config.who}{code}: {detail}",
        "check the destination's database, schema and privileges; retrying",
    )
