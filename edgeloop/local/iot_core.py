"""The parts of IoT Core that moto cannot play, beside the MQTT broker (local/broker.py): the named-shadow
service over MQTT and the topic rules' actions (results, health, samples). They write into moto, so the demo
reads back what devices sent."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from edgeloop.core.errors import ValidationError
from edgeloop.core.names import (
    parse_named_shadow_topic,
    results_object_key,
    samples_object_key,
    thing_from_results_topic,
)
from edgeloop.core.records import InferenceBatch, InferenceResult, RecordKind, decode_batch

log = logging.getLogger(__name__)


class ShadowService:
    """IoT Core's shadow service for named shadows over MQTT: update, then accepted or rejected."""

    def __init__(self, iot_data: Any, publish: Callable[[str, bytes], None]) -> None:
        self._iot_data = iot_data
        self._publish = publish
        self.accepted = 0
        self.rejected = 0

    def __call__(self, topic: str, payload: bytes) -> None:
        """Apply one update document published on $aws/things/<thing>/shadow/name/<shadow>/update."""
        thing, shadow, operation = parse_named_shadow_topic(topic)
        if operation != "update":
            return
        try:
            response = self._iot_data.update_thing_shadow(thingName=thing, shadowName=shadow, payload=payload)
        except ClientError as exc:
            self.rejected += 1
            error = exc.response.get("Error", {})
            body = {"code": exc.response["ResponseMetadata"]["HTTPStatusCode"], "message": error.get("Message", "")}
            self._publish(f"{topic}/rejected", json.dumps(body).encode())
            log.warning("shadow update of %s/%s rejected: %s", thing, shadow, body)
            return
        self.accepted += 1
        self._publish(f"{topic}/accepted", response["payload"].read())
        self._publish(f"{topic}/documents", self._documents(thing, shadow))

    def _documents(self, thing: str, shadow: str) -> bytes:
        """IoT Core's update/documents message: the shadow after the update (previous is left out here)."""
        current = json.loads(self._iot_data.get_thing_shadow(thingName=thing, shadowName=shadow)["payload"].read())
        body = {"previous": None, "current": {"state": current.get("state", {}), "version": current.get("version")}}
        return json.dumps({**body, "timestamp": current.get("timestamp")}).encode()


class HealthRule:
    """Stand-in for the health topic rule: HEALTH_RULE_SQL's projection of update/documents, then its Lambda.

    IoT Core would evaluate `SELECT current.state.reported AS reported, current.version AS version,
    topic(3) AS thing_name` on every accepted health-shadow update and invoke functions/health_ingest;
    moto stores rules but never fires them, so this does both, with the handler's own deps.
    """

    def __init__(self, ingest: Callable[[dict[str, Any]], Mapping[str, Any]]) -> None:
        self._ingest = ingest
        self.counted = 0
        self.refused = 0

    def __call__(self, topic: str, payload: bytes) -> None:
        """Project one documents message and hand it to health_ingest."""
        documents = json.loads(payload)
        current = documents.get("current") or {}
        event = {
            "reported": (current.get("state") or {}).get("reported"),
            "version": current.get("version"),
            "thing_name": topic.split("/")[2],
        }
        result = self._ingest(event)
        if result.get("status") == "refused":
            self.refused += 1
        elif result.get("status") == "counted":
            self.counted += 1


@dataclass(frozen=True)
class DeliveredResult:
    """A result as the cloud received it: one row of the RESULT record (thing, seq) at `index`."""

    thing_name: str
    seq: int
    index: int
    result: InferenceResult


ResultSink = Callable[[str, InferenceBatch], None]
"""Where a new (not duplicate) RESULT record's batch goes: (thing name, batch)."""


