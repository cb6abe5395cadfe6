"""The retraining table's light readers under one contract with the memory stores: the live version the trigger
stored and the alarm the label ingest stored, read back (LiveVersions, Alarms)."""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest

from edgeloop.cloud.error_watch import DynamoErrorWatchStore, MemoryErrorWatchStore
from edgeloop.cloud.retraining import DynamoRetrainingStateStore, MemoryRetrainingStateStore
from edgeloop.cloud.retraining_table import DynamoRetrainingTable
from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.core.detectors import ErrorDetector, Observation
from edgeloop.core.error_watch import fold_labels
from edgeloop.core.names import RETRAINING_TABLE
from edgeloop.core.retraining import RetrainingPolicy, evaluate_tick, initial_record

POLICY = ErrorDetector(warmup=20)


@pytest.fixture(params=["memory", "dynamodb"])
def ports(request: pytest.FixtureRequest) -> tuple[Any, Any, Any, Any]:
    """(trigger states, error watches, LiveVersions, Alarms) on one backing."""
    if request.param == "memory":
        states, watches = MemoryRetrainingStateStore(), MemoryErrorWatchStore()
        return states, watches, states, watches
    request.getfixturevalue("aws")
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition(RETRAINING_TABLE))
    table = DynamoRetrainingTable(client, RETRAINING_TABLE)
    return (
        DynamoRetrainingStateStore(client, RETRAINING_TABLE),
        DynamoErrorWatchStore(client, RETRAINING_TABLE),
        table,
        table,
    )


def trigger_ticked(states: Any, live_version: int) -> None:
    """The trigger evaluated a tick and stored the live version in its record."""
    tick = evaluate_tick(
        initial_record("digits"), RetrainingPolicy(), now=1, label_total=0, live_version=live_version, drift_score=None
    )
    assert tick.record is not None
    states.put(tick.record)


def test_the_readers_give_back_the_live_version_and_the_alarm_the_writers_stored(ports: Any) -> None:
    states, watches, live, alarms = ports
    assert live.live_version("digits") is None
    assert alarms.alarm("digits", 3) is None
    trigger_ticked(states, 3)
    assert live.live_version("digits") == 3
    quiet, _ = fold_labels(None, "digits", 3, [Observation(False)] * 30, POLICY)
    watches.put(quiet)
    assert alarms.alarm("digits", 3) is None
    rng = random.Random(3)
    loud, alarm = fold_labels(quiet, "digits", 3, [Observation(rng.random() < 0.9) for _ in range(300)], POLICY)
    assert alarm is not None
    watches.put(loud)
    assert alarms.alarm("digits", 3) == loud.raised()
    assert alarms.alarm("digits", 4) is None, "another version's alarm is moot"
    assert alarms.alarm("digits", None) is None
