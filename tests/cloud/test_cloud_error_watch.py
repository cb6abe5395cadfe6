"""The labelled-error watch where labels land: its store under one contract (memory and DynamoDB), and which
first labels it folds in (the live version's only, each once, a lost race re-read and folded again)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import boto3
import pytest
from support import FAKE_ONNX, manifest_for

from edgeloop.cloud.artifacts import MemoryArtifactStore
from edgeloop.cloud.error_watch import (
    MAX_ATTEMPTS,
    DynamoErrorWatchStore,
    ManifestReliabilities,
    MemoryErrorWatchStore,
    watch_labels,
)
from edgeloop.cloud.registry import MemoryRegistry
from edgeloop.cloud.retraining import DynamoRetrainingStateStore, MemoryRetrainingStateStore
from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.cloud.sample_ingest import MemorySampleCatalogue, SampleRef
from edgeloop.core.detectors import ErrorDetector, Observation
from edgeloop.core.error_watch import ErrorWatch, fold_labels
from edgeloop.core.errors import ConflictError
from edgeloop.core.labels import Label
from edgeloop.core.manifest import Reliability
from edgeloop.core.names import RETRAINING_TABLE
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.retraining import RetrainingPolicy, evaluate_tick, initial_record
from edgeloop.core.sample_payload import Sample

POLICY = ErrorDetector(warmup=20)


@pytest.fixture(params=["memory", "dynamodb"])
def watches(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryErrorWatchStore()
    request.getfixturevalue("aws")
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(RETRAINING_TABLE))
    return DynamoErrorWatchStore(client, RETRAINING_TABLE)


def test_a_watch_is_stored_only_over_the_revision_it_was_read_at(watches: Any) -> None:
    assert watches.get("digits") is None
    first, _ = fold_labels(None, "digits", 3, [Observation(False)] * 4, POLICY)
    watches.put(first)
    assert watches.get("digits") == first
    with pytest.raises(ConflictError, match="changed since revision 0"):
        watches.put(first)  # a second ingest that also read "nothing stored"
    rng = random.Random(3)
    errors = [rng.random() < 0.05 for _ in range(40)] + [rng.random() < 0.9 for _ in range(300)]
    second, alarm = fold_labels(first, "digits", 3, [Observation(e) for e in errors], POLICY)
    assert alarm is not None
    watches.put(second)
    assert watches.get("digits") == second, "the alarm is stored with the state"
    with pytest.raises(ConflictError):
        watches.put(second)
    assert watches.get("wine") is None


def test_the_watch_item_sits_beside_the_trigger_record_without_touching_it(aws: None) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(RETRAINING_TABLE))
    states, watches = (
        DynamoRetrainingStateStore(client, RETRAINING_TABLE),
        DynamoErrorWatchStore(client, RETRAINING_TABLE),
    )
    record = evaluate_tick(
        initial_record("digits"), RetrainingPolicy(), now=1, label_total=0, live_version=3, drift_score=None
    ).record
    assert record is not None
    states.put(record)
    watch, _ = fold_labels(None, "digits", 3, [Observation(False)], POLICY)
    watches.put(watch)
    assert (states.get("digits"), watches.get("digits")) == (record, watch)


def trigger_ticked(states: Any, live_version: int) -> None:
    """The trigger evaluated a tick and stored the live version in its record."""
    tick = evaluate_tick(
        initial_record("digits"), RetrainingPolicy(), now=1, label_total=0, live_version=live_version, drift_score=None
    )
    assert tick.record is not None
    states.put(tick.record)


def sample(version: int, answer: int, sampler: str = "random") -> Sample:
    return Sample(
        request_id="r-1", model_name="digits", model_version=version, sampler=sampler, label_index=answer,
        label=str(answer), confidence=0.9, margin=0.5, drifted=False, drift_score=None, features={},
        privacy=AppliedPrivacy(PrivacyPolicy(), None),
    )  # fmt: skip


def catalogued(samples: list[Sample]) -> MemorySampleCatalogue:
    catalogue = MemorySampleCatalogue()
    for seq, s in enumerate(samples):
        catalogue.add(SampleRef("edge-dev-1", seq, f"s3://b/samples/edge-dev-1/{seq}.json", s))
    return catalogue


def test_only_first_labels_of_the_live_version_are_watched_each_as_its_sample_answered() -> None:
    samples = [sample(3, 1), sample(3, 2), sample(2, 1), sample(3, 1, sampler="low_confidence")]
    catalogue, live, watches = catalogued(samples), MemoryRetrainingStateStore(), MemoryErrorWatchStore()
    labels = [Label("edge-dev-1", seq, 1, "gt") for seq in (3, 1, 0, 2, 7)]  # late and out of order; 7 unknown
    report = watch_labels(labels, catalogue=catalogue, live=live, watches=watches, policy=POLICY)
    assert (report.observed, report.ignored, watches.get("digits")) == (0, 5, None), "no version is live yet"
    trigger_ticked(live, 3)
    report = watch_labels(labels, catalogue=catalogue, live=live, watches=watches, policy=POLICY)
    assert (report.observed, report.ignored, report.lost, report.alarms) == (3, 2, 0, [])
    watch = watches.get("digits")
    assert watch is not None
    assert watch.version == 3
    state = watch.state
    assert (state.reference_trials, state.reference_errors, state.skipped) == (2, 1, 1), "seq 1 was wrong"


def test_a_lost_race_is_read_again_and_folded_once() -> None:
    catalogue, live = catalogued([sample(3, 1)] * 4), MemoryRetrainingStateStore()
    trigger_ticked(live, 3)

    class Raced(MemoryErrorWatchStore):
        """Another ingest stores its batch between this one's read and its write, `races` times."""

        def __init__(self, races: int) -> None:
            super().__init__()
            self.races = races

        def put(self, watch: ErrorWatch) -> None:
            if self.races:
                self.races -= 1
                other, _ = fold_labels(self.get("digits"), "digits", 3, [Observation(False)], POLICY)
                super().put(other)
            super().put(watch)

    raced = Raced(races=2)
    report = watch_labels([Label("edge-dev-1", s, 1, "gt") for s in range(4)], catalogue=catalogue,
                          live=live, watches=raced, policy=POLICY)  # fmt: skip
    assert (report.observed, report.lost) == (4, 0)
    stored = raced.get("digits")
    assert stored is not None
    assert stored.state.reference_trials == 4 + 2, "two other batches, then this one once"
    hopeless = Raced(races=MAX_ATTEMPTS)
    report = watch_labels([Label("edge-dev-1", 0, 1, "gt")], catalogue=catalogue, live=live,
                          watches=hopeless, policy=POLICY)  # fmt: skip
    assert (report.observed, report.lost) == (0, 1)


