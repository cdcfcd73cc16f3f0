"""The rooms of the code and the one-way doors between them (ARCHITECTURE.md, "Rooms and doors").

Read from the source with :mod:`ast` (every import statement, also those inside functions and
under ``TYPE_CHECKING``), so a forbidden import fails the tests before it ever runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The engine's rooms, top first: a room may import the rooms below it, never one above it, and
# rooms on the same line never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("engine.demo",),
    ("engine.runtime",),
    ("engine.status",),
    ("engine.monitoring", "engine.preflight"),
    ("engine.pipeline",),
    ("engine.destinations", "engine.state"),
    ("engine.batching",),
    ("engine.source",),
    ("engine.decoding",),
    ("engine.config",),
)

# The ground floor: used by every room, imports no room, except the value modules named here.
GROUND_FLOOR: tuple[str, ...] = (
    "engine.errors",
    "engine.settings",
    "engine.logs",
    "engine.identifiers",
    "engine.units",
    "engine.redaction",
    "engine.postgres_errors",
    "engine.metrics",
    "engine.embedded",
)
GROUND_FLOOR_MAY_IMPORT: dict[str, frozenset[str]] = {
    "engine.settings": frozenset({"engine.batching.limits"}),  # it reads the batch limits from the environment
    "engine.metrics": frozenset({"engine.state.table_state"}),  # one series per table phase
}

# Never imported by the engine: it runs headless (etl-tui --no-ui) without them.
ENGINE_NEVER_IMPORTS: tuple[str, ...] = ("etl_tui", "textual", "rich", "textual_plotext", "plotext")

# What the console (etl_tui, except the command line in etl_tui.cli) may import from the engine:
# the values it shows and the checks its forms share. It reaches everything else through the
# Backend seam, whose implementation the command line hands it.
CONSOLE_SURFACE: tuple[str, ...] = (
    "engine.status.board",
    "engine.errors",
    "engine.preflight",
    "engine.units",
    "engine.redaction",
    "engine.config.destination_options",
    "engine.config.models",
)
CONSOLE_EXEMPT: tuple[str, ...] = ("etl_tui.cli",)  # the command line starts the engine


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} ({self.rule})"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module ``path`` imports; ``from a import b`` names ``a.b`` when
    ``b`` is a module of the tree, so importing a submodule that way is seen as such."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(root, path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names_only = False  # some imported name is not a module: the package itself is used
            for alias in node.names:
                sub = root.joinpath(*f"{target}.{alias.name}".split("."))
                if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                    yield node.lineno, f"{target}.{alias.name}"
                else:
                    names_only = True
            if names_only:
                yield node.lineno, target


def _layer(module: str) -> int | None:
    for rank, rooms in enumerate(LAYERS):
        if any(_within(module, room) for room in rooms):
            return rank
    return None


def _room(module: str) -> str | None:
    for rooms in LAYERS:
        for room in rooms:
            if _within(module, room):
                return room
    return None


def _ground(module: str) -> bool:
    return any(_within(module, g) for g in GROUND_FLOOR)


def check(root: Path) -> list[Violation]:
    """Every import under ``root`` (a checkout: engine/ and etl_tui/) that breaks the contract."""
    found: list[Violation] = []
    for package in ("engine", "etl_tui"):
        for path in sorted((root / package).rglob("*.py")):
            importer = _module_name(root, path)
            for line, imported in _imports(root, path):
                rule = _broken_rule(importer, imported)
                if rule is not None:
                    found.append(Violation(path.relative_to(root), line, importer, imported, rule))
    return found


def _broken_rule(importer: str, imported: str) -> str | None:
    if _within(importer, "engine"):
        if any(_within(imported, name) for name in ENGINE_NEVER_IMPORTS):
            return "the engine never imports the console or Textual"
        if not _within(imported, "engine") or imported == "engine":  # the bare package holds nothing
            return None
        if _ground(importer):
            if _ground(imported) or imported in GROUND_FLOOR_MAY_IMPORT.get(_ground_of(importer), frozenset()):
                return None
            return "the ground floor imports no room"
        mine, theirs = _layer(importer), _layer(imported)
        if mine is None or theirs is None:
            return None if theirs is None and _ground(imported) else "every engine module belongs to a room"
        if theirs < mine:
            return "a room never imports a room above it"
        if theirs == mine and _room(importer) != _room(imported):
            return "rooms side by side never import each other"
        return None
    if _within(importer, "etl_tui") and _within(imported, "engine"):
        if any(_within(importer, exempt) for exempt in CONSOLE_EXEMPT):
            return None
        if any(_within(imported, surface) for surface in CONSOLE_SURFACE):
            return None
        return "the console reaches the engine only through its public surface"
    return None


def _ground_of(module: str) -> str:
    return next(g for g in GROUND_FLOOR if _within(module, g))
