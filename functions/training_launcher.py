"""Lambda: start a SageMaker training job from a schedule, a direct invoke or a retraining signal."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.training import SageMakerTrainingJobs
from edgeloop.core.settings import LauncherSettings
from edgeloop.core.training_jobs import create_training_job_request, parse_training_request

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    return {"jobs": SageMakerTrainingJobs(boto3.client("sagemaker")), "settings": LauncherSettings.from_env(os.environ)}


def handle(event: Any, deps: dict[str, Any], *, request_id: str) -> dict[str, Any]:
    """Parse the trigger, start its job once (a retry finds it started), say what happened."""
    settings: LauncherSettings = deps["settings"]
    request = parse_training_request(event, default_model=settings.model_name, request_id=request_id)
    params = create_training_job_request(request, settings)
    started = deps["jobs"].start(params)
    log.info("training job %s for %s (%s): %s", request.job_name, request.model_name, request.trigger, started)
    return {
        "status": "started" if started else "already-started",
        "trainingJob": request.job_name,
        "modelName": request.model_name,
        "trigger": request.trigger,
        "parentVersion": request.parent_version,
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; a retried asynchronous invoke keeps its request id, so it names the same job."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps(), request_id=str(context.aws_request_id))
