"""`edgeloop --help` and every subcommand's help load no third-party module: they answer before numpy or boto3 would."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeloop.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import contextlib, io, json, sys
before = set(sys.modules)
from edgeloop.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main(sys.argv[1:] + ["--help"])
loaded = {name.partition(".")[0] for name in set(sys.modules) - before}
print(json.dumps({"third_party": sorted(loaded - set(sys.stdlib_module_names) - {"edgeloop"}),
                  "edgeloop": sorted(n for n in sys.modules if n.startswith("edgeloop.")), "help": out.getvalue()}))
"""
HEAVY_PACKAGES = ("edgeloop.cloud", "edgeloop.device", "edgeloop.local.stack")
HEAVY_MODULES = ("edgeloop.local.demo", "edgeloop.local.loop", "edgeloop.training.job")
"""Our modules that bring the heavy ones (boto3, onnxruntime, moto, sklearn): named too, so a failure says which."""


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command in the tree, found by walking the parser: a new subcommand is covered without listing it here."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += command_paths(sub, (*prefix, name))
    return paths


PATHS = command_paths(build_parser())


def help_of(path: tuple[str, ...]) -> dict[str, object]:
    """Run `edgeloop PATH --help` in a fresh interpreter; what it imported and printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *path], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_walk_finds_every_group_and_its_subcommands() -> None:
    assert {(), ("demo",), ("train",), ("models", "list"), ("rollout", "start"), ("rollout", "abort")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "edgeloop")
def test_help_imports_no_heavy_module(path: tuple[str, ...]) -> None:
    result = help_of(path)
    assert "usage: edgeloop" in str(result["help"])
    assert result["third_party"] == []
    edgeloop = [str(name) for name in result["edgeloop"]]  # type: ignore[attr-defined]
    assert [name for name in edgeloop if name in HEAVY_MODULES or name.startswith(HEAVY_PACKAGES)] == []
