"""Model registry port on the SageMaker Model Registry, with an in-memory fake under one contract."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.approval import clip
from edgeloop.core.errors import NotFoundError, RegistryError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.names import model_package_group
from edgeloop.core.registry import ApprovalStatus, RegistryRecord, gate_summary, package_metadata


class ModelRegistry(Protocol):
    """Versions of each model with approval status and the pointers a deployment needs.

    `register` is idempotent per training job: registering the same job again returns the existing
    version instead of creating a second one (EventBridge delivers at least once). Versions are
    integers from 1, assigned by the registry; the record's gate, lineage parent and signed flag come
    from the manifest and the caller (so does a retrained candidate's new-world gate evidence). `get`
    raises NotFoundError for an unknown version.
    `set_approval` keeps every other field of the record and records `reason` as the approval
    description. `versions` is ordered by version.
    """

    def ensure_group(self, model_name: str) -> None: ...

    def register(
        self,
        manifest: ModelManifest,
        *,
        training_job: str,
        artifact_uri: str,
        manifest_uri: str,
        approval: ApprovalStatus,
        signed: bool = False,
        decision: str = "",
        evidence: GateEvidence | None = None,
    ) -> RegistryRecord: ...

    def get(self, model_name: str, version: int) -> RegistryRecord: ...

    def set_approval(
        self, model_name: str, version: int, approval: ApprovalStatus, reason: str = ""
    ) -> RegistryRecord: ...

    def versions(self, model_name: str) -> list[RegistryRecord]: ...


def latest_approved(registry: ModelRegistry, model_name: str) -> RegistryRecord | None:
    """The newest Approved version, the one a fleet should run when nothing else is said."""
    approved = [r for r in registry.versions(model_name) if r.approval is ApprovalStatus.APPROVED]
    return approved[-1] if approved else None


def _metadata(
    manifest: ModelManifest, training_job: str, artifact_uri: str, manifest_uri: str, signed: bool, decision: str,
    evidence: GateEvidence | None = None,
) -> dict[str, str]:  # fmt: skip
    """The customer metadata of a new version: pointers, accuracy, gate, lineage parent, signature, decision."""
    return package_metadata(
        model_name=manifest.model_name,
        training_job=training_job,
        artifact_uri=artifact_uri,
        manifest_uri=manifest_uri,
        sha256=manifest.selected_artifact.sha256,
        holdout_accuracy=manifest.holdout_accuracy,
        deployable=manifest.deployable,
        parent_version=manifest.lineage.parent_version,
        signed=signed,
        gate=gate_summary(manifest),
        decision=decision,
        evidence=evidence,
    )


def _job_token(training_job: str) -> str:
    return f"training-job={training_job}"


class SageMakerRegistry:
    """ModelRegistry on SageMaker model package groups; edgeloop's fields live in customer metadata."""

    def __init__(self, sagemaker: Any) -> None:
        self._sm = sagemaker

    def ensure_group(self, model_name: str) -> None:
        """Create the model package group if it is missing (the stack normally owns it)."""
        group = model_package_group(model_name)
        try:
            self._sm.describe_model_package_group(ModelPackageGroupName=group)
            return
        except AWS_ERRORS as exc:
            if error_code(exc) not in {"ValidationException", "ResourceNotFound"}:
                raise RegistryError(f"could not read model package group {group}: {exc}") from exc
        try:
            self._sm.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription=f"edgeloop model {model_name}"
            )
        except AWS_ERRORS as exc:
            raise RegistryError(f"could not create model package group {group}: {exc}") from exc

    def register(
        self,
        manifest: ModelManifest,
        *,
        training_job: str,
        artifact_uri: str,
        manifest_uri: str,
        approval: ApprovalStatus,
        signed: bool = False,
        decision: str = "",
        evidence: GateEvidence | None = None,
    ) -> RegistryRecord:
        """Create the next version unless this training job was registered already."""
        existing = self._find_by_job(manifest.model_name, training_job)
        if existing is not None:
            return existing
        metadata = _metadata(manifest, training_job, artifact_uri, manifest_uri, signed, decision, evidence)
        group = model_package_group(manifest.model_name)
        try:
            arn = self._sm.create_model_package(
                ModelPackageGroupName=group,
                ModelPackageDescription=(
                    f"{manifest.model_name}: holdout accuracy {manifest.holdout_accuracy:.4f}; "
                    f"{_job_token(training_job)}"
                ),
                ModelApprovalStatus=approval.value,
                CustomerMetadataProperties=metadata,
            )["ModelPackageArn"]
        except AWS_ERRORS as exc:
            raise RegistryError(f"could not register {manifest.model_name} in {group}: {exc}") from exc
        return self._describe(arn)

    def get(self, model_name: str, version: int) -> RegistryRecord:
        """Describe one version, found through the group listing (works for every ARN format)."""
        for summary in self._summaries(model_name):
            if int(summary["ModelPackageVersion"]) == version:
                return self._describe(summary["ModelPackageArn"])
        raise NotFoundError(f"{model_package_group(model_name)} has no version {version}")

    def set_approval(self, model_name: str, version: int, approval: ApprovalStatus, reason: str = "") -> RegistryRecord:
        """Change approval, resending the metadata (UpdateModelPackage drops it otherwise)."""
        record = self.get(model_name, version)
        description = clip(reason)
        try:
            self._sm.update_model_package(
                ModelPackageArn=record.package_arn,
                ModelApprovalStatus=approval.value,
                ApprovalDescription=description,
                CustomerMetadataProperties=record.to_metadata(),
            )
        except AWS_ERRORS as exc:
            raise RegistryError(f"could not set {model_name} v{version} to {approval}: {exc}") from exc
        return replace(record, approval=approval, approval_description=description)

    def versions(self, model_name: str) -> list[RegistryRecord]:
        """Every version, oldest first."""
        summaries = sorted(self._summaries(model_name), key=lambda s: int(s["ModelPackageVersion"]))
        return [self._describe(s["ModelPackageArn"]) for s in summaries]

    def _find_by_job(self, model_name: str, training_job: str) -> RegistryRecord | None:
        token = _job_token(training_job)
        for summary in self._summaries(model_name):
            if str(summary.get("ModelPackageDescription", "")).endswith(token):
                record = self._describe(summary["ModelPackageArn"])
                if record.training_job == training_job:
                    return record
        return None

    def _summaries(self, model_name: str) -> list[dict[str, Any]]:
        group = model_package_group(model_name)
        try:
            pages = self._sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
            return [s for page in pages for s in page["ModelPackageSummaryList"]]
        except AWS_ERRORS as exc:
            raise RegistryError(f"could not list versions of {group}: {exc}") from exc

    def _describe(self, arn: str) -> RegistryRecord:
        try:
            package = self._sm.describe_model_package(ModelPackageName=arn)
        except AWS_ERRORS as exc:
            raise RegistryError(f"could not describe {arn}: {exc}") from exc
        return RegistryRecord.from_package(
            version=int(package["ModelPackageVersion"]),
            package_arn=arn,
            approval=package["ModelApprovalStatus"],
            metadata=package.get("CustomerMetadataProperties") or {},
            approval_description=str(package.get("ApprovalDescription") or ""),
        )


