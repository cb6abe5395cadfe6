"""The training_completed Lambda handler under moto, driven by real-shaped EventBridge events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from support import FAKE_ONNX, kms_signing_key, manifest_for, model_tarball

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.signing import KmsSigner
from edgeloop.core.errors import ConfigError, IntegrityError, NotFoundError, SigningError, ValidationError
from edgeloop.core.evidence import EVIDENCE_TAG, GateEvidence
from edgeloop.core.manifest import Gate
from edgeloop.core.settings import CloudSettings
from functions import training_completed

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
TRAINING_OUTPUT = "s3://edgeloop-data/training-output/"
ARCHIVE_URI = "s3://edgeloop-data/training-output/edgeloop-digits-20261124-120000/output/model.tar.gz"


@pytest.fixture
def deps(s3: Any, sagemaker: Any, kms: Any) -> dict[str, Any]:
    registry = SageMakerRegistry(sagemaker)
    registry.ensure_group("digits")
    store = S3ArtifactStore(s3)
    store.put(
        ARCHIVE_URI,
        model_tarball({"manifest.json": manifest_for(FAKE_ONNX).to_json().encode(), "model.onnx": FAKE_ONNX}),
    )
    settings = CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", None, TRAINING_OUTPUT)
    signer = KmsSigner(kms, kms_signing_key(kms))
    return {"store": store, "registry": registry, "fleet": MemoryFleetControl(), "settings": settings, "signer": signer}


def test_completed_job_is_published(deps: dict[str, Any], event: Any, sagemaker: Any) -> None:
    result = training_completed.handle(event("training_job_completed"), deps)
    assert result == {
        "status": "published",
        "trainingJob": "edgeloop-digits-20261124-120000",
        "modelName": "digits",
        "modelVersion": 1,
        "approval": "PendingManualApproval",
        "signed": True,
        "reasons": ["awaiting manual approval (auto-approval is off)"],
        "componentName": "com.edgeloop.model.digits",
        "componentVersion": "1.0.0",
    }
    packages = sagemaker.list_model_packages(ModelPackageGroupName="edgeloop-digits")["ModelPackageSummaryList"]
    assert len(packages) == 1
    metadata = sagemaker.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])[
        "CustomerMetadataProperties"
    ]
    assert (metadata["edgeloop:signed"], metadata["edgeloop:deployable"]) == ("true", "true")
    recipe = deps["fleet"].get_component_recipe("com.edgeloop.model.digits", "1.0.0")
    assert [a["Uri"].rsplit("/", 1)[1] for a in recipe["Manifests"][0]["Artifacts"]] == [
        "model.onnx",
        "manifest.json",
        "manifest.json.sig",
    ]


def test_a_redelivered_event_reuses_the_stored_signature_so_the_component_never_collides(
    deps: dict[str, Any], event: Any
) -> None:
    first = training_completed.handle(event("training_job_completed"), deps)
    again = training_completed.handle(event("training_job_completed"), deps)
    assert again == first
    assert len(deps["registry"].versions("digits")) == 1


def test_a_key_that_cannot_sign_registers_nothing(deps: dict[str, Any], event: Any, kms: Any, s3: Any) -> None:
    symmetric = kms_signing_key(kms, key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT")
    deps["signer"] = KmsSigner(kms, symmetric)
    with pytest.raises(SigningError, match=f"KMS key {symmetric} cannot sign"):
        training_completed.handle(event("training_job_completed"), deps)
    assert deps["registry"].versions("digits") == []
    assert s3.list_objects_v2(Bucket="edgeloop-artifacts").get("KeyCount", 0) == 0


def test_a_manifest_that_fails_its_own_sha256_names_the_file_and_registers_nothing(
    deps: dict[str, Any], event: Any
) -> None:
    manifest = manifest_for(FAKE_ONNX).to_json().encode()
    deps["store"].put(ARCHIVE_URI, model_tarball({"manifest.json": manifest, "model.onnx": FAKE_ONNX[:-1] + b"\0"}))
    with pytest.raises(IntegrityError, match=r"model\.onnx: manifest says sha256"):
        training_completed.handle(event("training_job_completed"), deps)
    assert deps["registry"].versions("digits") == []


def test_a_model_whose_gate_failed_is_registered_rejected_unsigned_and_without_a_component(
    deps: dict[str, Any], event: Any
) -> None:
    failed = replace(manifest_for(FAKE_ONNX), gate=Gate("accuracy", 0.01, 0.0, passed=False, minimum=0.99))
    deps["store"].put(ARCHIVE_URI, model_tarball({"manifest.json": failed.to_json().encode(), "model.onnx": FAKE_ONNX}))
    result = training_completed.handle(event("training_job_completed"), deps)
    assert (result["status"], result["approval"], result["signed"]) == ("rejected", "Rejected", False)
    assert "accuracy gate failed" in result["reasons"][0]
    record = deps["registry"].get("digits", 1)
    assert (record.deployable, record.gate.startswith("FAILED")) == (False, True)
    with pytest.raises(NotFoundError):
        deps["fleet"].get_component_recipe("com.edgeloop.model.digits", "1.0.0")


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


def test_a_disabled_key_registers_nothing(deps: dict[str, Any], event: Any, s3: Any) -> None:
    # moto signs with a disabled key, so KMS's answer is stubbed here, as AWS gives it.
    kms = boto3.client("kms", region_name="us-east-1")
    deps["signer"] = KmsSigner(kms, "alias/edgeloop-signing")
    with Stubber(kms) as stub:
        stub.add_client_error("sign", "DisabledException", "arn:aws:kms:us-east-1:123456789012:key/k is disabled.")
        with pytest.raises(SigningError, match="DisabledException"):
            training_completed.handle(event("training_job_completed"), deps)
    assert deps["registry"].versions("digits") == []
    assert s3.list_objects_v2(Bucket="edgeloop-artifacts").get("KeyCount", 0) == 0


def test_the_new_world_gate_evidence_tagged_on_the_job_is_registered_with_the_version(
    deps: dict[str, Any], event: Any, sagemaker: Any
) -> None:
    evidence = GateEvidence(124, 87, 1, candidate_accuracy=0.75, deployed_accuracy=0.556, candidate_confidence=0.672,
                            deployed_confidence=0.903)  # fmt: skip
    tagged = event("training_job_completed")
    tagged["detail"]["Tags"] = {EVIDENCE_TAG: evidence.to_text(), "team": "ml"}
    result = training_completed.handle(tagged, deps)
    assert result["status"] == "published"
    assert deps["registry"].get("digits", 1).evidence == evidence
    package = sagemaker.list_model_packages(ModelPackageGroupName="edgeloop-digits")["ModelPackageSummaryList"][0]
    described = sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    assert described["CustomerMetadataProperties"]["edgeloop:evidence"] == evidence.to_text()


def test_a_job_without_the_tag_registers_a_version_without_evidence(deps: dict[str, Any], event: Any) -> None:
    training_completed.handle(event("training_job_completed"), deps)
    assert deps["registry"].get("digits", 1).evidence is None


def test_a_damaged_evidence_tag_registers_nothing(deps: dict[str, Any], event: Any) -> None:
    tagged = event("training_job_completed")
    tagged["detail"]["Tags"] = {EVIDENCE_TAG: '{"samples": -1}'}
    with pytest.raises(ValidationError, match="edgeloop:evidence"):
        training_completed.handle(tagged, deps)
    assert deps["registry"].versions("digits") == []
