"""Sample ingest: deduplicated per (thing, seq), queued for labelling, bad objects set aside; both catalogues."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from edgeloop.cloud.artifacts import MemoryArtifactStore, S3ArtifactStore
from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.cloud.sample_ingest import (
    DynamoSampleCatalogue,
    MemoryLabellingQueue,
    MemorySampleCatalogue,
    SqsLabellingQueue,
    ingest_sample_object,
)
from edgeloop.core.compression import MAX_DECOMPRESSED_BYTES, compress, decompress
from edgeloop.core.errors import StateStoreError, ValidationError
from edgeloop.core.names import REJECTED_REASON_SUFFIX, SAMPLES_TABLE, samples_object_key, samples_topic
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.records import IOT_CORE_MAX_PAYLOAD_BYTES, Record, RecordKind, encode_batch
from edgeloop.core.sample_payload import Sample
from functions import sample_ingest

THING = "edge-dev-1"
BUCKET = "edgeloop-data"


def uri(first: int, last: int, thing: str = THING) -> str:
    return f"s3://{BUCKET}/{samples_object_key(samples_topic(thing, first, last))}"


URI = uri(41, 45)


def sample(request_id: str = "r-1") -> Sample:
    return Sample(
        request_id=request_id, model_name="digits", model_version=3, sampler="low_confidence", label_index=7,
        label="7", confidence=0.41, margin=0.02, drifted=True, drift_score=0.31, features={"c": 4.25},
        privacy=AppliedPrivacy(PrivacyPolicy(drop=("a",)), None),
    )  # fmt: skip


def records(seqs: range, *, kind: RecordKind = RecordKind.SAMPLE, thing: str = THING) -> list[Record]:
    return [Record(thing, seq, kind, 1.0, sample(f"r-{seq}").to_payload()) for seq in seqs]


def batch(seqs: range, *, kind: RecordKind = RecordKind.SAMPLE, thing: str = THING) -> bytes:
    """What the device publishes and the rule stores: the batch JSON, gzip-compressed."""
    return compress(encode_batch(thing, records(seqs, kind=kind, thing=thing)))


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
    store.put(URI, batch(range(41, 46)))  # a retried publish: the same range, so the same key, overwritten
    again = ingest_sample_object(URI, store=store, catalogue=catalogue, queue=queue)
    store.put(uri(41, 47), batch(range(41, 48)))  # a retry that had grown: a new key, its repeats recognized
    grown = ingest_sample_object(uri(41, 47), store=store, catalogue=catalogue, queue=queue)
    assert (first.new, first.duplicates) == (5, 0)
    assert (again.new, again.duplicates) == (0, 5)
    assert (grown.new, grown.duplicates) == (2, 5)
    assert [ref.seq for ref in queue.sent] == list(range(41, 48))
    assert catalogue.count() == 7


def test_a_sparse_batch_names_its_lowest_and_highest_seq() -> None:
    store, catalogue, queue = MemoryArtifactStore(), MemorySampleCatalogue(), MemoryLabellingQueue()
    store.put(uri(3, 90), compress(encode_batch(THING, [*records(range(3, 4)), *records(range(90, 91))])))
    report = ingest_sample_object(uri(3, 90), store=store, catalogue=catalogue, queue=queue)
    assert (report.new, report.rejected) == (2, None), "results share the seq space, so sample seqs have gaps"


BOMB = compress(b" " * (MAX_DECOMPRESSED_BYTES + 1))
TRUNCATED = batch(range(41, 46))[:-9]
CORRUPT = bytearray(batch(range(41, 46)))
CORRUPT[40] ^= 0xFF


@pytest.mark.parametrize(
    ("uri_", "data", "reason"),
    [
        (URI, encode_batch(THING, records(range(41, 46))), "batch: is not gzip"),
        (URI, bytes(CORRUPT), "batch: is corrupt gzip"),
        (URI, TRUNCATED, "batch: is truncated gzip"),
        (URI, BOMB, f"inflates beyond {MAX_DECOMPRESSED_BYTES} bytes"),
        (URI, compress(b"{not json"), "batch: is not JSON"),
        (URI, batch(range(41, 46), kind=RecordKind.RESULT), "records[].kind"),
        (URI, batch(range(41, 46), thing="edge-dev-2"), "batch.thing_name"),
        (URI, batch(range(41, 44)), "seqs span 41-43, the key names 41-45"),
        (uri(41, 46), batch(range(41, 46)), "seqs span 41-45, the key names 41-46"),
        (f"s3://{BUCKET}/samples/{THING}/41.json", batch(range(41, 46)), "is not a samples/<thing>/<first>-<last>"),
        (f"s3://{BUCKET}/samples/{THING}/45-41.json.gz", batch(range(41, 46)), "1 <= first <= last"),
        (f"s3://{BUCKET}/samples/loose.json.gz", batch(range(41, 46)), "is not a samples/<thing>/<first>-<last>"),
        (
            uri(1, 1),
            compress(encode_batch(THING, [Record(THING, 1, RecordKind.SAMPLE, 1.0, {"request_id": "r"})])),
            "records[seq 1].sample",
        ),
    ],
    ids=[
        "not-gzip",
        "corrupt",
        "truncated",
        "bomb",
        "not-json",
        "not-samples",
        "another-thing",
        "range-too-wide",
        "range-too-narrow",
        "old-key",
        "reversed-range",
        "bad-key",
        "bad-payload",
    ],
)
def test_a_bad_object_is_set_aside_whole_with_its_reason(uri_: str, data: bytes, reason: str) -> None:
    store, catalogue, queue = MemoryArtifactStore(), MemorySampleCatalogue(), MemoryLabellingQueue()
    store.put(uri_, data)
    report = ingest_sample_object(uri_, store=store, catalogue=catalogue, queue=queue)
    assert reason in (report.rejected or "")
    assert (report.new, catalogue.count(), queue.sent) == (0, 0, [])
    kept = uri_.replace("/samples/", "/samples-rejected/")
    assert store.get(kept) == data, "kept for inspection, not dropped"
    assert reason in store.get(kept + REJECTED_REASON_SUFFIX).decode(), "the reason travels with it"


def test_the_bomb_is_small_on_the_wire_and_refused_before_it_is_inflated() -> None:
    assert len(BOMB) < 2_000 < MAX_DECOMPRESSED_BYTES
    with pytest.raises(ValidationError, match="decompression bomb"):
        decompress(BOMB)


def test_an_object_too_big_to_read_is_left_in_place_and_its_reason_set_aside() -> None:
    store, catalogue, queue = MemoryArtifactStore(), MemorySampleCatalogue(), MemoryLabellingQueue()
    store.put(URI, b"x" * (IOT_CORE_MAX_PAYLOAD_BYTES + 1))  # no rule writes this: one message is at most 128 KB
    report = ingest_sample_object(URI, store=store, catalogue=catalogue, queue=queue)
    assert "over the 131072 limit" in (report.rejected or "")
    kept = URI.replace("/samples/", "/samples-rejected/")
    assert "over the 131072 limit" in store.get(kept + REJECTED_REASON_SUFFIX).decode()
    assert catalogue.count() == 0


def test_the_handler_takes_each_object_on_its_own(event: Any, aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="edgeloop-labelling")["QueueUrl"]
    good, bad = f"samples/{THING}/41-52.json.gz", f"samples/{THING}/99-99.json.gz"
    s3.put_object(Bucket=BUCKET, Key=good, Body=batch(range(41, 53)))
    s3.put_object(Bucket=BUCKET, Key=bad, Body=b"garbage")
    notification = event("samples_object_created")
    assert notification["Records"][0]["s3"]["object"]["key"] == good
    notification["Records"].append(json.loads(json.dumps(notification["Records"][0])))
    notification["Records"][1]["s3"]["object"]["key"] = bad
    deps = {"store": S3ArtifactStore(s3), "catalogue": MemorySampleCatalogue(), "queue": SqsLabellingQueue(sqs, url)}

    result = sample_ingest.handle(notification, deps)

    assert (result["new"], result["duplicates"]) == (12, 0)
    assert list(result["rejected"]) == [f"s3://{BUCKET}/{bad}"]
    messages = []
    while batch_ := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        messages += batch_
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
                                                         for m in batch_])  # fmt: skip
    assert sorted(json.loads(m["Body"])["seq"] for m in messages) == list(range(41, 53))
    rejected = f"samples-rejected/{THING}/99-99.json.gz"
    assert s3.get_object(Bucket=BUCKET, Key=rejected)["Body"].read() == b"garbage"
    reason = s3.get_object(Bucket=BUCKET, Key=rejected + REJECTED_REASON_SUFFIX)["Body"].read().decode()
    assert "is not gzip" in reason


def test_the_catalogue_gives_back_the_sample_a_label_is_compared_with(catalogue: Any) -> None:
    store = MemoryArtifactStore()
    store.put(URI, batch(range(41, 46)))
    ingest_sample_object(URI, store=store, catalogue=catalogue, queue=MemoryLabellingQueue())
    assert catalogue.sample_of(THING, 43) == sample("r-43")
    assert catalogue.sample_of(THING, 46) is None
    assert catalogue.sample_of("edge-dev-2", 43) is None


def test_a_sample_kept_without_its_payload_is_none_and_one_kept_damaged_is_a_store_error(aws: None) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(SAMPLES_TABLE))
    catalogue = DynamoSampleCatalogue(client, SAMPLES_TABLE)
    key = {"pk": {"S": f"sample#{THING}"}, "sk": {"S": f"{1:012d}"}}
    client.put_item(TableName=SAMPLES_TABLE, Item={**key, "model_name": {"S": "digits"}})  # catalogued before
    assert catalogue.sample_of(THING, 1) is None
    client.put_item(TableName=SAMPLES_TABLE, Item={**key, "payload": {"S": '{"schema_version": 1}'}})
    with pytest.raises(StateStoreError, match="kept damaged"):
        catalogue.sample_of(THING, 1)
