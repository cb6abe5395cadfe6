"""Health ingest unit: the IoT rule that hands each accepted health-shadow update to its Lambda."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from constructs import Construct

from edgeloop.core.names import HEALTH_RULE_SQL
from edgeloop.core.settings import CloudSettings
from infra.constructs.event_function import FunctionDefaults, handler_env
from infra.constructs.grants import KMS_VIA_DYNAMODB_WRITE, key_via, table_statement
from infra.constructs.queues import last_resort_queue
from infra.constructs.results import SQL_VERSION
from infra.constructs.rollout_state import RolloutState
from infra.nag import grant

HEALTH_INGEST = "health_ingest"
HEALTH_RECORD = ("GetItem", "PutItem", "UpdateItem")
"""What health ingest does to fleet health: read a snapshot, then Put it and Update counters in one transaction."""
ROLLOUTS_READ = ("GetItem",)
"""What health ingest reads of rollouts: the active lock, the rollout it names, last-known-good (no Query)."""


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
        functions: FunctionDefaults,
        settings: CloudSettings,
        state: RolloutState,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = functions.build(
            self,
            "Handler",
            name=HEALTH_INGEST,
            environment=handler_env(settings),
            event_pattern=None,
            description="Count each accepted health-shadow update once into the fleet's per-ring sums",
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
        self._grant(state, key)

    def _grant(self, state: RolloutState, key: kms.IKey) -> None:
        """Count a report: the device's snapshot and counters, what its ring targets, which ring it is in."""
        self.handler.allow(
            table_statement(state.fleet_health, HEALTH_RECORD),
            table_statement(state.rollouts, ROLLOUTS_READ),
            key_via(key, "dynamodb", KMS_VIA_DYNAMODB_WRITE),
        )
        self.handler.allow(
            iam.PolicyStatement(
                actions=["iot:ListThingGroupsForThing", "iot:DescribeThing"],
                resources=[cdk.Stack.of(self).format_arn(service="iot", resource="thing", resource_name="*")],
            ),
            wildcard_reason="Any device of the fleet may report; its thing name is known only from the shadow topic.",
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
