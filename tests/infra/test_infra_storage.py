"""The storage unit: buckets encrypted, versioned, private, logged and kept; the key that rotates."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template
from templates import logical_id, of_type


def test_data_artifact_and_samples_buckets_are_encrypted_versioned_private_logged_and_kept(synthesized: Any) -> None:
    template = synthesized.template
    key_id = logical_id(synthesized, synthesized.stack.storage.key)
    storage = synthesized.stack.storage
    for bucket in (storage.artifacts, storage.data, storage.samples):
        resource = template["Resources"][logical_id(synthesized, bucket)]
        props = resource["Properties"]
        [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {
            "Ref": logical_id(synthesized, storage.access_logs)
        }
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_every_bucket_refuses_plain_http(synthesized: Any) -> None:
    template = Template.from_json(synthesized.template)
    buckets = of_type(synthesized.template, "AWS::S3::Bucket")
    assert len(buckets) == 4
    for bucket_id in buckets:
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": bucket_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_key_rotates_and_is_kept(synthesized: Any) -> None:
    key = synthesized.template["Resources"][logical_id(synthesized, synthesized.stack.storage.key)]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
