"""Lambda: a SageMaker training job completed, so register its model and create the model component."""

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
from edgeloop.core.events import TrainingJobStateChange
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = CloudSettings.from_env(os.environ)
    return {
        "store": S3ArtifactStore(boto3.client("s3")),
        "registry": SageMakerRegistry(boto3.client("sagemaker")),
        "fleet": GreengrassFleetControl(boto3.client("greengrassv2"), account=settings.account),
        "settings": settings,
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the event, publish the model, say what happened."""
    change = TrainingJobStateChange.from_event(event)
    if not change.completed:
        return {"status": "ignored", "trainingJob": change.job_name, "reason": f"job is {change.status}"}
    if not is_edgeloop_training_output(change, deps["settings"]):
        reason = f"model {change.model_artifacts_uri} is outside {deps['settings'].training_output_uri}"
        return {"status": "ignored", "trainingJob": change.job_name, "reason": reason}
    published = publish_trained_model(change, **deps)
    return {
        "status": "published",
        "trainingJob": change.job_name,
        "modelName": published.record.model_name,
        "modelVersion": published.record.version,
        "approval": published.record.approval.value,
        "componentName": published.component.name,
        "componentVersion": published.component.version,
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; errors propagate so EventBridge retries and then dead-letters the event."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
