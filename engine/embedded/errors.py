"""The one error raised by the throwaway servers in :mod:`engine.embedded`."""

from __future__ import annotations

from engine.errors import ErrorKind, EtlError, RetryPolicy


class EmbeddedServerError(EtlError):
    """A throwaway PostgreSQL or Redis server could not be found, started or stopped."""

    kind = ErrorKind.CONFIG
    # a missing binary or a broken install does not fix itself
    retry = RetryPolicy.MANUAL
