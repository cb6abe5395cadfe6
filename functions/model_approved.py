"""Lambda: a model package's approval changed; an Approved version starts its staged rollout (ring 0 first)."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.approvals import handle_approval_change
from edgeloop.cloud.aws import rollout_context
from edgeloop.core.events import ModelPackageStateChange
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = CloudSettings.from_env(os.environ)
    ctx = rollout_context(settings, boto3.client, with_public_key=True)
    return {"ctx": ctx}


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the event, act on the new approval status, say what happened."""
    change = ModelPackageStateChange.from_event(event)
    outcome = handle_approval_change(change, ctx=deps["ctx"])
    result = {"status": outcome.status, "modelPackage": change.package_arn, "reason": outcome.reason}
    if outcome.deployment_id is not None:
        result["deploymentId"] = outcome.deployment_id
    return result


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; errors propagate so EventBridge retries and then dead-letters the event."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
