"""Lambda: new label objects (S3 ObjectCreated under labels/) recorded in the sample catalogue, each sample once."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.labels import ingest_label_object
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue
from edgeloop.core.events import s3_object_uris
from edgeloop.core.labels import LabelOutcome
from edgeloop.core.settings import ENV_SAMPLES_TABLE

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    return {
        "store": S3ArtifactStore(boto3.client("s3")),
        "catalogue": DynamoSampleCatalogue(boto3.client("dynamodb"), os.environ[ENV_SAMPLES_TABLE]),
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Each object on its own: a bad one is set aside and reported, the others are still recorded."""
    reports = [ingest_label_object(uri, **deps) for uri in s3_object_uris(event)]
    return {
        **{outcome.value: sum(r.outcome is outcome for r in reports) for outcome in LabelOutcome},
        "rejected": {r.object_uri: r.rejected for r in reports if r.rejected},
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; AWS errors propagate so the event retries (recording a label again is a no-op)."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