class ResultsIngest:
    """Stand-in for the results topic rule's destination: dedupes by (thing, seq), stores batches in S3.

    Object keys are those of the stack's results rule (RESULTS_OBJECT_KEY_TEMPLATE: thing and first
    sequence number), so a redelivered batch overwrites its own object; duplicates are counted, never
    double-counted as delivered. A RESULT record holds a micro-batch of results (InferenceBatch), which
    is expanded here into one DeliveredResult per request.
    """

    def __init__(self, s3: Any, bucket: str, sink: ResultSink | None = None) -> None:
        """sink, when given, receives each new RESULT record's batch instead of it being kept here (fleet scale)."""
        self._s3 = s3
        self._bucket = bucket
        self._sink = sink
        self._lock = threading.Lock()
        self._seen: set[tuple[str, int]] = set()
        self._results: dict[tuple[str, int], list[DeliveredResult]] = {}
        self.duplicates = 0
        self.invalid = 0

    def __call__(self, topic: str, payload: bytes) -> None:
        """Ingest one batch message from a device's results topic."""
        thing = thing_from_results_topic(topic)
        try:
            records = decode_batch(payload)
        except ValidationError:
            self.invalid += 1
            raise
        if any(r.thing_name != thing for r in records):
            self.invalid += 1
            raise ValidationError("batch.thing_name", f"batch on {topic} claims another thing")
        if not records:
            return
        try:  # parse the whole batch before counting any of it
            results = {r.seq: InferenceBatch.from_payload(r.payload) for r in records if r.kind is RecordKind.RESULT}
        except ValidationError:
            self.invalid += 1
            raise
        key = results_object_key(thing, records[0].seq)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=payload, ContentType="application/json")
        with self._lock:
            for record in records:
                identity = (thing, record.seq)
                if identity in self._seen:
                    self.duplicates += 1
                    continue
                self._seen.add(identity)
                if record.seq in results and self._sink is not None:
                    self._sink(thing, results[record.seq])
                elif record.seq in results:
                    rows = results[record.seq].rows()
                    self._results[identity] = [DeliveredResult(thing, record.seq, i, row) for i, row in enumerate(rows)]

    @property
    def received(self) -> int:
        """Distinct records of any kind received from the whole fleet."""
        with self._lock:
            return len(self._seen)

    def set_sink(self, sink: ResultSink) -> None:
        """Send new RESULT batches to sink from now on instead of keeping their rows (the fleet simulation's ledger)."""
        self._sink = sink

    def delivered_count(self, thing_name: str) -> int:
        """Distinct records of any kind received from one device."""
        with self._lock:
            return sum(1 for thing, _ in self._seen if thing == thing_name)

    def results(self, thing_name: str) -> list[DeliveredResult]:
        """Every distinct inference result received from one device, in sequence order."""
        with self._lock:
            found = [d for (thing, _), rows in self._results.items() if thing == thing_name for d in rows]
        return sorted(found, key=lambda d: (d.seq, d.index))


class SamplesRule:
    """Stand-in for the samples topic rule and the S3 event it causes: the object, then functions/sample_ingest.

    IoT Core would write each samples message, untouched (binary), to SAMPLES_OBJECT_KEY_TEMPLATE's key
    (thing and seq range, both from the topic) and S3 would notify the ingest Lambda; moto does neither, so
    this does both, reading nothing of the payload, as the rule does not. It also counts what crossed the
    uplink on these topics (compressed bytes), for the loop summary's bytes and messages.
    """

    def __init__(self, s3: Any, bucket: str, ingest: Callable[[dict[str, Any]], Mapping[str, Any]]) -> None:
        self._s3, self._bucket, self._ingest = s3, bucket, ingest
        self._lock = threading.Lock()
        self.messages = 0
        self.bytes = 0
        self.new = 0
        self.duplicates = 0
        """Sample records received again (a retried message) and recognised by the ingest."""
        self.rejected: dict[str, str] = {}

    def __call__(self, topic: str, payload: bytes) -> None:
        """Store one samples message as the rule would, then hand the object's event to the ingest."""
        key = samples_object_key(topic)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=payload)
        s3 = {"bucket": {"name": self._bucket}, "object": {"key": key, "size": len(payload)}}
        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": s3}]}
        result = self._ingest(event)
        with self._lock:
            self.messages += 1
            self.bytes += len(payload)
            self.new += int(result.get("new", 0))
            self.duplicates += int(result.get("duplicates", 0))
            self.rejected.update(result.get("rejected") or {})
