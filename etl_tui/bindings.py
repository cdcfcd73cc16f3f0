"""Every key of the console in one table: the footer, `?` help, the command palette and the
read-only guard are all built from it, so they cannot drift apart.

Binding ids can be remapped with ``App.set_keymap`` (as in Posting).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class ScreenSpec:
    name: str  # the app mode
    key: str
    title: str
    help: str


SCREENS: tuple[ScreenSpec, ...] = (
    ScreenSpec("pipelines", "1", "Pipelines", "every pipeline: state, rows/s, lag, tables, last error"),
    ScreenSpec("detail", "2", "Detail", "the selected pipeline's tables: phase, copy progress, errors"),
    ScreenSpec("throughput", "3", "Throughput", "rows/s over time, batch sizes, destination write latency"),
    ScreenSpec("slots", "4", "WAL / slots", "replication slots: activity, lag, WAL headroom, warnings"),
    ScreenSpec("redis", "5", "Redis", "the engine's Redis keys (read-only)"),
    ScreenSpec("events", "6", "Events", "what the engine did, newest at the bottom"),
    ScreenSpec("config", "7", "Config", "sources, destinations and pipelines in the config DB"),
    ScreenSpec("checks", "8", "Checks", "pre-flight checks of every pipeline: blockers, warnings, hints"),
)
SCREEN_NAMES = tuple(s.name for s in SCREENS)
TABLE_SCREENS = ("pipelines", "detail", "throughput", "slots", "redis", "events", "config", "checks")


@dataclass(frozen=True)
class KeySpec:
    id: str
    key: str
    action: str  # an action of the screen (or the app, for keys available everywhere)
    label: str  # footer
    help: str  # help screen and palette
    screens: tuple[str, ...] = ()  # () means everywhere
    mutating: bool = False  # hidden and refused when the console is read-only
    key_display: str | None = None
    show: bool = True

    @property
    def display(self) -> str:
        return self.key_display or self.key


KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "open-pipeline",
        "enter",
        "open_detail",
        "Open",
        "open the selected pipeline's tables",
        ("pipelines",),
        key_display="⏎",
    ),
    KeySpec(
        "start-pipeline",
        "s",
        "start_pipeline",
        "Start",
        "start the selected pipeline",
        ("pipelines", "detail"),
        mutating=True,
    ),
    KeySpec(
        "pause-pipeline",
        "p",
        "pause_pipeline",
        "Pause",
        "pause the selected pipeline (its slot stops)",
        ("pipelines", "detail"),
        mutating=True,
    ),
    KeySpec(
        "retry-table", "r", "retry_table", "Retry", "retry the selected errored table now", ("detail",), mutating=True
    ),
    KeySpec(
        "resync-table",
        "R",
        "resync_table",
        "Resync",
        "copy the selected table again (type its name to confirm)",
        ("detail",),
        mutating=True,
    ),
    KeySpec("back", "escape", "back", "Back", "back to the pipelines", ("detail",), key_display="esc"),
    KeySpec(
        "add-item",
        "a",
        "add_item",
        "Add",
        "add a source, destination or pipeline (the focused list)",
        ("config",),
        mutating=True,
    ),
    KeySpec(
        "edit-item",
        "e",
        "edit_item",
        "Edit",
        "edit the selected source, destination or pipeline",
        ("config",),
        mutating=True,
    ),
    KeySpec(
        "delete-item",
        "d",
        "delete_item",
        "Delete",
        "delete the selected item (type its name to confirm)",
        ("config",),
        mutating=True,
    ),
    KeySpec("reload", "ctrl+r", "reload", "Reload", "read the list again", ("redis", "config")),
    KeySpec(
        "rerun-checks",
        "ctrl+r",
        "rerun_checks",
        "Re-run",
        "run the pre-flight checks again (each source is queried; nothing is changed)",
        ("checks",),
    ),
    KeySpec("filter", "slash", "filter", "Filter", "filter the rows (esc clears)", TABLE_SCREENS, key_display="/"),
    KeySpec("help", "question_mark", "help", "Help", "list the keys of this screen", key_display="?"),
    KeySpec("freeze", "space", "toggle_freeze", "Freeze", "freeze / resume the refresh (the cursor stays)"),
    KeySpec("screenshot", "ctrl+s", "take_screenshot", "Screenshot", "save an SVG screenshot of the screen"),
    KeySpec("quit", "q", "request_quit", "Quit", "leave the console (the engine it hosts stops; asks first)"),
)


def screen_keys(screen: str) -> list[KeySpec]:
    return [k for k in KEYS if screen in k.screens]


def global_keys() -> list[KeySpec]:
    return [k for k in KEYS if not k.screens]


def spec_for_action(screen: str, action: str) -> KeySpec | None:
    return next((k for k in screen_keys(screen) if k.action == action), None)


def to_binding(spec: KeySpec) -> Binding:
    return Binding(
        spec.key, spec.action, spec.label, show=spec.show, key_display=spec.key_display, tooltip=spec.help, id=spec.id
    )


def screen_bindings(screen: str) -> list[BindingType]:
    return [to_binding(k) for k in screen_keys(screen)]


def app_bindings() -> list[BindingType]:
    screens: list[BindingType] = [
        Binding(s.key, f"show_screen('{s.name}')", s.title, show=False, id=f"screen-{s.name}") for s in SCREENS
    ]
    # Read-only: the screens hide their changing keys; these catch the keys anyway and say why nothing
    # happens instead of ignoring them silently.
    refusals = [
        Binding(key, f"refuse('{key}')", show=False, system=True)
        for key in dict.fromkeys(k.key for k in KEYS if k.mutating)
    ]
    return [*screens, *(to_binding(k) for k in global_keys()), *refusals]
