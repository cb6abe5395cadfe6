"""The drift-detection figures docs/feedback-loop.md states are the code's and the installed packages' own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pages import text

from edgeloop.core.calibrated import CalibratedDetector
from edgeloop.core.detectors import ErrorDetector
from edgeloop.core.error_watch import CALIBRATED_DETECTOR, CLOUD_DETECTOR


def test_the_stated_default_false_alarm_is_the_policy_default() -> None:
    page = " ".join(text("docs/feedback-loop.md").split())
    assert f"`ErrorDetector.false_alarm` ({ErrorDetector().false_alarm:g} by default)" in page


def _installed_mb(package: str) -> float:
    """Megabytes a package's folder holds on disk (what a Lambda bundle would carry)."""
    module = pytest.importorskip(package)
    root = Path(importlib.util.find_spec(module.__name__).origin or "").parent  # type: ignore[union-attr]
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def test_the_stated_package_sizes_are_what_is_installed() -> None:
    """river, numpy and scipy 'about 8, 43 and 112 MB installed': within a quarter (versions and wheels vary)."""
    page = " ".join(text("docs/feedback-loop.md").split())
    assert "(about 8, 43 and 112 MB installed)" in page
    for package, stated in (("river", 8), ("numpy", 43), ("scipy", 112)):
        assert stated / 1.25 < _installed_mb(package) < stated * 1.25, package


def test_the_stated_calibrated_defaults_and_combined_bound_are_the_code_s() -> None:
    page = " ".join(text("docs/feedback-loop.md").split())
    policy = CalibratedDetector()
    odds = "(" + ", ".join(f"{k:g}" for k in policy.odds) + ")"
    assert f"`CalibratedDetector.odds`, {odds} by default" in page
    assert f"`CalibratedDetector.false_alarm` ({policy.false_alarm:g} by default)" in page
    combined = CALIBRATED_DETECTOR.false_alarm + CLOUD_DETECTOR.false_alarm
    assert f"together P(false alarm) ≤ {combined:g}" in page
