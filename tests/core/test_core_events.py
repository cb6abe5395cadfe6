"""Parsing the SageMaker EventBridge events the handlers react to."""

from __future__ import annotations

from typing import Any

import pytest
from support import load_event

from edgeloop.core.errors import ValidationError
from edgeloop.core.events import EVENT_ROUTES, ModelPackageStateChange, TrainingJobStateChange
from edgeloop.core.registry import ApprovalStatus


def test_completed_training_job_carries_its_artifacts() -> None:
    change = TrainingJobStateChange.from_event(load_event("training_job_completed"))
    assert change.completed
    assert change.job_name == "edgeloop-digits-20261124-120000"
    assert change.model_artifacts_uri is not None
    assert change.model_artifacts_uri.endswith("/output/model.tar.gz")


def test_failed_training_job_keeps_its_reason_and_has_no_artifacts() -> None:
    change = TrainingJobStateChange.from_event(load_event("training_job_failed"))
    assert not change.completed
    assert change.model_artifacts_uri is None
    assert "NaN" in change.failure_reason


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: e.update({"source": "aws.iot"}), "expected source 'aws.sagemaker'"),
        (lambda e: e.update({"detail-type": "Something Else"}), "SageMaker Training Job State Change"),
        (lambda e: e.update({"detail": []}), "event.detail: expected an object"),
        (lambda e: e["detail"].pop("TrainingJobName"), r"event\.detail\.TrainingJobName: is required"),
        (lambda e: e["detail"]["ModelArtifacts"].update(S3ModelArtifacts="https://x/y"), "needs an s3:// URI"),
        (lambda e: e["detail"].update(ModelArtifacts="s3://x"), "ModelArtifacts: expected an object"),
    ],
    ids=["source", "detail-type", "detail-not-object", "no-job-name", "not-s3", "artifacts-not-object"],
)
def test_bad_training_events_name_the_field(mutate: Any, match: str) -> None:
    event = load_event("training_job_completed")
    mutate(event)
    with pytest.raises(ValidationError, match=match):
        TrainingJobStateChange.from_event(event)


def test_model_package_event_parses_version_and_approval() -> None:
    change = ModelPackageStateChange.from_event(load_event("model_package_approved"))
    assert (change.group_name, change.version, change.approval) == ("edgeloop-digits", 1, ApprovalStatus.APPROVED)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("ModelApprovalStatus", "approved", "not an approval status"),
        ("ModelPackageVersion", 0, "must be >= 1"),
        ("ModelPackageVersion", True, "expected an integer"),
        ("ModelPackageArn", "", "expected a non-empty string"),
    ],
)
def test_bad_model_package_events_name_the_field(field: str, value: Any, match: str) -> None:
    event = load_event("model_package_approved")
    event["detail"][field] = value
    with pytest.raises(ValidationError, match=match):
        ModelPackageStateChange.from_event(event)


def test_every_routed_event_names_a_handler_file() -> None:
    from pathlib import Path

    functions = Path(__file__).resolve().parents[2] / "functions"
    assert set(EVENT_ROUTES.values()) == {"training_completed", "model_approved", "training_launcher"}
    for name in EVENT_ROUTES.values():
        assert (functions / f"{name}.py").is_file()
