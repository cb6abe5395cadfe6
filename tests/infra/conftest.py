"""One offline synth of the real app shared by the template tests; synth takes seconds, so it runs once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from infra_specs import RECIPE_SCHEMA, require_spec

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return {k: v for k, v in context.items() if k != "//"}


@pytest.fixture
def cdk_context() -> dict[str, Any]:
    """The context the CLI passes from cdk.json (minus its documentation entry); a fresh copy per test."""
    return _cdk_json_context()


@dataclass(frozen=True)
class Synthesized:
    """The synthesized stack: its template, the stack object and the staged assets."""

    template: dict[str, Any]
    stack: Any
    staging_dir: Path
    outdir: Path


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Synthesize the app with cdk.json's context; cdk-nag runs in its own test so findings fail only there."""
    from infra.app import build_app

    root = tmp_path_factory.mktemp("cdk")
    context = {**_cdk_json_context(), "edgeloop:cdkNag": False}
    app, stack = build_app(staging_dir=root / "staging", context=context, outdir=str(root / "out"))
    assembly = app.synth()
    return Synthesized(assembly.get_stack_by_name(stack.stack_name).template, stack, root / "staging", root / "out")


@pytest.fixture(scope="session")
def validate_recipe() -> Callable[[dict[str, Any]], None]:
    """Validate a recipe against the Greengrass kit's schema from ../shared/specs (beside the repo in CI)."""
    validator = jsonschema.Draft7Validator(json.loads(require_spec(RECIPE_SCHEMA, os.environ).read_text()))

    def validate(recipe: dict[str, Any]) -> None:
        validator.validate(_lower_keys(recipe))

    return validate


def _lower_keys(value: Any) -> Any:
    """Recipe keys are case-insensitive: the Greengrass kit lower-cases them before validating."""
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value
