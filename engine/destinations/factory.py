"""Build the destination a pipeline's config names (enum-like dispatch, as in the seed design).

The stored config goes through the same check as when it was added, so a destination edited by
hand in the config DB fails here with the same reason and hint. Each destination's client library
is imported only when a destination of that type is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config.destination_options import Loader, destination_config
from engine.config.models import Destination as DestinationConfig
from engine.config.models import DestinationType
from engine.destinations.base import Destination
from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.destinations.snowflake.connection import SnowflakeConfig


def open_destination(config: DestinationConfig) -> Destination:
    options = _checked(config)
    soft_deletes = bool(options.get("soft_deletes", False))
    if config.type is DestinationType.DUCKDB:
        from engine.destinations.duckdb.destination import DuckDbDestination

        return DuckDbDestination(
            options["path"],
            schema=options["schema"],
            landing_schema=options["landing_schema"],
            soft_deletes=soft_deletes,
        )
    if config.type is DestinationType.SNOWFLAKE:
        sf_config = _snowflake_config(options)
        atomic = bool(options.get("transactions", True))
        if options["loader"] == Loader.STREAMING:
            try:
                from engine.destinations.snowflake.streaming import SnowpipeStreamingDestination
            except ImportError as exc:
                raise ConfigError(
                    f'destination "{config.name}" loads with Snowpipe Streaming, which is not installed ({exc})',
                    "pip install 'etl-tui[snowpipe]', or set the loader to copy",
                ) from None
            return SnowpipeStreamingDestination(sf_config, atomic=atomic, soft_deletes=soft_deletes)
        from engine.destinations.snowflake.destination import SnowflakeDestination

        return SnowflakeDestination(sf_config, atomic=atomic, soft_deletes=soft_deletes)
    raise ConfigError(
        f'destination "{config.name}" has unknown type {config.type}',
        "use --type " + " or --type ".join(t.value for t in DestinationType),
    )


def snowflake_config(config: DestinationConfig) -> SnowflakeConfig:
    """The connection settings of a Snowflake destination, as :func:`open_destination` uses them."""
    if config.type is not DestinationType.SNOWFLAKE:
        raise ConfigError(f'destination "{config.name}" is a {config.type} destination, not snowflake')
    return _snowflake_config(_checked(config))


def _checked(config: DestinationConfig) -> dict[str, Any]:
    # the key file is read when connecting, with its own error
    return destination_config(config.type, config.config, name=config.name, check_files=False)


def _snowflake_config(options: dict[str, Any]) -> SnowflakeConfig:
    from engine.destinations.snowflake.connection import SnowflakeConfig

    return SnowflakeConfig(
        account=options["account"],
        user=options["user"],
        database=options["database"],
        schema=options["schema"],
        landing_schema=options["landing_schema"],
        warehouse=options.get("warehouse"),
        role=options.get("role"),
        private_key_file=options.get("private_key_file"),
        private_key_passphrase_env=options.get("private_key_passphrase_env"),
        password_env=options.get("password_env"),
        host=options.get("host"),
        port=options.get("port"),
        protocol=options.get("protocol", "https"),
    )
