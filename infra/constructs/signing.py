"""Signing unit: the asymmetric KMS key that signs model manifests; devices verify with its public key."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from constructs import Construct

from edgeloop.core.signing import SIGNING_KEY_SPEC

KEY_SPECS = {SIGNING_KEY_SPEC: kms.KeySpec.ECC_NIST_P256}
"""The core names the key spec; this maps it onto CDK's enum (a KeyError if the core ever changes it)."""


class ManifestSigningKey(Construct):
    """An ECC_NIST_P256 SIGN_VERIFY key, kept when the stack goes: devices in the field trust its public key."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"edgeloop {env_name}: signs model manifests (devices verify with the public key)",
            key_spec=KEY_SPECS[SIGNING_KEY_SPEC],
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.Validations.of(self.key).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-KMS5",
                reason="KMS rotates only symmetric keys; rotating a signing key means deploying a new public "
                "key to every device, which is a release, not a schedule.",
            )
        )
