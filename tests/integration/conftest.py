"""Fixtures shared by the integration tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

try:
    import fakesnow

    # Taken at import: the first fakesnow.server() call imports the submodule fakesnow.server,
    # which then shadows the function on the package, so a second lookup would get the module.
    _start_fakesnow: Any = fakesnow.server
except ImportError:  # the test extra is not installed: Snowflake tests skip
    _start_fakesnow = None


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict[str, Any]]:
    """One Snowflake emulator (fakesnow in server mode) for the whole session."""
    if _start_fakesnow is None:
        pytest.skip("fakesnow is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _start_fakesnow(port=None) as kwargs:
            yield kwargs
