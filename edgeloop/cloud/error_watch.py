"""The labelled-error detector in the cloud: where labels land, each new one of the live version is watched.

The label ingest hands over the labels it recorded for the first time; each becomes an Observation (the
sample's own answer against the label; unbiased when the random sampler drew it) of its model. Only samples
of the model's live version count: the last-known-good version as the trigger's record names it (so a new
version is taken up at the trigger's next tick). The watch (core.error_watch) restarts when that version
changes, its reference from the version's first labelled samples (the warm-up). Where the version's manifest
has a reliability table (read through `Reliabilities`: the registry record's manifest_uri, once per version
and process), the calibrated detector runs beside it on every labelled sample (core.calibrated). The watch is
stored in the retraining table beside the trigger's record (sk "detector"), with a conditional write on its
revision: concurrent ingests re-read and fold again, so no batch is counted twice.
The trigger reads its alarm attributes and treats an unhandled alarm as a reason to retrain
(edgeloop.cloud.retraining_table, edgeloop.cloud.retraining).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgeloop.cloud.artifacts import ArtifactStore
from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.cloud.registry import ModelRegistry
from edgeloop.cloud.retraining_table import (
    ALARM_KEY,
    ALARM_REASON,
    VERSION,
    WATCH_SK,
    LiveVersions,
    item_key,
    read_item,
)
from edgeloop.cloud.sample_ingest import SampleCatalogue
from edgeloop.core.detectors import ErrorDetector, Observation, observation_of
from edgeloop.core.error_watch import CLOUD_DETECTOR, ErrorWatch, fold_labels, live_alarm
from edgeloop.core.errors import ConflictError, EdgeloopError, StateStoreError
from edgeloop.core.labels import Label
from edgeloop.core.manifest import ModelManifest, Reliability
from edgeloop.core.retraining import RaisedAlarm

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Conditional-write retries before a batch's observations are given up (logged): another ingest kept winning."""
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""A manifest larger than this is not one (cloud.publish reads them under the same cap)."""


class ErrorWatchStore(Protocol):
    """One ErrorWatch per model, written only over the revision it was read at.

    `put(watch)` stores it only if the stored revision is watch.revision - 1 (nothing stored for revision 1)
    and raises ConflictError otherwise. `get` returns None for a model never watched.
    """

    def get(self, model_name: str) -> ErrorWatch | None: ...

    def put(self, watch: ErrorWatch) -> None: ...


Reliabilities = Callable[[str, int], Reliability | None]
"""(model name, version) -> the version's reliability table as its manifest records it; None where it has none
or it cannot be read. Not a port of its own: ManifestReliabilities composes the registry and artifact ports."""


@dataclass
class WatchReport:
    """What one batch of new labels did to the watches: observed, not usable, and the alarms raised."""

    observed: int = 0
    ignored: int = 0
    """Labels of samples not kept whole, of another version than the live one, or of a model with none live."""
    lost: int = 0
    """Labels whose watch could not be stored after MAX_ATTEMPTS (logged as errors)."""
    alarms: list[str] = field(default_factory=list)


def watch_labels(
    labels: Sequence[Label],
    *,
    catalogue: SampleCatalogue,
    live: LiveVersions,
    watches: ErrorWatchStore,
    policy: ErrorDetector = CLOUD_DETECTOR,
    reliabilities: Reliabilities | None = None,
) -> WatchReport:
    """Fold labels recorded for the first time into their models' watches (one conditional write per model); with
    `reliabilities`, a watch without the calibrated detector starts it when its version's table can be read."""
    report = WatchReport()
    by_model: dict[str, list[tuple[int, Observation]]] = {}
    for label in labels:
        sample = catalogue.sample_of(label.thing_name, label.seq)
        if sample is None:
            report.ignored += 1
            continue
        by_model.setdefault(sample.model_name, []).append(
            (sample.model_version, observation_of(sample, label.label_index))
        )
    for model, observed in by_model.items():
        version = live.live_version(model)
        mine = [o for v, o in observed if v == version]
        report.ignored += len(observed) - len(mine)
        if version is None or not mine:
            continue
        stored = _fold(model, version, mine, watches, policy, reliabilities)
        if stored is None:
            report.lost += len(mine)
            continue
        report.observed += len(mine)
        if stored.raised is not None:
            report.alarms.append(f"{model} {stored.raised.key}: {stored.raised.reason}")
    return report


@dataclass(frozen=True)
class _Stored:
    watch: ErrorWatch
    raised: RaisedAlarm | None
    """The alarm this fold raised (None: none new)."""


