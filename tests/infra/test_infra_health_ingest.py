"""The health ingest unit: the rule on the health shadow, its Lambda and what that may touch."""

from __future__ import annotations

from typing import Any

from templates import as_list, handler_grants, handler_statements, logical_id, of_type, table_arn

from edgeloop.core.names import HEALTH_RULE_SQL
from infra.constructs.results import SQL_VERSION


def test_the_health_rule_selects_the_cores_sql_into_the_ingest_lambda_and_failures_into_a_queue(
    synthesized: Any,
) -> None:
    ingest = synthesized.stack.health_ingest
    rule = synthesized.template["Resources"][logical_id(synthesized, ingest.rule)]["Properties"]["TopicRulePayload"]
    [action] = rule["Actions"]
    assert (rule["Sql"], rule["AwsIotSqlVersion"], rule["RuleDisabled"]) == (HEALTH_RULE_SQL, SQL_VERSION, False)
    assert action == {
        "Lambda": {"FunctionArn": {"Fn::GetAtt": [logical_id(synthesized, ingest.handler.function), "Arn"]}}
    }
    assert rule["ErrorAction"]["Sqs"]["QueueUrl"] == {"Ref": logical_id(synthesized, ingest.failed)}
    rule_role = logical_id(synthesized, ingest.role)
    sends = [
        s
        for p in of_type(synthesized.template, "AWS::IAM::Policy").values()
        if {"Ref": rule_role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert sends == [
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [logical_id(synthesized, ingest.failed), "Arn"]},
        }
    ]


def test_only_iot_core_invoking_for_the_health_rule_of_this_account_may_call_health_ingest(synthesized: Any) -> None:
    ingest = synthesized.stack.health_ingest
    function_id = logical_id(synthesized, ingest.handler.function)
    [permission] = [
        p["Properties"]
        for p in of_type(synthesized.template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert permission["Principal"] == "iot.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceArn"] == {"Fn::GetAtt": [logical_id(synthesized, ingest.rule), "Arn"]}
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_health_ingest_may_count_reports_and_read_rings_and_nothing_else(synthesized: Any) -> None:
    state = synthesized.stack.rollout_state
    dynamodb = handler_grants(synthesized, "health_ingest", "dynamodb:")
    health, rollouts = table_arn(synthesized, state.fleet_health), table_arn(synthesized, state.rollouts)
    assert dynamodb == {
        "dynamodb:GetItem": {health, rollouts},
        "dynamodb:PutItem": {health},
        "dynamodb:UpdateItem": {health},
    }
    iot = handler_grants(synthesized, "health_ingest", "iot:")
    assert set(iot) == {"iot:ListThingGroupsForThing", "iot:DescribeThing"}
    assert all(r == {"arn:<AWS::Partition>:iot:us-east-1:<AWS::AccountId>:thing/*"} for r in iot.values())
    services = {a.split(":")[0] for s in handler_statements(synthesized, "health_ingest") for a in as_list(s["Action"])}
    assert services == {"dynamodb", "iot", "kms", "logs", "sqs"}  # sqs: its own dead letters
