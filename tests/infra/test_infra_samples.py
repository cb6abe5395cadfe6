"""The samples path: devices publish to their own samples topic, a rule stores each batch, S3 feeds the ingest."""

from __future__ import annotations

import fnmatch
from typing import Any

from aws_cdk.assertions import Match, Template
from templates import as_list, logical_id, of_type, statements_of_role

from edgeloop.core.names import (
    SAMPLES_OBJECT_KEY_TEMPLATE,
    SAMPLES_PREFIX,
    SAMPLES_REJECTED_PREFIX,
    SAMPLES_TABLE,
    SAMPLES_TOPIC_FILTER,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    samples_topic,
)
from edgeloop.core.settings import ENV_LABELLING_QUEUE_URL, ENV_SAMPLES_TABLE
from infra.nag import flatten_reference

THING = "<iot:Connection.Thing.ThingName>"


def _granted(synthesized: Any, role: Any) -> set[tuple[str, str]]:
    """(action, resource) pairs of a role's inline policy, references flattened the way cdk-nag names them."""
    role_id = logical_id(synthesized, role)
    return {
        (action, flatten_reference(resource))
        for s in statements_of_role(synthesized.template, role_id)
        for action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    }


def _rule(synthesized: Any) -> dict[str, Any]:
    rule: dict[str, Any] = synthesized.template["Resources"][logical_id(synthesized, synthesized.stack.samples.rule)]
    return rule


def test_each_device_may_publish_only_to_its_own_samples_topic(synthesized: Any) -> None:
    [policy] = of_type(synthesized.template, "AWS::IoT::Policy").values()
    published = {
        flatten_reference(r).split(":topic/", 1)[1]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "iot:Publish" in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }
    [samples] = [topic for topic in published if "/samples" in topic]
    assert samples == f"edgeloop/things/{THING}/samples/*", "its own thing, any seq range; no other topic"
    own = samples_topic("dev-1", 41, 45).replace("dev-1", THING, 1)
    assert fnmatch.fnmatchcase(own, samples), "IoT policy '*' covers the range level"
    assert SAMPLES_TOPIC_FILTER not in published


def test_rule_stores_every_devices_samples_batch_in_the_samples_bucket_under_the_cores_key(synthesized: Any) -> None:
    stack = synthesized.stack
    payload = _rule(synthesized)["Properties"]["TopicRulePayload"]
    # Binary pass-through: `*` alone, and neither the SQL nor the key template names a JSON field.
    assert payload["Sql"] == "SELECT * FROM 'edgeloop/things/+/samples/+'" == f"SELECT * FROM '{SAMPLES_TOPIC_FILTER}'"
    assert SAMPLES_OBJECT_KEY_TEMPLATE == "samples/${topic(3)}/${topic(5)}.json.gz"
    assert payload["AwsIotSqlVersion"] == "2016-03-23"
    assert payload["RuleDisabled"] is False
    assert payload["Actions"] == [
        {
            "S3": {
                "BucketName": {"Ref": logical_id(synthesized, stack.storage.samples)},
                "Key": SAMPLES_OBJECT_KEY_TEMPLATE,
                "RoleArn": {"Fn::GetAtt": [logical_id(synthesized, stack.samples.role), "Arn"]},
            }
        }
    ]
    assert payload["ErrorAction"] == {
        "Sqs": {
            "QueueUrl": {"Ref": logical_id(synthesized, stack.samples.failed)},
            "RoleArn": {"Fn::GetAtt": [logical_id(synthesized, stack.samples.role), "Arn"]},
            "UseBase64": False,
        }
    }


def test_rule_role_may_only_write_samples_encrypt_them_and_report_failures(synthesized: Any) -> None:
    stack = synthesized.stack
    bucket, key = logical_id(synthesized, stack.storage.samples), logical_id(synthesized, stack.storage.key)
    assert _granted(synthesized, stack.samples.role) == {
        ("s3:PutObject", f"<{bucket}.Arn>/{SAMPLES_PREFIX}*"),
        ("kms:GenerateDataKey", f"<{key}.Arn>"),
        ("sqs:SendMessage", f"<{logical_id(synthesized, stack.samples.failed)}.Arn>"),
    }
    policy_id = logical_id(synthesized, stack.samples.role.node.find_child("DefaultPolicy"))
    assert policy_id in _rule(synthesized)["DependsOn"]


