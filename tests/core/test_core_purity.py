"""edgeloop/core is pure: it imports nothing but the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "edgeloop" / "core"


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_the_standard_library(path: Path) -> None:
    foreign = {r for r in _imported_roots(path) if r not in sys.stdlib_module_names and r not in {"edgeloop"}}
    assert foreign == set(), f"{path.name} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_other_edgeloop_package(path: Path) -> None:
    source = path.read_text()
    for package in ("cloud", "device", "training", "local", "cli", "packaging"):
        assert f"edgeloop.{package}" not in source, f"{path.name} reaches into edgeloop.{package}"


def test_the_check_can_fail(tmp_path: Path) -> None:
    impure = tmp_path / "impure.py"
    impure.write_text("import numpy\nfrom boto3 import client\nimport json\n")
    assert _imported_roots(impure) - set(sys.stdlib_module_names) == {"numpy", "boto3"}
