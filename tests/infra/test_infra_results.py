"""The results rule: every batch a device publishes is stored once in the data bucket, and failures stay visible."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match, Template
from templates import logical_id, of_type

from edgeloop.core.names import (
    RESULTS_OBJECT_KEY_TEMPLATE,
    RESULTS_PREFIX,
    RESULTS_TOPIC_FILTER,
    results_object_key,
    results_topic,
)
from edgeloop.core.records import Record, RecordKind, encode_batch
from infra.nag import flatten_reference


def _rule(synthesized: Any) -> dict[str, Any]:
    rule: dict[str, Any] = synthesized.template["Resources"][
        synthesized.stack.get_logical_id(synthesized.stack.results.rule)
    ]
    return rule


def _substitute(template: str, topic: str, payload: dict[str, Any]) -> str:
    """IoT Core's substitution of the two expressions the key uses: topic(n) is 1-based, get(a, i) indexes."""

    def expression(match: re.Match[str]) -> str:
        text = match.group(1)
        if topic_part := re.fullmatch(r"topic\((\d+)\)", text):
            return topic.split("/")[int(topic_part.group(1)) - 1]
        if element := re.fullmatch(r"get\((\w+), (\d+)\)\.(\w+)", text):
            array, index, field = element.groups()
            return str(payload[array][int(index)][field])
        raise AssertionError(f"this test cannot evaluate ${{{text}}}")

    return re.sub(r"\$\{([^}]*)\}", expression, template)


def test_rule_selects_every_devices_results_topic(synthesized: Any) -> None:
    Template.from_json(synthesized.template).has_resource_properties(
        "AWS::IoT::TopicRule",
        {
            "TopicRulePayload": {
                "Sql": f"SELECT * FROM '{RESULTS_TOPIC_FILTER}'",
                "AwsIotSqlVersion": "2016-03-23",
                "RuleDisabled": False,
            }
        },
    )


def test_rule_writes_each_batch_to_the_data_bucket_under_the_cores_key(synthesized: Any) -> None:
    results = synthesized.stack.results
    data_id = logical_id(synthesized, synthesized.stack.storage.data)
    [action] = _rule(synthesized)["Properties"]["TopicRulePayload"]["Actions"]
    assert action == {
        "S3": {
            "BucketName": {"Ref": data_id},
            # A plain string: IoT Core, not CloudFormation, must see the ${...} expressions.
            "Key": RESULTS_OBJECT_KEY_TEMPLATE,
            "RoleArn": {"Fn::GetAtt": [logical_id(synthesized, results.role), "Arn"]},
        }
    }
    assert "Fn::Sub" not in json.dumps(_rule(synthesized))


def test_object_key_names_the_publishing_thing_and_first_sequence_number() -> None:
    records = [Record("press-7", seq, RecordKind.RESULT, 1.0, {"label": "3"}) for seq in (41, 42)]
    payload = json.loads(encode_batch("press-7", records))
    key = _substitute(RESULTS_OBJECT_KEY_TEMPLATE, results_topic("press-7"), payload)
    assert key == results_object_key("press-7", 41)
    assert key.startswith(RESULTS_PREFIX)


def test_failed_deliveries_go_to_an_encrypted_queue_kept_for_two_weeks(synthesized: Any) -> None:
    results = synthesized.stack.results
    queue_id = logical_id(synthesized, results.failed)
    assert _rule(synthesized)["Properties"]["TopicRulePayload"]["ErrorAction"] == {
        "Sqs": {
            "QueueUrl": {"Ref": queue_id},
            "RoleArn": {"Fn::GetAtt": [logical_id(synthesized, results.role), "Arn"]},
            "UseBase64": False,
        }
    }
    queue = synthesized.template["Resources"][queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    Template.from_json(synthesized.template).has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_rule_role_is_iots_and_may_only_write_results_encrypt_them_and_report_failures(synthesized: Any) -> None:
    stack = synthesized.stack
    role_id = logical_id(synthesized, stack.results.role)
    role = synthesized.template["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(synthesized.template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    granted = {(s["Action"], flatten_reference(s["Resource"])) for s in policy}
    data = logical_id(synthesized, stack.storage.data)
    key = logical_id(synthesized, stack.storage.key)
    queue = logical_id(synthesized, stack.results.failed)
    assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role
    assert granted == {
        ("s3:PutObject", f"<{data}.Arn>/{RESULTS_PREFIX}*"),
        ("kms:GenerateDataKey", f"<{key}.Arn>"),
        ("sqs:SendMessage", f"<{queue}.Arn>"),
    }


def test_rule_is_created_after_its_role_may_write(synthesized: Any) -> None:
    role = synthesized.stack.results.role
    policy_id = synthesized.stack.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    assert policy_id in _rule(synthesized)["DependsOn"]


def test_results_location_is_an_output(synthesized: Any) -> None:
    data_id = logical_id(synthesized, synthesized.stack.storage.data)
    outputs = synthesized.template["Outputs"]
    assert outputs["ResultsUri"]["Value"] == {"Fn::Join": ["", ["s3://", {"Ref": data_id}, f"/{RESULTS_PREFIX}"]]}
    assert outputs["ResultsFailedDeliveriesQueueUrl"]["Value"] == {
        "Ref": logical_id(synthesized, synthesized.stack.results.failed)
    }