def test_the_ingest_runs_on_objects_created_under_samples_only_never_on_the_ones_it_sets_aside(
    synthesized: Any,
) -> None:
    stack = synthesized.stack
    [notifications] = of_type(synthesized.template, "Custom::S3BucketNotifications").values()
    props = notifications["Properties"]
    function_arn = {"Fn::GetAtt": [logical_id(synthesized, stack.samples.handler.function), "Arn"]}
    assert props["BucketName"] == {"Ref": logical_id(synthesized, stack.storage.samples)}
    [config] = [
        c
        for c in props["NotificationConfiguration"]["LambdaFunctionConfigurations"]
        if c["LambdaFunctionArn"] == function_arn
    ]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["LambdaFunctionArn"] == function_arn
    [prefix_rule] = config["Filter"]["Key"]["FilterRules"]
    assert prefix_rule == {"Name": "prefix", "Value": SAMPLES_PREFIX}
    # The rejected prefix must not start with the triggering one, or every rejection would re-trigger the ingest.
    assert not SAMPLES_REJECTED_PREFIX.startswith(SAMPLES_PREFIX)
    Template.from_json(synthesized.template).has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": function_arn,
            "Principal": "s3.amazonaws.com",
            "SourceAccount": {"Ref": "AWS::AccountId"},
            "SourceArn": {"Fn::GetAtt": [logical_id(synthesized, stack.storage.samples), "Arn"]},
        },
    )


def test_the_ingest_role_holds_exactly_what_the_ingest_calls(synthesized: Any) -> None:
    stack = synthesized.stack
    bucket, key = logical_id(synthesized, stack.storage.samples), logical_id(synthesized, stack.storage.key)
    table, queue = logical_id(synthesized, stack.samples.table), logical_id(synthesized, stack.samples.labelling)
    granted = _granted(synthesized, stack.samples.handler.role)
    own_logs_and_dead_letters = {
        (a, r)
        for a, r in granted
        if a.startswith("logs:") or r == f"<{logical_id(synthesized, stack.samples.handler.dead_letters)}.Arn>"
    }
    assert granted - own_logs_and_dead_letters == {
        ("s3:GetObject", f"<{bucket}.Arn>/{SAMPLES_PREFIX}*"),
        ("s3:PutObject", f"<{bucket}.Arn>/{SAMPLES_REJECTED_PREFIX}*"),
        ("dynamodb:PutItem", f"<{table}.Arn>"),
        ("dynamodb:Scan", f"<{table}.Arn>"),
        ("sqs:SendMessage", f"<{queue}.Arn>"),
        *{(a, f"<{key}.Arn>") for a in ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")},
    }


def test_the_ingest_finds_its_table_and_queue_under_the_cores_keys(synthesized: Any) -> None:
    stack = synthesized.stack
    function = synthesized.template["Resources"][logical_id(synthesized, stack.samples.handler.function)]["Properties"]
    assert function["Handler"] == "sample_ingest.handler"
    assert function["Environment"]["Variables"] == {
        ENV_SAMPLES_TABLE: {"Ref": logical_id(synthesized, stack.samples.table)},
        ENV_LABELLING_QUEUE_URL: {"Ref": logical_id(synthesized, stack.samples.labelling)},
    }
    assert "TargetArn" in function["DeadLetterConfig"]


def test_the_catalogue_is_keyed_like_the_others_recoverable_encrypted_and_kept(synthesized: Any) -> None:
    stack = synthesized.stack
    table = synthesized.template["Resources"][logical_id(synthesized, stack.samples.table)]
    props = table["Properties"]
    assert props["TableName"] == SAMPLES_TABLE
    assert props["KeySchema"] == [
        {"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
        {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"},
    ]
    assert {a["AttributeType"] for a in props["AttributeDefinitions"]} == {"S"}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["KMSMasterKeyId"] == {
        "Fn::GetAtt": [logical_id(synthesized, stack.storage.key), "Arn"]
    }
    assert table["DeletionPolicy"] == "Retain"


def test_the_labelling_queue_is_encrypted_tls_only_and_parks_poison_messages(synthesized: Any) -> None:
    stack = synthesized.stack
    template = Template.from_json(synthesized.template)
    queue_id, dead_id = (
        logical_id(synthesized, stack.samples.labelling),
        logical_id(synthesized, stack.samples.labelling_dead_letters),
    )
    queue = synthesized.template["Resources"][queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dead_id, "Arn"]}, "maxReceiveCount": 5}
    for queue_ref in (queue_id, dead_id, logical_id(synthesized, stack.samples.failed)):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_ref}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_samples_expire_after_the_configured_retention(synthesized: Any) -> None:
    bucket = synthesized.template["Resources"][logical_id(synthesized, synthesized.stack.storage.samples)]
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireSamples"]["Prefix"] == SAMPLES_PREFIX
    assert rules["ExpireRejectedSamples"]["Prefix"] == SAMPLES_REJECTED_PREFIX
    assert rules["ExpireSamples"]["ExpirationInDays"] == synthesized.stack.config.samples_retention_days
    assert rules["Housekeeping"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}


def test_samples_locations_are_outputs(synthesized: Any) -> None:
    outputs = synthesized.template["Outputs"]
    assert {"SamplesBucketName", "SamplesUri", "SamplesTableName", "LabellingQueueUrl"} <= set(outputs)
    assert outputs["SamplesTableName"]["Value"] == {"Ref": logical_id(synthesized, synthesized.stack.samples.table)}
