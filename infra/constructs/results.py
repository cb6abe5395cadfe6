"""Results unit: the IoT rule that stores each batch devices publish, so an acknowledged batch is never lost."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_s3 as s3
from constructs import Construct

from edgeloop.core.names import RESULTS_OBJECT_KEY_TEMPLATE, RESULTS_PREFIX, RESULTS_TOPIC_FILTER
from infra.constructs.queues import last_resort_queue
from infra.nag import grant

SQL_VERSION = "2016-03-23"
RESULTS_SQL = f"SELECT * FROM '{RESULTS_TOPIC_FILTER}'"
"""The whole batch message, as the device sent it, from every device's results topic."""


class Results(Construct):
    """IoT Core rule: every results batch becomes one object under results/; failed writes land in a queue.

    Devices delete a batch from their buffer on PUBACK, so IoT Core is the last place holding it:
    a delivery that fails must stay visible and replayable (the error message carries the payload).
    """

    def __init__(self, scope: Construct, construct_id: str, *, data: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.uri = f"s3://{data.bucket_name}/{RESULTS_PREFIX}"
        self.failed = last_resort_queue(
            self,
            "FailedDeliveries",
            "This queue is itself the error destination of the results rule; an operator replays it.",
        )
        self.role = self._role(data)
        self.rule = iot.CfnTopicRule(
            self,
            "Rule",
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                description="Store each edgeloop results batch in the data bucket, one object per batch",
                sql=RESULTS_SQL,
                aws_iot_sql_version=SQL_VERSION,
                rule_disabled=False,
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        s3=iot.CfnTopicRule.S3ActionProperty(
                            bucket_name=data.bucket_name,
                            key=RESULTS_OBJECT_KEY_TEMPLATE,
                            role_arn=self.role.role_arn,
                        )
                    )
                ],
                error_action=iot.CfnTopicRule.ActionProperty(
                    sqs=iot.CfnTopicRule.SqsActionProperty(
                        queue_url=self.failed.queue_url,
                        role_arn=self.role.role_arn,
                        use_base64=False,
                    )
                ),
            ),
        )
        # The rule must not run before its role may write (the role itself it references already).
        self.rule.node.add_dependency(self.role.node.find_child("DefaultPolicy"))

    def _role(self, data: s3.IBucket) -> iam.Role:
        """What the rule assumes: write objects under results/ (encrypting them) and report failures."""
        account = cdk.Stack.of(self).account
        role = iam.Role(
            self,
            "RuleRole",
            assumed_by=iam.ServicePrincipal(
                "iot.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            description="edgeloop results rule: write results batches and report failed deliveries",
        )
        grant(
            role,
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[data.arn_for_objects(f"{RESULTS_PREFIX}*")]),
            wildcard_reason="Each batch is stored under its thing name and first sequence number, "
            "known only when the device publishes it.",
        )
        if data.encryption_key is not None:
            # S3 asks KMS for a data key with the writer's credentials to encrypt each new object.
            grant(role, iam.PolicyStatement(actions=["kms:GenerateDataKey"], resources=[data.encryption_key.key_arn]))
        grant(role, iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.failed.queue_arn]))
        return role
