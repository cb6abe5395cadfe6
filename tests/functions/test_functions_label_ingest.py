"""The label_ingest Lambda, then the retraining_trigger: late, out-of-order labels of the live version feed the
labelled-error detector, and an abrupt rise in errors (not a steady stream) retrains once.

The detector's and the trigger's state, the rollouts and fleet health are DynamoDB on moto; the label objects
and the catalogue are memory fakes in the long streams (both are under moto in tests/cloud and below)."""

from __future__ import annotations

import json
import random
from typing import Any

import boto3
import pytest

from edgeloop.cloud.artifacts import ArtifactStore, MemoryArtifactStore, S3ArtifactStore
from edgeloop.cloud.error_watch import DynamoErrorWatchStore
from edgeloop.cloud.retraining import DynamoRetrainingStateStore, MemoryEventBus
from edgeloop.cloud.retraining_table import DynamoRetrainingTable
from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore, table_definition
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue, MemorySampleCatalogue, SampleCatalogue, SampleRef
from edgeloop.core.error_watch import CLOUD_DETECTOR
from edgeloop.core.labels import Label, label_key
from edgeloop.core.manifest import Reliability
from edgeloop.core.names import FLEET_HEALTH_TABLE, RETRAINING_TABLE, ROLLOUTS_TABLE, SAMPLES_TABLE
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.retraining import RetrainingPolicy
from edgeloop.core.sample_payload import Sample
from edgeloop.core.settings import ENV_RETRAINING_TABLE, ENV_SAMPLES_TABLE, TriggerSettings
from functions import label_ingest, retraining_trigger

REGION = "us-east-1"
BUCKET = "edgeloop-samples"
THING = "edge-dev-1"
POLICY = RetrainingPolicy(min_new_labels=5000, drift_bound=0.2, drift_for_s=3600, min_labels_on_drift=50)
"""Labels alone never reach min_new_labels here and no device reports drift: only the detector can trigger."""
LIVE = 3
CLASSES = 4


class Cloud:
    """The samples bucket, the catalogue, rollout and retraining tables on moto, and the two handlers' ports."""

    def __init__(self, seed: int, *, moto_everywhere: bool = False) -> None:
        self.rng = random.Random(seed)
        db = boto3.client("dynamodb", region_name=REGION)
        for table in (SAMPLES_TABLE, RETRAINING_TABLE, ROLLOUTS_TABLE, FLEET_HEALTH_TABLE):
            db.create_table(**table_definition(table))
        self.store: ArtifactStore = MemoryArtifactStore()
        self.catalogue: SampleCatalogue = MemorySampleCatalogue()
        if moto_everywhere:
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=BUCKET)
            self.store, self.catalogue = S3ArtifactStore(s3), DynamoSampleCatalogue(db, SAMPLES_TABLE)
        rollouts = DynamoRolloutStore(db, ROLLOUTS_TABLE)
        rollouts.set_last_known_good("digits", LIVE)
        self.watches = DynamoErrorWatchStore(db, RETRAINING_TABLE)
        self.states = DynamoRetrainingStateStore(db, RETRAINING_TABLE)
        self.bus = MemoryEventBus()
        self.ingest = {
            "store": self.store,
            "catalogue": self.catalogue,
            "live": DynamoRetrainingTable(db, RETRAINING_TABLE),
            "watches": self.watches,
        }
        self.trigger = {
            "settings": TriggerSettings("digits", POLICY),
            "states": self.states,
            "catalogue": self.catalogue,
            "rollouts": rollouts,
            "health": DynamoFleetHealthStore(db, FLEET_HEALTH_TABLE),
            "bus": self.bus,
            "alarms": DynamoRetrainingTable(db, RETRAINING_TABLE),
        }
        self.truth: dict[int, int] = {}
        assert self.tick(0)["status"] == "waiting", "the first tick records the live version"

    def serve(self, seq: int, error_rate: float, version: int = LIVE) -> None:
        """The device answers request seq and samples it (a fifth chosen as hard examples, wrong more often)."""
        hard = self.rng.random() < 0.2
        truth = self.rng.randrange(CLASSES)
        wrong = self.rng.random() < (0.7 if hard else error_rate)
        answer = (truth + 1 + self.rng.randrange(CLASSES - 1)) % CLASSES if wrong else truth
        sample = Sample(
            request_id=f"r-{seq}", model_name="digits", model_version=version,
            sampler="low_confidence" if hard else "random", label_index=answer, label=str(answer), confidence=0.6,
            margin=0.2, drifted=False, drift_score=None, features={}, privacy=AppliedPrivacy(PrivacyPolicy(), None),
        )  # fmt: skip
        self.catalogue.add(SampleRef(THING, seq, f"s3://{BUCKET}/samples/{THING}/{seq}.json", sample))
        self.truth[seq] = truth

    def labels_arrive(self, seqs: list[int]) -> dict[str, Any]:
        """The labelling tool writes these label objects; S3 notifies the ingest of them in one event."""
        for seq in seqs:
            body = json.dumps(Label(THING, seq, self.truth[seq], "annotator-1").to_payload())
            self.store.put(f"s3://{BUCKET}/{label_key(THING, seq)}", body.encode())
        event = {
            "Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": label_key(THING, s)}}} for s in seqs]
        }
        return label_ingest.handle(event, self.ingest)

    def tick(self, minute: int) -> dict[str, Any]:
        """The trigger's schedule fires."""
        event = {"id": f"tick-{minute}", "time": f"2026-12-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z"}
        return retraining_trigger.handle(
            {**event, "source": "aws.events", "detail-type": "Scheduled Event"}, self.trigger
        )


