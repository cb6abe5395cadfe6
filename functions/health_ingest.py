"""Lambda: one accepted health-shadow update (via the health IoT rule) counted once into the fleet's sums."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.aws import rollout_context
from edgeloop.cloud.rings import IotRingDirectory
from edgeloop.cloud.rollout_control import ingest_health
from edgeloop.core.errors import ValidationError
from edgeloop.core.events import HealthDocument
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = CloudSettings.from_env(os.environ)
    ctx = rollout_context(settings, boto3.client, with_public_key=False)
    return {"ctx": ctx, "rings": IotRingDirectory(boto3.client("iot"), settings.rollout_policy)}


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the rule's output, count it once; a document that breaks the schema is refused with the field named."""
    try:
        document = HealthDocument.from_event(event)
        result = ingest_health(
            deps["ctx"], document.thing_name, document.reported, document.shadow_version, deps["rings"].ring_of
        )
    except ValidationError as exc:
        log.error("health document refused: %s (event %s)", exc, event)
        return {"status": "refused", "reason": str(exc)}
    return {"status": "counted" if result.counted else "skipped", "thing": result.thing_name, "reason": result.reason}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; AWS errors propagate so the async invoke retries and then dead-letters the event."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
