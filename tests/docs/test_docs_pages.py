"""README.md and docs/ hold together: a short README, and every link, path, module, port and command resolves."""

from __future__ import annotations

import argparse
import functools
import importlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pages import DOCS, PAGES, README, ROOT, blocks, slug, spans, subcommands, table_rows, text

from edgeloop.cli.main import build_parser

README_MAX_LINES = 250
TOP_DIRS = ("edgeloop/", "functions/", "infra/", "tests/", "benchmarks/", "greengrass_components/", "docs/", ".ci/")


def test_the_readme_is_a_short_front_door() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference material into docs/"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci_command = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    shown = [block.strip() for block in blocks(README.read_text(encoding="utf-8"), "bash")]
    assert ci_command in shown, ".ci/run and README.md disagree"


def test_the_readme_links_every_docs_page() -> None:
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", README.read_text(encoding="utf-8")))
    assert linked == {f"docs/{page.name}" for page in DOCS.glob("*.md")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target} resolves to nothing"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading #{anchor} in {linked.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_path_exists(page: Path) -> None:
    source = page.read_text(encoding="utf-8")
    lines = [line for block in blocks(source, "") for line in block.splitlines()]
    layout = [line.split()[0] for line in lines if line.startswith(TOP_DIRS)]
    named = [s for s in spans(source) if s.startswith(TOP_DIRS) and re.fullmatch(r"[\w./-]+", s)]
    missing = [path for path in {*named, *layout} if not (ROOT / path).exists()]
    assert not missing, f"{page.name} names paths that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_module_and_class_exists(page: Path) -> None:
    missing = []
    for name in {s for s in spans(page.read_text(encoding="utf-8")) if re.fullmatch(r"edgeloop(\.\w+)+", s)}:
        if not _resolves(name):
            missing.append(name)
    assert not missing, f"{page.name} names modules or attributes that do not exist: {sorted(missing)}"


def _resolves(name: str) -> bool:
    """A dotted name is a module, or an attribute chain below the longest module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def test_every_protocol_is_in_the_ports_page() -> None:
    named = set(spans(text("docs/ports.md")))
    missing = []
    for source in sorted((ROOT / "edgeloop").rglob("*.py")):
        module = ".".join(source.relative_to(ROOT).with_suffix("").parts)
        for cls in re.findall(r"^class (\w+)\(.*\bProtocol\b", source.read_text(encoding="utf-8"), flags=re.M):
            if f"{module}.{cls}" not in named:
                missing.append(f"{module}.{cls}")
    assert not missing, f"docs/ports.md does not name these ports: {missing}"


def test_every_port_row_names_an_adapter_and_a_contract_suite() -> None:
    ports = [row for row in table_rows(text("docs/ports.md")) if len(row) == 4 and row[0] != "Port"]
    assert ports
    for port, real, fake, suite in ports:
        assert "`" in real, f"{port}: no real adapter named"
        assert "`" in fake, f"{port}: no fake named"
        assert re.search(r"`tests/\S+\.py`", suite), f"{port}: no contract suite named"


def test_every_adapter_named_beside_a_port_has_the_ports_methods() -> None:
    rows = [row for row in table_rows(text("docs/ports.md")) if len(row) == 4 and row[0] != "Port"]
    for port_cell, real, fake, _ in rows:
        port = _attribute(port_cell.strip("`"))
        methods = {name for name, value in vars(port).items() if callable(value) and not name.startswith("_")}
        assert methods, f"{port_cell} declares no methods"
        for name in re.findall(r"`(edgeloop\.[\w.]+)`", f"{real} {fake}"):
            lacking = sorted(m for m in methods if not callable(getattr(_attribute(name), m, None)))
            assert not lacking, f"{name} lacks {port.__name__}'s {lacking}"


def _attribute(dotted: str) -> Any:
    """A class named by its module path and name."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    if parser.get_default("forwards_arguments"):  # `edgeloop train` hands its options to the training entry point
        from edgeloop.training.conventions import _parser

        parser = _parser()
    return {option for action in parser._actions for option in action.option_strings}


