"""Specs the infra tests read from ../shared, which CI always checks out beside the clone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = REPO_ROOT.parent / "shared" / "specs"
RECIPE_SCHEMA = SPECS_DIR / "greengrass-recipe.schema.json"


def require_spec(path: Path, env: Mapping[str, str]) -> Path:
    """The spec's path; when it is missing, fail under CI (a broken checkout) and skip elsewhere."""
    if not path.exists():
        message = f"spec not found at {path}; CI checks out ../shared beside the repository"
        if env.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
