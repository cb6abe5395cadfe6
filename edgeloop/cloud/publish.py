"""Cloud use cases: publish a trained model (register + component) and deploy an approved one."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from dataclasses import dataclass

from edgeloop.cloud.artifacts import ArtifactStore, parse_s3_uri
from edgeloop.cloud.fleet import ComponentRef, FleetControl
from edgeloop.cloud.registry import ModelRegistry
from edgeloop.core.deployments import model_deployment
from edgeloop.core.errors import IntegrityError, ModelFormatError, NotFoundError
from edgeloop.core.events import ModelPackageStateChange, TrainingJobStateChange
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.names import INFERENCE_COMPONENT, artifact_prefix, model_from_package_group
from edgeloop.core.onnx_format import check_onnx_model
from edgeloop.core.recipes import model_recipe
from edgeloop.core.registry import ApprovalStatus, RegistryRecord, initial_approval
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ModelArchive:
    """The verified contents of a training job's model.tar.gz."""

    manifest: ModelManifest
    manifest_bytes: bytes
    artifact: bytes


@dataclass(frozen=True)
class Published:
    """What publishing a trained model produced."""

    record: RegistryRecord
    component: ComponentRef


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
) -> Published:
    """Verify the job's model, copy it to content-addressed keys, register it, create its component.

    Every step is idempotent, so a redelivered event converges on the same version and component.
    """
    if not is_edgeloop_training_output(change, settings) or change.model_artifacts_uri is None:
        raise NotFoundError(f"training job {change.job_name} is {change.status}; it has no model to publish")
    archive = read_model_archive(store.get(change.model_artifacts_uri, max_bytes=MAX_ARCHIVE_BYTES))
    manifest = archive.manifest
    prefix = (
        f"s3://{settings.artifacts_bucket}/{artifact_prefix(manifest.model_name, manifest.selected_artifact.sha256)}"
    )
    artifact_uri, manifest_uri = prefix + manifest.selected, prefix + MANIFEST_FILE
    store.put(artifact_uri, archive.artifact)
    store.put(manifest_uri, archive.manifest_bytes)
    record = registry.register(
        manifest,
        training_job=change.job_name,
        artifact_uri=artifact_uri,
        manifest_uri=manifest_uri,
        approval=ApprovalStatus.PENDING,
    )
    component = fleet.create_component_version(model_recipe(record, manifest))
    # Approve only once the component exists: approval is what triggers the deployment.
    policy = initial_approval(manifest.holdout_accuracy, settings.auto_approve_min_accuracy)
    if record.approval is ApprovalStatus.PENDING and policy is ApprovalStatus.APPROVED:
        record = registry.set_approval(record.model_name, record.version, ApprovalStatus.APPROVED)
    log.info("published %s v%s as %s %s", record.model_name, record.version, component.name, component.version)
    return Published(record, component)


def is_edgeloop_training_output(change: TrainingJobStateChange, settings: CloudSettings) -> bool:
    """Only completed jobs that wrote under edgeloop's training-output prefix carry our models."""
    uri = change.model_artifacts_uri
    return change.completed and uri is not None and uri.startswith(settings.training_output_uri)


def deploy_approved(
    change: ModelPackageStateChange, *, registry: ModelRegistry, fleet: FleetControl, settings: CloudSettings
) -> str | None:
    """Deploy an Approved version to the fleet; other approval states deploy nothing."""
    if change.approval is not ApprovalStatus.APPROVED:
        return None
    record = registry.get(model_from_package_group(change.group_name), change.version)
    if record.approval is not ApprovalStatus.APPROVED:
        raise NotFoundError(f"{record.model_name} v{record.version} is {record.approval} in the registry now")
    # Both components must exist; NotFoundError makes the event retry rather than deploy a broken set.
    fleet.get_component_recipe(record.component_name, record.component_version)
    fleet.get_component_recipe(INFERENCE_COMPONENT, settings.inference_component_version)
    spec = model_deployment(
        record,
        target_arn=settings.fleet_thing_group_arn,
        inference_version=settings.inference_component_version,
    )
    latest = fleet.latest_deployment(spec.target_arn)
    if latest is not None and dict(latest.components) == dict(spec.components):
        log.info("%s v%s is already deployed as %s", record.model_name, record.version, latest.deployment_id)
        return latest.deployment_id
    deployment_id = fleet.create_deployment(spec)
    log.info("deployed %s v%s to %s as %s", record.model_name, record.version, spec.target_arn, deployment_id)
    return deployment_id


__all__ = [
    "ModelArchive",
    "Published",
    "deploy_approved",
    "is_edgeloop_training_output",
    "parse_s3_uri",
    "publish_trained_model",
    "read_model_archive",
]
