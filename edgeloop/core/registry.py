"""The registry record: what the cloud knows about one registered model version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.names import component_version, model_component_name, validate_model_name
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE


class ApprovalStatus(StrEnum):
    """SageMaker Model Registry approval states, spelled as the service spells them."""

    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


_META_PREFIX = "edgeloop:"
_META_KEYS = ("modelName", "trainingJob", "artifactUri", "manifestUri", "sha256", "holdoutAccuracy")
_OPTIONAL_KEYS = ("deployable", "parentVersion", "signed", "gate", "decision", "evidence")
"""Written by this edgeloop, absent from versions registered before it: read with the defaults below."""
_TEXT_LIMIT = 256
"""SageMaker's limit on each CustomerMetadataProperties value."""


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
    deployable: bool = True
    """Whether the manifest's accuracy gate passed; a version that is not may never be approved."""
    parent_version: int | None = None
    """The registry version this model was retrained from (the manifest's lineage)."""
    signed: bool = False
    """Whether manifest.json.sig (KMS ECDSA P-256) sits next to the manifest and ships in the component."""
    gate: str = ""
    """The accuracy gate's outcome in one line, as `edgeloop models list` shows it."""
    decision: str = ""
    """Why the version got its first approval status (policy reasons, breaking schema changes)."""
    approval_description: str = ""
    """The latest ApprovalDescription (who approved or rejected, and why); not part of the metadata."""
    evidence: GateEvidence | None = None
    """The new-world gate's figures for a retrained candidate (edgeloop.core.evidence); None for any other."""

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if self.version < 1:
            raise ValidationError("version", f"must be >= 1, got {self.version}")
        if self.parent_version is not None and self.parent_version < 1:
            raise ValidationError("parent_version", f"must be >= 1, got {self.parent_version}")
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

    @property
    def signature_uri(self) -> str | None:
        """Where manifest.json.sig lives (beside the manifest), or None for an unsigned version."""
        if not self.signed:
            return None
        return self.manifest_uri.rsplit("/", 1)[0] + "/" + MANIFEST_SIGNATURE_FILE

    def to_metadata(self) -> dict[str, str]:
        """CustomerMetadataProperties for the model package (strings only, as SageMaker requires)."""
        return package_metadata(
            model_name=self.model_name,
            training_job=self.training_job,
            artifact_uri=self.artifact_uri,
            manifest_uri=self.manifest_uri,
            sha256=self.sha256,
            holdout_accuracy=self.holdout_accuracy,
            deployable=self.deployable,
            parent_version=self.parent_version,
            signed=self.signed,
            gate=self.gate,
            decision=self.decision,
            evidence=self.evidence,
        )

    @classmethod
    def from_package(
        cls,
        *,
        version: int,
        package_arn: str,
        approval: str,
        metadata: Mapping[str, str],
        approval_description: str = "",
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
            deployable=_flag(meta, "deployable", where, default=True),
            parent_version=_parent(meta, where),
            signed=_flag(meta, "signed", where, default=False),
            gate=meta.get("gate", ""),
            decision=meta.get("decision", ""),
            approval_description=approval_description,
            evidence=None if "evidence" not in meta else GateEvidence.from_text(meta["evidence"], f"{where}.evidence"),
        )


def _flag(meta: Mapping[str, str], key: str, where: str, *, default: bool) -> bool:
    value = meta.get(key)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise ValidationError(f"{where}.{key}", f"expected 'true' or 'false', got {value!r}")
    return value == "true"


def _parent(meta: Mapping[str, str], where: str) -> int | None:
    value = meta.get("parentVersion", "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValidationError(f"{where}.parentVersion", f"{value!r} is not a version number")
    return int(value)


def package_metadata(
    *,
    model_name: str,
    training_job: str,
    artifact_uri: str,
    manifest_uri: str,
    sha256: str,
    holdout_accuracy: float,
    deployable: bool = True,
    parent_version: int | None = None,
    signed: bool = False,
    gate: str = "",
    decision: str = "",
    evidence: GateEvidence | None = None,
) -> dict[str, str]:
    """The metadata written with a new model package, before the registry has assigned its version."""
    values = (model_name, training_job, artifact_uri, manifest_uri, sha256, f"{holdout_accuracy:.6f}")
    metadata = {_META_PREFIX + k: v for k, v in zip(_META_KEYS, values, strict=True)}
    optional = (
        "true" if deployable else "false",
        "" if parent_version is None else str(parent_version),
        "true" if signed else "false",
        gate,
        decision,
        "" if evidence is None else evidence.to_text(),
    )
    for key, value in zip(_OPTIONAL_KEYS, optional, strict=True):
        if value:
            metadata[_META_PREFIX + key] = value[:_TEXT_LIMIT]
    return metadata


def gate_summary(manifest: ModelManifest) -> str:
    """The gate's outcome in one line: passed or failed, the metric, the drop against the bound."""
    gate = manifest.gate
    verdict = "passed" if gate.passed else "FAILED"
    selected = manifest.selected_artifact.precision
    return f"{verdict}: {selected} {gate.metric} drop {gate.drop:.4f} vs {gate.reference} (bound {gate.bound:.4f})"
