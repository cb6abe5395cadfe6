"""The controller's ports on real AWS, built once per Lambda cold start (never at import time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgeloop.cloud.fleet import GreengrassFleetControl
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.rollout_control import RolloutContext
from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore
from edgeloop.cloud.signing import KmsSigner
from edgeloop.core.settings import CloudSettings


def rollout_context(settings: CloudSettings, client: Callable[[str], Any], *, with_public_key: bool) -> RolloutContext:
    """DynamoDB stores, the SageMaker registry and Greengrass fleet control from boto3 clients.

    with_public_key reads the signing key's public half (kms:GetPublicKey), which only handlers that
    deploy need, so the others hold no KMS permission.
    """
    dynamodb = client("dynamodb")
    key = settings.signing_key_id if with_public_key else None
    return RolloutContext(
        rollouts=DynamoRolloutStore(dynamodb, settings.rollouts_table),
        health=DynamoFleetHealthStore(dynamodb, settings.fleet_health_table),
        registry=SageMakerRegistry(client("sagemaker")),
        fleet=GreengrassFleetControl(client("greengrassv2"), account=settings.account, iot=client("iot")),
        settings=settings,
        clock=time.time,
        public_key_pem=KmsSigner(client("kms"), key).public_key_pem() if key else None,
    )
