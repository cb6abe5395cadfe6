"""The local IoT Core parts against moto: the MQTT shadow service, the results ingest, the health and samples rules."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.sample_ingest import MemoryLabellingQueue, MemorySampleCatalogue
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import results_object_key, results_topic, shadow_topic
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.records import InferenceBatch, Record, RecordKind, encode_batch
from edgeloop.core.sample_batches import encode_samples_message
from edgeloop.core.sample_payload import Sample
from edgeloop.local.iot_core import HealthRule, ResultsIngest, SamplesRule, ShadowService
from functions import sample_ingest


def _result(thing: str, seq: int, label: int = 3, size: int = 2) -> Record:
    """One RESULT record carrying a micro-batch of `size` results."""
    ids = tuple(f"{thing}-{seq}-{i}" for i in range(size))
    batch = InferenceBatch(ids, (label,) * size, (str(label),) * size, (0.9,) * size, 1, 0.1)
    return Record(thing, seq, RecordKind.RESULT, 1.0, batch.to_payload())


def test_shadow_update_is_stored_and_accepted(aws: None) -> None:
    iot = boto3.client("iot", region_name="us-east-1")
    iot.create_thing(thingName="dev-1")
    published: list[tuple[str, bytes]] = []
    service = ShadowService(boto3.client("iot-data", region_name="us-east-1"), lambda t, p: published.append((t, p)))
    topic = shadow_topic("dev-1", "update")
    service(topic, json.dumps({"state": {"reported": {"inferences": 7}}}).encode())
    shadow = boto3.client("iot-data", region_name="us-east-1").get_thing_shadow(
        thingName="dev-1", shadowName="edgeloop-health"
    )
    assert json.loads(shadow["payload"].read())["state"]["reported"] == {"inferences": 7}
    assert [t for t, _ in published] == [f"{topic}/accepted", f"{topic}/documents"]
    documents = json.loads(published[1][1])
    assert documents["current"] == {"state": {"reported": {"inferences": 7}}, "version": 1}
    assert service.accepted == 1


def test_the_health_rule_projects_documents_as_the_rule_sql_does() -> None:
    seen: list[dict[str, Any]] = []
    rule = HealthRule(lambda event: seen.append(event) or {"status": "counted"})
    documents = {"previous": None, "current": {"state": {"reported": {"inferences": 7}}, "version": 4}}
    rule(shadow_topic("dev-1", "update/documents"), json.dumps(documents).encode())
    assert seen == [{"reported": {"inferences": 7}, "version": 4, "thing_name": "dev-1"}]
    assert (rule.counted, rule.refused) == (1, 0)


def test_the_health_rule_counts_what_the_ingest_refused() -> None:
    rule = HealthRule(lambda event: {"status": "refused", "reason": "event.reported: missing"})
    rule(shadow_topic("dev-1", "update/documents"), b'{"current": {"version": 2}}')
    assert (rule.counted, rule.refused) == (0, 1)


def test_shadow_update_for_an_unknown_thing_is_rejected_on_the_rejected_topic(aws: None) -> None:
    published: list[tuple[str, bytes]] = []
    service = ShadowService(boto3.client("iot-data", region_name="us-east-1"), lambda t, p: published.append((t, p)))
    topic = shadow_topic("ghost", "update")
    service(topic, b'{"state": {"reported": {}}}')
    assert [t for t, _ in published] == [f"{topic}/rejected"]
    assert service.rejected == 1


@pytest.fixture
def ingest(s3: Any) -> tuple[ResultsIngest, Any]:
    return ResultsIngest(s3, "edgeloop-data"), s3


def test_results_are_stored_under_deterministic_keys_and_deduplicated(ingest: tuple[ResultsIngest, Any]) -> None:
    sink, s3 = ingest
    batch = encode_batch("dev-1", [_result("dev-1", 1), _result("dev-1", 2)])
    sink(results_topic("dev-1"), batch)
    sink(results_topic("dev-1"), batch)  # a retry after a lost PUBACK
    sink(results_topic("dev-1"), encode_batch("dev-1", [_result("dev-1", 2), _result("dev-1", 3)]))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="edgeloop-data")["Contents"]]
    assert keys == [results_object_key("dev-1", 1), results_object_key("dev-1", 2)]
    assert sink.delivered_count("dev-1") == 3
    assert sink.duplicates == 3
    assert [(d.seq, d.result.request_id) for d in sink.results("dev-1")] == [
        (seq, f"dev-1-{seq}-{i}") for seq in (1, 2, 3) for i in range(2)
    ]
    assert sink.delivered_count("dev-2") == 0


def test_each_result_of_a_batch_record_is_delivered_with_its_label_name(ingest: tuple[ResultsIngest, Any]) -> None:
    sink, _ = ingest
    batch = InferenceBatch(("a", "b", "c"), (2, 0, 2), ("cat", "dog", "cat"), (0.5, 0.75, 1.0), 4, 2.5)
    sink(
        results_topic("dev-1"), encode_batch("dev-1", [Record("dev-1", 7, RecordKind.RESULT, 1.0, batch.to_payload())])
    )

    delivered = sink.results("dev-1")
    assert [(d.seq, d.index) for d in delivered] == [(7, 0), (7, 1), (7, 2)]
    assert [(d.result.request_id, d.result.label, d.result.confidence) for d in delivered] == [
        ("a", "cat", 0.5),
        ("b", "dog", 0.75),
        ("c", "cat", 1.0),
    ]
    assert {(d.result.model_version, d.result.latency_ms) for d in delivered} == {(4, 2.5)}
    assert sink.delivered_count("dev-1") == 1


def test_a_batch_claiming_another_thing_is_refused(ingest: tuple[ResultsIngest, Any]) -> None:
    sink, _ = ingest
    with pytest.raises(ValidationError, match="claims another thing"):
        sink(results_topic("dev-1"), encode_batch("dev-2", [_result("dev-2", 1)]))
    assert sink.delivered_count("dev-1") == sink.delivered_count("dev-2") == 0
    assert sink.invalid == 1


def test_a_batch_with_one_bad_result_counts_none_of_it(ingest: tuple[ResultsIngest, Any]) -> None:
    sink, s3 = ingest
    unequal = {**_result("dev-1", 2).payload, "confidences": [0.9]}
    bad = Record("dev-1", 2, RecordKind.RESULT, 1.0, unequal)
    with pytest.raises(ValidationError, match="columns differ"):
        sink(results_topic("dev-1"), encode_batch("dev-1", [_result("dev-1", 1), bad]))
    assert sink.delivered_count("dev-1") == 0
    assert sink.invalid == 1
    assert "Contents" not in s3.list_objects_v2(Bucket="edgeloop-data")


def test_a_malformed_batch_is_refused_and_counted(ingest: tuple[ResultsIngest, Any]) -> None:
    sink, _ = ingest
    with pytest.raises(ValidationError):
        sink(results_topic("dev-1"), b"not json")
    assert sink.invalid == 1


def test_the_samples_rule_stores_the_compressed_batch_untouched_under_its_range_and_feeds_the_ingest(s3: Any) -> None:
    deps = {"store": S3ArtifactStore(s3), "catalogue": MemorySampleCatalogue(), "queue": MemoryLabellingQueue()}
    rule = SamplesRule(s3, "edgeloop-data", lambda event: sample_ingest.handle(event, deps))
    sample = Sample(
        request_id="r-1", model_name="digits", model_version=1, sampler="random", label_index=2, label="2",
        confidence=0.5, margin=0.1, drifted=False, drift_score=None, features={"a": 1.0},
        privacy=AppliedPrivacy(PrivacyPolicy(allow_raw=True), None),
    )  # fmt: skip
    records = [Record("dev-1", seq, RecordKind.SAMPLE, 1.0, sample.to_payload()) for seq in (4, 9, 12)]
    topic, payload = encode_samples_message("dev-1", records)

    rule(topic, payload)
    rule(topic, payload)  # QoS 1 redelivery, or the device's retry: the same key, overwritten

    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket="edgeloop-data")["Contents"]]
    assert key == "samples/dev-1/4-12.json.gz"
    assert s3.get_object(Bucket="edgeloop-data", Key=key)["Body"].read() == payload, "binary, byte for byte"
    assert (rule.messages, rule.bytes, rule.new, rule.rejected) == (2, 2 * len(payload), 3, {})
    assert deps["catalogue"].count() == 3


def test_the_samples_rule_sets_a_corrupt_batch_aside_and_goes_on(s3: Any) -> None:
    deps = {"store": S3ArtifactStore(s3), "catalogue": MemorySampleCatalogue(), "queue": MemoryLabellingQueue()}
    rule = SamplesRule(s3, "edgeloop-data", lambda event: sample_ingest.handle(event, deps))

    rule("edgeloop/things/dev-1/samples/1-2", b"\x1f\x8b not really gzip")

    assert list(rule.rejected) == ["s3://edgeloop-data/samples/dev-1/1-2.json.gz"]
    assert "is corrupt gzip" in rule.rejected["s3://edgeloop-data/samples/dev-1/1-2.json.gz"]
    kept = s3.get_object(Bucket="edgeloop-data", Key="samples-rejected/dev-1/1-2.json.gz")["Body"].read()
    assert kept == b"\x1f\x8b not really gzip"
