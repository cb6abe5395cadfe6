"""Samples unit: the IoT rule storing each SAMPLE batch, the ingest Lambda, its catalogue and labelling queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from edgeloop.core.names import (
    SAMPLES_OBJECT_KEY_TEMPLATE,
    SAMPLES_PREFIX,
    SAMPLES_REJECTED_PREFIX,
    SAMPLES_TABLE,
    SAMPLES_TOPIC_FILTER,
)
from edgeloop.core.settings import ENV_LABELLING_QUEUE_URL, ENV_SAMPLES_TABLE
from infra.constructs.event_function import FunctionDefaults
from infra.constructs.grants import KMS_VIA_DYNAMODB_WRITE, KMS_VIA_S3, key_via, table_statement
from infra.constructs.queues import RETENTION, last_resort_queue
from infra.constructs.results import SQL_VERSION
from infra.constructs.rollout_state import state_table
from infra.nag import grant

SAMPLE_INGEST = "sample_ingest"
SAMPLES_CATALOGUE = ("PutItem", "Scan")
"""What the sample catalogue calls: a conditional Put per sample (repeats are no-ops), a COUNT Scan for reports."""
SAMPLES_SQL = f"SELECT * FROM '{SAMPLES_TOPIC_FILTER}'"
"""The raw payload (a gzip batch), untouched: with `*` alone and no JSON name in the SQL or the key template,
IoT Core treats the payload as binary, which the S3 action writes byte for byte."""

LABELLING_VISIBILITY = cdk.Duration.minutes(5)
LABELLING_MAX_RECEIVES = 5
"""A labelling message that fails this often is parked in the labelling dead letters, not retried forever."""


class Samples(Construct):
    """Samples from the devices to a labeller: rule -> samples bucket -> ingest -> catalogue and queue.

    Like results, a batch the device has had acknowledged exists only in IoT Core, so a failed write
    lands in the rule's own queue with its payload. The ingest Lambda runs on the bucket's
    ObjectCreated notifications under samples/ only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        functions: FunctionDefaults,
    ) -> None:
        super().__init__(scope, construct_id)
        self.uri = f"s3://{bucket.bucket_name}/{SAMPLES_PREFIX}"
        self.table = state_table(self, "Catalogue", SAMPLES_TABLE, key)
        self.labelling_dead_letters = last_resort_queue(
            self, "LabellingDeadLetters", "This queue is itself the dead-letter queue of the labelling queue."
        )
        self.labelling = sqs.Queue(
            self,
            "Labelling",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
            visibility_timeout=LABELLING_VISIBILITY,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.labelling_dead_letters, max_receive_count=LABELLING_MAX_RECEIVES
            ),
        )
        self.failed = last_resort_queue(
            self,
            "FailedDeliveries",
            "This queue is itself the error destination of the samples rule; an operator replays it.",
        )
        self.handler = functions.build(
            self,
            "Ingest",
            name=SAMPLE_INGEST,
            # The unit's own table and queue, under the core's keys.
            environment={ENV_SAMPLES_TABLE: self.table.table_name, ENV_LABELLING_QUEUE_URL: self.labelling.queue_url},
            event_pattern=None,
            description="Catalogue each new samples object once and queue its samples for labelling",
        )
        self.role = self._role(bucket, key)
        self.rule = iot.CfnTopicRule(
            self,
            "Rule",
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                description="Store each compressed edgeloop samples batch in the samples bucket, keyed by seq range",
                sql=SAMPLES_SQL,
                aws_iot_sql_version=SQL_VERSION,
                rule_disabled=False,
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        s3=iot.CfnTopicRule.S3ActionProperty(
                            bucket_name=bucket.bucket_name, key=SAMPLES_OBJECT_KEY_TEMPLATE, role_arn=self.role.role_arn
                        )
                    )
                ],
                error_action=iot.CfnTopicRule.ActionProperty(
                    sqs=iot.CfnTopicRule.SqsActionProperty(
                        queue_url=self.failed.queue_url, role_arn=self.role.role_arn, use_base64=False
                    )
                ),
            ),
        )
        # The rule must not run before its role may write (the role itself it references already).
        self.rule.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        # Only samples/: the objects the ingest sets aside under samples-rejected/ must not trigger it again.
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.handler.function),
            s3.NotificationKeyFilter(prefix=SAMPLES_PREFIX),
        )
        self._grant_ingest(bucket, key)

    def _grant_ingest(self, bucket: s3.IBucket, key: kms.IKey) -> None:
        """Read a new samples object, set a bad one aside, catalogue each sample, queue it for labelling."""
        self.handler.allow(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{SAMPLES_PREFIX}*")]),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{SAMPLES_REJECTED_PREFIX}*")]
            ),
            wildcard_reason="Samples objects are named by the publishing thing and its sequence range, "
            "known only when a device publishes them; bad ones are set aside under the same name, with their reason.",
        )
        self.handler.allow(
            table_statement(self.table, SAMPLES_CATALOGUE),
            key_via(key, "dynamodb", KMS_VIA_DYNAMODB_WRITE),
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.labelling.queue_arn]),
            # S3 decrypts what the ingest reads and encrypts what it sets aside with the caller's key rights.
            key_via(key, "s3", KMS_VIA_S3),
        )

    def _role(self, bucket: s3.IBucket, key: kms.IKey) -> iam.Role:
        """What the rule assumes: write objects under samples/ (encrypting them) and report failures."""
        account = cdk.Stack.of(self).account
        role = iam.Role(
            self,
            "RuleRole",
            assumed_by=iam.ServicePrincipal(
                "iot.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            description="edgeloop samples rule: write samples batches and report failed deliveries",
        )
        grant(
            role,
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{SAMPLES_PREFIX}*")]),
            wildcard_reason="Each batch is stored under its thing name and sequence range, "
            "known only when the device publishes it.",
        )
        # S3 asks KMS for a data key with the writer's credentials to encrypt each new object.
        grant(role, iam.PolicyStatement(actions=["kms:GenerateDataKey"], resources=[key.key_arn]))
        grant(role, iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.failed.queue_arn]))
        return role
