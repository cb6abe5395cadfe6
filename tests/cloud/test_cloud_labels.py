"""Labels: recorded on catalogued samples, each counted once per model, bad objects set aside; both catalogues."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from edgeloop.cloud.artifacts import MemoryArtifactStore, S3ArtifactStore
from edgeloop.cloud.labels import ingest_label_object
from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue, MemorySampleCatalogue, SampleRef
from edgeloop.core.errors import NotFoundError
from edgeloop.core.labels import Label, LabelOutcome, label_key
from edgeloop.core.names import SAMPLES_TABLE
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.sample_payload import Sample
from functions import label_ingest

THING = "edge-dev-1"
BUCKET = "edgeloop-samples"


def ref(seq: int, model: str = "digits", thing: str = THING) -> SampleRef:
    sample = Sample(
        request_id=f"r-{seq}", model_name=model, model_version=3, sampler="low_confidence", label_index=7, label="7",
        confidence=0.41, margin=0.02, drifted=True, drift_score=0.31, features={"c": 4.25},
        privacy=AppliedPrivacy(PrivacyPolicy(drop=("a",)), None),
    )  # fmt: skip
    return SampleRef(thing, seq, f"s3://{BUCKET}/samples/{thing}/{seq}.json", sample)


def dynamo_catalogue() -> DynamoSampleCatalogue:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(SAMPLES_TABLE))
    return DynamoSampleCatalogue(client, SAMPLES_TABLE)


@pytest.fixture(params=["memory", "dynamodb"])
def catalogue(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemorySampleCatalogue()
    request.getfixturevalue("aws")
    return dynamo_catalogue()


def test_a_first_label_counts_once_and_a_relabel_keeps_the_newest_without_counting_again(catalogue: Any) -> None:
    for seq in (1, 2):
        catalogue.add(ref(seq))
    catalogue.add(ref(9, model="wine"))
    first = Label(THING, 1, 4, "annotator-1")
    assert catalogue.record_label(first) is LabelOutcome.NEW
    assert catalogue.record_label(first) is LabelOutcome.UNCHANGED
    assert catalogue.record_label(Label(THING, 1, 5, "annotator-2")) is LabelOutcome.CHANGED
    assert catalogue.record_label(Label(THING, 2, 0, "annotator-1")) is LabelOutcome.NEW
    assert catalogue.record_label(Label(THING, 9, 1, "annotator-1")) is LabelOutcome.NEW
    assert catalogue.label_of(THING, 1) == Label(THING, 1, 5, "annotator-2")
    assert catalogue.label_of(THING, 3) is None
    assert (catalogue.label_count("digits"), catalogue.label_count("wine"), catalogue.label_count("other")) == (2, 1, 0)
    assert catalogue.count() == 3, "label counters are not samples"


def test_a_label_for_a_sample_never_catalogued_is_refused(catalogue: Any) -> None:
    with pytest.raises(NotFoundError, match="edge-dev-1 seq 5 is not catalogued"):
        catalogue.record_label(Label(THING, 5, 1, "annotator-1"))
    assert catalogue.label_count("digits") == 0


def test_a_label_object_is_recorded_and_a_bad_one_set_aside_with_its_reason(catalogue: Any) -> None:
    store = MemoryArtifactStore()
    catalogue.add(ref(41))
    good = f"s3://{BUCKET}/{label_key(THING, 41)}"
    orphan = f"s3://{BUCKET}/{label_key(THING, 42)}"
    broken = f"s3://{BUCKET}/{label_key(THING, 43)}"
    store.put(good, json.dumps(Label(THING, 41, 3, "annotator-1").to_payload()).encode())
    store.put(orphan, json.dumps(Label(THING, 42, 3, "annotator-1").to_payload()).encode())
    store.put(broken, b"{half")

    reports = [ingest_label_object(uri, store=store, catalogue=catalogue) for uri in (good, orphan, broken, good)]

    assert [r.outcome for r in reports] == [LabelOutcome.NEW, None, None, LabelOutcome.UNCHANGED]
    assert "not catalogued" in (reports[1].rejected or "")
    assert "is not JSON" in (reports[2].rejected or "")
    assert store.get(f"s3://{BUCKET}/labels-rejected/{THING}/43.json") == b"{half", "kept, not dropped"
    assert store.get(f"s3://{BUCKET}/labels-rejected/{THING}/42.json") == store.get(orphan)
    assert catalogue.label_count("digits") == 1


def test_a_label_object_gone_since_its_notification_is_reported_not_retried_forever() -> None:
    report = ingest_label_object(
        f"s3://{BUCKET}/labels/{THING}/1.json", store=MemoryArtifactStore(), catalogue=MemorySampleCatalogue()
    )
    assert report.outcome is None
    assert "does not exist" in (report.rejected or "")


def test_the_handler_records_each_object_once_and_sets_bad_ones_aside(event: Any, aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    catalogue = dynamo_catalogue()
    for seq in (41, 42):
        catalogue.add(ref(seq))
    s3.put_object(Bucket=BUCKET, Key=label_key(THING, 41), Body=json.dumps(Label(THING, 41, 3, "gt").to_payload()))
    s3.put_object(Bucket=BUCKET, Key=label_key(THING, 42), Body=json.dumps(Label(THING, 42, 8, "gt").to_payload()))
    s3.put_object(Bucket=BUCKET, Key=label_key(THING, 99), Body=b"garbage")
    notification = event("labels_object_created")
    deps = {"store": S3ArtifactStore(s3), "catalogue": catalogue}

    first = label_ingest.handle(notification, deps)
    again = label_ingest.handle(notification, deps)  # S3 delivers at least once

    assert (first["new"], first["changed"], first["unchanged"]) == (2, 0, 0)
    assert (again["new"], again["unchanged"]) == (0, 2)
    assert list(first["rejected"]) == [f"s3://{BUCKET}/labels/{THING}/99.json"]
    assert s3.get_object(Bucket=BUCKET, Key=f"labels-rejected/{THING}/99.json")["Body"].read() == b"garbage"
    assert catalogue.label_count("digits") == 2
    assert catalogue.label_of(THING, 42) == Label(THING, 42, 8, "gt")


def test_two_first_labels_racing_on_dynamodb_count_the_sample_once(aws: None) -> None:
    other = dynamo_catalogue()
    other.add(ref(1))

    class Raced(DynamoSampleCatalogue):
        """Another labeller's first label lands between this one's read and its transaction."""

        def _first_label(self, label: Label, model_name: str) -> bool:
            assert other.record_label(Label(THING, 1, 9, "annotator-2")) is LabelOutcome.NEW
            return super()._first_label(label, model_name)

    raced = Raced(boto3.client("dynamodb", region_name="us-east-1"), SAMPLES_TABLE)
    assert raced.record_label(Label(THING, 1, 4, "annotator-1")) is LabelOutcome.CHANGED
    assert other.label_count("digits") == 1
    assert other.label_of(THING, 1) == Label(THING, 1, 4, "annotator-1"), "the later write wins"