def run(cloud: Cloud, rates: list[float], *, delay: int = 120, batch: int = 30) -> list[dict[str, Any]]:
    """Serve one sample per step at rates[step]; each label lands 0..delay steps later, the labels of each
    `batch` steps arriving together in shuffled order; the trigger ticks after each arrival. Its outcomes."""
    arrivals: dict[int, list[int]] = {}
    for seq, rate in enumerate(rates):
        cloud.serve(seq, rate)
        arrivals.setdefault(1 + (seq + cloud.rng.randrange(delay)) // batch, []).append(seq)
    outcomes = []
    for window in sorted(arrivals):  # windows from 1: minute 0 was the first tick
        seqs = arrivals[window]
        cloud.rng.shuffle(seqs)
        report = cloud.labels_arrive(seqs)
        assert report["new"] == len(seqs)
        assert report["watched"]["lost"] == 0
        outcomes.append(cloud.tick(window))
    return outcomes


@pytest.mark.parametrize("seed", range(4))
def test_an_abrupt_rise_in_errors_among_late_labels_triggers_one_retrain_naming_the_alarm(aws: None, seed: int) -> None:
    cloud = Cloud(seed)
    outcomes = run(cloud, [0.1] * 400 + [0.6] * 300)
    triggered = [o for o in outcomes if o["status"] == "triggered"]
    assert len(triggered) == 1, [o["reason"] for o in outcomes]
    assert "labelled error rate of version 3 rose" in triggered[0]["reason"]
    assert triggered[0]["parentVersion"] == LIVE
    [entry] = cloud.bus.sent
    assert "labelled error rate" in json.loads(entry["Detail"])["reason"]
    watch, record = cloud.watches.get("digits"), cloud.states.get("digits")
    assert watch is not None
    assert record is not None
    assert watch.alarm is not None
    assert watch.alarm.since_sample > CLOUD_DETECTOR.warmup, "the run that crossed began after the warm-up"
    assert record.handled_alarm is not None, "the alarm is cleared once the retrain is triggered"


@pytest.mark.parametrize("seed", range(6))
def test_a_stationary_stream_of_late_labels_triggers_nothing(aws: None, seed: int) -> None:
    cloud = Cloud(seed)
    outcomes = run(cloud, [0.1] * 700)
    assert all(o["status"] == "waiting" for o in outcomes), [o["reason"] for o in outcomes]
    assert cloud.bus.sent == []
    watch = cloud.watches.get("digits")
    assert watch is not None
    assert watch.alarm is None
    assert watch.state.skipped > 0, "hard-example samples are not watched (use='unbiased')"
    assert CLOUD_DETECTOR.warmup + watch.state.monitored + watch.state.skipped == 700, "each label once"


def test_labels_of_another_version_than_the_live_one_are_not_watched(aws: None) -> None:
    cloud = Cloud(4, moto_everywhere=True)
    for seq in range(10):
        cloud.serve(seq, 0.9, version=LIVE + 1)  # a canary's samples: not the version the fleet runs
    report = cloud.labels_arrive(list(range(10)))
    assert report["watched"] == {"observed": 0, "ignored": 10, "lost": 0}
    assert cloud.watches.get("digits") is None


def test_the_handler_builds_its_ports_from_the_environment(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {ENV_SAMPLES_TABLE: "s", ENV_RETRAINING_TABLE: "r"}.items():
        monkeypatch.setenv(name, value)
    label_ingest._deps.cache_clear()
    try:
        deps = label_ingest._deps()
    finally:
        label_ingest._deps.cache_clear()
    assert set(deps) == {"store", "catalogue", "live", "watches", "reliabilities"}


class Tables:
    """The registry's manifests, as label_ingest reads them: every version has this reliability table."""

    def __init__(self, table: Reliability) -> None:
        self.table = table

    def __call__(self, model_name: str, version: int) -> Reliability | None:
        return self.table


@pytest.mark.parametrize("seed", range(3))
def test_a_rise_among_confident_answers_retrains_through_the_calibrated_detector(aws: None, seed: int) -> None:
    """Most errors sit in the hard examples (0.6 confidence) and stay there; after the change a tenth of the confident
    answers go wrong. The overall error rate moves little, the confident band's by ten times: the calibrated
    detector alarms and the trigger retrains once."""
    cloud = Cloud(seed)
    cloud.ingest["reliabilities"] = Tables(Reliability((0.9,), (300, 700), (120, 7)))
    arrivals: list[int] = []
    outcomes = []
    for seq in range(900):
        hard = seq % 3 == 0
        wrong = cloud.rng.random() < (0.4 if hard else (0.01 if seq < 400 else 0.12))
        truth = cloud.rng.randrange(CLASSES)
        answer = (truth + 1) % CLASSES if wrong else truth
        sample = Sample(
            request_id=f"r-{seq}", model_name="digits", model_version=LIVE,
            sampler="low_confidence" if hard else "random", label_index=answer, label=str(answer),
            confidence=0.6 if hard else 0.95, margin=0.3, drifted=False, drift_score=None, features={},
            privacy=AppliedPrivacy(PrivacyPolicy(), None),
        )  # fmt: skip
        cloud.catalogue.add(SampleRef(THING, seq, f"s3://{BUCKET}/samples/{THING}/{seq}.json", sample))
        cloud.truth[seq] = truth
        arrivals.append(seq)
        if len(arrivals) == 30:
            cloud.rng.shuffle(arrivals)
            assert cloud.labels_arrive(arrivals)["watched"]["lost"] == 0
            outcomes.append(cloud.tick(1 + seq // 30))
            arrivals = []
    triggered = [o for o in outcomes if o["status"] == "triggered"]
    assert len(triggered) == 1, [o["reason"] for o in outcomes]
    watch = cloud.watches.get("digits")
    assert watch is not None
    assert watch.calibrated is not None
    assert watch.calibrated.alarms >= 1
    assert watch.alarm is not None
    assert watch.alarm.at_sample > 400 * 2 // 3 - 1, "no alarm before the change"
