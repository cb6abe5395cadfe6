"""Lambda: new samples objects (S3 ObjectCreated under samples/) deduplicated, catalogued, queued for labelling."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import boto3

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue, SqsLabellingQueue, ingest_sample_object
from edgeloop.core.events import s3_object_uris
from edgeloop.core.settings import ENV_LABELLING_QUEUE_URL, ENV_SAMPLES_TABLE

log = logging.getLogger(__name__)


@functools.cache
def _deps() -> dict[str, Any]:
    """Clients built once per cold start, never at import time."""
    return {
        "store": S3ArtifactStore(boto3.client("s3")),
        "catalogue": DynamoSampleCatalogue(boto3.client("dynamodb"), os.environ[ENV_SAMPLES_TABLE]),
        "queue": SqsLabellingQueue(boto3.client("sqs"), os.environ[ENV_LABELLING_QUEUE_URL]),
    }


def handle(event: Any, deps: dict[str, Any]) -> dict[str, Any]:
    """Each object on its own: a bad one is set aside and reported, the others still go through."""
    reports = [ingest_sample_object(uri, **deps) for uri in s3_object_uris(event)]
    return {
        "new": sum(r.new for r in reports),
        "duplicates": sum(r.duplicates for r in reports),
        "rejected": {r.object_uri: r.rejected for r in reports if r.rejected},
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point; AWS errors propagate so the event retries (catalogue repeats are no-ops)."""
    logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    return handle(event, _deps())
