"""Storage unit: the customer-managed key and the buckets for data, model artifacts and access logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


class Storage(Construct):
    """Versioned, KMS-encrypted, private buckets that outlive the stack: models and data are not cattle."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"edgeloop {env_name}: encrypts training data and model artifacts",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging cannot deliver to a bucket encrypted with a customer-managed key.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.Validations.of(self.access_logs).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the server access log bucket; logging it into itself would loop.",
            )
        )
        self.artifacts = self._bucket("Artifacts", "artifacts/")
        self.data = self._bucket("Data", "data/")

    def _bucket(self, construct_id: str, log_prefix: str) -> s3.Bucket:
        """A bucket with the key, versioning, TLS-only access, no public access and access logs."""
        return s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
