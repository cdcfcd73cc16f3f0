"""Every screen rendered from the fixtures at 140×40, compared with the SVGs in __snapshots__/.

Regenerate on purpose only: ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from etl_tui.screenshots import SCENES, SIZE, Scene, make_app, play


def _before(scene: Scene) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await play(pilot, scene)

    return run_before


@pytest.mark.parametrize("name", list(SCENES))
def test_screen(name: str, snap_compare: Callable[..., bool]) -> None:
    scene = SCENES[name]
    assert snap_compare(make_app(scene), terminal_size=SIZE, run_before=_before(scene))
