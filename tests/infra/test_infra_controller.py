"""Rollout control: model_approved starting rollouts, the controller stepping them, what both may touch."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from templates import (
    as_list,
    env_strings,
    function_env,
    handler_grants,
    handler_statements,
    logical_id,
    matches,
    of_type,
    rule_for,
    statements_of_role,
    table_arn,
)

from edgeloop.core.events import MODEL_PACKAGE_COMPLETED, MODEL_PACKAGE_STATE_CHANGE, SAGEMAKER_SOURCE
from edgeloop.core.rollout import DEFAULT_POLICY
from edgeloop.core.settings import (
    ENV_FLEET_HEALTH_TABLE,
    ENV_MODEL_NAME,
    ENV_ROLLOUT_POLICY,
    ENV_ROLLOUTS_TABLE,
    CloudSettings,
)
from infra.constructs.event_function import RETRY_ATTEMPTS
from infra.nag import flatten_reference

ROLLOUT_HANDLERS = ("model_approved", "rollout_controller")
"""Both run start_rollout and step through the same RolloutContext, so both hold the same grants."""


def test_model_approved_rule_takes_approvals_of_our_group_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = logical_id(synthesized, synthesized.stack.model_approved.handler.function)
    pattern = rule_for(synthesized.template, function_id)["EventPattern"]
    approved = event("model_package_approved")
    pending = event("model_package_approved")
    pending["detail"]["ModelApprovalStatus"] = "PendingManualApproval"
    other_group = event("model_package_approved")
    other_group["detail"]["ModelPackageGroupName"] = "someone-elses-models"
    in_progress = event("model_package_approved")
    in_progress["detail"]["ModelPackageStatus"] = "InProgress"
    assert pattern["source"] == [SAGEMAKER_SOURCE]
    assert pattern["detail-type"] == [MODEL_PACKAGE_STATE_CHANGE]
    assert pattern["detail"]["ModelPackageStatus"] == [MODEL_PACKAGE_COMPLETED]
    rejected = event("model_package_approved")
    rejected["detail"]["ModelApprovalStatus"] = "Rejected"
    matched = [matches(pattern, e) for e in (approved, rejected, pending, other_group, in_progress)]
    assert matched == [True, True, False, False, False]


def test_model_approved_reads_the_fleet_group(synthesized: Any) -> None:
    role_id = logical_id(synthesized, synthesized.stack.model_approved.handler.role)
    group_id = synthesized.stack.get_logical_id(synthesized.stack.fleet.thing_group)
    statements = statements_of_role(synthesized.template, role_id)
    assert any(
        "iot:DescribeThingGroup" in as_list(s["Action"]) and s["Resource"] == {"Fn::GetAtt": [group_id, "Arn"]}
        for s in statements
    )


@pytest.mark.parametrize("handler", ["health_ingest", *ROLLOUT_HANDLERS])
def test_rollout_handlers_get_the_policy_and_the_tables_through_the_core_settings(
    synthesized: Any, handler: str
) -> None:
    env = function_env(synthesized.template, handler)
    state = synthesized.stack.rollout_state
    assert env[ENV_ROLLOUTS_TABLE] == {"Ref": logical_id(synthesized, state.rollouts)}
    assert env[ENV_FLEET_HEALTH_TABLE] == {"Ref": logical_id(synthesized, state.fleet_health)}
    deployed = CloudSettings("bucket", "arn:aws:iot:us-east-1:1:thinggroup/g", "0.1.0", None, "s3://d/out/").to_env()
    assert CloudSettings.from_env({**deployed, **env_strings(env)}).rollout_policy == DEFAULT_POLICY
    assert json.loads(env[ENV_ROLLOUT_POLICY]) == DEFAULT_POLICY.to_dict()


def test_the_controller_steps_the_configured_model_on_its_schedule_with_retries_and_dead_letters(
    synthesized: Any,
) -> None:
    controller = synthesized.stack.rollout_controller.handler
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
    assert function_env(synthesized.template, "rollout_controller")[ENV_MODEL_NAME] == "digits"


@pytest.mark.parametrize("handler", ROLLOUT_HANDLERS)
def test_rollout_handlers_read_and_write_both_tables_with_only_the_item_actions_they_call(
    synthesized: Any, handler: str
) -> None:
    state = synthesized.stack.rollout_state
    health, rollouts = table_arn(synthesized, state.fleet_health), table_arn(synthesized, state.rollouts)
    dynamodb = handler_grants(synthesized, handler, "dynamodb:")
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
    iot = handler_grants(synthesized, handler, "iot:")
    assert rings <= iot["iot:DescribeThingGroup"]
    assert rings <= iot["iot:CreateJob"]
    assert (
        iot["iot:DescribeJob"]
        == iot["iot:UpdateJob"]
        == iot["iot:CancelJob"]
        == iot["iot:ListJobExecutionsForJob"]
        == {"arn:<AWS::Partition>:iot:us-east-1:<AWS::AccountId>:job/*"}
    )
    assert iot["iot:DescribeJobExecution"] == {"arn:<AWS::Partition>:iot:us-east-1:<AWS::AccountId>:thing/*"}
    greengrass = handler_grants(synthesized, handler, "greengrass:")
    assert greengrass["greengrass:CreateDeployment"] == greengrass["greengrass:ListDeployments"] == {"*"}
    assert greengrass["greengrass:GetDeployment"] == {
        "arn:<AWS::Partition>:greengrass:us-east-1:<AWS::AccountId>:deployments:*"
    }
    assert {r.split(":components:")[1] for r in greengrass["greengrass:GetComponent"]} == {
        "com.edgeloop.model.digits:versions:*",
        "com.edgeloop.Inference:versions:*",
    }
    sagemaker = handler_grants(synthesized, handler, "sagemaker:")
    packages = {"arn:<AWS::Partition>:sagemaker:us-east-1:<AWS::AccountId>:model-package/edgeloop-digits/*"}
    assert sagemaker["sagemaker:DescribeModelPackage"] == sagemaker["sagemaker:UpdateModelPackage"] == packages
    kms = handler_grants(synthesized, handler, "kms:")
    assert kms["kms:GetPublicKey"] == {f"<{logical_id(synthesized, stack.signing.key)}.Arn>"}


def test_model_approved_keeps_its_fleet_deployment_and_holds_every_controller_grant(synthesized: Any) -> None:
    approved = {(a, r) for a, rs in handler_grants(synthesized, "model_approved", "").items() for r in rs}
    controller = {(a, r) for a, rs in handler_grants(synthesized, "rollout_controller", "").items() for r in rs}
    fleet = f"<{logical_id(synthesized, synthesized.stack.fleet.thing_group)}.Arn>"
    assert {a for a, r in approved - controller if not a.startswith("logs:") and "DeadLetters" not in r} == {
        "iot:DescribeThingGroup",
        "iot:CreateJob",
    }
    assert {r for a, r in approved - controller if a.startswith("iot:")} == {fleet}
    assert {a for a, r in controller - approved if not a.startswith("logs:") and "DeadLetters" not in r} == set()


def test_the_tables_key_is_usable_by_the_rollout_handlers_only_through_dynamodb(synthesized: Any) -> None:
    key_arn = f"<{logical_id(synthesized, synthesized.stack.storage.key)}.Arn>"
    for handler in ("health_ingest", *ROLLOUT_HANDLERS):
        [statement] = [
            s for s in handler_statements(synthesized, handler) if flatten_reference(s["Resource"]) == key_arn
        ]
        assert set(as_list(statement["Action"])) == {
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
        }
        via = flatten_reference(statement["Condition"]["StringEquals"]["kms:ViaService"])
        assert via == "dynamodb.us-east-1.<AWS::URLSuffix>"
