"""The import contract holds, and it would catch a forbidden import (planted in a copy)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.import_contract import check

ROOT = Path(__file__).resolve().parent.parent


def test_the_tree_keeps_the_contract() -> None:
    violations = check(ROOT)
    assert not violations, "\n".join(map(str, violations))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in ("engine", "etl_tui"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        ("engine/pipeline/heartbeat.py", "import textual", "the engine never imports the console or Textual"),
        ("engine/runtime/manager.py", "from etl_tui import app", "the engine never imports the console or Textual"),
        ("engine/source/copy.py", "from engine.runtime import manager", "a room never imports a room above it"),
        ("engine/decoding/pgarray.py", "from engine.status.board import Board", "a room never imports a room above it"),
        ("engine/destinations/base.py", "import engine.monitoring.alerts", "a room never imports a room above it"),
        ("engine/destinations/base.py", "from engine.state import store", "rooms side by side never import each other"),
        ("engine/errors.py", "from engine.pipeline import activity", "the ground floor imports no room"),
        (
            "etl_tui/screens/pipelines.py",
            "from engine.runtime.manager import Manager",
            "the console reaches the engine only through its public surface",
        ),
    ],
)
def test_a_forbidden_import_is_caught(tree: Path, module: str, line: str, rule: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n\ndef _planted() -> None:\n    {line}  # noqa\n")
    found = [v for v in check(tree) if str(v.path) == module]
    assert [v.rule for v in found] == [rule], found


def test_test_modules_share_helpers_through_the_harness_only() -> None:
    """What several test modules use lives in the harness (tests/integration/harness.py,
    scenarios.py, type_cases.py…), never in another test module."""
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1].startswith("test_"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import …")
    assert not found, "\n".join(found)
