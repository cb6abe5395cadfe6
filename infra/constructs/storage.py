"""Storage unit: the customer-managed key and the buckets for data, model artifacts, samples and access logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from edgeloop.core.names import SAMPLES_PREFIX, SAMPLES_REJECTED_PREFIX

NONCURRENT_VERSION_DAYS = 90
"""How long an overwritten or deleted object's old version stays recoverable."""
INCOMPLETE_UPLOAD_DAYS = 7


class Storage(Construct):
    """Versioned, KMS-encrypted, private buckets that outlive the stack: models and data are not cattle."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        log_retention_days: int,
        samples_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"edgeloop {env_name}: encrypts buckets, tables and queues of the stack",
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
            lifecycle_rules=[
                _housekeeping(),
                s3.LifecycleRule(id="ExpireLogs", expiration=cdk.Duration.days(log_retention_days)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cdk.Validations.of(self.access_logs).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the server access log bucket; logging it into itself would loop.",
            )
        )
        self.artifacts = self._bucket("Artifacts", "artifacts/", [_housekeeping()])
        self.data = self._bucket("Data", "data/", [_housekeeping()])
        expire = cdk.Duration.days(samples_retention_days)
        self.samples = self._bucket(
            "Samples",
            "samples/",
            [
                _housekeeping(),
                # Captured inputs are personal-data-shaped: they expire unless labelled into training data.
                s3.LifecycleRule(id="ExpireSamples", prefix=SAMPLES_PREFIX, expiration=expire),
                s3.LifecycleRule(id="ExpireRejectedSamples", prefix=SAMPLES_REJECTED_PREFIX, expiration=expire),
            ],
        )
        """Captured samples: the samples rule writes under samples/, the ingest sets bad ones aside."""

    def _bucket(self, construct_id: str, log_prefix: str, lifecycle_rules: list[s3.LifecycleRule]) -> s3.Bucket:
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
            lifecycle_rules=lifecycle_rules,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )


def _housekeeping() -> s3.LifecycleRule:
    """Every bucket: old versions stay recoverable for a while, abandoned multipart uploads go."""
    return s3.LifecycleRule(
        id="Housekeeping",
        noncurrent_version_expiration=cdk.Duration.days(NONCURRENT_VERSION_DAYS),
        abort_incomplete_multipart_upload_after=cdk.Duration.days(INCOMPLETE_UPLOAD_DAYS),
    )