def documented_commands() -> list[tuple[str, str]]:
    """Every `edgeloop ...` command line shown in the README and docs/, with the page it is on."""
    found = []
    for page in PAGES:
        source = page.read_text(encoding="utf-8")
        wrapped = [re.sub(r"\n\s+(?=\[)", " ", block) for block in blocks(source)]  # usage lines that wrap
        lines = [*spans(source), *(line for block in wrapped for line in block.splitlines())]
        found += [(page.name, line.split("#")[0].strip()) for line in lines if re.match(r"edgeloop( |$)", line)]
    return found


@pytest.mark.parametrize(("page", "command"), documented_commands())
def test_every_documented_command_exists(page: str, command: str) -> None:
    parsers = [build_parser()]
    for token in command.split()[1:]:
        token = token.strip("[]().,")
        if token.startswith("--"):
            option = token.split("=")[0]
            assert all(option in _options(p) for p in parsers), f"{page}: {command}: no option {option}"
        elif token and subcommands(parsers[0]) and not token.startswith(("<", ".")):
            known = subcommands(parsers[0])
            names = token.split("|")
            assert all(name in known for name in names), f"{page}: {command}: no subcommand {token}"
            parsers = [known[name] for name in names]


def test_every_lambda_is_mapped_to_aws() -> None:
    named = set(spans(text("docs/aws-mapping.md")))
    handlers = [f"functions/{p.name}" for p in sorted((ROOT / "functions").glob("*.py")) if p.stem != "__init__"]
    assert [h for h in handlers if h not in named] == []


def test_every_benchmark_and_its_flags_are_documented() -> None:
    bullets = re.split(r"^- ", text("docs/benchmarks.md"), flags=re.M)[1:]
    documented = {re.match(r"`(benchmarks/\w+\.py)`", b).group(1): b for b in bullets if b.startswith("`benchmarks/")}
    scripts = {f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")}
    assert set(documented) == scripts
    shared = (ROOT / "benchmarks/_common.py").read_text(encoding="utf-8")
    for script, bullet in documented.items():
        source = (ROOT / script).read_text(encoding="utf-8") + shared
        for flag in re.findall(r"`(--[\w-]+)", bullet):
            assert f'"{flag}"' in source, f"docs/benchmarks.md: {script} has no {flag}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_method_or_field_exists(page: Path) -> None:
    classes = _classes()
    missing = []
    for name in {s for s in spans(page.read_text(encoding="utf-8")) if re.fullmatch(r"[A-Z][a-z]\w*\.[a-z_]\w*", s)}:
        owner, member = name.split(".")
        cls = classes.get(owner)
        if cls is None or not (hasattr(cls, member) or member in getattr(cls, "__annotations__", {})):
            missing.append(name)
    assert not missing, f"{page.name} names members that do not exist: {sorted(missing)}"


@functools.cache
def _classes() -> dict[str, Any]:
    """Every class defined in edgeloop, by name (a name defined twice maps to the last module read)."""
    found = {}
    for source in sorted((ROOT / "edgeloop").rglob("*.py")):
        module = ".".join(source.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for cls in re.findall(r"^class (\w+)", source.read_text(encoding="utf-8"), flags=re.M):
            found[cls] = (module, cls)
    return {cls: getattr(importlib.import_module(module), cls) for cls, (module, _) in found.items()}


def test_the_layout_names_every_top_level_folder() -> None:
    (layout,) = [block for block in blocks(README.read_text(encoding="utf-8"), "") if block.startswith("edgeloop/")]
    named = {line.split()[0].split("/")[0] for line in layout.splitlines()}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if tracked.returncode:
        pytest.skip("not a git checkout: the tracked folders are unknown")
    folders = {path.split("/")[0] for path in tracked.stdout.splitlines() if "/" in path}
    assert folders <= named, f"README.md's layout lacks {sorted(folders - named)}"
