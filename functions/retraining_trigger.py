"""Lambda: on a schedule, decide whether the model retrains (new labels, sustained fleet drift, a labelled-error
alarm) and say so once."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.retraining import DynamoRetrainingStateStore, EventBridgeBus, run_trigger
from edgeloop.cloud.retraining_table import DynamoRetrainingTable
from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue
from edgeloop.core.events import ScheduledTick
from edgeloop.core.settings import TriggerSettings

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    settings = TriggerSettings.from_env(os.environ)
    dynamodb = boto3.client("dynamodb")
    return {
        "settings": settings,
        "states": DynamoRetrainingStateStore(dynamodb, settings.retraining_table),
        "alarms": DynamoRetrainingTable(dynamodb, settings.retraining_table),
        "catalogue": DynamoSampleCatalogue(dynamodb, settings.samples_table),
        "rollouts": DynamoRolloutStore(dynamodb, settings.rollouts_table),
        "health": DynamoFleetHealthStore(dynamodb, settings.fleet_health_table),
        "bus": EventBridgeBus(boto3.client("events"), settings.event_bus_name),
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Parse the tick, evaluate it at its scheduled time (a retry evaluates the same moment), report the outcome."""
    tick = ScheduledTick.from_event(event)
    settings: TriggerSettings = deps["settings"]
    ports = {
        name: deps[name] for name in ("states", "catalogue", "rollouts", "health", "bus", "alarms") if name in deps
    }
    outcome = run_trigger(settings.model_name, settings.policy, tick.at, **ports)
    log.info("retraining trigger %s for %s: %s (%s)", tick.event_id, outcome.model_name, outcome.status, outcome.reason)
    return outcome.to_dict()


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; AWS errors propagate so the tick retries (it resumes where the last try stopped)."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
