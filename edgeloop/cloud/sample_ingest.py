"""Sample ingest: batches of SAMPLE records from S3, deduplicated, catalogued and queued for labelling.

The samples topic rule writes each compressed batch to `samples/<thing>/<first>-<last>.json.gz`; a
redelivered batch overwrites its own object, and the catalogue counts each (thing, seq) once however often
an object arrives (a retry that grew the batch lands on a new key, its repeats are recognized). An object
that does not decompress (within the bound) or parse, or whose records are not the thing's SAMPLE records
in the key's range, is copied to `samples-rejected/` with its reason beside it and logged: set aside, never
silently dropped, and never blocking the rest.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edgeloop.cloud.artifacts import ArtifactStore, parse_s3_uri
from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import IntegrityError, NotFoundError, StateStoreError, ValidationError
from edgeloop.core.labels import Label, LabelOutcome
from edgeloop.core.names import REJECTED_REASON_SUFFIX, SAMPLES_PREFIX, SAMPLES_REJECTED_PREFIX
from edgeloop.core.records import IOT_CORE_MAX_PAYLOAD_BYTES
from edgeloop.core.sample_batches import decode_samples_object
from edgeloop.core.sample_payload import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRef:
    """One catalogued sample: its identity and where its batch lives, what a labeller is handed."""

    thing_name: str
    seq: int
    object_uri: str
    sample: Sample


class SampleCatalogue(Protocol):
    """Every sample seen, once per (thing, seq): `add` returns False for one already catalogued.

    `record_label` attaches a label to a catalogued sample (NotFoundError for one never catalogued) and
    says whether it was the sample's first label (NEW: counted once), a different one (CHANGED: the newest
    wins, not counted again) or the stored one repeated (UNCHANGED). `label_count` is how many samples of
    the model have a label: it only grows, so the retraining trigger counts new labels as a difference.
    `sample_of` is the catalogued sample itself (None if never catalogued, or catalogued before samples were
    kept whole): the labelled-error detector compares its answer with the label.
    """

    def add(self, ref: SampleRef) -> bool: ...

    def count(self) -> int: ...

    def record_label(self, label: Label) -> LabelOutcome: ...

    def label_of(self, thing_name: str, seq: int) -> Label | None: ...

    def label_count(self, model_name: str) -> int: ...

    def sample_of(self, thing_name: str, seq: int) -> Sample | None: ...


class LabellingQueue(Protocol):
    """Where new samples wait for a label (SQS in the cloud); `send` takes a batch."""

    def send(self, refs: Sequence[SampleRef]) -> None: ...


class Labeller(Protocol):
    """Gives samples their true label: human annotators in production; in the local stack an oracle.

    Returns one label index per sample, or None where it cannot label it (yet).
    """

    def label(self, refs: Sequence[SampleRef]) -> list[int | None]: ...


@dataclass(frozen=True)
class IngestReport:
    """What one object added: new samples, duplicates recognized, or why it was set aside."""

    object_uri: str
    new: int
    duplicates: int
    rejected: str | None = None


def ingest_sample_object(
    uri: str, *, store: ArtifactStore, catalogue: SampleCatalogue, queue: LabellingQueue
) -> IngestReport:
    """Parse one samples object, catalogue its new samples and queue them; a bad object is set aside whole."""
    try:
        data = store.get(uri, max_bytes=IOT_CORE_MAX_PAYLOAD_BYTES)  # the rule writes one message an object
    except IntegrityError as exc:  # too big to read, so not copied: it stays put, its reason goes aside
        reason_at = _set_aside(uri, store, str(exc), None) + REJECTED_REASON_SUFFIX
        return IngestReport(uri, 0, 0, f"{exc} (left in place, reason at {reason_at})")
    try:
        refs = _parse(uri, data)
    except ValidationError as exc:
        rejected = _set_aside(uri, store, str(exc), data)
        return IngestReport(uri, 0, 0, f"{exc} (kept at {rejected})")
    new = [ref for ref in refs if catalogue.add(ref)]
    if new:
        queue.send(new)
    log.info("%s: %d new samples, %d seen before", uri, len(new), len(refs) - len(new))
    return IngestReport(uri, len(new), len(refs) - len(new))


def _parse(uri: str, data: bytes) -> list[SampleRef]:
    """Samples of one object; the object's key names thing and range, so a batch cannot speak for another device."""
    _, key = parse_s3_uri(uri)
    _, records = decode_samples_object(key, data)
    refs = []
    for record in records:
        try:
            sample = Sample.from_payload(record.payload)
        except ValidationError as exc:
            raise ValidationError(f"records[seq {record.seq}].{exc.field}", exc.message) from exc
        refs.append(SampleRef(record.thing_name, record.seq, uri, sample))
    return refs


