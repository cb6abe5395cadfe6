"""Lambda: new label objects (S3 ObjectCreated under labels/) recorded in the sample catalogue, each sample once,
and each first label of the live version watched by the labelled-error detectors (the calibrated one where the
version's manifest, found through its registry record, has a reliability table)."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.error_watch import DynamoErrorWatchStore, ManifestReliabilities, watch_labels
from edgeloop.cloud.labels import ingest_label_object
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.retraining_table import DynamoRetrainingTable
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue
from edgeloop.core.events import s3_object_uris
from edgeloop.core.labels import LabelOutcome
from edgeloop.core.settings import ENV_RETRAINING_TABLE, ENV_SAMPLES_TABLE

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    dynamodb = boto3.client("dynamodb")
    store = S3ArtifactStore(boto3.client("s3"))
    return {
        "store": store,
        "catalogue": DynamoSampleCatalogue(dynamodb, os.environ[ENV_SAMPLES_TABLE]),
        "live": DynamoRetrainingTable(dynamodb, os.environ[ENV_RETRAINING_TABLE]),
        "watches": DynamoErrorWatchStore(dynamodb, os.environ[ENV_RETRAINING_TABLE]),
        "reliabilities": ManifestReliabilities(SageMakerRegistry(boto3.client("sagemaker")), store),
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Each object on its own: a bad one is set aside and reported, the others are still recorded and watched."""
    reports = [
        ingest_label_object(uri, store=deps["store"], catalogue=deps["catalogue"]) for uri in s3_object_uris(event)
    ]
    new = [r.label for r in reports if r.outcome is LabelOutcome.NEW and r.label is not None]
    result: dict[str, Any] = {
        **{outcome.value: sum(r.outcome is outcome for r in reports) for outcome in LabelOutcome},
        "rejected": {r.object_uri: r.rejected for r in reports if r.rejected},
    }
    if "watches" in deps and new:
        watched = watch_labels(new, catalogue=deps["catalogue"], live=deps["live"], watches=deps["watches"],
                               reliabilities=deps.get("reliabilities"))  # fmt: skip
        result["watched"] = {"observed": watched.observed, "ignored": watched.ignored, "lost": watched.lost}
        result["alarms"] = watched.alarms
    return result


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; AWS errors propagate so the event retries (recording a label again is a no-op)."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
