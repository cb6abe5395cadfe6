"""edgeloop/core is pure: it imports nothing but the standard library and itself, and holds only what ships.

What ships is what a device, a Lambda, the CDK app or the training job runs; simulation (scenarios, outages,
the cost model, the oracle labeller) lives with the local stack in edgeloop/local/sim.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "edgeloop" / "core"
SHIPPED_ENTRIES = [
    ROOT / "greengrass_components" / "com.edgeloop.Inference" / "main.py",
    *sorted((ROOT / "functions").glob("*.py")),
    *sorted((ROOT / "infra").rglob("*.py")),
    *sorted((ROOT / "edgeloop" / "training").glob("*.py")),
]
"""What runs outside the developer's machine: the device component, the Lambdas, the CDK app, the training job."""


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


def _imported_names(path: Path) -> set[str]:
    """Every module name a file imports, with `from a.b import c` also naming a.b.c."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _closure(root: Path, entries: list[Path]) -> set[Path]:
    """The files of root's modules that the entries import, directly or not."""
    seen: set[Path] = set()
    pending = list(entries)
    while pending:
        for name in _imported_names(pending.pop()):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                base = root.joinpath(*parts[:depth])
                for path in (base / "__init__.py", base.with_suffix(".py")):
                    if path.is_file() and path not in seen:
                        seen.add(path)
                        pending.append(path)
    return seen


def test_every_core_module_is_used_by_something_that_ships() -> None:
    shipped = _closure(ROOT, SHIPPED_ENTRIES)
    unused = sorted(p.name for p in CORE.glob("*.py") if p not in shipped)
    assert unused == [], f"core modules only the local stack, CLI or benchmarks use (move them out): {unused}"


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_holds_no_simulation(path: Path) -> None:
    text = path.read_text().lower()
    assert "scenario" not in text, f"{path.name} speaks of the local simulation's scenarios"
    assert "outage" not in text, f"{path.name} speaks of the local simulation's outages"


def test_the_shipped_closure_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    for name, text in {"__init__.py": "", "used.py": "", "local_only.py": "", "deep.py": "import pkg.used\n"}.items():
        (tmp_path / "pkg" / name).write_text(text)
    (tmp_path / "entry.py").write_text("from pkg import deep\n")
    found = {p.name for p in _closure(tmp_path, [tmp_path / "entry.py"])}
    assert found == {"__init__.py", "deep.py", "used.py"}


def test_the_check_can_fail(tmp_path: Path) -> None:
    impure = tmp_path / "impure.py"
    impure.write_text("import numpy\nfrom boto3 import client\nimport json\n")
    assert _imported_roots(impure) - set(sys.stdlib_module_names) == {"numpy", "boto3"}