def _set_aside(uri: str, store: ArtifactStore, reason: str, data: bytes | None) -> str:
    """Copy a bad object under samples-rejected/ (same key), its reason beside it, to inspect and replay."""
    bucket, key = parse_s3_uri(uri)
    target = f"s3://{bucket}/{SAMPLES_REJECTED_PREFIX}{key.removeprefix(SAMPLES_PREFIX)}"
    if data is not None:
        store.put(target, data)
    store.put(target + REJECTED_REASON_SUFFIX, f"{uri}: {reason}\n".encode())
    log.error("samples object %s set aside at %s: %s", uri, target, reason)
    return target


# --- adapters --------------------------------------------------------------------------------------------


class MemorySampleCatalogue:
    """SampleCatalogue in a dict (tests and the local stack)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[tuple[str, int], SampleRef] = {}
        self.labels: dict[tuple[str, int], Label] = {}
        self._labelled: dict[str, int] = {}

    def add(self, ref: SampleRef) -> bool:
        """Keep the first sighting of (thing, seq)."""
        with self._lock:
            if (ref.thing_name, ref.seq) in self.samples:
                return False
            self.samples[(ref.thing_name, ref.seq)] = ref
            return True

    def count(self) -> int:
        """Samples catalogued."""
        with self._lock:
            return len(self.samples)

    def record_label(self, label: Label) -> LabelOutcome:
        """Keep the newest label of a catalogued sample; count the sample at its first label."""
        key = (label.thing_name, label.seq)
        with self._lock:
            ref = self.samples.get(key)
            if ref is None:
                raise NotFoundError(_not_catalogued(label))
            previous = self.labels.get(key)
            self.labels[key] = label
            if previous is None:
                model = ref.sample.model_name
                self._labelled[model] = self._labelled.get(model, 0) + 1
                return LabelOutcome.NEW
            return LabelOutcome.UNCHANGED if previous == label else LabelOutcome.CHANGED

    def label_of(self, thing_name: str, seq: int) -> Label | None:
        """The sample's current label."""
        with self._lock:
            return self.labels.get((thing_name, seq))

    def label_count(self, model_name: str) -> int:
        """Labelled samples of the model."""
        with self._lock:
            return self._labelled.get(model_name, 0)

    def sample_of(self, thing_name: str, seq: int) -> Sample | None:
        """The catalogued sample."""
        with self._lock:
            ref = self.samples.get((thing_name, seq))
            return None if ref is None else ref.sample


