"""The registry record: it must survive SageMaker's string-only metadata and refuse foreign packages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgeloop.core import names
from edgeloop.core.errors import ValidationError
from edgeloop.core.registry import ApprovalStatus, RegistryRecord, initial_approval, package_metadata

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
    assert sorted(metadata) == sorted(f"edgeloop:{k}" for k in META_KEYS)
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


@pytest.mark.parametrize(
    ("accuracy", "threshold", "expected"),
    [
        (0.95, None, ApprovalStatus.PENDING),
        (1.0, None, ApprovalStatus.PENDING),
        (0.95, 0.9, ApprovalStatus.APPROVED),
        (0.9, 0.9, ApprovalStatus.APPROVED),
        (0.8999, 0.9, ApprovalStatus.PENDING),
        (0.0, 0.0, ApprovalStatus.APPROVED),
    ],
    ids=["no-policy", "no-policy-perfect", "above", "equal", "below", "zero-threshold"],
)
def test_initial_approval(accuracy: float, threshold: float | None, expected: ApprovalStatus) -> None:
    assert initial_approval(accuracy, threshold) is expected


@pytest.mark.parametrize(
    ("accuracy", "threshold", "expected"),
    [
        (0.97, None, ApprovalStatus.PENDING),
        (0.97, 0.95, ApprovalStatus.APPROVED),
        (0.95, 0.95, ApprovalStatus.APPROVED),
        (0.94, 0.95, ApprovalStatus.PENDING),
    ],
)
def test_initial_approval_policy(accuracy: float, threshold: float | None, expected: ApprovalStatus) -> None:
    assert initial_approval(accuracy, threshold) is expected
