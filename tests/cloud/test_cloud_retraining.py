"""The trigger's ports (state store, event bus) under one contract each, and the tick's send-once rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import boto3
import pytest

from edgeloop.cloud.retraining import (
    DynamoRetrainingStateStore,
    EventBridgeBus,
    MemoryEventBus,
    MemoryRetrainingStateStore,
    run_trigger,
)
from edgeloop.cloud.rollout_stores import MemoryFleetHealthStore, MemoryRolloutStore, table_definition
from edgeloop.cloud.sample_ingest import MemorySampleCatalogue
from edgeloop.core.errors import ConflictError, StateStoreError
from edgeloop.core.events import EDGELOOP_SOURCE, RETRAINING_REQUESTED
from edgeloop.core.names import RETRAINING_TABLE
from edgeloop.core.retraining import RetrainingPolicy, evaluate_tick, initial_record

POLICY = RetrainingPolicy(min_new_labels=2, drift_bound=0.2, drift_for_s=600, min_labels_on_drift=1, cooldown_s=3600)


@pytest.fixture(params=["memory", "dynamodb"])
def states(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryRetrainingStateStore()
    request.getfixturevalue("aws")
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(RETRAINING_TABLE))
    return DynamoRetrainingStateStore(client, RETRAINING_TABLE)


def test_a_record_is_stored_only_over_the_revision_it_was_read_at(states: Any) -> None:
    assert states.get("digits") is None
    first = evaluate_tick(initial_record("digits"), POLICY, now=10, label_total=5, live_version=3, drift_score=0.1)
    assert first.record is not None
    assert first.entry is not None
    states.put(first.record)
    assert states.get("digits") == first.record
    with pytest.raises(ConflictError, match="changed since revision 0"):
        states.put(first.record)  # a second writer that also read "nothing stored"
    later = replace(first.record, pending=None, revision=2)
    states.put(later)
    with pytest.raises(ConflictError):
        states.put(replace(later, evaluated_at=99.0))  # same revision again: lost race
    with pytest.raises(ConflictError):
        states.put(replace(later, revision=4))  # skipping a revision is no better
    assert states.get("digits") == later
    assert states.get("wine") is None


BusReader = Callable[[], list[Mapping[str, Any]]]


@pytest.fixture(params=["memory", "eventbridge"])
def bus(request: pytest.FixtureRequest) -> tuple[Any, BusReader]:
    """A bus and how to read back what reached it: the list, or an EventBridge rule's SQS target."""
    if request.param == "memory":
        memory = MemoryEventBus()
        return memory, lambda: [{**e, "Detail": json.loads(e["Detail"])} for e in memory.sent]
    request.getfixturevalue("aws")
    events, sqs = boto3.client("events", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="retraining")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": [EDGELOOP_SOURCE], "detail-type": [RETRAINING_REQUESTED]}
    events.put_rule(Name="retraining", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="retraining", Targets=[{"Id": "q", "Arn": arn}])

    def read() -> list[Mapping[str, Any]]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        bodies = [json.loads(m["Body"]) for m in messages]
        return [{"Source": b["source"], "DetailType": b["detail-type"], "Detail": b["detail"]} for b in bodies]

    return EventBridgeBus(events, "default"), read


def test_what_is_put_reaches_the_bus_as_the_launcher_sees_it(bus: tuple[Any, BusReader]) -> None:
    port, read = bus
    tick = evaluate_tick(initial_record("digits"), POLICY, now=10, label_total=5, live_version=3, drift_score=None)
    assert tick.entry is not None
    port.put([tick.entry])
    [got] = read()
    assert (got["Source"], got["DetailType"]) == (EDGELOOP_SOURCE, RETRAINING_REQUESTED)
    assert got["Detail"] == {"model_name": "digits", "parent_version": 3, "reason": tick.decision.reason,
                             "request_id": "retrain-digits-10"}  # fmt: skip


def test_a_refused_entry_raises_so_the_tick_retries() -> None:
    class Refusing:
        def put_events(self, Entries: Sequence[Any]) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}

    with pytest.raises(StateStoreError, match="refused 1 of 1"):
        EventBridgeBus(Refusing(), "default").put([{"Source": "edgeloop", "DetailType": "x", "Detail": "{}"}])


class FlakyBus(MemoryEventBus):
    """Refuses its first put, like an EventBridge outage between the state write and the event."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def put(self, entries: Sequence[Mapping[str, Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise StateStoreError("EventBridge is down")
        super().put(entries)


def test_a_request_decided_but_not_sent_is_sent_by_the_next_invocation_under_the_same_id() -> None:
    catalogue, rollouts, states, bus = (
        MemorySampleCatalogue(),
        MemoryRolloutStore(),
        MemoryRetrainingStateStore(),
        FlakyBus(),
    )
    rollouts.set_last_known_good("digits", 3)
    catalogue.label_count = lambda model: 5  # type: ignore[method-assign]
    ports = {"states": states, "catalogue": catalogue, "rollouts": rollouts, "health": MemoryFleetHealthStore()}

    with pytest.raises(StateStoreError, match="down"):
        run_trigger("digits", POLICY, 100, bus=bus, **ports)
    stored = states.get("digits")
    assert stored is not None
    assert stored.pending is not None, "decided, and kept until the bus takes it"
    retried = run_trigger("digits", POLICY, 100, bus=bus, **ports)  # the Lambda retry of the same tick

    assert (retried.status, retried.resent_request_id) == ("already-evaluated", "retrain-digits-100")
    assert [json.loads(e["Detail"])["request_id"] for e in bus.sent] == ["retrain-digits-100"]
    assert states.get("digits").pending is None  # type: ignore[union-attr]
    assert run_trigger("digits", POLICY, 200, bus=bus, **ports).status == "waiting"
    assert len(bus.sent) == 1
