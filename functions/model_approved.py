"""Lambda: a model package version was approved, so deploy it to the fleet."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.fleet import GreengrassFleetControl
from edgeloop.cloud.publish import deploy_approved
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.core.events import ModelPackageStateChange
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = CloudSettings.from_env(os.environ)
    return {
        "registry": SageMakerRegistry(boto3.client("sagemaker")),
        "fleet": GreengrassFleetControl(boto3.client("greengrassv2"), account=settings.account),
        "settings": settings,
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the event, deploy if approved, say what happened."""
    change = ModelPackageStateChange.from_event(event)
    deployment_id = deploy_approved(change, **deps)
    if deployment_id is None:
        return {
            "status": "ignored",
            "modelPackage": change.package_arn,
            "reason": f"approval is {change.approval}",
        }
    return {"status": "deployed", "modelPackage": change.package_arn, "deploymentId": deployment_id}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; errors propagate so EventBridge retries and then dead-letters the event."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
