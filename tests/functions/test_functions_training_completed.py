"""The training_completed Lambda handler under moto, driven by real-shaped EventBridge events."""

from __future__ import annotations

from typing import Any

import pytest
from support import FAKE_ONNX, manifest_for, model_tarball

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.settings import CloudSettings
from functions import training_completed

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
TRAINING_OUTPUT = "s3://edgeloop-data/training-output/"


@pytest.fixture
def deps(s3: Any, sagemaker: Any) -> dict[str, Any]:
    registry = SageMakerRegistry(sagemaker)
    registry.ensure_group("digits")
    store = S3ArtifactStore(s3)
    store.put(
        "s3://edgeloop-data/training-output/edgeloop-digits-20261124-120000/output/model.tar.gz",
        model_tarball({"manifest.json": manifest_for(FAKE_ONNX).to_json().encode(), "model.onnx": FAKE_ONNX}),
    )
    settings = CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", None, TRAINING_OUTPUT)
    return {"store": store, "registry": registry, "fleet": MemoryFleetControl(), "settings": settings}


def test_completed_job_is_published(deps: dict[str, Any], event: Any, sagemaker: Any) -> None:
    result = training_completed.handle(event("training_job_completed"), deps)
    assert result == {
        "status": "published",
        "trainingJob": "edgeloop-digits-20261124-120000",
        "modelName": "digits",
        "modelVersion": 1,
        "approval": "PendingManualApproval",
        "componentName": "com.edgeloop.model.digits",
        "componentVersion": "1.0.0",
    }
    packages = sagemaker.list_model_packages(ModelPackageGroupName="edgeloop-digits")["ModelPackageSummaryList"]
    assert len(packages) == 1


def test_failed_job_is_ignored_with_its_status(deps: dict[str, Any], event: Any) -> None:
    result = training_completed.handle(event("training_job_failed"), deps)
    assert result["status"] == "ignored"
    assert result["reason"] == "job is Failed"
    assert deps["registry"].versions("digits") == []


def test_a_job_that_wrote_elsewhere_is_ignored_not_failed(deps: dict[str, Any], event: Any) -> None:
    foreign = event("training_job_completed")
    foreign["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://other-team/jobs/x/output/model.tar.gz"
    result = training_completed.handle(foreign, deps)
    assert result["status"] == "ignored"
    assert "outside s3://edgeloop-data/training-output/" in result["reason"]
    assert deps["registry"].versions("digits") == []


def test_an_event_of_another_type_is_refused(deps: dict[str, Any], event: Any) -> None:
    wrong = event("model_package_approved")
    with pytest.raises(ValidationError, match="SageMaker Training Job State Change"):
        training_completed.handle(wrong, deps)


def test_a_completed_event_without_artifacts_names_the_field(deps: dict[str, Any], event: Any) -> None:
    broken = event("training_job_completed")
    del broken["detail"]["ModelArtifacts"]
    with pytest.raises(ValidationError, match="S3ModelArtifacts"):
        training_completed.handle(broken, deps)


def test_cold_start_without_configuration_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, aws: None
) -> None:
    monkeypatch.delenv("EDGELOOP_ARTIFACTS_BUCKET", raising=False)
    training_completed._deps.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"EDGELOOP_FLEET_THING_GROUP_ARN|EDGELOOP_ARTIFACTS_BUCKET"):
            training_completed.handler({}, None)
    finally:
        training_completed._deps.cache_clear()
