"""Cloud use case: publish a trained model (verify, register, sign, create its component); approvals.py rolls it out."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from dataclasses import dataclass

from edgeloop.cloud.artifacts import ArtifactStore, parse_s3_uri
from edgeloop.cloud.fleet import ComponentRef, FleetControl
from edgeloop.cloud.registry import ModelRegistry
from edgeloop.cloud.signing import ManifestSigner
from edgeloop.core.approval import ApprovalDecision, ApprovedVersion, decide_approval
from edgeloop.core.errors import IntegrityError, ModelFormatError, NotFoundError
from edgeloop.core.events import TrainingJobStateChange
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.names import artifact_prefix
from edgeloop.core.onnx_format import check_onnx_model
from edgeloop.core.recipes import model_recipe
from edgeloop.core.registry import ApprovalStatus, RegistryRecord
from edgeloop.core.settings import CloudSettings
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelArchive:
    """The verified contents of a training job's model.tar.gz."""

    manifest: ModelManifest
    manifest_bytes: bytes
    artifact: bytes

    @property
    def manifest_sha256(self) -> str:
        """The manifest's digest: it covers every artifact's, so it addresses the whole model in S3."""
        return hashlib.sha256(self.manifest_bytes).hexdigest()


@dataclass(frozen=True)
class Published:
    """What publishing a trained model produced; a version the gate refused has no component."""

    record: RegistryRecord
    component: ComponentRef | None
    decision: ApprovalDecision


def read_model_archive(data: bytes) -> ModelArchive:
    """Open SageMaker's model.tar.gz, parse the manifest and verify the selected artifact's digest."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            files = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            manifest_bytes = _member(tar, files, MANIFEST_FILE)
            manifest = ModelManifest.from_json(manifest_bytes)
            artifact = _member(tar, files, manifest.selected)
    except tarfile.TarError as exc:
        raise ModelFormatError(f"model archive is not a readable tar.gz: {exc}") from exc
    expected = manifest.selected_artifact
    actual = hashlib.sha256(artifact).hexdigest()
    if actual != expected.sha256 or len(artifact) != expected.bytes:
        raise IntegrityError(
            f"{expected.file}: manifest says sha256 {expected.sha256} ({expected.bytes} bytes), "
            f"archive holds sha256 {actual} ({len(artifact)} bytes)"
        )
    check_onnx_model(artifact, expected.file)
    return ModelArchive(manifest, manifest_bytes, artifact)


def _member(tar: tarfile.TarFile, files: dict[str, tarfile.TarInfo], name: str) -> bytes:
    info = files.get(name)
    if info is None:
        raise ModelFormatError(f"model archive has no {name} (found {sorted(files)})")
    handle = tar.extractfile(info)
    if handle is None:
        raise ModelFormatError(f"model archive entry {name} is not a regular file")
    return handle.read()


def publish_trained_model(
    change: TrainingJobStateChange,
    *,
    store: ArtifactStore,
    registry: ModelRegistry,
    fleet: FleetControl,
    settings: CloudSettings,
    signer: ManifestSigner | None = None,
    evidence: GateEvidence | None = None,
) -> Published:
    """Verify the job's model, decide its approval, sign it, store it, register it, create its component.

    Everything that can refuse bad input or a bad key (digest, manifest, schema, KMS Sign) runs before
    the registry is touched, so a failure registers nothing. Every step is idempotent (content-addressed
    keys, one version per training job, a recipe that is a pure function of the bytes), so a redelivered
    event converges on the same version and component. evidence: the new-world gate's figures the job was
    tagged with (edgeloop.core.evidence.job_evidence), recorded with the version for its canary.
    """
    if not is_edgeloop_training_output(change, settings) or change.model_artifacts_uri is None:
        raise NotFoundError(f"training job {change.job_name} is {change.status}; it has no model to publish")
    archive = read_model_archive(store.get(change.model_artifacts_uri, max_bytes=MAX_ARCHIVE_BYTES))
    manifest = archive.manifest
    versions = [r for r in registry.versions(manifest.model_name) if r.training_job != change.job_name]
    decision = decide_approval(manifest, _approved_version(versions, store), settings.approval_policy)
    prefix = f"s3://{settings.artifacts_bucket}/{artifact_prefix(manifest.model_name, archive.manifest_sha256)}"
    artifact_uri, manifest_uri = prefix + manifest.selected, prefix + MANIFEST_FILE
    signature = _signature(store, prefix + MANIFEST_SIGNATURE_FILE, archive, signer) if manifest.deployable else None
    store.put(artifact_uri, archive.artifact)
    store.put(manifest_uri, archive.manifest_bytes)
    if signature is not None:
        store.put(prefix + MANIFEST_SIGNATURE_FILE, signature)
    first = ApprovalStatus.REJECTED if decision.status is ApprovalStatus.REJECTED else ApprovalStatus.PENDING
    record = registry.register(
        manifest,
        training_job=change.job_name,
        artifact_uri=artifact_uri,
        manifest_uri=manifest_uri,
        approval=first,
        signed=signature is not None,
        decision=decision.description,
        evidence=evidence,
    )
    if not record.deployable:
        log.warning("%s v%s is not deployable: %s", record.model_name, record.version, decision.description)
        return Published(record, None, decision)
    recipe = model_recipe(record, manifest, manifest_bytes=archive.manifest_bytes, signature=signature)
    component = fleet.create_component_version(recipe)
    # Approve only once the component exists: approval is what triggers the deployment.
    if record.approval is ApprovalStatus.PENDING and decision.status is ApprovalStatus.APPROVED:
        record = registry.set_approval(record.model_name, record.version, ApprovalStatus.APPROVED, decision.description)
    log.info("published %s v%s as %s %s", record.model_name, record.version, component.name, component.version)
    return Published(record, component, decision)


def _approved_version(versions: list[RegistryRecord], store: ArtifactStore) -> ApprovedVersion | None:
    """The newest Approved version with its manifest, the one a candidate must stay compatible with."""
    approved = [r for r in versions if r.approval is ApprovalStatus.APPROVED]
    if not approved:
        return None
    current = approved[-1]
    manifest = ModelManifest.from_json(store.get(current.manifest_uri, max_bytes=MAX_MANIFEST_BYTES))
    return ApprovedVersion(current.version, current.holdout_accuracy, manifest)


def _signature(store: ArtifactStore, uri: str, archive: ModelArchive, signer: ManifestSigner | None) -> bytes | None:
    """The manifest's signature: the one a previous attempt stored (ECDSA is randomized, so re-signing would
    change the recipe's Digest and collide with the component version it created), else a new one."""
    if signer is None:
        return None
    try:
        return store.get(uri, max_bytes=MAX_MANIFEST_BYTES)
    except NotFoundError:
        return signer.sign(archive.manifest_bytes)


def is_edgeloop_training_output(change: TrainingJobStateChange, settings: CloudSettings) -> bool:
    """Only completed jobs that wrote under edgeloop's training-output prefix carry our models."""
    uri = change.model_artifacts_uri
    return change.completed and uri is not None and uri.startswith(settings.training_output_uri)


__all__ = [
    "ModelArchive",
    "Published",
    "is_edgeloop_training_output",
    "parse_s3_uri",
    "publish_trained_model",
    "read_model_archive",
]
