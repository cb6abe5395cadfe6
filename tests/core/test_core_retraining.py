"""The retraining trigger: labels, sustained drift, cooldown, and the event the launcher reads."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.retraining import (
    RetrainingPolicy,
    RetrainingState,
    observe_drift,
    observe_labels,
    retraining_decision,
    retraining_event,
    triggered,
)
from edgeloop.core.training_jobs import Trigger, parse_training_request

POLICY = RetrainingPolicy(min_new_labels=100, drift_bound=0.2, drift_for_s=600, min_labels_on_drift=10, cooldown_s=3600)
FRESH = RetrainingState("digits", parent_version=3)


@pytest.mark.parametrize(
    ("state", "now", "retrain", "reason"),
    [
        (FRESH, 0, False, "0 of 100 new labels"),
        (replace(FRESH, labels_since_training=100), 0, True, "100 new labelled examples"),
        (replace(FRESH, labels_since_training=20, drift_score=0.3, drift_high_since=0), 599, False, "599 of 600"),
        (replace(FRESH, labels_since_training=20, drift_score=0.3, drift_high_since=0), 600, True, "for 600 s"),
        (replace(FRESH, labels_since_training=5, drift_score=0.3, drift_high_since=0), 900, False, "only 5 of 10"),
        (replace(FRESH, labels_since_training=500, last_triggered_at=0), 100, False, "cooling down: 3500 s"),
        (replace(FRESH, labels_since_training=500, last_triggered_at=0), 3600, True, "500 new"),
    ],
    ids=[
        "nothing",
        "labels",
        "drift-not-long-enough",
        "drift-sustained",
        "drift-without-labels",
        "cooldown",
        "after-cooldown",
    ],
)
def test_retraining_decision(state: RetrainingState, now: float, retrain: bool, reason: str) -> None:
    decision = retraining_decision(state, POLICY, now)
    assert decision.retrain is retrain
    assert reason in decision.reason


def test_the_drift_clock_starts_when_drift_goes_high_and_stops_when_it_falls() -> None:
    state = observe_drift(FRESH, 0.1, POLICY, now=0)
    assert state.drift_high_since is None
    state = observe_drift(state, 0.35, POLICY, now=100)
    state = observe_drift(state, 0.4, POLICY, now=300)
    assert state.drift_high_since == 100
    assert observe_drift(state, 0.05, POLICY, now=400).drift_high_since is None
    assert observe_drift(state, None, POLICY, now=400).drift_high_since is None


def test_a_trigger_resets_the_counts_and_starts_the_cooldown() -> None:
    state = triggered(observe_labels(FRESH, 150), now=50)
    assert (state.labels_since_training, state.last_triggered_at, state.drift_high_since) == (0, 50, None)
    with pytest.raises(ValidationError, match="new_labels"):
        observe_labels(FRESH, -1)


def test_the_event_is_what_the_launcher_parses_with_the_parent_and_a_stable_request_id() -> None:
    state = observe_labels(FRESH, 120)
    decision = retraining_decision(state, POLICY, 0)
    entry = retraining_event(state, decision, request_id="retrain-digits-3-0001")
    event = {"id": "evt-1", "source": entry["Source"], "detail-type": entry["DetailType"],
             "detail": json.loads(entry["Detail"])}  # fmt: skip
    request = parse_training_request(event, default_model="other", request_id="lambda-req")
    assert (request.model_name, request.parent_version, request.trigger) == ("digits", 3, Trigger.RETRAINING)
    assert request.request_id == "retrain-digits-3-0001", "a re-sent trigger names the same training job"
    with pytest.raises(ValidationError, match="no retraining was decided"):
        retraining_event(FRESH, retraining_decision(FRESH, POLICY, 0), "x")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"min_new_labels": 0}, "retraining.min_new_labels"),
        ({"drift_bound": -1}, "retraining.drift_bound"),
        ({"min_new_labels": 10, "min_labels_on_drift": 20}, "retraining.min_labels_on_drift"),
    ],
)
def test_a_bad_policy_names_its_field(values: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RetrainingPolicy(**values)  # type: ignore[arg-type]
    assert info.value.field == field
