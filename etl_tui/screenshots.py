"""Render every screen from the scenes into SVG files: ``python -m etl_tui.screenshots``.

The snapshot tests use the same scenes, so the README images always show the UI as tested.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from etl_tui.app import EtlApp
from etl_tui.scenes.backend import SceneBackend
from etl_tui.scenes.clock import fixed_clock

SIZE = (140, 40)


@dataclass(frozen=True)
class Scene:
    keys: tuple[str, ...]
    readonly: bool = False
    about: str = ""


SCENES: dict[str, Scene] = {
    "pipelines": Scene((), about="home: every pipeline"),
    "detail": Scene(("down", "enter"), about="a pipeline copying: progress and ETA"),
    "detail-errored": Scene(("down", "down", "enter", "down"), about="an errored table: reason, hint, retry policy"),
    "throughput": Scene(("3",), about="rows/s plot, per-pipeline figures, latest batches"),
    "slots": Scene(("4",), about="replication slots and their warnings"),
    "redis": Scene(("5",), about="the engine's Redis keys"),
    "events": Scene(("6",), about="event log"),
    "config": Scene(("7",), about="sources, destinations, pipelines (one pending)"),
    "checks": Scene(("8",), about="pre-flight checks: blockers first, the selected finding with its hint"),
    "help": Scene(("question_mark",), about="keys of the home screen"),
    "resync-confirm": Scene(("down", "enter", "down", "R"), about="resync asks for the table name"),
    "source-form": Scene(("7", "e"), about="editing a source: the password stays masked"),
    "pipeline-form": Scene(("7", "tab", "tab", "e"), about="editing a pipeline: its tables and column types"),
    "snowflake-form": Scene(
        ("7", "tab", "down", "down", "e"), about="editing a Snowflake destination: key file and env var names only"
    ),
    "filtered": Scene(("6", "slash", *"crm"), about="events filtered with /"),
    "readonly": Scene((), readonly=True, about="read-only: no changing keys"),
}


def use_utc() -> None:
    """Times on screen are local; pin the zone so rendered output is the same on every machine."""
    os.environ["TZ"] = "UTC"
    time.tzset()


def make_app(scene: Scene) -> EtlApp:
    return EtlApp(SceneBackend(readonly=scene.readonly), clock=fixed_clock)


async def settle(pilot: Pilot[None]) -> None:
    """Let workers finish and freeze blinking cursors, so two renders are identical."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    for screen in pilot.app.screen_stack:
        for box in screen.query(Input):
            box.cursor_blink = False
        for area in screen.query(TextArea):
            area.cursor_blink = False
    await pilot.pause()


async def play(pilot: Pilot[None], scene: Scene) -> None:
    await settle(pilot)
    for key in scene.keys:
        await pilot.press(key)
        await settle(pilot)


async def render(name: str, scene: Scene, out: Path) -> Path:
    app = make_app(scene)
    async with app.run_test(size=SIZE) as pilot:
        await play(pilot, scene)
        return Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="screenshots", help="folder for the SVG files (default screenshots)")
    args = parser.parse_args(argv)
    use_utc()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, scene in SCENES.items():
        path = asyncio.run(render(name, scene, out))
        print(f"{path}  {scene.about}")


if __name__ == "__main__":
    main()