def _fold(
    model: str,
    live: int,
    observed: list[Observation],
    watches: ErrorWatchStore,
    policy: ErrorDetector,
    reliabilities: Reliabilities | None,
) -> _Stored | None:
    """Read, fold, store over the read revision; re-read on a lost race. None: gave up (logged)."""
    for _ in range(MAX_ATTEMPTS):
        read = watches.get(model)
        table = None
        if reliabilities is not None and (read is None or read.version != live or read.calibrated is None):
            table = reliabilities(model, live)
        watch, alarm = fold_labels(read, model, live, observed, policy, reliability=table)
        try:
            watches.put(watch)
        except ConflictError:
            continue
        raised = None if alarm is None else watch.raised()
        if raised is not None:
            log.warning("%s: labelled-error alarm %s: %s", model, raised.key, raised.reason)
        return _Stored(watch, raised)
    log.error("%s: %d labelled samples not watched, the detector state kept changing", model, len(observed))
    return None


# --- adapters --------------------------------------------------------------------------------------------


class ManifestReliabilities:
    """Reliabilities from the registry record's manifest in the artifact store, each version read once per process
    (a version's manifest never changes); a version that cannot be read is logged and watched without a table."""

    def __init__(self, registry: ModelRegistry, store: ArtifactStore) -> None:
        self._registry, self._store = registry, store
        self._read: dict[tuple[str, int], Reliability | None] = {}

    def __call__(self, model_name: str, version: int) -> Reliability | None:
        """The table of model_name's version, or None (none recorded, or unreadable: logged once)."""
        key = (model_name, version)
        if key not in self._read:
            try:
                uri = self._registry.get(model_name, version).manifest_uri
                manifest = ModelManifest.from_json(self._store.get(uri, max_bytes=MAX_MANIFEST_BYTES))
                self._read[key] = manifest.baseline.reliability
            except (EdgeloopError, *AWS_ERRORS) as exc:
                log.warning("%s v%d: no reliability table (%s); its errors are watched without one", *key, exc)
                self._read[key] = None
        return self._read[key]


class MemoryErrorWatchStore:
    """ErrorWatchStore in a dict (tests and the local stack)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.watches: dict[str, ErrorWatch] = {}

    def get(self, model_name: str) -> ErrorWatch | None:
        """The stored watch."""
        with self._lock:
            return self.watches.get(model_name)

    def put(self, watch: ErrorWatch) -> None:
        """Store over the predecessor revision only."""
        with self._lock:
            stored = self.watches.get(watch.model_name)
            if (0 if stored is None else stored.revision) != watch.revision - 1:
                raise ConflictError(_conflict(watch))
            self.watches[watch.model_name] = watch

    def alarm(self, model_name: str, live_version: int | None) -> RaisedAlarm | None:
        """Alarms: the stored watch's latest alarm, if it watches live_version."""
        return live_alarm(self.get(model_name), live_version)


class DynamoErrorWatchStore:
    """ErrorWatchStore on DynamoDB: the model's "detector" item in the retraining table, a conditional put; its
    version and latest alarm also as plain attributes, for the trigger's reader (DynamoRetrainingTable)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def get(self, model_name: str) -> ErrorWatch | None:
        """A consistent read of the model's detector item."""
        item = read_item(self._db, self._table, model_name, WATCH_SK)
        return None if item is None else ErrorWatch.from_dict(json.loads(item["watch"]["S"]))

    def put(self, watch: ErrorWatch) -> None:
        """Put unless another writer stored a revision since this one's predecessor."""
        raised = watch.raised()
        item = {
            **item_key(watch.model_name, WATCH_SK),
            "revision": {"N": str(watch.revision)},
            "watch": {"S": json.dumps(watch.to_dict(), sort_keys=True)},
            VERSION: {"N": str(watch.version)},
            **({} if raised is None else {ALARM_KEY: {"S": raised.key}, ALARM_REASON: {"S": raised.reason}}),
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if watch.revision == 1
            else {
                "ConditionExpression": "revision = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(watch.revision - 1)}},
            }
        )
        try:
            self._db.put_item(TableName=self._table, Item=item, **condition)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConflictError(_conflict(watch)) from exc
            raise StateStoreError(f"could not store the error watch of {watch.model_name}: {exc}") from exc


def _conflict(watch: ErrorWatch) -> str:
    return f"error watch of {watch.model_name} changed since revision {watch.revision - 1} was read"
