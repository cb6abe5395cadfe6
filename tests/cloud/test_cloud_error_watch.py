"""The labelled-error watch where labels land: its store under one contract (memory and DynamoDB), and which
first labels it folds in (the live version's only, each once, a lost race re-read and folded again)."""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest

from edgeloop.cloud.error_watch import (
    MAX_ATTEMPTS,
    DynamoErrorWatchStore,
    MemoryErrorWatchStore,
    watch_labels,
)
from edgeloop.cloud.retraining import DynamoRetrainingStateStore, MemoryRetrainingStateStore
from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.cloud.sample_ingest import MemorySampleCatalogue, SampleRef
from edgeloop.core.detectors import ErrorDetector, Observation
from edgeloop.core.error_watch import ErrorWatch, fold_labels
from edgeloop.core.errors import ConflictError
from edgeloop.core.labels import Label
from edgeloop.core.names import RETRAINING_TABLE
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
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
