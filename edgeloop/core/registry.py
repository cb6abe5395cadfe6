"""The registry record: what the cloud knows about one registered model version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import component_version, model_component_name, validate_model_name


class ApprovalStatus(StrEnum):
    """SageMaker Model Registry approval states, spelled as the service spells them."""

    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


_META_PREFIX = "edgeloop:"
_META_KEYS = ("modelName", "trainingJob", "artifactUri", "manifestUri", "sha256", "holdoutAccuracy")


@dataclass(frozen=True)
class RegistryRecord:
    """One registered model version with the pointers a deployment needs."""

    model_name: str
    version: int
    package_arn: str
    approval: ApprovalStatus
    training_job: str
    artifact_uri: str
    manifest_uri: str
    sha256: str
    holdout_accuracy: float

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if self.version < 1:
            raise ValidationError("version", f"must be >= 1, got {self.version}")
        for name in ("artifact_uri", "manifest_uri"):
            if not getattr(self, name).startswith("s3://"):
                raise ValidationError(name, f"{getattr(self, name)!r} is not an s3:// URI")

    @property
    def component_name(self) -> str:
        """The Greengrass component that carries this model."""
        return model_component_name(self.model_name)

    @property
    def component_version(self) -> str:
        """The Greengrass component version for this registry version."""
        return component_version(self.version)

    def to_metadata(self) -> dict[str, str]:
        """CustomerMetadataProperties for the model package (strings only, as SageMaker requires)."""
        return package_metadata(
            model_name=self.model_name,
            training_job=self.training_job,
            artifact_uri=self.artifact_uri,
            manifest_uri=self.manifest_uri,
            sha256=self.sha256,
            holdout_accuracy=self.holdout_accuracy,
        )

    @classmethod
    def from_package(
        cls, *, version: int, package_arn: str, approval: str, metadata: Mapping[str, str]
    ) -> RegistryRecord:
        """Rebuild a record from a described model package; refuses packages edgeloop did not write."""
        meta = {k.removeprefix(_META_PREFIX): v for k, v in metadata.items() if k.startswith(_META_PREFIX)}
        where = f"model package {package_arn} metadata"
        try:
            status = ApprovalStatus(approval)
        except ValueError as exc:
            raise ValidationError("approval", f"{approval!r} is not a SageMaker approval status") from exc
        try:
            accuracy = float(wire.text(meta, "holdoutAccuracy", where))
        except ValueError as exc:
            raise ValidationError(f"{where}.holdoutAccuracy", "is not a number") from exc
        return cls(
            model_name=wire.text(meta, "modelName", where),
            version=version,
            package_arn=package_arn,
            approval=status,
            training_job=wire.text(meta, "trainingJob", where),
            artifact_uri=wire.text(meta, "artifactUri", where),
            manifest_uri=wire.text(meta, "manifestUri", where),
            sha256=wire.text(meta, "sha256", where),
            holdout_accuracy=accuracy,
        )


def package_metadata(
    *,
    model_name: str,
    training_job: str,
    artifact_uri: str,
    manifest_uri: str,
    sha256: str,
    holdout_accuracy: float,
) -> dict[str, str]:
    """The metadata written with a new model package, before the registry has assigned its version."""
    values = (model_name, training_job, artifact_uri, manifest_uri, sha256, f"{holdout_accuracy:.6f}")
    return {_META_PREFIX + k: v for k, v in zip(_META_KEYS, values, strict=True)}


def initial_approval(holdout_accuracy: float, auto_approve_min_accuracy: float | None) -> ApprovalStatus:
    """New versions wait for a human unless a policy threshold is set and met."""
    if auto_approve_min_accuracy is not None and holdout_accuracy >= auto_approve_min_accuracy:
        return ApprovalStatus.APPROVED
    return ApprovalStatus.PENDING
