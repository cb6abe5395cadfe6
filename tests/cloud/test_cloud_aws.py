"""The handlers' shared port builder: which clients it makes, and that only deploying handlers touch KMS."""

from __future__ import annotations

from typing import Any

import boto3

from edgeloop.cloud.aws import rollout_context
from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore
from edgeloop.core.settings import CloudSettings

SETTINGS = CloudSettings(
    "b", "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet", "0.1.0", None, "s3://d/o/",
    signing_key_id="alias/signing",
)  # fmt: skip


def test_without_the_public_key_no_kms_client_is_made(aws: None) -> None:
    made: list[str] = []

    def client(service: str) -> Any:
        made.append(service)
        return boto3.client(service, region_name="us-east-1")

    ctx = rollout_context(SETTINGS, client, with_public_key=False)
    assert sorted(made) == ["dynamodb", "greengrassv2", "iot", "sagemaker"]
    assert isinstance(ctx.rollouts, DynamoRolloutStore)
    assert isinstance(ctx.health, DynamoFleetHealthStore)
    assert ctx.public_key_pem is None


def test_with_the_public_key_it_reads_the_signing_keys_public_half(aws: None) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    settings = CloudSettings(SETTINGS.artifacts_bucket, SETTINGS.fleet_thing_group_arn, "0.1.0", None, "s3://d/o/",
                             signing_key_id=key)  # fmt: skip
    ctx = rollout_context(settings, lambda s: boto3.client(s, region_name="us-east-1"), with_public_key=True)
    assert ctx.public_key_pem is not None
    assert "BEGIN PUBLIC KEY" in ctx.public_key_pem
