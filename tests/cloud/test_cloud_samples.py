"""Sample ingest: deduplicated per (thing, seq), queued for labelling, bad objects set aside; both catalogues."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from edgeloop.cloud.artifacts import MemoryArtifactStore, S3ArtifactStore
from edgeloop.cloud.rollouts import table_definition
from edgeloop.cloud.samples import (
    DynamoSampleCatalogue,
    MemoryLabellingQueue,
    MemorySampleCatalogue,
    OracleLabeller,
    SampleRef,
    SqsLabellingQueue,
    ingest_sample_object,
)
from edgeloop.core.names import SAMPLES_TABLE
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.records import Record, RecordKind, encode_batch
from edgeloop.core.samples import Sample
from functions import sample_ingest

THING = "edge-dev-1"
URI = f"s3://edgeloop-data/samples/{THING}/41.json"


def sample(request_id: str = "r-1") -> Sample:
    return Sample(
        request_id=request_id, model_name="digits", model_version=3, sampler="low_confidence", label_index=7,
        label="7", confidence=0.41, margin=0.02, drifted=True, drift_score=0.31, features={"c": 4.25},
        privacy=AppliedPrivacy(PrivacyPolicy(drop=("a",)), None),
    )  # fmt: skip


def batch(seqs: range, *, kind: RecordKind = RecordKind.SAMPLE, thing: str = THING) -> bytes:
    records = [Record(thing, seq, kind, 1.0, sample(f"r-{seq}").to_payload()) for seq in seqs]
    return encode_batch(thing, records)


@pytest.fixture(params=["memory", "dynamodb"])
def catalogue(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemorySampleCatalogue()
    request.getfixturevalue("aws")
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(SAMPLES_TABLE))
    return DynamoSampleCatalogue(client, SAMPLES_TABLE)


def test_new_samples_are_catalogued_and_queued_once(catalogue: Any) -> None:
    store, queue = MemoryArtifactStore(), MemoryLabellingQueue()
    store.put(URI, batch(range(41, 46)))
    first = ingest_sample_object(URI, store=store, catalogue=catalogue, queue=queue)
    again = ingest_sample_object(URI, store=store, catalogue=catalogue, queue=queue)  # a redelivered event
    store.put(URI, batch(range(41, 48)))  # the device re-sent a longer batch with the same first seq
    grown = ingest_sample_object(URI, store=store, catalogue=catalogue, queue=queue)
    assert (first.new, first.duplicates) == (5, 0)
    assert (again.new, again.duplicates) == (0, 5)
    assert (grown.new, grown.duplicates) == (2, 5)
    assert [ref.seq for ref in queue.sent] == list(range(41, 48))
    assert catalogue.count() == 7


@pytest.mark.parametrize(
    ("uri", "data", "reason"),
    [
        (URI, b"{not json", "batch: is not JSON"),
        (URI, batch(range(1, 3), kind=RecordKind.RESULT), "records[].kind"),
        (URI, batch(range(1, 3), thing="edge-dev-2"), "batch.thing_name"),
        ("s3://edgeloop-data/samples/loose.json", batch(range(1, 2)), "is not a samples/<thing>/<seq>.json key"),
        (
            URI,
            encode_batch(THING, [Record(THING, 1, RecordKind.SAMPLE, 1.0, {"request_id": "r"})]),
            "records[seq 1].sample",
        ),
    ],
    ids=["not-json", "not-samples", "another-thing", "bad-key", "bad-payload"],
)
def test_a_bad_object_is_set_aside_whole_and_named(uri: str, data: bytes, reason: str) -> None:
    store, catalogue, queue = MemoryArtifactStore(), MemorySampleCatalogue(), MemoryLabellingQueue()
    store.put(uri, data)
    report = ingest_sample_object(uri, store=store, catalogue=catalogue, queue=queue)
    assert reason in (report.rejected or "")
    assert (report.new, catalogue.count(), queue.sent) == (0, 0, [])
    kept = uri.replace("/samples/", "/samples-rejected/")
    assert store.get(kept) == data, "kept for inspection, not dropped"


def test_the_handler_takes_each_object_on_its_own(event: Any, aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="edgeloop-data")
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="edgeloop-labelling")["QueueUrl"]
    s3.put_object(Bucket="edgeloop-data", Key=f"samples/{THING}/41.json", Body=batch(range(41, 53)))
    s3.put_object(Bucket="edgeloop-data", Key=f"samples/{THING}/99.json", Body=b"garbage")
    notification = event("samples_object_created")
    notification["Records"].append(json.loads(json.dumps(notification["Records"][0])))
    notification["Records"][1]["s3"]["object"]["key"] = f"samples/{THING}/99.json"
    deps = {"store": S3ArtifactStore(s3), "catalogue": MemorySampleCatalogue(), "queue": SqsLabellingQueue(sqs, url)}

    result = sample_ingest.handle(notification, deps)

    assert (result["new"], result["duplicates"]) == (12, 0)
    assert list(result["rejected"]) == [f"s3://edgeloop-data/samples/{THING}/99.json"]
    messages = []
    while batch_ := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        messages += batch_
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
                                                         for m in batch_])  # fmt: skip
    assert sorted(json.loads(m["Body"])["seq"] for m in messages) == list(range(41, 53))
    assert s3.get_object(Bucket="edgeloop-data", Key=f"samples-rejected/{THING}/99.json")["Body"].read() == b"garbage"


def test_the_oracle_labeller_knows_only_the_scenario_truth() -> None:
    refs = [SampleRef(THING, i, URI, sample(f"r-{i}")) for i in range(3)]
    assert OracleLabeller({"r-0": 4, "r-2": 9}).label(refs) == [4, None, 9]
