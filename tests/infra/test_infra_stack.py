"""The composed stack: what holds across its units (wildcards, outputs, cdk-nag, context, handlers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from templates import as_list, function_props, of_type

from edgeloop.core.events import MODEL_PACKAGE_STATE_CHANGE
from edgeloop.core.names import model_component_name, model_package_group
from edgeloop.core.settings import ENV_AUTO_APPROVE_MIN_ACCURACY
from infra.nag import flatten_reference

WILDCARD_ONLY_ACTIONS = {
    "sagemaker:ListModelPackages",
    "greengrass:CreateDeployment",
    "greengrass:ListDeployments",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
}
"""Actions AWS authorizes only on Resource '*'; nothing else may use it."""


def test_only_actions_without_resource_permissions_use_a_bare_wildcard(synthesized: Any) -> None:
    for policy in of_type(synthesized.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert all(not a.endswith(":*") and a != "*" for a in actions), statement
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= WILDCARD_ONLY_ACTIONS, statement


def test_no_statement_grants_every_dynamodb_action_or_an_unscoped_table(synthesized: Any) -> None:
    for policy in of_type(synthesized.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = [a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")]
            if not actions:
                continue
            assert not [a for a in actions if "*" in a or a == "dynamodb:TransactWriteItems"], statement
            resources = [flatten_reference(r) for r in as_list(statement["Resource"])]
            assert all(r.endswith(".Arn>") and "*" not in r for r in resources), statement


def test_outputs_name_what_an_operator_needs(synthesized: Any) -> None:
    assert set(synthesized.template["Outputs"]) >= {
        "ArtifactsBucketName",
        "DataBucketName",
        "ModelPackageGroupName",
        "FleetThingGroupArn",
        "InferenceComponentArn",
        "TrainingOutputUri",
        "ResultsUri",
    }
    assert synthesized.template["Outputs"]["ModelPackageGroupName"]["Value"] == model_package_group("digits")


def test_every_acknowledged_finding_says_why(synthesized: Any) -> None:
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    reasons = {
        rule: reason
        for construct in synthesized.stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for rule, reason in entry.data.items()
    }
    assert reasons
    assert all(isinstance(r, str) and len(r.split()) >= 6 for r in reasons.values()), reasons


VARIANT_CONTEXT = {
    "edgeloop:envName": "lab",
    "edgeloop:modelName": "wine",
    "edgeloop:autoApproveMinAccuracy": "0.9",
    "edgeloop:account": "123456789012",
    "edgeloop:region": "eu-west-1",
    "edgeloop:trainingSchedule": "rate(7 days)",
}
"""Another environment: its own model, auto-approval and a fixed account (ARNs then hold it literally)."""


def _synth(root: Path, context: dict[str, Any]) -> dict[str, Any]:
    from infra.app import build_app

    app, stack = build_app(staging_dir=root / "staging", context=context, outdir=str(root / "out"))
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The variant environment, synthesized without cdk-nag (its own test runs that)."""
    return _synth(tmp_path_factory.mktemp("variant"), {**VARIANT_CONTEXT, "edgeloop:cdkNag": False})


@pytest.mark.parametrize("use_variant", [False, True], ids=["cdk.json", "variant"])
def test_cdk_nag_finds_nothing_unacknowledged(use_variant: bool, tmp_path: Path, cdk_context: dict[str, Any]) -> None:
    context = VARIANT_CONTEXT if use_variant else cdk_context
    template = _synth(tmp_path, {**context, "edgeloop:cdkNag": True})  # a finding raises ValidationFailed
    audit = {
        rule["id"]: rule["reason"]
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert {"AwsSolutions-L1", "AwsSolutions-S1", "AwsSolutions-SQS3"} <= set(audit)
    assert any(rule.startswith("AwsSolutions-IAM5[Resource::") for rule in audit)


def test_context_flows_into_names_rules_settings_and_permissions(variant: dict[str, Any]) -> None:
    [group] = of_type(variant, "AWS::SageMaker::ModelPackageGroup").values()
    approved = function_props(variant, "model_approved.handler")
    [rule] = [
        r["Properties"]["EventPattern"]
        for r in of_type(variant, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == [MODEL_PACKAGE_STATE_CHANGE]
    ]
    rendered = json.dumps(variant)
    assert group["Properties"]["ModelPackageGroupName"] == model_package_group("wine")
    assert rule["detail"]["ModelPackageGroupName"] == [model_package_group("wine")]
    assert approved["FunctionName"] == "edgeloop-lab-model-approved"
    assert approved["Environment"]["Variables"][ENV_AUTO_APPROVE_MIN_ACCURACY] == "0.9"
    assert f":greengrass:eu-west-1:123456789012:components:{model_component_name('wine')}" in rendered
    assert model_component_name("digits") not in rendered
    schedules = {
        r["Properties"]["ScheduleExpression"]: r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
        for r in of_type(variant, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    }
    handlers = {r["Properties"]["Handler"] for k, r in variant["Resources"].items() if k in schedules.values()}
    assert set(schedules) == {"rate(7 days)", "rate(5 minutes)", "rate(15 minutes)"}
    assert variant["Resources"][schedules["rate(7 days)"]]["Properties"]["Handler"] == "training_launcher.handler"
    assert variant["Resources"][schedules["rate(15 minutes)"]]["Properties"]["Handler"] == "retraining_trigger.handler"
    assert handlers == {"training_launcher.handler", "rollout_controller.handler", "retraining_trigger.handler"}


def test_every_handler_in_functions_is_deployed_once(synthesized: Any) -> None:
    handlers = sorted(
        r["Properties"]["Handler"].removesuffix(".handler")
        for r in of_type(synthesized.template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler", "").endswith(".handler") and "FunctionName" in r["Properties"]
    )
    modules = sorted(p.stem for p in (Path(__file__).parents[2] / "functions").glob("*.py") if p.stem != "__init__")
    assert handlers == modules