class DynamoSampleCatalogue:
    """SampleCatalogue on DynamoDB: a conditional put per (thing, seq) makes a repeat a no-op."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def add(self, ref: SampleRef) -> bool:
        """Put the sample's item unless it exists."""
        item = {
            **_sample_key(ref.thing_name, ref.seq),
            "object": {"S": ref.object_uri},
            "model_name": {"S": ref.sample.model_name},
            "model_version": {"N": str(ref.sample.model_version)},
            "sampler": {"S": ref.sample.sampler},
            "request_id": {"S": ref.sample.request_id},
            "payload": {"S": json.dumps(ref.sample.to_payload(), sort_keys=True)},
        }
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise StateStoreError(f"could not catalogue {ref.thing_name} seq {ref.seq}: {exc}") from exc
        return True

    def count(self) -> int:
        """Samples catalogued (a Scan with COUNT: for reports, not the hot path)."""
        try:
            pages = self._db.get_paginator("scan").paginate(
                TableName=self._table,
                Select="COUNT",
                FilterExpression="begins_with(pk, :sample)",
                ExpressionAttributeValues={":sample": {"S": SAMPLE_PK_PREFIX}},
            )
            return sum(int(page["Count"]) for page in pages)
        except AWS_ERRORS as exc:
            raise StateStoreError(f"could not count samples: {exc}") from exc

    def record_label(self, label: Label) -> LabelOutcome:
        """A first label updates the sample and the model's counter in one transaction; a relabel only the sample."""
        item = self._get(_sample_key(label.thing_name, label.seq), f"reading {label.thing_name} seq {label.seq}")
        if item is None:
            raise NotFoundError(_not_catalogued(label))
        if "label_index" in item:
            if _label_from_item(label.thing_name, label.seq, item) == label:
                return LabelOutcome.UNCHANGED
            self._relabel(label)
            return LabelOutcome.CHANGED
        model = item.get("model_name", {}).get("S")
        if not model:
            raise StateStoreError(f"sample {label.thing_name} seq {label.seq} has no model_name to count its label by")
        if self._first_label(label, model):
            return LabelOutcome.NEW
        self._relabel(label)  # another writer labelled it between our read and our transaction
        return LabelOutcome.CHANGED

    def label_of(self, thing_name: str, seq: int) -> Label | None:
        """The sample's current label."""
        item = self._get(_sample_key(thing_name, seq), f"reading {thing_name} seq {seq}")
        return None if item is None or "label_index" not in item else _label_from_item(thing_name, seq, item)

    def label_count(self, model_name: str) -> int:
        """The model's counter item (absent: none labelled yet)."""
        item = self._get(_label_counter_key(model_name), f"reading the label count of {model_name}")
        return 0 if item is None else int(item["labelled"]["N"])

    def sample_of(self, thing_name: str, seq: int) -> Sample | None:
        """The sample's payload kept in its item; one kept damaged is a StateStoreError (our own write, not input)."""
        item = self._get(_sample_key(thing_name, seq), f"reading {thing_name} seq {seq}")
        if item is None or "payload" not in item:
            return None
        try:
            return Sample.from_payload(json.loads(item["payload"]["S"]))
        except (ValueError, ValidationError) as exc:
            raise StateStoreError(f"sample {thing_name} seq {seq} is kept damaged: {exc}") from exc

    def _first_label(self, label: Label, model_name: str) -> bool:
        """Label and count together, only if still unlabelled; False when a concurrent writer labelled it first."""
        set_label = {
            "TableName": self._table,
            "Key": _sample_key(label.thing_name, label.seq),
            "UpdateExpression": "SET label_index = :label, labeller = :who",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(label_index)",
            "ExpressionAttributeValues": _label_values(label),
        }
        count = {
            "TableName": self._table,
            "Key": _label_counter_key(model_name),
            "UpdateExpression": "ADD labelled :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        try:
            self._db.transact_write_items(TransactItems=[{"Update": set_label}, {"Update": count}])
        except AWS_ERRORS as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise StateStoreError(f"could not label {label.thing_name} seq {label.seq}: {exc}") from exc
        return True

    def _relabel(self, label: Label) -> None:
        """Replace the label of an already labelled sample (the count stays)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_sample_key(label.thing_name, label.seq),
                UpdateExpression="SET label_index = :label, labeller = :who",
                ConditionExpression="attribute_exists(label_index)",
                ExpressionAttributeValues=_label_values(label),
            )
        except AWS_ERRORS as exc:
            raise StateStoreError(f"could not relabel {label.thing_name} seq {label.seq}: {exc}") from exc

    def _get(self, key: dict[str, Any], action: str) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        except AWS_ERRORS as exc:
            raise StateStoreError(f"{action} in the sample catalogue: {exc}") from exc
        return item if isinstance(item, dict) else None


SAMPLE_PK_PREFIX = "sample#"
"""Catalogue items: pk "sample#<thing>", sk the zero-padded seq; label counters: pk "labels#<model>", sk "count"."""


def _sample_key(thing_name: str, seq: int) -> dict[str, Any]:
    return {"pk": {"S": f"{SAMPLE_PK_PREFIX}{thing_name}"}, "sk": {"S": f"{seq:012d}"}}


def _label_counter_key(model_name: str) -> dict[str, Any]:
    return {"pk": {"S": f"labels#{model_name}"}, "sk": {"S": "count"}}


def _label_values(label: Label) -> dict[str, Any]:
    return {":label": {"N": str(label.label_index)}, ":who": {"S": label.labeller}}


def _label_from_item(thing_name: str, seq: int, item: dict[str, Any]) -> Label:
    return Label(thing_name, seq, int(item["label_index"]["N"]), item["labeller"]["S"])


def _not_catalogued(label: Label) -> str:
    return f"sample {label.thing_name} seq {label.seq} is not catalogued: nothing to label"


class MemoryLabellingQueue:
    """LabellingQueue in a list."""

    def __init__(self) -> None:
        self.sent: list[SampleRef] = []

    def send(self, refs: Sequence[SampleRef]) -> None:
        """Queue the refs."""
        self.sent.extend(refs)


SQS_BATCH = 10
"""SendMessageBatch takes at most ten entries."""


class SqsLabellingQueue:
    """LabellingQueue on SQS: one message per sample, naming it and its batch object."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, refs: Sequence[SampleRef]) -> None:
        """Send in batches of ten; a partial failure raises, so the event retries (catalogue repeats are no-ops)."""
        for start in range(0, len(refs), SQS_BATCH):
            chunk = refs[start : start + SQS_BATCH]
            entries = [{"Id": str(i), "MessageBody": _message(r)} for i, r in enumerate(chunk)]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except AWS_ERRORS as exc:
                raise StateStoreError(f"could not queue {len(chunk)} samples for labelling: {exc}") from exc
            if response.get("Failed"):
                raise StateStoreError(f"SQS refused {len(response['Failed'])} of {len(chunk)} samples")


def _message(ref: SampleRef) -> str:
    """The labelling queue's message: which sample, where its batch is, which request and model it came from."""
    body = {
        "thing_name": ref.thing_name,
        "seq": ref.seq,
        "object": ref.object_uri,
        "request_id": ref.sample.request_id,
        "model_version": ref.sample.model_version,
    }
    return json.dumps(body, sort_keys=True)
