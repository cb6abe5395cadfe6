"""The registry record: it must survive SageMaker's string-only metadata and refuse foreign packages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgeloop.core import names
from edgeloop.core.errors import ValidationError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.registry import ApprovalStatus, RegistryRecord, package_metadata

MakeRecord = Callable[..., RegistryRecord]
META_KEYS = ["modelName", "trainingJob", "artifactUri", "manifestUri", "sha256", "holdoutAccuracy"]


def _rebuild(record: RegistryRecord, metadata: dict[str, str], approval: str | None = None) -> RegistryRecord:
    return RegistryRecord.from_package(
        version=record.version,
        package_arn=record.package_arn,
        approval=record.approval.value if approval is None else approval,
        metadata=metadata,
    )


@pytest.mark.parametrize("approval", list(ApprovalStatus), ids=lambda s: s.value)
def test_metadata_round_trip(make_registry_record: MakeRecord, approval: ApprovalStatus) -> None:
    record = make_registry_record(approval=approval)
    assert _rebuild(record, record.to_metadata()) == record


def test_metadata_is_prefixed_strings(make_registry_record: MakeRecord) -> None:
    metadata = make_registry_record().to_metadata()
    assert sorted(metadata) == sorted(f"edgeloop:{k}" for k in [*META_KEYS, "deployable", "signed"])
    assert all(isinstance(v, str) for v in metadata.values())
    assert metadata["edgeloop:holdoutAccuracy"] == "0.937500"


def test_foreign_metadata_is_ignored(make_registry_record: MakeRecord) -> None:
    record = make_registry_record()
    metadata = {**record.to_metadata(), "team": "vision", "sha256": "not ours"}
    assert _rebuild(record, metadata) == record


def test_component_names_come_from_names(make_registry_record: MakeRecord) -> None:
    record = make_registry_record(version=7)
    assert record.component_name == names.model_component_name(record.model_name)
    assert record.component_version == names.component_version(7)


@pytest.mark.parametrize("approval", ["Maybe", "approved", "", "PendingApproval"])
def test_unknown_approval_status(make_registry_record: MakeRecord, approval: str) -> None:
    record = make_registry_record()
    with pytest.raises(ValidationError) as info:
        _rebuild(record, record.to_metadata(), approval=approval)
    assert info.value.field == "approval"


@pytest.mark.parametrize("key", META_KEYS)
def test_missing_metadata_key_names_the_key(make_registry_record: MakeRecord, key: str) -> None:
    record = make_registry_record()
    metadata = record.to_metadata()
    del metadata[f"edgeloop:{key}"]
    with pytest.raises(ValidationError) as info:
        _rebuild(record, metadata)
    assert info.value.field.endswith(f".{key}")
    assert record.package_arn in info.value.field


def test_accuracy_must_be_a_number(make_registry_record: MakeRecord) -> None:
    record = make_registry_record()
    metadata = {**record.to_metadata(), "edgeloop:holdoutAccuracy": "high"}
    with pytest.raises(ValidationError) as info:
        _rebuild(record, metadata)
    assert info.value.field.endswith(".holdoutAccuracy")


@pytest.mark.parametrize("field", ["artifact_uri", "manifest_uri"])
@pytest.mark.parametrize(
    "uri",
    ["https://bucket.s3.amazonaws.com/model.onnx", "/tmp/model.onnx", "S3://bucket/model.onnx", "s3:/bucket/x", ""],
    ids=["https", "path", "upper-scheme", "one-slash", "empty"],
)
def test_non_s3_uris_are_refused(make_registry_record: MakeRecord, field: str, uri: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_registry_record(**{field: uri})
    assert info.value.field == field


@pytest.mark.parametrize("key", ["artifactUri", "manifestUri"])
def test_non_s3_uri_in_metadata_is_refused(make_registry_record: MakeRecord, key: str) -> None:
    record = make_registry_record()
    metadata = {**record.to_metadata(), f"edgeloop:{key}": "file:///tmp/x"}
    with pytest.raises(ValidationError, match="is not an s3:// URI"):
        _rebuild(record, metadata)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"version": 0}, "version"), ({"version": -3}, "version"), ({"model_name": "Iris"}, "model_name")],
    ids=["version-0", "version-negative", "model-name"],
)
def test_record_validation(make_registry_record: MakeRecord, overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_registry_record(**overrides)
    assert info.value.field == field


def test_package_metadata_is_what_the_record_writes(make_registry_record: MakeRecord) -> None:
    record = make_registry_record()
    metadata = package_metadata(
        model_name=record.model_name,
        training_job=record.training_job,
        artifact_uri=record.artifact_uri,
        manifest_uri=record.manifest_uri,
        sha256=record.sha256,
        holdout_accuracy=record.holdout_accuracy,
    )
    assert metadata == record.to_metadata()
    assert _rebuild(record, metadata) == record


def test_new_fields_round_trip_and_default_for_versions_registered_before_them(
    make_registry_record: MakeRecord,
) -> None:
    record = make_registry_record(deployable=False, parent_version=2, signed=True, gate="FAILED: x", decision="why")
    assert _rebuild(record, record.to_metadata()) == record
    old = {k: v for k, v in record.to_metadata().items() if k.removeprefix("edgeloop:") in META_KEYS}
    rebuilt = _rebuild(record, old)
    assert (rebuilt.deployable, rebuilt.parent_version, rebuilt.signed, rebuilt.gate) == (True, None, False, "")


def test_signature_sits_beside_the_manifest_only_when_signed(make_registry_record: MakeRecord) -> None:
    assert make_registry_record().signature_uri is None
    signed = make_registry_record(signed=True)
    assert signed.signature_uri == signed.manifest_uri.removesuffix("manifest.json") + "manifest.json.sig"


@pytest.mark.parametrize(("key", "value"), [("deployable", "yes"), ("signed", "1"), ("parentVersion", "zero")])
def test_bad_optional_metadata_names_the_key(make_registry_record: MakeRecord, key: str, value: str) -> None:
    record = make_registry_record()
    with pytest.raises(ValidationError) as info:
        _rebuild(record, {**record.to_metadata(), f"edgeloop:{key}": value})
    assert info.value.field.endswith(f".{key}")


def test_long_metadata_text_is_clipped_to_sagemakers_limit(make_registry_record: MakeRecord) -> None:
    metadata = make_registry_record(decision="x" * 1000).to_metadata()
    assert len(metadata["edgeloop:decision"]) == 256


EVIDENCE = GateEvidence(
    samples=124,
    confidence_samples=87,
    deployed_version=1,
    candidate_accuracy=0.75,
    deployed_accuracy=0.556,
    candidate_confidence=0.672,
    deployed_confidence=0.903,
)


def test_the_new_world_gate_evidence_round_trips_through_the_metadata(make_registry_record: MakeRecord) -> None:
    record = make_registry_record(evidence=EVIDENCE)
    metadata = record.to_metadata()
    assert metadata["edgeloop:evidence"] == EVIDENCE.to_text()
    assert _rebuild(record, metadata) == record
    assert _rebuild(record, metadata).evidence == EVIDENCE
    assert "edgeloop:evidence" not in make_registry_record().to_metadata()  # a version without it writes nothing
    assert _rebuild(record, {k: v for k, v in metadata.items() if k != "edgeloop:evidence"}).evidence is None


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("not json", "evidence"),
        ('{"samples": 3}', "evidence.confidenceSamples"),
        (EVIDENCE.to_text().replace("0.903", "1.903"), "evidence.deployedConfidence"),
        (EVIDENCE.to_text().replace('"samples":124', '"samples":-1'), "evidence.samples"),
    ],
)
def test_bad_evidence_metadata_is_refused_naming_the_key(
    make_registry_record: MakeRecord, value: str, field: str
) -> None:
    record = make_registry_record()
    with pytest.raises(ValidationError) as info:
        _rebuild(record, {**record.to_metadata(), "edgeloop:evidence": value})
    assert info.value.field.endswith(f"metadata.{field}")
