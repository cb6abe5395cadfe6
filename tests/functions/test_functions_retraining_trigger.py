"""The retraining_trigger Lambda under moto: labels and drift from DynamoDB, one Retraining Requested event out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from edgeloop.cloud.retraining import DynamoRetrainingStateStore, EventBridgeBus
from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore, table_definition
from edgeloop.cloud.sample_ingest import DynamoSampleCatalogue, SampleRef
from edgeloop.core.errors import ValidationError
from edgeloop.core.events import EDGELOOP_SOURCE, RETRAINING_REQUESTED
from edgeloop.core.fleet_health import Contribution, DeviceSnapshot
from edgeloop.core.labels import Label
from edgeloop.core.names import FLEET_HEALTH_TABLE, RETRAINING_TABLE, ROLLOUTS_TABLE, SAMPLES_TABLE
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.retraining import RetrainingPolicy, TriggerRecord
from edgeloop.core.sample_payload import Sample
from edgeloop.core.settings import TriggerSettings
from edgeloop.core.training_jobs import parse_training_request
from functions import retraining_trigger

POLICY = RetrainingPolicy(
    min_new_labels=20, drift_bound=0.2, drift_for_s=3600, min_labels_on_drift=5, cooldown_s=6 * 3600
)
REGION = "us-east-1"


class Cloud:
    """The trigger's tables and bus on moto, and the helpers that put the fleet into a given state."""

    def __init__(self) -> None:
        db = boto3.client("dynamodb", region_name=REGION)
        for table in (SAMPLES_TABLE, RETRAINING_TABLE, ROLLOUTS_TABLE, FLEET_HEALTH_TABLE):
            db.create_table(**table_definition(table))
        self.catalogue = DynamoSampleCatalogue(db, SAMPLES_TABLE)
        self.rollouts = DynamoRolloutStore(db, ROLLOUTS_TABLE)
        self.health = DynamoFleetHealthStore(db, FLEET_HEALTH_TABLE)
        self.states = DynamoRetrainingStateStore(db, RETRAINING_TABLE)
        events, self.sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
        self.url = self.sqs.create_queue(QueueName="launcher")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # The training launcher's rule (infra/stacks: source, detail-type and this model only), into a queue.
        pattern = {
            "source": [EDGELOOP_SOURCE],
            "detail-type": [RETRAINING_REQUESTED],
            "detail": {"model_name": ["digits"]},
        }
        events.put_rule(Name="launcher", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="launcher", Targets=[{"Id": "launcher", "Arn": arn}])
        self.deps: dict[str, Any] = {
            "settings": TriggerSettings("digits", POLICY),
            "states": self.states,
            "catalogue": self.catalogue,
            "rollouts": self.rollouts,
            "health": self.health,
            "bus": EventBridgeBus(events, "default"),
        }
        self.labelled = 0
        self.shadow = 0

    def label(self, count: int) -> None:
        """Catalogue and label `count` more samples of the model."""
        for seq in range(self.labelled, self.labelled + count):
            sample = Sample(
                request_id=f"r-{seq}", model_name="digits", model_version=3, sampler="random", label_index=1,
                label="1", confidence=0.9, margin=0.5, drifted=False, drift_score=None, features={},
                privacy=AppliedPrivacy(PrivacyPolicy(), None),
            )  # fmt: skip
            self.catalogue.add(SampleRef("edge-dev-1", seq, f"s3://b/samples/edge-dev-1/{seq}.json", sample))
            self.catalogue.record_label(Label("edge-dev-1", seq, 2, "annotator-1"))
        self.labelled += count

    def drift(self, version: int, score: float) -> None:
        """The one device on `version` reports `score` (its level replaces the one it reported before)."""
        thing = f"edge-v{version}"
        previous = self.health.device(thing) or DeviceSnapshot(thing, 0)
        self.shadow += 1
        counted = previous.drift is not None
        increments = {"drift_sum": score - (previous.drift or 0.0), "drift_count": 0 if counted else 1}
        snapshot = DeviceSnapshot(thing, 0, self.shadow, model_version=version, drift=score)
        assert self.health.record("digits", Contribution(snapshot, {version: increments}), previous, {})

    def launches(self) -> list[dict[str, Any]]:
        """The Retraining Requested events the launcher's rule delivered so far."""
        out = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            out += [json.loads(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages],
            )
        return out


@pytest.fixture
def cloud(aws: None) -> Cloud:
    cloud = Cloud()
    cloud.rollouts.set_last_known_good("digits", 3)
    return cloud


@pytest.fixture
def tick(event: Any) -> Any:
    """The schedule's event `minutes` after its first tick (a new id each time, as EventBridge sends)."""
    base = event("retraining_schedule")
    start = datetime.fromisoformat(base["time"])

    def at(minutes: float) -> dict[str, Any]:
        when = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {**base, "id": f"tick-{minutes}", "time": when}

    return at


