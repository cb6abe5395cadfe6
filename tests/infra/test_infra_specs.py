"""tests/infra/infra_specs.py: a spec missing from ../shared skips a local run but fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_specs import require_spec


def test_a_missing_spec_fails_in_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="spec not found"):
        require_spec(tmp_path / "absent.json", {"CI": "true"})


def test_a_missing_spec_skips_outside_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="spec not found"):
        require_spec(tmp_path / "absent.json", {})


def test_a_present_spec_is_returned_whatever_the_environment(tmp_path: Path) -> None:
    spec = tmp_path / "schema.json"
    spec.write_text("{}")
    assert require_spec(spec, {"CI": "true"}) == spec
    assert require_spec(spec, {}) == spec