TABLE = Reliability((0.9,), (150, 250), (45, 2))
"""A version wrong 30% of the time below 0.9 confidence and under 1% above."""


class Tables:
    """Reliabilities fake: the table of every version, and how often it was asked."""

    def __init__(self, table: Reliability | None) -> None:
        self.table, self.asked = table, 0

    def __call__(self, model_name: str, version: int) -> Reliability | None:
        self.asked += 1
        return self.table


def confident_samples(version: int, n: int, confident_error: float, rng: random.Random) -> list[tuple[Sample, int]]:
    """(sample, true label) pairs: half random at 0.95 confidence wrong at confident_error, half hard examples at
    0.6 wrong 30% of the time."""
    out = []
    for i in range(n):
        hard = i % 2 == 0
        wrong = rng.random() < (0.3 if hard else confident_error)
        s = replace(
            sample(version, 1, sampler="low_confidence" if hard else "random"), confidence=0.6 if hard else 0.95
        )
        out.append((s, 2 if wrong else 1))
    return out


def test_with_reliabilities_every_labelled_sample_is_judged_by_its_band_and_a_confident_rise_alarms() -> None:
    rng = random.Random(6)
    steady, risen = confident_samples(3, 200, 0.005, rng), confident_samples(3, 120, 0.4, rng)
    catalogue = catalogued([s for s, _ in steady + risen])
    live, watches, tables = MemoryRetrainingStateStore(), MemoryErrorWatchStore(), Tables(TABLE)
    trigger_ticked(live, 3)
    labels = [Label("edge-dev-1", seq, truth, "gt") for seq, (_, truth) in enumerate(steady + risen)]
    report = watch_labels(labels[:200], catalogue=catalogue, live=live, watches=watches, policy=POLICY,
                          reliabilities=tables)  # fmt: skip
    watch = watches.get("digits")
    assert watch is not None
    assert watch.calibrated is not None
    assert (report.alarms, tables.asked) == ([], 1)
    assert watch.calibrated.monitored == 100  # hard examples in the lowest band are skipped, random ones judged
    report = watch_labels(labels[200:], catalogue=catalogue, live=live, watches=watches, policy=POLICY,
                          reliabilities=tables)  # fmt: skip
    assert tables.asked == 1, "the table is read when the watch starts, not per batch"
    [alarm] = report.alarms
    assert alarm.startswith("digits v3#")
    assert "labelled error rate of version 3 rose" in alarm
    watch = watches.get("digits")
    assert watch is not None
    assert watch.calibrated is not None
    assert watch.calibrated.alarms >= 1


