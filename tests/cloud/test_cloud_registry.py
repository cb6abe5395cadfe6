"""One contract for every ModelRegistry: SageMaker under moto and the in-memory fake."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support import FAKE_ONNX, manifest_for

from edgeloop.cloud.registry import MemoryRegistry, SageMakerRegistry, latest_approved
from edgeloop.core.errors import NotFoundError, RegistryError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.registry import ApprovalStatus


@pytest.fixture(params=["memory", "sagemaker"])
def registry(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryRegistry()
    return SageMakerRegistry(request.getfixturevalue("sagemaker"))


def _register(
    registry: Any, job: str, approval: ApprovalStatus = ApprovalStatus.PENDING, accuracy: float = 0.97
) -> Any:
    manifest = manifest_for(FAKE_ONNX, accuracy=accuracy)
    return registry.register(
        manifest,
        training_job=job,
        artifact_uri=f"s3://edgeloop-artifacts/models/digits/{job}/model.onnx",
        manifest_uri=f"s3://edgeloop-artifacts/models/digits/{job}/manifest.json",
        approval=approval,
    )


def test_register_assigns_increasing_versions_and_keeps_every_field(registry: Any) -> None:
    registry.ensure_group("digits")
    first = _register(registry, "job-1", accuracy=0.91)
    second = _register(registry, "job-2")
    assert (first.version, second.version) == (1, 2)
    assert registry.get("digits", 1) == first
    assert first.holdout_accuracy == pytest.approx(0.91)
    assert first.training_job == "job-1"
    assert first.sha256 == manifest_for(FAKE_ONNX).selected_artifact.sha256
    assert first.package_arn.endswith("edgeloop-digits/1")


def test_registering_the_same_training_job_twice_returns_the_same_version(registry: Any) -> None:
    registry.ensure_group("digits")
    first = _register(registry, "job-1")
    again = _register(registry, "job-1")
    assert again == first
    assert [r.version for r in registry.versions("digits")] == [1]


def test_set_approval_keeps_the_metadata(registry: Any) -> None:
    registry.ensure_group("digits")
    record = _register(registry, "job-1")
    approved = registry.set_approval("digits", 1, ApprovalStatus.APPROVED)
    assert approved.approval is ApprovalStatus.APPROVED
    assert registry.get("digits", 1) == approved
    assert approved.artifact_uri == record.artifact_uri


def test_latest_approved_picks_the_newest_approved_version(registry: Any) -> None:
    registry.ensure_group("digits")
    assert latest_approved(registry, "digits") is None
    _register(registry, "job-1", ApprovalStatus.APPROVED)
    _register(registry, "job-2", ApprovalStatus.APPROVED)
    _register(registry, "job-3", ApprovalStatus.PENDING)
    latest = latest_approved(registry, "digits")
    assert latest is not None
    assert latest.version == 2


def test_unknown_version_is_not_found(registry: Any) -> None:
    registry.ensure_group("digits")
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.get("digits", 7)


def test_register_without_a_group_is_a_registry_error(registry: Any) -> None:
    with pytest.raises(RegistryError, match="edgeloop-digits"):
        _register(registry, "job-1")


def test_ensure_group_is_idempotent(registry: Any) -> None:
    registry.ensure_group("digits")
    registry.ensure_group("digits")
    assert registry.versions("digits") == []


def test_register_records_gate_lineage_signature_and_decision(registry: Any) -> None:
    registry.ensure_group("digits")
    manifest = manifest_for(FAKE_ONNX)
    child = replace(manifest, lineage=replace(manifest.lineage, parent_version=4))
    record = registry.register(
        child,
        training_job="job-9",
        artifact_uri="s3://edgeloop-artifacts/models/digits/x/model.onnx",
        manifest_uri="s3://edgeloop-artifacts/models/digits/x/manifest.json",
        approval=ApprovalStatus.PENDING,
        signed=True,
        decision="awaiting manual approval",
    )
    assert (record.parent_version, record.signed, record.deployable) == (4, True, True)
    assert record.gate.startswith("passed: fp32 accuracy drop 0.0000")
    assert record.decision == "awaiting manual approval"
    assert registry.get("digits", 1) == record


def test_set_approval_records_the_reason_clipped_to_sagemakers_limit(registry: Any) -> None:
    registry.ensure_group("digits")
    _register(registry, "job-1")
    updated = registry.set_approval("digits", 1, ApprovalStatus.REJECTED, "x" * 300)
    assert len(updated.approval_description) == 256
    assert registry.get("digits", 1) == updated


def test_register_records_the_new_world_gate_evidence_and_approval_keeps_it(registry: Any) -> None:
    registry.ensure_group("digits")
    evidence = GateEvidence(124, 87, 1, candidate_accuracy=0.75, deployed_accuracy=0.556, candidate_confidence=0.672,
                            deployed_confidence=0.903)  # fmt: skip
    record = registry.register(
        manifest_for(FAKE_ONNX),
        training_job="job-3",
        artifact_uri="s3://edgeloop-artifacts/models/digits/y/model.onnx",
        manifest_uri="s3://edgeloop-artifacts/models/digits/y/manifest.json",
        approval=ApprovalStatus.PENDING,
        evidence=evidence,
    )
    assert record.evidence == evidence
    approved = registry.set_approval("digits", record.version, ApprovalStatus.APPROVED, "ok")
    assert approved.evidence == registry.get("digits", record.version).evidence == evidence
    assert _register(registry, "job-4").evidence is None
