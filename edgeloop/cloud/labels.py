"""Label ingest: label objects from the labelling tool recorded in the sample catalogue, bad ones set aside.

A human labelling tool (or a labelling service's export, such as a Ground Truth post-processing step)
writes one object per labelled sample at `labels/<thing>/<seq>.json` in the samples bucket
(edgeloop.core.labels); each ObjectCreated notification brings it here. Relabelling a sample overwrites
its object: the catalogue keeps the newest label and counts the sample once. An object that does not
parse, or labels a sample never catalogued, is copied to `labels-rejected/` with the reason logged and
reported: never silently dropped, and never blocking the other objects of the event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgeloop.cloud.artifacts import ArtifactStore, parse_s3_uri
from edgeloop.cloud.sample_ingest import SampleCatalogue
from edgeloop.core.errors import IntegrityError, NotFoundError, ValidationError
from edgeloop.core.labels import Label, LabelOutcome, parse_label_object
from edgeloop.core.names import LABELS_PREFIX, LABELS_REJECTED_PREFIX

log = logging.getLogger(__name__)

MAX_READ_BYTES = 1024 * 1024
"""Read at most this much of a label object; the parser refuses anything over MAX_LABEL_OBJECT_BYTES."""


@dataclass(frozen=True)
class LabelReport:
    """What one label object did: its outcome in the catalogue, or why it was set aside."""

    object_uri: str
    outcome: LabelOutcome | None
    rejected: str | None = None
    label: Label | None = None
    """The label recorded (None when set aside): a NEW one goes on to the labelled-error detector."""


def ingest_label_object(uri: str, *, store: ArtifactStore, catalogue: SampleCatalogue) -> LabelReport:
    """Parse one label object and record it; a bad one is set aside with its reason."""
    _, key = parse_s3_uri(uri)
    try:
        data = store.get(uri, max_bytes=MAX_READ_BYTES)
    except (NotFoundError, IntegrityError) as exc:
        # Gone since its notification, or far too large to be a label: nothing to record or copy.
        log.error("label object %s not read: %s", uri, exc)
        return LabelReport(uri, None, f"{exc}; not recorded")
    try:
        label = parse_label_object(key, data)
        outcome = catalogue.record_label(label)
    except (ValidationError, NotFoundError) as exc:
        rejected = _set_aside(uri, data, store, str(exc))
        return LabelReport(uri, None, f"{exc} (kept at {rejected})")
    log.info("%s: label %d for %s seq %d (%s)", uri, label.label_index, label.thing_name, label.seq, outcome.value)
    return LabelReport(uri, outcome, label=label)


def _set_aside(uri: str, data: bytes, store: ArtifactStore, reason: str) -> str:
    """Copy a bad label object under labels-rejected/ (same key below it) for inspection and replay."""
    bucket, key = parse_s3_uri(uri)
    target = f"s3://{bucket}/{LABELS_REJECTED_PREFIX}{key.removeprefix(LABELS_PREFIX)}"
    store.put(target, data)
    log.error("label object %s set aside at %s: %s", uri, target, reason)
    return target
