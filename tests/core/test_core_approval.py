"""The approval policy and schema compatibility, as tables over manifests: no mocks, no AWS."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support import FAKE_ONNX, manifest_for, uniform_baseline

from edgeloop.core.approval import ApprovalPolicy, ApprovedVersion, breaking_changes, clip, decide_approval
from edgeloop.core.errors import ConfigError
from edgeloop.core.manifest import Gate, ModelManifest
from edgeloop.core.registry import ApprovalStatus

BASE = manifest_for(FAKE_ONNX, accuracy=0.95)


def _with_input(**changes: Any) -> ModelManifest:
    schema = replace(BASE.input, **changes)
    return replace(BASE, input=schema, baseline=uniform_baseline(schema.features, schema.minimum, schema.maximum))


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (BASE, []),
        (_with_input(minimum=-1.0, maximum=20.0), []),
        (_with_input(name="x"), ["input.name changed from 'input' to 'x'"]),
        (_with_input(features=("b", "a", "c", "d")), ["input.features were reordered"]),
        (_with_input(features=("a", "b", "c", "e")), ["input.features changed (added ['e'], removed ['d'], 4 -> 4)"]),
        (_with_input(minimum=1.0), ["input.minimum narrowed from 0.0 to 1.0"]),
        (_with_input(maximum=15.0), ["input.maximum narrowed from 16.0 to 15.0"]),
        (replace(BASE, labels=("0", "1", "3")), ["labels changed from ['0', '1', '2'] to ['0', '1', '3']"]),
    ],
    ids=["same", "widened", "name", "reordered", "renamed", "min-narrowed", "max-narrowed", "labels"],
)
def test_breaking_changes(candidate: ModelManifest, expected: list[str]) -> None:
    assert list(breaking_changes(BASE, candidate)) == expected


APPROVED = ApprovedVersion(version=3, holdout_accuracy=0.95, manifest=BASE)
ON = ApprovalPolicy(auto_approve_min_accuracy=0.9, max_drop=0.01)
FAILED_GATE = replace(BASE, gate=Gate(metric="accuracy", bound=0.01, drop=0.0, passed=False, minimum=0.99))


@pytest.mark.parametrize(
    ("candidate", "approved", "policy", "status", "reason"),
    [
        (BASE, None, ApprovalPolicy(), ApprovalStatus.PENDING, "auto-approval is off"),
        (BASE, None, ON, ApprovalStatus.APPROVED, "first version"),
        (BASE, APPROVED, ON, ApprovalStatus.APPROVED, "not worse than v3"),
        (manifest_for(FAKE_ONNX, accuracy=0.941), APPROVED, ON, ApprovalStatus.APPROVED, "auto-approved"),
        (manifest_for(FAKE_ONNX, accuracy=0.93), APPROVED, ON, ApprovalStatus.PENDING, "worse than v3's 0.9500"),
        (manifest_for(FAKE_ONNX, accuracy=0.89), None, ON, ApprovalStatus.PENDING, "below the auto-approval minimum"),
        (_with_input(name="x"), APPROVED, ON, ApprovalStatus.PENDING, "breaking change vs v3: input.name"),
        (_with_input(maximum=99.0), APPROVED, ON, ApprovalStatus.APPROVED, "auto-approved"),
        (FAILED_GATE, None, ON, ApprovalStatus.REJECTED, "fp32 accuracy is below the minimum 0.99"),
        (FAILED_GATE, None, ApprovalPolicy(), ApprovalStatus.REJECTED, "accuracy gate failed"),
    ],
    ids=["off", "first", "equal", "within-bound", "worse", "below-floor", "breaking", "widened", "gate", "gate-off"],
)
def test_decide_approval(
    candidate: ModelManifest,
    approved: ApprovedVersion | None,
    policy: ApprovalPolicy,
    status: ApprovalStatus,
    reason: str,
) -> None:
    decision = decide_approval(candidate, approved, policy)
    assert decision.status is status
    assert reason in decision.description


def test_a_breaking_change_is_recorded_even_when_the_gate_fails() -> None:
    candidate = replace(FAILED_GATE, labels=("a", "b", "c"))
    decision = decide_approval(candidate, APPROVED, ON)
    assert decision.status is ApprovalStatus.REJECTED
    assert decision.breaking == ("labels changed from ['0', '1', '2'] to ['a', 'b', 'c']",)


@pytest.mark.parametrize("values", [{"auto_approve_min_accuracy": 1.5}, {"max_drop": -0.1}])
def test_policy_values_outside_zero_one_are_refused(values: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ApprovalPolicy(**values)


def test_clip_marks_the_cut() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdef", 5) == "abcd…"
