"""Lambda: a SageMaker training job completed, so read its manifest, then register, sign and package the model."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.fleet import GreengrassFleetControl
from edgeloop.cloud.publish import is_edgeloop_training_output, publish_trained_model
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.signing import KmsSigner
from edgeloop.core.events import TrainingJobStateChange
from edgeloop.core.evidence import job_evidence
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = CloudSettings.from_env(os.environ)
    key = settings.signing_key_id
    return {
        "store": S3ArtifactStore(boto3.client("s3")),
        "registry": SageMakerRegistry(boto3.client("sagemaker")),
        "fleet": GreengrassFleetControl(boto3.client("greengrassv2"), account=settings.account),
        "settings": settings,
        "signer": KmsSigner(boto3.client("kms"), key) if key else None,
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the event, publish the model, say what happened."""
    change = TrainingJobStateChange.from_event(event)
    if not change.completed:
        return {"status": "ignored", "trainingJob": change.job_name, "reason": f"job is {change.status}"}
    if not is_edgeloop_training_output(change, deps["settings"]):
        reason = f"model {change.model_artifacts_uri} is outside {deps['settings'].training_output_uri}"
        return {"status": "ignored", "trainingJob": change.job_name, "reason": reason}
    published = publish_trained_model(change, evidence=job_evidence(event), **deps)
    record, component = published.record, published.component
    result: dict[str, Any] = {
        "status": "published" if component is not None else "rejected",
        "trainingJob": change.job_name,
        "modelName": record.model_name,
        "modelVersion": record.version,
        "approval": record.approval.value,
        "signed": record.signed,
        "reasons": list(published.decision.reasons),
    }
    if component is not None:
        result |= {"componentName": component.name, "componentVersion": component.version}
    return result


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; errors propagate so EventBridge retries and then dead-letters the event."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
