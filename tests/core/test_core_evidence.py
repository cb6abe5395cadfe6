"""The new-world gate's evidence: its arithmetic for the canary, its text form, and its parsers (strict, fuzzed)."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.core.errors import ValidationError
from edgeloop.core.evidence import EVIDENCE_TAG, GateEvidence, confidence_allowance, job_evidence

BACKED = GateEvidence(
    samples=124,
    confidence_samples=87,
    deployed_version=1,
    candidate_accuracy=0.75,
    deployed_accuracy=0.556,
    candidate_confidence=0.672,
    deployed_confidence=0.903,
)
"""What the gate saw on agrawal after its change: the deployed version confidently wrong, the candidate unsure."""


# --- the allowance -------------------------------------------------------------------------------------


def test_a_backed_candidate_may_drop_by_the_expected_drop_more() -> None:
    assert BACKED.backs_candidate
    assert BACKED.expected_confidence_drop == pytest.approx(0.231)
    assert confidence_allowance(0.05, BACKED, 1) == pytest.approx(0.281)


def test_no_evidence_keeps_the_gate_as_set() -> None:
    assert confidence_allowance(0.05, None, 1) == 0.05


@pytest.mark.parametrize(
    "changes",
    [
        {"candidate_accuracy": 0.5},  # the samples say it is worse
        {"candidate_accuracy": 0.556},  # or no better
        {"samples": 0, "confidence_samples": 0},  # or nothing at all
        {"confidence_samples": 0},  # no random sample to estimate the live confidence from
    ],
    ids=["worse", "equal", "no-samples", "no-random-samples"],
)
def test_evidence_that_does_not_back_the_candidate_gives_no_allowance(changes: dict[str, Any]) -> None:
    evidence = replace(BACKED, **changes)
    assert not evidence.backs_candidate
    assert confidence_allowance(0.05, evidence, 1) == 0.05


def test_evidence_against_another_baseline_gives_no_allowance() -> None:
    assert confidence_allowance(0.05, BACKED, 2) == 0.05
    assert confidence_allowance(0.05, BACKED, None) == 0.05


def test_a_surer_candidate_never_tightens_the_gate() -> None:
    surer = replace(BACKED, candidate_confidence=0.95)
    assert surer.expected_confidence_drop < 0
    assert confidence_allowance(0.05, surer, 1) == 0.05


def test_the_evidence_reads_as_one_line_for_the_decision_log() -> None:
    assert BACKED.describe() == (
        "new-world gate: accuracy 0.750 vs v1 0.556 on 124 recent labels, confidence 0.672 vs 0.903 on 87 random ones"
    )


def test_a_gate_switched_off_stays_off() -> None:
    assert confidence_allowance(None, BACKED, 1) is None


# --- validation and the text form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"samples": -1}, "evidence.samples"),
        ({"confidence_samples": -2}, "evidence.confidenceSamples"),
        ({"deployed_version": 0}, "evidence.deployedVersion"),
        ({"candidate_accuracy": 1.01}, "evidence.candidateAccuracy"),
        ({"deployed_accuracy": -0.1}, "evidence.deployedAccuracy"),
        ({"candidate_confidence": math.nan}, "evidence.candidateConfidence"),
        ({"deployed_confidence": math.inf}, "evidence.deployedConfidence"),
    ],
)
def test_bad_figures_are_refused_naming_the_key(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        replace(BACKED, **changes)
    assert info.value.field == field


def test_the_text_round_trips_and_fits_a_tag_value() -> None:
    text = BACKED.to_text()
    assert GateEvidence.from_text(text) == BACKED
    assert json.loads(text)["deployedConfidence"] == 0.903
    widest = replace(BACKED, samples=10**12, confidence_samples=10**12, deployed_version=10**9,
                     candidate_accuracy=1 / 3, deployed_accuracy=2 / 3, candidate_confidence=1e-7)  # fmt: skip
    assert len(widest.to_text()) <= 256  # SageMaker's limit on a tag or metadata value


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**BACKED.to_dict(), "extra": 1}, "where"),
        ({k: v for k, v in BACKED.to_dict().items() if k != "samples"}, "where.samples"),
        ({**BACKED.to_dict(), "samples": True}, "where.samples"),
        ({**BACKED.to_dict(), "samples": -1}, "where.samples"),
        ({**BACKED.to_dict(), "candidateAccuracy": "0.7"}, "where.candidateAccuracy"),
        ({**BACKED.to_dict(), "deployedConfidence": 1.5}, "where.deployedConfidence"),
        ([], "where"),
    ],
)
def test_the_parser_names_the_field_under_its_caller(data: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        GateEvidence.from_dict(data, "where")
    assert info.value.field == field


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValidationError, match="is not JSON"):
        GateEvidence.from_text("{samples", "where")


VALID = st.builds(
    GateEvidence,
    samples=st.integers(0, 10**9),
    confidence_samples=st.integers(0, 10**9),
    deployed_version=st.integers(1, 10**6),
    candidate_accuracy=st.floats(0, 1),
    deployed_accuracy=st.floats(0, 1),
    candidate_confidence=st.floats(0, 1),
    deployed_confidence=st.floats(0, 1),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=8),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(evidence=VALID)
def test_any_valid_evidence_round_trips_to_six_decimals(evidence: GateEvidence) -> None:
    back = GateEvidence.from_text(evidence.to_text())
    assert (back.samples, back.confidence_samples, back.deployed_version) == (
        evidence.samples,
        evidence.confidence_samples,
        evidence.deployed_version,
    )
    for name in ("candidate_accuracy", "deployed_accuracy", "candidate_confidence", "deployed_confidence"):
        assert getattr(back, name) == pytest.approx(getattr(evidence, name), abs=1e-6)
    assert len(evidence.to_text()) <= 256


@settings(max_examples=300, deadline=None)
@given(
    data=st.fixed_dictionaries(
        {},
        optional={key: JSON | st.floats() | st.integers() for key in BACKED.to_dict()} | {"other": JSON},
    )
)
def test_any_json_object_parses_or_raises_validation_error_only(data: dict[str, Any]) -> None:
    try:
        evidence = GateEvidence.from_dict(data)
    except ValidationError:
        return
    assert 0.0 <= evidence.candidate_confidence <= 1.0
    assert evidence.samples >= 0


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300) | JSON.map(json.dumps))
def test_any_text_parses_or_raises_validation_error_only(text: str) -> None:
    with contextlib.suppress(ValidationError):
        GateEvidence.from_text(text)


# --- the training job's tag ---------------------------------------------------------------------------------


def _event(tags: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {"TrainingJobName": "job", "TrainingJobStatus": "Completed"}
    if tags is not None:
        detail["Tags"] = tags
    return {"detail": detail}


def test_the_job_tag_is_read_as_a_map_or_as_key_value_pairs() -> None:
    assert job_evidence(_event({EVIDENCE_TAG: BACKED.to_text(), "team": "ml"})) == BACKED
    assert job_evidence(_event([{"Key": "team", "Value": "ml"}, {"Key": EVIDENCE_TAG, "Value": BACKED.to_text()}]))


@pytest.mark.parametrize("tags", [None, {}, [], {"team": "ml"}], ids=["absent", "empty-map", "empty-list", "other"])
def test_a_job_without_the_tag_has_no_evidence(tags: Any) -> None:
    assert job_evidence(_event(tags)) is None


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        ({EVIDENCE_TAG: 3}, f"event.detail.Tags.{EVIDENCE_TAG}"),
        ({EVIDENCE_TAG: "{}"}, f"event.detail.Tags.{EVIDENCE_TAG}.samples"),
        ([{"Key": EVIDENCE_TAG}], "event.detail.Tags[].Value"),
        ("tags", "event.detail.Tags"),
    ],
)
def test_a_bad_tag_is_refused_naming_it(tags: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        job_evidence(_event(tags))
    assert info.value.field == field
