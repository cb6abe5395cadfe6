"""Publishing a trained model and starting an approved one's rollout, with S3 and SageMaker on moto."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from support import FAKE_ONNX, load_event, manifest_for, model_tarball

from edgeloop.cloud.approvals import ApprovalOutcome, handle_approval_change
from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.publish import publish_trained_model, read_model_archive
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.rollout_control import RolloutContext
from edgeloop.cloud.rollout_stores import MemoryFleetHealthStore, MemoryRolloutStore
from edgeloop.core.errors import FleetControlError, IntegrityError, ManifestError, ModelFormatError, NotFoundError
from edgeloop.core.events import ModelPackageStateChange, TrainingJobStateChange
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.recipes import artifact_digest
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.rollout import RolloutState
from edgeloop.core.settings import CloudSettings
from edgeloop.packaging import inference_recipe

NOT_ONNX = b"\x08\x07 this is not onnx"
"""Starts like a ModelProto (ir_version) but is no model: a first-byte sniff would let it through."""
GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
TRAINING_OUTPUT = "s3://edgeloop-data/training-output/"
CANARY_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet-canary"
ARCHIVE_URI = "s3://edgeloop-data/training-output/edgeloop-digits-20261124-120000/output/model.tar.gz"


def _settings(min_accuracy: float | None = None) -> CloudSettings:
    return CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", min_accuracy, TRAINING_OUTPUT)


def _good_archive() -> bytes:
    return model_tarball({"manifest.json": manifest_for(FAKE_ONNX).to_json().encode(), "model.onnx": FAKE_ONNX})


@pytest.fixture
def deps(s3: Any, sagemaker: Any) -> dict[str, Any]:
    registry = SageMakerRegistry(sagemaker)
    registry.ensure_group("digits")
    fleet = MemoryFleetControl()
    fleet.create_component_version(inference_recipe("0.1.0", "s3://edgeloop-artifacts/components/inference.zip"))
    return {"store": S3ArtifactStore(s3), "registry": registry, "fleet": fleet, "settings": _settings()}


def _completed() -> TrainingJobStateChange:
    return TrainingJobStateChange.from_event(load_event("training_job_completed"))


def test_publish_copies_artifacts_registers_and_creates_the_component(deps: dict[str, Any], s3: Any) -> None:
    deps["store"].put(ARCHIVE_URI, _good_archive())
    published = publish_trained_model(_completed(), **deps)
    record = published.record
    assert (record.model_name, record.version, record.approval) == ("digits", 1, ApprovalStatus.PENDING)
    assert deps["store"].get(record.artifact_uri) == FAKE_ONNX
    manifest_bytes = manifest_for(FAKE_ONNX).to_json().encode()
    assert hashlib.sha256(manifest_bytes).hexdigest() in record.artifact_uri, "keyed by the manifest's digest"
    assert deps["store"].get(record.manifest_uri) == manifest_bytes
    recipe = deps["fleet"].get_component_recipe("com.edgeloop.model.digits", "1.0.0")
    artifacts = recipe["Manifests"][0]["Artifacts"]
    assert [a["Uri"] for a in artifacts] == [record.artifact_uri, record.manifest_uri]
    assert [a["Digest"] for a in artifacts] == [artifact_digest(FAKE_ONNX), artifact_digest(manifest_bytes)]
    assert (record.signed, record.deployable, record.gate.startswith("passed")) == (False, True, True)


def test_publishing_the_same_event_twice_converges_on_one_version(deps: dict[str, Any]) -> None:
    deps["store"].put(ARCHIVE_URI, _good_archive())
    first = publish_trained_model(_completed(), **deps)
    second = publish_trained_model(_completed(), **deps)
    assert first == second
    assert len(deps["registry"].versions("digits")) == 1


def test_auto_approval_policy_approves_accurate_models_after_their_component_exists(deps: dict[str, Any]) -> None:
    deps["store"].put(ARCHIVE_URI, _good_archive())
    deps["settings"] = _settings(min_accuracy=0.95)
    record = publish_trained_model(_completed(), **deps).record
    assert record.approval is ApprovalStatus.APPROVED
    assert deps["registry"].get("digits", 1).approval is ApprovalStatus.APPROVED
    assert deps["fleet"].get_component_recipe(record.component_name, record.component_version)


def test_models_below_the_policy_threshold_wait_for_a_human(deps: dict[str, Any]) -> None:
    deps["store"].put(ARCHIVE_URI, _good_archive())
    deps["settings"] = _settings(min_accuracy=0.99)
    assert publish_trained_model(_completed(), **deps).record.approval is ApprovalStatus.PENDING


def test_a_job_outside_the_training_output_prefix_is_not_published(deps: dict[str, Any]) -> None:
    event = load_event("training_job_completed")
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://someone-else/output/model.tar.gz"
    with pytest.raises(NotFoundError, match="no model to publish"):
        publish_trained_model(TrainingJobStateChange.from_event(event), **deps)
    assert deps["registry"].versions("digits") == []


@pytest.mark.parametrize(
    ("files", "error", "match"),
    [
        ({"model.onnx": FAKE_ONNX}, ModelFormatError, "no manifest.json"),
        ({"manifest.json": manifest_for(FAKE_ONNX).to_json().encode()}, ModelFormatError, "no model.onnx"),
        (
            {"manifest.json": manifest_for(FAKE_ONNX).to_json().encode(), "model.onnx": FAKE_ONNX + b"x"},
            IntegrityError,
            "manifest says sha256",
        ),
        ({"manifest.json": b"{not json", "model.onnx": FAKE_ONNX}, ManifestError, "not valid JSON"),
        (
            {"manifest.json": manifest_for(b"PK-zip").to_json().encode(), "model.onnx": b"PK-zip"},
            ModelFormatError,
            "not an ONNX model",
        ),
        (
            {"manifest.json": manifest_for(NOT_ONNX).to_json().encode(), "model.onnx": NOT_ONNX},
            ModelFormatError,
            "not an ONNX model",
        ),
    ],
    ids=["no-manifest", "no-artifact", "sha-mismatch", "manifest-not-json", "zip-not-onnx", "onnx-lookalike"],
)
def test_bad_archives_are_refused_and_nothing_is_registered(
    deps: dict[str, Any], files: dict[str, bytes], error: type[Exception], match: str
) -> None:
    deps["store"].put(ARCHIVE_URI, model_tarball(files))
    with pytest.raises(error, match=match):
        publish_trained_model(_completed(), **deps)
    assert deps["registry"].versions("digits") == []


def test_an_archive_that_is_not_tar_is_a_model_format_error() -> None:
    with pytest.raises(ModelFormatError, match=r"not a readable tar\.gz"):
        read_model_archive(b"definitely not a tarball")


def test_missing_archive_is_not_found(deps: dict[str, Any]) -> None:
    with pytest.raises(NotFoundError, match=r"model\.tar\.gz does not exist"):
        publish_trained_model(_completed(), **deps)


def _approval_change(status: str = "Approved") -> ModelPackageStateChange:
    event = load_event("model_package_approved")
    event["detail"]["ModelApprovalStatus"] = status
    return ModelPackageStateChange.from_event(event)


def _ctx(deps: dict[str, Any], rollouts: MemoryRolloutStore | None = None) -> RolloutContext:
    return RolloutContext(
        rollouts=rollouts or deps.setdefault("rollouts", MemoryRolloutStore()),
        health=MemoryFleetHealthStore(),
        registry=deps["registry"],
        fleet=deps["fleet"],
        settings=deps["settings"],
        clock=lambda: 1_000.0,
    )


def _on_approval(deps: dict[str, Any], status: str = "Approved", version: int = 1) -> ApprovalOutcome:
    change = replace(_approval_change(status), version=version)
    return handle_approval_change(change, ctx=_ctx(deps))


def _approved_v1(deps: dict[str, Any]) -> None:
    deps["store"].put(ARCHIVE_URI, _good_archive())
    publish_trained_model(_completed(), **deps)
    deps["registry"].set_approval("digits", 1, ApprovalStatus.APPROVED)


def test_an_approval_starts_a_rollout_in_the_first_ring_not_the_whole_fleet(deps: dict[str, Any]) -> None:
    _approved_v1(deps)
    fleet = deps["fleet"]
    outcome = _on_approval(deps)
    assert (outcome.status, outcome.deployment_id is not None) == ("rolling-out", True)
    info = fleet.get_deployment(outcome.deployment_id)
    assert info.target_arn == CANARY_ARN
    assert info.components["com.edgeloop.model.digits"].version == "1.0.0"
    assert info.components[INFERENCE_COMPONENT].merge == {
        "modelComponent": "com.edgeloop.model.digits",
        "modelComponentVersion": "1.0.0",
    }
    assert fleet.latest_deployment(GROUP_ARN) is None, "the fleet-wide deployment path is gone"
    rollout, _ = deps["rollouts"].get("digits", 1)
    assert (rollout.state, rollout.ring) == (RolloutState.IN_RING, 0)


def test_a_redelivered_approval_does_not_start_or_deploy_twice(deps: dict[str, Any]) -> None:
    _approved_v1(deps)
    first = _on_approval(deps).deployment_id
    again = _on_approval(deps)
    assert (again.status, again.deployment_id) == ("rolling-out", None)
    assert "already has a rollout (in_ring, ring 0)" in again.reason
    assert deps["fleet"].latest_deployment(CANARY_ARN).deployment_id == first
    assert [d.decision for d in deps["rollouts"].decisions("digits", 1)] == ["start", "promote"]


def test_an_approval_during_another_rollout_starts_nothing_and_says_how_to_start_it(deps: dict[str, Any]) -> None:
    _approved_v1(deps)
    _on_approval(deps)
    deps["registry"].register(
        manifest_for(FAKE_ONNX),
        training_job="job-2",
        artifact_uri="s3://edgeloop-artifacts/models/digits/b/model.onnx",
        manifest_uri="s3://edgeloop-artifacts/models/digits/b/manifest.json",
        approval=ApprovalStatus.APPROVED,
    )
    outcome = _on_approval(deps, version=2)
    assert outcome.status == "not-started"
    assert "v1 is still rolling out" in outcome.reason
    assert "edgeloop rollout start 2" in outcome.reason
    with pytest.raises(NotFoundError):
        deps["rollouts"].get("digits", 2)


def test_a_rollout_waits_for_a_missing_component_instead_of_deploying_a_broken_set(
    deps: dict[str, Any], sagemaker: Any
) -> None:
    deps["registry"].register(
        manifest_for(FAKE_ONNX),
        training_job="job-without-component",
        artifact_uri="s3://edgeloop-artifacts/models/digits/a/model.onnx",
        manifest_uri="s3://edgeloop-artifacts/models/digits/a/manifest.json",
        approval=ApprovalStatus.APPROVED,
    )
    with pytest.raises(NotFoundError, match=r"com\.edgeloop\.model\.digits 1\.0\.0 does not exist"):
        _on_approval(deps)
    assert deps["fleet"].latest_deployment(CANARY_ARN) is None


def test_a_throttled_first_deployment_leaves_the_rollout_pending_and_the_retry_deploys(
    deps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _approved_v1(deps)
    fleet = deps["fleet"]
    create = fleet.create_deployment

    def throttled(spec: Any) -> str:
        raise FleetControlError("could not deploy: ThrottlingException")

    monkeypatch.setattr(fleet, "create_deployment", throttled)
    with pytest.raises(FleetControlError, match="Throttling"):
        _on_approval(deps)
    rollout, _ = deps["rollouts"].get("digits", 1)
    assert rollout.state is RolloutState.PENDING
    assert fleet.latest_deployment(CANARY_ARN) is None
    monkeypatch.setattr(fleet, "create_deployment", create)
    retried = _on_approval(deps)
    assert (retried.status, retried.deployment_id is not None) == ("rolling-out", True)
    assert deps["rollouts"].get("digits", 1)[0].state is RolloutState.IN_RING


def test_an_approval_the_registry_no_longer_holds_starts_nothing(deps: dict[str, Any]) -> None:
    deps["store"].put(ARCHIVE_URI, _good_archive())
    publish_trained_model(_completed(), **deps)
    with pytest.raises(NotFoundError, match="PendingManualApproval in the registry"):
        _on_approval(deps)
    assert deps.get("rollouts") is None or deps["rollouts"].active("digits") is None


def _publish_job(deps: dict[str, Any], job: str, manifest: Any) -> Any:
    """Publish `manifest` as training job `job` (its own archive under training-output/)."""
    uri = f"s3://edgeloop-data/training-output/{job}/output/model.tar.gz"
    deps["store"].put(uri, model_tarball({"manifest.json": manifest.to_json().encode(), "model.onnx": FAKE_ONNX}))
    event = load_event("training_job_completed")
    event["detail"]["TrainingJobName"] = job
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = uri
    return publish_trained_model(TrainingJobStateChange.from_event(event), **deps)


def test_a_breaking_input_change_versus_the_approved_version_blocks_auto_approval(deps: dict[str, Any]) -> None:
    deps["settings"] = _settings(min_accuracy=0.9)
    first = _publish_job(deps, "job-1", manifest_for(FAKE_ONNX, accuracy=0.97))
    assert first.record.approval is ApprovalStatus.APPROVED
    renamed = replace(manifest_for(FAKE_ONNX, accuracy=0.98), labels=("zero", "one", "two"))
    second = _publish_job(deps, "job-2", renamed)
    assert second.record.approval is ApprovalStatus.PENDING
    assert "breaking change vs v1: labels changed" in deps["registry"].get("digits", 2).decision
    assert second.component is not None, "a breaking version can still be approved by a human"


def test_a_version_worse_than_the_approved_one_by_more_than_the_bound_waits_for_a_human(deps: dict[str, Any]) -> None:
    deps["settings"] = replace(_settings(min_accuracy=0.9), auto_approve_max_drop=0.01)
    _publish_job(deps, "job-1", manifest_for(FAKE_ONNX, accuracy=0.97))
    within = _publish_job(deps, "job-2", manifest_for(FAKE_ONNX, accuracy=0.961))
    worse = _publish_job(deps, "job-3", manifest_for(FAKE_ONNX, accuracy=0.95))
    assert within.record.approval is ApprovalStatus.APPROVED
    assert worse.record.approval is ApprovalStatus.PENDING
    assert "worse than v2's 0.9610" in worse.record.decision


def test_lineage_parent_and_approval_reason_are_recorded(deps: dict[str, Any]) -> None:
    deps["settings"] = _settings(min_accuracy=0.9)
    child = manifest_for(FAKE_ONNX)
    child = replace(child, lineage=replace(child.lineage, parent_version=1))
    record = _publish_job(deps, "job-1", child).record
    stored = deps["registry"].get("digits", 1)
    assert (stored.parent_version, stored.approval) == (1, ApprovalStatus.APPROVED)
    assert stored.approval_description.startswith("auto-approved: gate passed")
    assert record == stored
