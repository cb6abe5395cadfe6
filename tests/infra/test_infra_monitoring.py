"""Monitoring: one dashboard over the loop, an alarm on every Lambda's errors and every queue of last resort."""

from __future__ import annotations

import json
from typing import Any

from templates import logical_id, of_type


def _alarmed(synthesized: Any) -> list[tuple[str, str]]:
    """(metric, resource the alarm watches) for each alarm."""
    watched = []
    for alarm in of_type(synthesized.template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        [dimension] = props["Dimensions"]
        value = dimension["Value"]  # a function's Ref (its name) or a queue's QueueName attribute
        watched.append((props["MetricName"], value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]))
        assert props["Threshold"] == 1
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert props["TreatMissingData"] == "notBreaching"
    return watched


def test_every_edgeloop_function_has_an_error_alarm(synthesized: Any) -> None:
    ours = {logical_id(synthesized, f.function) for f in synthesized.stack.handlers().values()}
    assert len(ours) == 8
    assert {r for m, r in _alarmed(synthesized) if m == "Errors"} == ours


def test_every_queue_of_last_resort_has_a_waiting_alarm(synthesized: Any) -> None:
    queues = of_type(synthesized.template, "AWS::SQS::Queue")
    with_redrive = {k for k, q in queues.items() if "RedrivePolicy" in q["Properties"]}
    alarmed = {r for m, r in _alarmed(synthesized) if m == "ApproximateNumberOfMessagesVisible"}
    # Every queue is alarmed except the labelling queue, whose backlog is work waiting, not a failure.
    assert alarmed == set(queues) - with_redrive
    assert with_redrive == {logical_id(synthesized, synthesized.stack.samples.labelling)}


def test_the_dashboard_shows_fleet_health_rollout_state_ingest_rates_and_lambda_errors(synthesized: Any) -> None:
    [dashboard] = of_type(synthesized.template, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == synthesized.stack.config.stack_name
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("Fleet health", "Rollout state", "Ingest rates", "Lambda errors", "Dead letters"):
        assert title in body
    for rule in (synthesized.stack.results.rule, synthesized.stack.health_ingest.rule, synthesized.stack.samples.rule):
        assert synthesized.stack.get_logical_id(rule) in body  # its TopicMatch count, by rule name
    assert logical_id(synthesized, synthesized.stack.rollout_controller.handler.log_group) in body
