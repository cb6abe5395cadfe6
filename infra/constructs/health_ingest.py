"""Health ingest unit: the IoT rule that hands each accepted health-shadow update to its Lambda."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from edgeloop.core.names import HEALTH_RULE_SQL
from infra.constructs.event_function import EventFunction
from infra.constructs.queues import last_resort_queue
from infra.constructs.results import SQL_VERSION
from infra.nag import grant


class HealthIngest(Construct):
    """IoT Core rule on the health shadow's update/documents topic, invoking the ingest Lambda asynchronously.

    The Lambda's own retries and dead letters cover a failing handler; the rule's error queue covers an
    invocation IoT Core could not make (throttling, a missing permission), with the payload in the message.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        asset_dir: Path,
        resource_prefix: str,
        environment: Mapping[str, str],
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = EventFunction(
            self,
            "Handler",
            function_name=function_name,
            asset_dir=asset_dir,
            resource_prefix=resource_prefix,
            environment=environment,
            event_pattern=None,
            description="Count each accepted health-shadow update once into the fleet's per-ring sums",
            log_retention_days=log_retention_days,
        )
        self.failed = last_resort_queue(
            self,
            "FailedDeliveries",
            "This queue is itself the error destination of the health rule; an operator replays it.",
        )
        self.role = self._role()
        self.rule = iot.CfnTopicRule(
            self,
            "Rule",
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                description="Hand each accepted edgeloop health-shadow update to the health ingest Lambda",
                sql=HEALTH_RULE_SQL,
                aws_iot_sql_version=SQL_VERSION,
                rule_disabled=False,
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        lambda_=iot.CfnTopicRule.LambdaActionProperty(function_arn=self.handler.function.function_arn)
                    )
                ],
                error_action=iot.CfnTopicRule.ActionProperty(
                    sqs=iot.CfnTopicRule.SqsActionProperty(
                        queue_url=self.failed.queue_url, role_arn=self.role.role_arn, use_base64=False
                    )
                ),
            ),
        )
        self.rule.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        # IoT Core invokes with its own principal: allow it for this rule of this account only.
        self.permission = self.handler.function.add_permission(
            "InvokeByHealthRule",
            principal=iam.ServicePrincipal("iot.amazonaws.com"),
            source_arn=self.rule.attr_arn,
            source_account=cdk.Stack.of(self).account,
        )

    def _role(self) -> iam.Role:
        """What the rule assumes for its error action: send the failed message to the queue, nothing else."""
        account = cdk.Stack.of(self).account
        role = iam.Role(
            self,
            "RuleRole",
            assumed_by=iam.ServicePrincipal(
                "iot.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            description="edgeloop health rule: report failed deliveries to the health ingest Lambda",
        )
        grant(role, iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.failed.queue_arn]))
        return role
