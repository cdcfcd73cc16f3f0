"""Build the destination a pipeline's config names (enum-like dispatch, as in the seed design)."""

from __future__ import annotations

from engine.config.models import Destination as DestinationConfig
from engine.config.models import DestinationType
from engine.destinations.base import Destination
from engine.errors import ConfigError


def open_destination(config: DestinationConfig) -> Destination:
    if config.type is DestinationType.DUCKDB:
        from engine.destinations.duckdb.destination import DuckDbDestination

        path = config.config.get("path")
        if not path:
            raise ConfigError(f'destination "{config.name}" has no path', "set --path FILE")
        return DuckDbDestination(
            path,
            schema=str(config.config.get("schema") or "main"),
            landing_schema=str(config.config.get("landing_schema") or "etl_landing"),
        )
    raise ConfigError(f'destination "{config.name}" has unknown type {config.type}', "use --type duckdb")
