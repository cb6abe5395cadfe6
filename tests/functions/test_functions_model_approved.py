"""The model_approved Lambda handler under moto, driven by real-shaped EventBridge events."""

from __future__ import annotations

from typing import Any

import pytest
from support import FAKE_ONNX, manifest_for

from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.core.errors import ValidationError
from edgeloop.core.recipes import model_recipe
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.settings import CloudSettings
from edgeloop.packaging import inference_recipe
from functions import model_approved

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
TRAINING_OUTPUT = "s3://edgeloop-data/training-output/"


@pytest.fixture
def deps(sagemaker: Any) -> dict[str, Any]:
    registry = SageMakerRegistry(sagemaker)
    registry.ensure_group("digits")
    registry.register(
        manifest_for(FAKE_ONNX),
        training_job="job-1",
        artifact_uri="s3://edgeloop-artifacts/models/digits/a/model.onnx",  # ends with manifest.selected
        manifest_uri="s3://edgeloop-artifacts/models/digits/a/manifest.json",
        approval=ApprovalStatus.APPROVED,
    )
    settings = CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", None, TRAINING_OUTPUT)
    fleet = MemoryFleetControl()
    record = registry.get("digits", 1)
    fleet.create_component_version(model_recipe(record, manifest_for(FAKE_ONNX)))
    fleet.create_component_version(inference_recipe("0.1.0", "s3://edgeloop-artifacts/components/inference.zip"))
    return {"registry": registry, "fleet": fleet, "settings": settings}


def test_approved_version_is_deployed_to_the_fleet(deps: dict[str, Any], event: Any) -> None:
    result = model_approved.handle(event("model_package_approved"), deps)
    assert result["status"] == "deployed"
    info = deps["fleet"].get_deployment(result["deploymentId"])
    assert info.target_arn == GROUP_ARN
    assert info.name == "edgeloop-digits-v1"


def test_rejected_version_is_not_deployed(deps: dict[str, Any], event: Any) -> None:
    rejected = event("model_package_approved")
    rejected["detail"]["ModelApprovalStatus"] = "Rejected"
    result = model_approved.handle(rejected, deps)
    assert result == {
        "status": "ignored",
        "modelPackage": rejected["detail"]["ModelPackageArn"],
        "reason": "approval is Rejected",
    }


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("ModelApprovalStatus", "Maybe", "not an approval status"),
        ("ModelPackageVersion", "one", "ModelPackageVersion"),
        ("ModelPackageGroupName", "someone-elses-group", "does not start with 'edgeloop-'"),
    ],
)
def test_bad_events_name_the_field(deps: dict[str, Any], event: Any, field: str, value: Any, match: str) -> None:
    bad = event("model_package_approved")
    bad["detail"][field] = value
    with pytest.raises(ValidationError, match=match):
        model_approved.handle(bad, deps)
