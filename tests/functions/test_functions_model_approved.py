"""The model_approved Lambda handler under moto, driven by real-shaped EventBridge events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support import FAKE_ONNX, manifest_for

from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.rollout_control import RolloutContext
from edgeloop.cloud.rollout_stores import MemoryFleetHealthStore, MemoryRolloutStore
from edgeloop.core.errors import ValidationError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.manifest import Gate
from edgeloop.core.recipes import model_recipe
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.settings import CloudSettings
from edgeloop.packaging import inference_recipe
from functions import model_approved

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
CANARY_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet-canary"
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
    manifest = manifest_for(FAKE_ONNX)
    fleet.create_component_version(model_recipe(record, manifest, manifest_bytes=manifest.to_json().encode()))
    fleet.create_component_version(inference_recipe("0.1.0", "s3://edgeloop-artifacts/components/inference.zip"))
    ctx = RolloutContext(
        rollouts=MemoryRolloutStore(),
        health=MemoryFleetHealthStore(),
        registry=registry,
        fleet=fleet,
        settings=settings,
        clock=lambda: 1_000.0,
    )
    return {"ctx": ctx}


def test_approved_version_starts_its_rollout_in_the_first_ring(deps: dict[str, Any], event: Any) -> None:
    result = model_approved.handle(event("model_package_approved"), deps)
    assert result["status"] == "rolling-out"
    info = deps["ctx"].fleet.get_deployment(result["deploymentId"])
    assert info.target_arn == CANARY_ARN
    assert info.name == "edgeloop-digits-v1-canary"
    assert deps["ctx"].rollouts.active("digits").model_version == 1


def test_rejected_version_is_recorded_and_not_deployed(deps: dict[str, Any], event: Any) -> None:
    deps["ctx"].registry.set_approval("digits", 1, ApprovalStatus.REJECTED, "rejected by ops: drift on site B")
    rejected = event("model_package_approved")
    rejected["detail"]["ModelApprovalStatus"] = "Rejected"
    result = model_approved.handle(rejected, deps)
    assert result == {
        "status": "rejected",
        "modelPackage": rejected["detail"]["ModelPackageArn"],
        "reason": "edgeloop-digits v1 was rejected: rejected by ops: drift on site B",
    }
    assert deps["ctx"].fleet.latest_deployment(CANARY_ARN) is None


def test_pending_version_does_nothing(deps: dict[str, Any], event: Any) -> None:
    pending = event("model_package_approved")
    pending["detail"]["ModelApprovalStatus"] = "PendingManualApproval"
    result = model_approved.handle(pending, deps)
    assert (result["status"], result["reason"]) == ("ignored", "edgeloop-digits v1 awaits manual approval")
    assert deps["ctx"].fleet.latest_deployment(CANARY_ARN) is None


def test_an_approved_version_whose_gate_failed_is_refused_not_deployed(deps: dict[str, Any], event: Any) -> None:
    failed = replace(manifest_for(FAKE_ONNX), gate=Gate("accuracy", 0.01, 0.0, passed=False, minimum=0.99))
    deps["ctx"].registry.register(
        failed,
        training_job="job-2",
        artifact_uri="s3://edgeloop-artifacts/models/digits/b/model.onnx",
        manifest_uri="s3://edgeloop-artifacts/models/digits/b/manifest.json",
        approval=ApprovalStatus.APPROVED,  # as if someone approved it in the console
    )
    approved = event("model_package_approved")
    approved["detail"]["ModelPackageVersion"] = 2
    result = model_approved.handle(approved, deps)
    assert result["status"] == "refused"
    assert "did not pass its accuracy gate" in result["reason"]
    assert deps["ctx"].fleet.latest_deployment(CANARY_ARN) is None


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


def test_a_retrain_with_new_world_gate_evidence_opens_a_rollout_carrying_it(deps: dict[str, Any], event: Any) -> None:
    evidence = GateEvidence(124, 87, 1, candidate_accuracy=0.75, deployed_accuracy=0.556, candidate_confidence=0.672,
                            deployed_confidence=0.903)  # fmt: skip
    deps["ctx"].rollouts.set_last_known_good("digits", 1)
    record = deps["ctx"].registry.register(
        manifest_for(FAKE_ONNX),
        training_job="job-2",
        artifact_uri="s3://edgeloop-artifacts/models/digits/b/model.onnx",
        manifest_uri="s3://edgeloop-artifacts/models/digits/b/manifest.json",
        approval=ApprovalStatus.APPROVED,
        evidence=evidence,
    )
    manifest = manifest_for(FAKE_ONNX)
    recipe = model_recipe(record, manifest, manifest_bytes=manifest.to_json().encode())
    deps["ctx"].fleet.create_component_version(recipe)
    approved = event("model_package_approved")
    approved["detail"]["ModelPackageVersion"] = 2
    assert model_approved.handle(approved, deps)["status"] == "rolling-out"
    rollout, _ = deps["ctx"].rollouts.get("digits", 2)
    assert (rollout.evidence, rollout.last_known_good) == (evidence, 1)


def test_a_version_without_evidence_opens_a_rollout_without_it(deps: dict[str, Any], event: Any) -> None:
    model_approved.handle(event("model_package_approved"), deps)
    assert deps["ctx"].rollouts.get("digits", 1)[0].evidence is None
