"""Lambda: the rollout controller, on its schedule (one step) and on direct invokes (start, step, commands)."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.aws import rollout_context
from edgeloop.cloud.rollout_control import RolloutContext, command, start_rollout, step
from edgeloop.core.events import RolloutRequest
from edgeloop.core.names import DEFAULT_MODEL_NAME
from edgeloop.core.rollout import Command
from edgeloop.core.settings import ENV_MODEL_NAME, CloudSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = CloudSettings.from_env(os.environ)
    ctx = rollout_context(settings, boto3.client, with_public_key=True)
    return {"ctx": ctx, "model_name": os.environ.get(ENV_MODEL_NAME) or DEFAULT_MODEL_NAME}


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the request, run it through the controller, report the rollout's state and the decision."""
    ctx: RolloutContext = deps["ctx"]
    request = RolloutRequest.from_event(event, deps["model_name"])
    if request.command == "start":
        assert request.version is not None  # RolloutRequest.from_event requires it for start
        start_rollout(ctx, request.model_name, request.version)
        result = step(ctx, request.model_name)
    elif request.command == "step":
        result = step(ctx, request.model_name)
    else:
        result = command(ctx, request.model_name, Command(request.command), request.reason)
    if result is None:
        return {"status": "idle", "model": request.model_name, "reason": "no active rollout"}
    rollout = result.rollout
    return {
        "status": rollout.state.value,
        "model": rollout.model_name,
        "version": rollout.model_version,
        "ring": rollout.ring,
        "decision": result.decision.action.value,
        "reason": result.decision.reason,
        "applied": result.applied,
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; errors propagate (the schedule simply tries again next time)."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
