"""Rollout state unit: the rollouts and fleet-health tables the controller and health ingest share."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from edgeloop.core.names import FLEET_HEALTH_TABLE, ROLLOUTS_TABLE, TABLE_PARTITION_KEY, TABLE_SORT_KEY


class RolloutState(Construct):
    """Two (pk, sk) string-keyed tables, on demand, encrypted with the stack's key, recoverable and kept.

    They hold every rollout's decision log and each model's last-known-good version: losing them
    would leave the controller unable to tell which version the fleet should fall back to.
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.rollouts = state_table(self, "Rollouts", ROLLOUTS_TABLE, key)
        self.fleet_health = state_table(self, "FleetHealth", FLEET_HEALTH_TABLE, key)


def state_table(scope: Construct, construct_id: str, name: str, key: kms.IKey) -> dynamodb.Table:
    """The key schema of edgeloop.cloud.rollout_stores.table_definition, with durability on top."""
    return dynamodb.Table(
        scope,
        construct_id,
        table_name=name,
        partition_key=dynamodb.Attribute(name=TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=TABLE_SORT_KEY, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        deletion_protection=True,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