def test_without_a_table_the_watch_runs_as_before_and_asks_again_next_batch() -> None:
    rng = random.Random(7)
    pairs = confident_samples(3, 40, 0.01, rng)
    catalogue, live, watches, tables = (
        catalogued([s for s, _ in pairs]),
        MemoryRetrainingStateStore(),
        MemoryErrorWatchStore(),
        Tables(None),
    )
    trigger_ticked(live, 3)
    labels = [Label("edge-dev-1", seq, truth, "gt") for seq, (_, truth) in enumerate(pairs)]
    for batch in (labels[:20], labels[20:]):
        watch_labels(batch, catalogue=catalogue, live=live, watches=watches, policy=POLICY, reliabilities=tables)
    watch = watches.get("digits")
    assert watch is not None
    assert watch.calibrated is None
    assert tables.asked == 2  # the adapter, not the watch, remembers what it could not read


def test_manifest_reliabilities_read_the_registry_records_manifest_once_and_survive_a_missing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, store = MemoryRegistry(), MemoryArtifactStore()
    registry.ensure_group("digits")
    manifest = manifest_for(FAKE_ONNX)
    with_table = replace(manifest, baseline=replace(manifest.baseline, holdout_rows=400, reliability=TABLE))
    for job, m in (("job-1", manifest), ("job-2", with_table)):
        uri = f"s3://edgeloop-artifacts/models/digits/{job}/manifest.json"
        store.put(uri, m.to_json().encode())
        registry.register(m, training_job=job, artifact_uri=uri.replace("manifest.json", "model.onnx"),
                          manifest_uri=uri, approval=ApprovalStatus.APPROVED)  # fmt: skip

    class Counting(MemoryArtifactStore):
        reads = 0

        def get(self, uri: str, *, max_bytes: int = 1 << 20) -> bytes:
            Counting.reads += 1
            return store.get(uri, max_bytes=max_bytes)

    tables = ManifestReliabilities(registry, Counting())
    assert tables("digits", 2) == TABLE
    assert tables("digits", 2) == TABLE
    assert Counting.reads == 1
    assert tables("digits", 1) is None  # an older manifest: no table
    with caplog.at_level("WARNING"):
        assert tables("digits", 9) is None  # no such version: logged, watched without a table
    assert "digits v9: no reliability table" in caplog.text