def test_enough_new_labels_trigger_once_with_the_live_version_as_parent(cloud: Cloud, tick: Any) -> None:
    cloud.label(19)
    assert retraining_trigger.handle(tick(0), cloud.deps)["status"] == "waiting"
    cloud.label(1)
    fired = retraining_trigger.handle(tick(15), cloud.deps)
    again = retraining_trigger.handle(tick(15), cloud.deps)  # EventBridge retries the same tick
    later = retraining_trigger.handle(tick(30), cloud.deps)

    assert (fired["status"], fired["parentVersion"]) == ("triggered", 3)
    assert "20 new labelled examples" in fired["reason"]
    assert (again["status"], later["status"]) == ("already-evaluated", "waiting")
    [launch] = cloud.launches()
    assert launch["detail"]["request_id"] == fired["requestId"]
    request = parse_training_request(launch, default_model="digits", request_id="lambda-req")
    assert (request.model_name, request.parent_version, request.trigger) == ("digits", 3, "retraining")
    stored = cloud.states.get("digits")
    assert stored is not None
    assert stored.pending is None
    assert (stored.state.labels_since_training, stored.labels_counted) == (0, 20)


def test_fleet_drift_held_above_the_bound_long_enough_triggers(cloud: Cloud, tick: Any) -> None:
    cloud.label(5)
    cloud.drift(3, 0.35)
    cloud.drift(2, 0.9)  # another version's drift is not the live version's
    assert retraining_trigger.handle(tick(0), cloud.deps)["status"] == "waiting"
    cloud.drift(3, 0.3)
    held = retraining_trigger.handle(tick(45), cloud.deps)
    fired = retraining_trigger.handle(tick(60), cloud.deps)

    assert "drift high for 2700 of 3600 s" in held["reason"]
    assert fired["status"] == "triggered"
    assert "fleet drift 0.300 > 0.2 for 3600 s" in fired["reason"]
    assert [e["detail"]["parent_version"] for e in cloud.launches()] == [3]


def test_drift_that_falls_back_restarts_the_clock(cloud: Cloud, tick: Any) -> None:
    cloud.label(5)
    cloud.drift(3, 0.35)
    retraining_trigger.handle(tick(0), cloud.deps)
    cloud.drift(3, 0.1)
    retraining_trigger.handle(tick(30), cloud.deps)
    cloud.drift(3, 0.35)
    assert retraining_trigger.handle(tick(60), cloud.deps)["status"] == "waiting"
    assert cloud.launches() == []


def test_no_second_trigger_during_the_cooldown(cloud: Cloud, tick: Any) -> None:
    cloud.label(20)
    assert retraining_trigger.handle(tick(0), cloud.deps)["status"] == "triggered"
    cloud.label(40)
    cooling = retraining_trigger.handle(tick(60), cloud.deps)
    after = retraining_trigger.handle(tick(6 * 60), cloud.deps)

    assert cooling["status"] == "waiting"
    assert "cooling down" in cooling["reason"]
    assert after["status"] == "triggered"
    assert "40 new labelled examples" in after["reason"]
    assert len({e["detail"]["request_id"] for e in cloud.launches()}) == 2


class StaleFirstRead:
    """The trigger state as an invocation saw it that read before another one stored (then the real table)."""

    def __init__(self, states: DynamoRetrainingStateStore, seen: TriggerRecord | None) -> None:
        self._states, self._seen, self._read = states, seen, False

    def get(self, model_name: str) -> TriggerRecord | None:
        if not self._read:
            self._read = True
            return self._seen
        return self._states.get(model_name)

    def put(self, record: TriggerRecord) -> None:
        self._states.put(record)


def test_concurrent_invocations_of_one_tick_trigger_once(cloud: Cloud, tick: Any) -> None:
    cloud.label(25)
    seen_by_both = cloud.states.get("digits")
    first = retraining_trigger.handle(tick(0), cloud.deps)
    second = retraining_trigger.handle(tick(0), {**cloud.deps, "states": StaleFirstRead(cloud.states, seen_by_both)})

    assert (first["status"], second["status"]) == ("triggered", "superseded")
    assert len(cloud.launches()) == 1
    stored = cloud.states.get("digits")
    assert stored is not None
    assert stored.revision == 2, "decided (1), then recorded sent (2); the loser wrote nothing"


def test_before_any_rollout_completed_labels_trigger_a_training_without_parent(aws: None, tick: Any) -> None:
    cloud = Cloud()  # no last-known-good version: no drift to read, no lineage parent
    cloud.label(20)
    result = retraining_trigger.handle(tick(0), cloud.deps)
    assert (result["status"], result["parentVersion"]) == ("triggered", None)
    [launch] = cloud.launches()
    assert "parent_version" not in launch["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.update(source="edgeloop"), "expected source 'aws.events'"),
        (lambda e: e.pop("time"), "event.time: is required"),
        (lambda e: e.update(time="soon"), "event.time"),
        (lambda e: e.pop("id"), "event.id"),
    ],
    ids=["not-a-schedule", "no-time", "bad-time", "no-id"],
)
def test_a_bad_event_is_refused_by_name_and_changes_nothing(cloud: Cloud, event: Any, change: Any, field: str) -> None:
    bad = event("retraining_schedule")
    change(bad)
    with pytest.raises(ValidationError) as caught:
        retraining_trigger.handle(bad, cloud.deps)
    assert field in str(caught.value)
    assert cloud.states.get("digits") is None


def test_the_handler_builds_its_ports_from_the_environment(monkeypatch: pytest.MonkeyPatch, aws: None) -> None:
    for key, value in TriggerSettings("digits", POLICY).to_env().items():
        monkeypatch.setenv(key, value)
    retraining_trigger._deps.cache_clear()
    try:
        deps = retraining_trigger._deps()
    finally:
        retraining_trigger._deps.cache_clear()
    assert deps["settings"].policy == POLICY
    assert set(deps) == {"settings", "states", "catalogue", "rollouts", "health", "bus", "alarms"}