class MemoryRegistry:
    """In-memory ModelRegistry for tests and pure simulations."""

    def __init__(self, region: str = "us-east-1", account: str = "123456789012") -> None:
        self._groups: dict[str, list[RegistryRecord]] = {}
        self._lock = threading.Lock()
        self._arn_prefix = f"arn:aws:sagemaker:{region}:{account}:model-package/"

    def ensure_group(self, model_name: str) -> None:
        """Create the group if missing."""
        with self._lock:
            self._groups.setdefault(model_package_group(model_name), [])

    def register(
        self,
        manifest: ModelManifest,
        *,
        training_job: str,
        artifact_uri: str,
        manifest_uri: str,
        approval: ApprovalStatus,
        signed: bool = False,
        decision: str = "",
        evidence: GateEvidence | None = None,
    ) -> RegistryRecord:
        """Append the next version unless the job is already registered."""
        group = model_package_group(manifest.model_name)
        with self._lock:
            if group not in self._groups:
                raise RegistryError(f"could not register {manifest.model_name}: group {group} does not exist")
            records = self._groups[group]
            for record in records:
                if record.training_job == training_job:
                    return record
            version = len(records) + 1
            # Through the metadata, as SageMaker stores it, so both registries clip and default alike.
            record = RegistryRecord.from_package(
                version=version,
                package_arn=f"{self._arn_prefix}{group}/{version}",
                approval=approval.value,
                metadata=_metadata(manifest, training_job, artifact_uri, manifest_uri, signed, decision, evidence),
            )
            records.append(record)
            return record

    def get(self, model_name: str, version: int) -> RegistryRecord:
        """Return one version."""
        with self._lock:
            for record in self._groups.get(model_package_group(model_name), []):
                if record.version == version:
                    return record
        raise NotFoundError(f"{model_package_group(model_name)} has no version {version}")

    def set_approval(self, model_name: str, version: int, approval: ApprovalStatus, reason: str = "") -> RegistryRecord:
        """Replace the record's approval and its description."""
        record = replace(self.get(model_name, version), approval=approval, approval_description=clip(reason))
        with self._lock:
            self._groups[model_package_group(model_name)][version - 1] = record
        return record

    def versions(self, model_name: str) -> list[RegistryRecord]:
        """Every version, oldest first."""
        with self._lock:
            group = model_package_group(model_name)
            if group not in self._groups:
                raise RegistryError(f"could not list versions of {group}: group does not exist")
            return list(self._groups[group])
