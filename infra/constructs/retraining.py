"""Retraining unit: the label ingest, the trigger's state table, and the trigger on its schedule.

Labels arrive as objects under labels/ in the samples bucket (the labelling tool writes them); the label
ingest records each in the sample catalogue and folds each first label of the live version into the
labelled-error detector, stored beside the trigger's record in the trigger's table (the live version is the
one that record names). On every tick the
trigger reads the label count, the last-known-good version, its fleet drift and the detector's alarm, and
puts at most one Retraining Requested event on the default bus, where the training launcher's rule
(infra/constructs/training.py) takes it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from edgeloop.core.events import EDGELOOP_SOURCE, RETRAINING_REQUESTED
from edgeloop.core.names import LABELS_PREFIX, LABELS_REJECTED_PREFIX, MODELS_PREFIX, RETRAINING_TABLE
from edgeloop.core.retraining import RetrainingPolicy
from edgeloop.core.settings import ENV_RETRAINING_TABLE, ENV_SAMPLES_TABLE, TriggerSettings
from infra.constructs.event_function import FunctionDefaults
from infra.constructs.grants import (
    KMS_VIA_DYNAMODB_WRITE,
    KMS_VIA_S3,
    key_via,
    list_model_packages,
    read_model_packages,
    table_statement,
)
from infra.constructs.rollout_state import RolloutState, state_table

LABEL_INGEST = "label_ingest"
RETRAINING_TRIGGER = "retraining_trigger"
LABELS_CATALOGUE = ("GetItem", "UpdateItem")
"""What the label ingest calls: read the sample, then Update it (and the model's label counter, in one transaction)."""
RETRAINING_STATE = ("GetItem", "PutItem")
"""What the trigger does to its own table: read the model's record, put it over the revision it read; the label
ingest does the same to the model's detector item there (and reads the live version from the record)."""


class Retraining(Construct):
    """Labels in, the retraining decision out: two functions and the table of each model's trigger state."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionDefaults,
        model_name: str,
        policy: RetrainingPolicy,
        rate_minutes: int,
        bucket: s3.IBucket,
        samples_table: dynamodb.ITable,
        state: RolloutState,
        key: kms.IKey,
        package_arns: str,
        artifacts: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = state_table(self, "State", RETRAINING_TABLE, key)
        """One item per model: the trigger's record, written only over the revision it read."""
        self.settings = TriggerSettings(
            model_name=model_name,
            policy=policy,
            samples_table=samples_table.table_name,
            retraining_table=self.table.table_name,
            rollouts_table=state.rollouts.table_name,
            fleet_health_table=state.fleet_health.table_name,
        )
        self.trigger = functions.build(
            self,
            "Trigger",
            name=RETRAINING_TRIGGER,
            environment=self.settings.to_env(),
            event_pattern=None,
            description="Decide on a schedule whether the model retrains (new labels, sustained drift); say so once",
        )
        self.schedule = self.trigger.add_rule(
            "Schedule",
            description=f"Evaluate the retraining trigger of {model_name} on a schedule",
            schedule=events.Schedule.rate(cdk.Duration.minutes(rate_minutes)),
        )
        self.label_ingest = functions.build(
            self,
            "LabelIngest",
            name=LABEL_INGEST,
            environment={
                ENV_SAMPLES_TABLE: samples_table.table_name,
                ENV_RETRAINING_TABLE: self.table.table_name,
            },
            event_pattern=None,
            description="Record each new label in the sample catalogue once; watch the live version's labelled errors",
        )
        # Only labels/: what the ingest sets aside under labels-rejected/ must not trigger it again.
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.label_ingest.function),
            s3.NotificationKeyFilter(prefix=LABELS_PREFIX),
        )
        self._grant_label_ingest(bucket, samples_table, key)
        self._grant_reliabilities(package_arns, artifacts)
        self._grant_trigger(samples_table, state, key)

    def _grant_label_ingest(self, bucket: s3.IBucket, samples_table: dynamodb.ITable, key: kms.IKey) -> None:
        """Read labels, set bad ones aside, label the catalogued samples, watch the live version's errors."""
        self.label_ingest.allow(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{LABELS_PREFIX}*")]),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{LABELS_REJECTED_PREFIX}*")]
            ),
            wildcard_reason="Label objects are named by the labelled sample's thing and sequence number, "
            "known only when a labeller writes them; bad ones are set aside under the same name.",
        )
        self.label_ingest.allow(
            table_statement(samples_table, LABELS_CATALOGUE),
            table_statement(self.table, RETRAINING_STATE),
            key_via(key, "dynamodb", KMS_VIA_DYNAMODB_WRITE),
            key_via(key, "s3", KMS_VIA_S3),
        )

    def _grant_reliabilities(self, package_arns: str, artifacts: s3.IBucket) -> None:
        """Read the live version's registry record and its manifest: the reliability table its calibrated detector
        judges labels by (without them, label ingest logs it and watches the random share only)."""
        self.label_ingest.allow(
            read_model_packages(package_arns),
            list_model_packages(),
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[artifacts.arn_for_objects(f"{MODELS_PREFIX}*")]),
            wildcard_reason="Package versions are numbered by the registry as models arrive, and models are stored "
            "under their sha256; ListModelPackages supports no resource-level permission.",
        )

    def _grant_trigger(self, samples_table: dynamodb.ITable, state: RolloutState, key: kms.IKey) -> None:
        """Read what it decides on, put its own record once, and put only the retraining signal on the bus."""
        self.trigger.allow(
            table_statement(self.table, RETRAINING_STATE),
            table_statement(samples_table, ("GetItem",)),
            table_statement(state.rollouts, ("GetItem",)),
            table_statement(state.fleet_health, ("Query",)),
            key_via(key, "dynamodb", KMS_VIA_DYNAMODB_WRITE),
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[
                    cdk.Stack.of(self).format_arn(service="events", resource="event-bus", resource_name="default")
                ],
                conditions={
                    "StringEquals": {"events:source": EDGELOOP_SOURCE, "events:detail-type": RETRAINING_REQUESTED}
                },
            ),
        )
