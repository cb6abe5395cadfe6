"""The cloud trigger's pure step: label totals in as differences, drift per live version, one decision per tick."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.events import ScheduledTick
from edgeloop.core.retraining import (
    RaisedAlarm,
    RetrainingPolicy,
    TickResult,
    TriggerRecord,
    evaluate_tick,
    initial_record,
    sent,
    trigger_request_id,
)
from edgeloop.core.settings import ENV_RETRAINING_POLICY, TriggerSettings
from edgeloop.core.training_jobs import parse_training_request

POLICY = RetrainingPolicy(min_new_labels=100, drift_bound=0.2, drift_for_s=600, min_labels_on_drift=10, cooldown_s=3600)
START = initial_record("digits")


def tick(
    record: TriggerRecord, now: float, labels: int, drift: float | None = None, live: int | None = 3
) -> TriggerRecord:
    result = evaluate_tick(record, POLICY, now=now, label_total=labels, live_version=live, drift_score=drift)
    assert result.record is not None
    return result.record


def test_labels_count_as_the_difference_from_the_total_already_taken_in() -> None:
    first = tick(START, 100, labels=60)
    second = evaluate_tick(first, POLICY, now=200, label_total=110, live_version=3, drift_score=None)
    assert (first.state.labels_since_training, first.labels_counted) == (60, 60)
    assert second.decision.retrain
    assert second.entry is not None
    assert second.record is not None
    assert (second.record.state.labels_since_training, second.record.labels_counted) == (0, 110)
    assert second.record.state.last_triggered_at == 200
    assert second.record.pending == second.entry, "stored as pending in the same write that decides"
    assert second.record.revision == first.revision + 1 == 2


def test_the_event_names_the_live_version_as_parent_and_a_request_id_stable_per_tick() -> None:
    result = evaluate_tick(START, POLICY, now=1800.9, label_total=150, live_version=4, drift_score=None)
    assert result.entry is not None
    detail = json.loads(result.entry["Detail"])
    assert (detail["parent_version"], detail["request_id"]) == (4, trigger_request_id("digits", 1800.9))
    assert detail["request_id"] == "retrain-digits-1800"
    event = {"id": "e", "source": result.entry["Source"], "detail-type": result.entry["DetailType"], "detail": detail}
    assert parse_training_request(event, default_model="x", request_id="r").parent_version == 4


def test_a_tick_not_later_than_the_last_evaluated_one_changes_nothing() -> None:
    first = tick(START, 100, labels=150)
    again = evaluate_tick(first, POLICY, now=100, label_total=400, live_version=3, drift_score=None)
    older = evaluate_tick(first, POLICY, now=50, label_total=400, live_version=3, drift_score=None)
    assert (again.record, again.entry, older.record) == (None, None, None)
    assert "already evaluated" in again.decision.reason


def test_sustained_drift_triggers_and_a_new_live_version_restarts_the_drift_clock() -> None:
    record = tick(START, 0, labels=20, drift=0.3)
    record = tick(record, 500, labels=20, drift=0.35)
    assert record.state.drift_high_since == 0
    switched = tick(record, 550, labels=20, drift=0.4, live=5)
    assert (switched.state.parent_version, switched.state.drift_high_since) == (5, 550)
    held = evaluate_tick(record, POLICY, now=600, label_total=20, live_version=3, drift_score=0.3)
    assert held.decision.retrain
    assert "drift" in held.decision.reason


def test_the_cooldown_holds_off_a_second_trigger() -> None:
    fired = tick(START, 0, labels=100)
    cooling = evaluate_tick(sent(fired), POLICY, now=3599, label_total=300, live_version=3, drift_score=None)
    after = evaluate_tick(sent(fired), POLICY, now=3600, label_total=300, live_version=3, drift_score=None)
    assert not cooling.decision.retrain
    assert "cooling down" in cooling.decision.reason
    assert after.decision.retrain


def test_the_record_round_trips_and_a_damaged_one_is_an_error_not_a_fresh_start() -> None:
    record = tick(tick(START, 0, labels=20, drift=0.3), 700, labels=120, drift=0.3)
    assert TriggerRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert sent(record).pending is None
    assert sent(record).revision == record.revision + 1
    damaged = {k: v for k, v in record.to_dict().items() if k != "labels_counted"}
    with pytest.raises(ValidationError, match="missing key"):
        TriggerRecord.from_dict(damaged)
    with pytest.raises(ValidationError, match="labels_counted"):
        replace(record, labels_counted=-1)


def test_the_policy_round_trips_and_refuses_unknown_keys() -> None:
    policy = RetrainingPolicy.from_dict({"min_new_labels": 300, "cooldown_s": 60})
    assert RetrainingPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValidationError, match="unknown key"):
        RetrainingPolicy.from_dict({"min_labels": 3})
    with pytest.raises(ValidationError, match=re.escape("stack.retraining.min_new_labels")):
        RetrainingPolicy.from_dict({"min_new_labels": 1.5}, "stack.retraining")


def test_trigger_settings_round_trip_through_the_environment() -> None:
    settings = TriggerSettings("digits", POLICY, retraining_table="t-retraining", event_bus_name="bus")
    assert TriggerSettings.from_env(settings.to_env()) == settings
    assert TriggerSettings.from_env({"EDGELOOP_MODEL_NAME": "digits"}).policy == RetrainingPolicy()
    with pytest.raises(ConfigError, match=ENV_RETRAINING_POLICY):
        TriggerSettings.from_env({"EDGELOOP_MODEL_NAME": "digits", ENV_RETRAINING_POLICY: "{"})
    with pytest.raises(ConfigError, match="EDGELOOP_MODEL_NAME"):
        TriggerSettings.from_env({})


def test_a_scheduled_tick_is_its_event_id_and_due_time() -> None:
    event = {"id": "e-1", "source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-12-01T09:00:00Z"}
    assert ScheduledTick.from_event(event) == ScheduledTick("e-1", 1796115600.0)
    with pytest.raises(ValidationError, match=re.escape("expected source 'aws.events'")):
        ScheduledTick.from_event({**event, "source": "edgeloop"})
    with pytest.raises(ValidationError, match=re.escape("event.time")):
        ScheduledTick.from_event({**event, "time": "yesterday"})
    with pytest.raises(ValidationError, match="no time zone"):
        ScheduledTick.from_event({**event, "time": "2026-12-01T09:00:00"})


ALARM = RaisedAlarm("v3#1", "labelled error rate of version 3 rose")


def alarmed(record: TriggerRecord, now: float, labels: int, alarm: RaisedAlarm | None = ALARM) -> TickResult:
    return evaluate_tick(record, POLICY, now=now, label_total=labels, live_version=3, drift_score=None, alarm=alarm)


def test_an_error_alarm_triggers_with_the_drift_minimum_of_labels_and_names_itself() -> None:
    few = alarmed(START, 100, labels=POLICY.min_labels_on_drift - 1)
    assert not few.decision.retrain
    assert "rose" in few.decision.reason
    assert f"of {POLICY.min_labels_on_drift} labels" in few.decision.reason
    assert few.record is not None
    assert few.record.handled_alarm is None, "an alarm not acted on stays raised"
    fired = alarmed(few.record, 200, labels=POLICY.min_labels_on_drift)
    assert fired.decision.retrain
    assert fired.entry is not None
    assert fired.decision.reason.startswith(ALARM.reason)
    assert ALARM.reason in json.loads(fired.entry["Detail"])["reason"]
    assert fired.record is not None
    assert fired.record.handled_alarm == ALARM.key


def test_a_handled_alarm_is_cleared_and_only_a_new_one_triggers_again() -> None:
    fired = alarmed(START, 100, labels=POLICY.min_labels_on_drift)
    assert fired.record is not None
    later = 100 + POLICY.cooldown_s + 1
    same = alarmed(sent(fired.record), later, labels=2 * POLICY.min_labels_on_drift)
    assert not same.decision.retrain, "the retrain already answered this alarm"
    assert "rose" not in same.decision.reason
    new = alarmed(sent(fired.record), later, labels=2 * POLICY.min_labels_on_drift, alarm=RaisedAlarm("v3#2", "again"))
    assert new.decision.retrain
    assert new.decision.reason.startswith("again")


def test_a_retrain_for_labels_also_clears_the_alarm_and_no_alarm_changes_nothing() -> None:
    fired = alarmed(START, 100, labels=POLICY.min_new_labels)
    assert fired.decision.retrain
    assert "new labelled examples" in fired.decision.reason
    assert fired.record is not None
    assert fired.record.handled_alarm == ALARM.key
    quiet = alarmed(START, 100, labels=POLICY.min_labels_on_drift, alarm=None)
    assert not quiet.decision.retrain
    assert quiet.record is not None
    assert quiet.record.handled_alarm is None


def test_a_record_stored_before_alarms_were_handled_still_parses() -> None:
    record = alarmed(START, 100, labels=POLICY.min_labels_on_drift).record
    assert record is not None
    data = json.loads(json.dumps(record.to_dict()))
    assert TriggerRecord.from_dict(data) == record
    del data["handled_alarm"]
    assert TriggerRecord.from_dict(data) == replace(record, handled_alarm=None)
    with pytest.raises(ValidationError, match="handled_alarm"):
        TriggerRecord.from_dict({**data, "handled_alarm": 7})
