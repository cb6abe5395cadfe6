"""The rollout resources: tables the adapters can use, ring groups from the policy, the health rule, the roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from templates import as_list, logical_id, of_type

from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.core.names import FLEET_HEALTH_TABLE, HEALTH_RULE_SQL, ROLLOUTS_TABLE, ring_group
from edgeloop.core.rollout import DEFAULT_POLICY, Ring, RolloutPolicy
from edgeloop.core.settings import (
    ENV_FLEET_HEALTH_TABLE,
    ENV_MODEL_NAME,
    ENV_ROLLOUT_POLICY,
    ENV_ROLLOUTS_TABLE,
    CloudSettings,
)
from infra import config as cfg
from infra.constructs.event_function import RETRY_ATTEMPTS
from infra.constructs.results import SQL_VERSION
from infra.nag import flatten_reference

ROLLOUT_HANDLERS = ("model_approved", "rollout_controller")
"""Both run start_rollout and step through the same RolloutContext, so both hold the same grants."""


def _role_of(synthesized: Any, name: str) -> Any:
    stack = synthesized.stack
    return {
        "model_approved": stack.model_approved.role,
        "rollout_controller": stack.rollout_controller.role,
        "health_ingest": stack.health_ingest.handler.role,
        "training_completed": stack.training_completed.role,
        "training_launcher": stack.training_launcher.role,
    }[name]


def _statements(synthesized: Any, name: str) -> list[dict[str, Any]]:
    role_id = logical_id(synthesized, _role_of(synthesized, name))
    return [
        statement
        for policy in of_type(synthesized.template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _grants(synthesized: Any, name: str, prefix: str) -> dict[str, set[str]]:
    """action -> the resources (flattened) it is granted on, for actions starting with prefix."""
    out: dict[str, set[str]] = {}
    for statement in _statements(synthesized, name):
        for action in as_list(statement["Action"]):
            if action.startswith(prefix):
                out.setdefault(action, set()).update(flatten_reference(r) for r in as_list(statement["Resource"]))
    return out


def _table_arn(synthesized: Any, table: Any) -> str:
    return f"<{logical_id(synthesized, table)}.Arn>"


def _env(synthesized: Any, handler: str) -> dict[str, Any]:
    [function] = [
        r["Properties"]
        for r in of_type(synthesized.template, "AWS::Lambda::Function").values()
        if r["Properties"]["Handler"] == f"{handler}.handler"
    ]
    env: dict[str, Any] = function["Environment"]["Variables"]
    return env


def env_strings(env: dict[str, Any]) -> dict[str, str]:
    """The variables synth already knows (the rest are CloudFormation references)."""
    return {k: v for k, v in env.items() if isinstance(v, str)}


@pytest.mark.parametrize("name", [ROLLOUTS_TABLE, FLEET_HEALTH_TABLE])
def test_each_table_has_the_adapters_key_schema_on_demand(synthesized: Any, name: str) -> None:
    [table] = [
        t
        for t in of_type(synthesized.template, "AWS::DynamoDB::Table").values()
        if t["Properties"]["TableName"] == name
    ]
    expected = table_definition(name)
    props = table["Properties"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert props["BillingMode"] == expected["BillingMode"]
    assert "GlobalSecondaryIndexes" not in props
    assert "LocalSecondaryIndexes" not in props


def test_tables_are_encrypted_with_the_stacks_key_recoverable_and_kept(synthesized: Any) -> None:
    tables = of_type(synthesized.template, "AWS::DynamoDB::Table")
    key_id = logical_id(synthesized, synthesized.stack.storage.key)
    assert len(tables) == 4  # rollouts, fleet health, the samples catalogue and the retraining state
    for table in tables.values():
        props = table["Properties"]
        assert props["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["DeletionProtectionEnabled"] is True
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_one_ring_thing_group_per_ring_of_the_policy(synthesized: Any) -> None:
    groups = {g["Properties"]["ThingGroupName"] for g in of_type(synthesized.template, "AWS::IoT::ThingGroup").values()}
    rings = {ring_group(name) for name in DEFAULT_POLICY.ring_names}
    assert groups - {synthesized.stack.fleet.thing_group.thing_group_name} == rings
    assert all(
        "ParentGroupName" not in g["Properties"] for g in of_type(synthesized.template, "AWS::IoT::ThingGroup").values()
    )


@pytest.mark.parametrize("handler", ["health_ingest", *ROLLOUT_HANDLERS])
def test_rollout_handlers_get_the_policy_and_the_tables_through_the_core_settings(
    synthesized: Any, handler: str
) -> None:
    env = _env(synthesized, handler)
    state = synthesized.stack.rollout_state
    assert env[ENV_ROLLOUTS_TABLE] == {"Ref": logical_id(synthesized, state.rollouts)}
    assert env[ENV_FLEET_HEALTH_TABLE] == {"Ref": logical_id(synthesized, state.fleet_health)}
    deployed = CloudSettings("bucket", "arn:aws:iot:us-east-1:1:thinggroup/g", "0.1.0", None, "s3://d/out/").to_env()
    assert CloudSettings.from_env({**deployed, **env_strings(env)}).rollout_policy == DEFAULT_POLICY
    assert json.loads(env[ENV_ROLLOUT_POLICY]) == DEFAULT_POLICY.to_dict()


def test_the_controller_steps_the_configured_model_on_its_schedule_with_retries_and_dead_letters(
    synthesized: Any,
) -> None:
    controller = synthesized.stack.rollout_controller
    function_id = logical_id(synthesized, controller.function)
    [rule] = [
        r["Properties"]
        for r in of_type(synthesized.template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    [invoke_config] = [
        r["Properties"]
        for r in of_type(synthesized.template, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert "EventPattern" not in rule
    assert rule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == RETRY_ATTEMPTS
    assert rule["Targets"][0]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": [logical_id(synthesized, controller.dead_letters), "Arn"]
    }
    assert invoke_config["MaximumRetryAttempts"] == RETRY_ATTEMPTS
    assert _env(synthesized, "rollout_controller")[ENV_MODEL_NAME] == "digits"


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
    dynamodb = _grants(synthesized, "health_ingest", "dynamodb:")
    health, rollouts = _table_arn(synthesized, state.fleet_health), _table_arn(synthesized, state.rollouts)
    assert dynamodb == {
        "dynamodb:GetItem": {health, rollouts},
        "dynamodb:PutItem": {health},
        "dynamodb:UpdateItem": {health},
    }
    iot = _grants(synthesized, "health_ingest", "iot:")
    assert set(iot) == {"iot:ListThingGroupsForThing", "iot:DescribeThing"}
    assert all(r == {"arn:<AWS::Partition>:iot:us-east-1:<AWS::AccountId>:thing/*"} for r in iot.values())
    services = {a.split(":")[0] for s in _statements(synthesized, "health_ingest") for a in as_list(s["Action"])}
    assert services == {"dynamodb", "iot", "kms", "logs", "sqs"}  # sqs: its own dead letters


@pytest.mark.parametrize("handler", ROLLOUT_HANDLERS)
def test_rollout_handlers_read_and_write_both_tables_with_only_the_item_actions_they_call(
    synthesized: Any, handler: str
) -> None:
    state = synthesized.stack.rollout_state
    health, rollouts = _table_arn(synthesized, state.fleet_health), _table_arn(synthesized, state.rollouts)
    dynamodb = _grants(synthesized, handler, "dynamodb:")
    assert dynamodb == {
        "dynamodb:GetItem": {rollouts},
        "dynamodb:PutItem": {rollouts},
        "dynamodb:DeleteItem": {rollouts},
        "dynamodb:Query": {rollouts, health},
        "dynamodb:UpdateItem": {rollouts, health},
    }


@pytest.mark.parametrize("handler", ROLLOUT_HANDLERS)
def test_rollout_handlers_deploy_to_the_ring_groups_and_manage_the_registry_versions(
    synthesized: Any, handler: str
) -> None:
    stack = synthesized.stack
    rings = {f"<{logical_id(synthesized, group)}.Arn>" for group in stack.rings.groups.values()}
    iot = _grants(synthesized, handler, "iot:")
    assert rings <= iot["iot:DescribeThingGroup"]
    assert rings <= iot["iot:CreateJob"]
    assert (
        iot["iot:DescribeJob"]
        == iot["iot:UpdateJob"]
        == iot["iot:CancelJob"]
        == {"arn:<AWS::Partition>:iot:us-east-1:<AWS::AccountId>:job/*"}
    )
    greengrass = _grants(synthesized, handler, "greengrass:")
    assert greengrass["greengrass:CreateDeployment"] == greengrass["greengrass:ListDeployments"] == {"*"}
    assert greengrass["greengrass:GetDeployment"] == {
        "arn:<AWS::Partition>:greengrass:us-east-1:<AWS::AccountId>:deployments:*"
    }
    assert {r.split(":components:")[1] for r in greengrass["greengrass:GetComponent"]} == {
        "com.edgeloop.model.digits:versions:*",
        "com.edgeloop.Inference:versions:*",
    }
    sagemaker = _grants(synthesized, handler, "sagemaker:")
    packages = {"arn:<AWS::Partition>:sagemaker:us-east-1:<AWS::AccountId>:model-package/edgeloop-digits/*"}
    assert sagemaker["sagemaker:DescribeModelPackage"] == sagemaker["sagemaker:UpdateModelPackage"] == packages
    kms = _grants(synthesized, handler, "kms:")
    assert kms["kms:GetPublicKey"] == {f"<{logical_id(synthesized, stack.signing.key)}.Arn>"}


def test_model_approved_keeps_its_fleet_deployment_and_holds_every_controller_grant(synthesized: Any) -> None:
    approved = {(a, r) for a, rs in _grants(synthesized, "model_approved", "").items() for r in rs}
    controller = {(a, r) for a, rs in _grants(synthesized, "rollout_controller", "").items() for r in rs}
    fleet = f"<{logical_id(synthesized, synthesized.stack.fleet.thing_group)}.Arn>"
    assert {a for a, r in approved - controller if not a.startswith("logs:") and "DeadLetters" not in r} == {
        "iot:DescribeThingGroup",
        "iot:CreateJob",
    }
    assert {r for a, r in approved - controller if a.startswith("iot:")} == {fleet}
    assert {a for a, r in controller - approved if not a.startswith("logs:") and "DeadLetters" not in r} == set()


def test_no_statement_grants_every_dynamodb_action_or_an_unscoped_table(synthesized: Any) -> None:
    for policy in of_type(synthesized.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = [a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")]
            if not actions:
                continue
            assert not [a for a in actions if "*" in a or a == "dynamodb:TransactWriteItems"], statement
            resources = [flatten_reference(r) for r in as_list(statement["Resource"])]
            assert all(r.endswith(".Arn>") and "*" not in r for r in resources), statement


def test_the_tables_key_is_usable_by_the_rollout_handlers_only_through_dynamodb(synthesized: Any) -> None:
    key_arn = f"<{logical_id(synthesized, synthesized.stack.storage.key)}.Arn>"
    for handler in ("health_ingest", *ROLLOUT_HANDLERS):
        [statement] = [s for s in _statements(synthesized, handler) if flatten_reference(s["Resource"]) == key_arn]
        assert set(as_list(statement["Action"])) == {
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
        }
        via = flatten_reference(statement["Condition"]["StringEquals"]["kms:ViaService"])
        assert via == "dynamodb.us-east-1.<AWS::URLSuffix>"


PILOT = RolloutPolicy(rings=(Ring("pilot", 0.1, bake_s=60), Ring("all", 0.9, bake_s=60)), ring_timeout_s=600)


@pytest.fixture(scope="module")
def two_rings(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Another policy (as -c passes it, JSON text) and controller rate, synthesized with cdk-nag on."""
    from infra.app import build_app

    root = tmp_path_factory.mktemp("rings")
    context = {
        cfg.CONTEXT_ENV_NAME: "lab",
        cfg.CONTEXT_ROLLOUT_POLICY: json.dumps(PILOT.to_dict()),
        cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE: "1",
    }
    app, stack = build_app(staging_dir=root / "staging", context=context, outdir=str(Path(root) / "out"))
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_another_policy_makes_its_own_ring_groups_env_and_schedule(two_rings: dict[str, Any]) -> None:
    groups = {g["Properties"]["ThingGroupName"] for g in of_type(two_rings, "AWS::IoT::ThingGroup").values()}
    envs = [
        f["Properties"]["Environment"]["Variables"]
        for f in of_type(two_rings, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] in {f"{h}.handler" for h in ("health_ingest", *ROLLOUT_HANDLERS)}
    ]
    schedules = {r["Properties"].get("ScheduleExpression") for r in of_type(two_rings, "AWS::Events::Rule").values()}
    assert groups == {"edgeloop-fleet", ring_group("pilot"), ring_group("all")}
    assert len(envs) == 3
    assert all(RolloutPolicy.from_dict(json.loads(env[ENV_ROLLOUT_POLICY])) == PILOT for env in envs)
    assert "rate(1 minute)" in schedules
