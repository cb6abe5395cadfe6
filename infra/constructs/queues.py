"""Queues of last resort (rule error destinations, dead letters): encrypted, TLS-only, kept two weeks."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

RETENTION = cdk.Duration.days(14)


def last_resort_queue(scope: Construct, construct_id: str, reason: str) -> sqs.Queue:
    """A queue that is itself the destination of last resort, so it has no DLQ of its own (cdk-nag SQS3, with why)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
    )
    cdk.Validations.of(queue).acknowledge(cdk.Acknowledgment(id="AwsSolutions-SQS3", reason=reason))
    return queue
