"""Monitoring unit: one dashboard over the loop and an alarm wherever work can silently pile up."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = cdk.Duration.minutes(5)
IOT_NAMESPACE = "AWS/IoT"
TOPIC_MATCH = "TopicMatch"
"""IoT Core's count of messages arriving on a rule's topics, under the RuleName dimension alone.

A rule's failed actions are not alarmed here: each rule's error action puts them in a queue, which is."""
ROLLOUT_QUERY = (
    "fields @timestamp, @message | filter @message like /->/ or @message like /started/ "
    "| sort @timestamp desc | limit 20"
)
"""The controller's log lines for a transition (A -> B) or a start: the rollout's recent history."""
HEALTH_QUERY = "fields @timestamp, @message | filter @message like /refused/ | sort @timestamp desc | limit 20"
"""Health documents the ingest refused: a device reporting something the core cannot read."""


class Monitoring(Construct):
    """A dashboard (fleet health, rollout state, ingest rates, Lambda errors) and alarms on errors and dead letters.

    The alarms have no actions: subscribe them (SNS, chat, paging) where the operator's tooling lives.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        functions: Mapping[str, lambda_.IFunction],
        dead_letters: Mapping[str, sqs.IQueue],
        topic_rules: Mapping[str, iot.CfnTopicRule],
        health_logs: logs.ILogGroup,
        controller_logs: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for name, function in functions.items():
            self._alarm(f"{name} errors", function.metric_errors(period=PERIOD, statistic="Sum"))
        for name, queue in dead_letters.items():
            self._alarm(f"{name} waiting", queue.metric_approximate_number_of_messages_visible(period=PERIOD))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Fleet health: reports counted and refused",
                left=[
                    functions["health_ingest"].metric_invocations(period=PERIOD, statistic="Sum"),
                    functions["health_ingest"].metric_errors(period=PERIOD, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.LogQueryWidget(
                title="Fleet health: refused documents",
                log_group_names=[health_logs.log_group_name],
                query_string=HEALTH_QUERY,
                width=12,
            ),
            cloudwatch.LogQueryWidget(
                title="Rollout state: latest transitions",
                log_group_names=[controller_logs.log_group_name],
                query_string=ROLLOUT_QUERY,
                width=24,
            ),
            cloudwatch.GraphWidget(
                title="Ingest rates: device messages per rule",
                left=[_topic_matches(name, rule) for name, rule in topic_rules.items()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[f.metric_errors(period=PERIOD, statistic="Sum", label=n) for n, f in functions.items()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead letters and failed deliveries waiting",
                left=[
                    q.metric_approximate_number_of_messages_visible(period=PERIOD, label=n)
                    for n, q in dead_letters.items()
                ],
                width=24,
            ),
        )

    def _alarm(self, name: str, metric: cloudwatch.Metric) -> None:
        """Any one error, dead letter or failed delivery is worth a look: none is expected."""
        construct_id = "".join(part.title() for part in name.replace("_", " ").split())
        self.alarms[name] = metric.create_alarm(
            self,
            construct_id,
            alarm_description=f"edgeloop: {name}",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


def _topic_matches(name: str, rule: iot.CfnTopicRule) -> cloudwatch.Metric:
    """How many device messages one topic rule received (its Ref is the rule's name)."""
    return cloudwatch.Metric(
        namespace=IOT_NAMESPACE,
        metric_name=TOPIC_MATCH,
        dimensions_map={"RuleName": rule.ref},
        period=PERIOD,
        statistic="Sum",
        label=name,
    )
