"""The synthesized stack: storage, registry, handlers, rules, IoT policy and component, against the core."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from edgeloop.core.events import MODEL_PACKAGE_STATE_CHANGE, SAGEMAKER_SOURCE, TRAINING_JOB_STATE_CHANGE
from edgeloop.core.names import (
    FLEET_THING_GROUP,
    INFERENCE_COMPONENT,
    model_component_name,
    model_package_group,
    results_topic,
    shadow_topic,
)
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from edgeloop.core.settings import ENV_AUTO_APPROVE_MIN_ACCURACY, CloudSettings
from infra.nag import flatten_reference

THING_VARIABLE = "${iot:Connection.Thing.ThingName}"
WILDCARD_ONLY_ACTIONS = {"sagemaker:ListModelPackages", "greengrass:CreateDeployment"}
"""Actions AWS authorizes only on Resource '*'; nothing else may use it."""


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _logical_id(synthesized: Any, construct: Any) -> str:
    return str(synthesized.stack.get_logical_id(construct.node.default_child))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    [function] = [
        r["Properties"]
        for r in _of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"]["Handler"] == name
    ]
    props: dict[str, Any] = function
    return props


def _statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for the patterns we use: exact-value lists, nested objects."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not _matches(expected, value):
                return False
        elif value not in expected:
            return False
    return True


def _rule_for(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        r["Properties"]
        for r in _of_type(template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    [rule] = rules
    return rule


def test_data_and_artifact_buckets_are_encrypted_versioned_private_logged_and_kept(synthesized: Any) -> None:
    template = synthesized.template
    key_id = _logical_id(synthesized, synthesized.stack.storage.key)
    storage = synthesized.stack.storage
    for bucket in (storage.artifacts, storage.data):
        resource = template["Resources"][_logical_id(synthesized, bucket)]
        props = resource["Properties"]
        [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {
            "Ref": _logical_id(synthesized, storage.access_logs)
        }
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_every_bucket_refuses_plain_http(synthesized: Any) -> None:
    template = Template.from_json(synthesized.template)
    buckets = _of_type(synthesized.template, "AWS::S3::Bucket")
    assert len(buckets) == 3
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
    [key] = _of_type(synthesized.template, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


def test_model_package_group_is_named_by_the_core(synthesized: Any) -> None:
    [group] = _of_type(synthesized.template, "AWS::SageMaker::ModelPackageGroup").values()
    assert group["Properties"]["ModelPackageGroupName"] == model_package_group("digits")
    assert group["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("name", ["training_completed", "model_approved"])
def test_handlers_run_python_311_with_the_core_settings_and_a_dead_letter_queue(synthesized: Any, name: str) -> None:
    props = _function(synthesized.template, f"{name}.handler")
    env = props["Environment"]["Variables"]
    settings = CloudSettings("bucket", "arn:aws:iot:r:1:thinggroup/g", "0.1.0", None)
    assert props["Runtime"] == "python3.11"
    assert props["FunctionName"] == f"edgeloop-dev-{name.replace('_', '-')}"
    assert set(env) == set(settings.to_env())
    assert env[next(iter(settings.to_env()))] == {"Ref": _logical_id(synthesized, synthesized.stack.storage.artifacts)}
    assert "Fn::GetAtt" in props["DeadLetterConfig"]["TargetArn"]
    assert props["Code"]["S3Key"].endswith(".zip")


def test_training_completed_rule_takes_completed_jobs_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = _logical_id(synthesized, synthesized.stack.training_completed.function)
    rule = _rule_for(synthesized.template, function_id)
    assert rule["EventPattern"] == {
        "source": [SAGEMAKER_SOURCE],
        "detail-type": [TRAINING_JOB_STATE_CHANGE],
        "detail": {"TrainingJobStatus": ["Completed"]},
    }
    assert _matches(rule["EventPattern"], event("training_job_completed"))
    assert not _matches(rule["EventPattern"], event("training_job_failed"))
    assert "DeadLetterConfig" in rule["Targets"][0]


def test_model_approved_rule_takes_approvals_of_our_group_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = _logical_id(synthesized, synthesized.stack.model_approved.function)
    pattern = _rule_for(synthesized.template, function_id)["EventPattern"]
    approved = event("model_package_approved")
    pending = event("model_package_approved")
    pending["detail"]["ModelApprovalStatus"] = "PendingManualApproval"
    other_group = event("model_package_approved")
    other_group["detail"]["ModelPackageGroupName"] = "someone-elses-models"
    assert pattern["source"] == [SAGEMAKER_SOURCE]
    assert pattern["detail-type"] == [MODEL_PACKAGE_STATE_CHANGE]
    assert [_matches(pattern, e) for e in (approved, pending, other_group)] == [True, False, False]


def test_only_actions_without_resource_permissions_use_a_bare_wildcard(synthesized: Any) -> None:
    for policy in _of_type(synthesized.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            assert all(not a.endswith(":*") and a != "*" for a in actions), statement
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= WILDCARD_ONLY_ACTIONS, statement


def test_training_completed_may_create_only_its_models_component(synthesized: Any) -> None:
    role_id = _logical_id(synthesized, synthesized.stack.training_completed.role)
    resources = [
        flatten_reference(r)
        for s in _statements_of_role(synthesized.template, role_id)
        if "greengrass:CreateComponentVersion" in _as_list(s["Action"])
        for r in _as_list(s["Resource"])
    ]
    component = model_component_name("digits")
    assert resources
    assert all(r.endswith((f":components:{component}", f":components:{component}:versions:*")) for r in resources)


def test_model_approved_reads_the_fleet_group(synthesized: Any) -> None:
    role_id = _logical_id(synthesized, synthesized.stack.model_approved.role)
    [group_id] = _of_type(synthesized.template, "AWS::IoT::ThingGroup")
    statements = _statements_of_role(synthesized.template, role_id)
    assert any(
        "iot:DescribeThingGroup" in _as_list(s["Action"]) and s["Resource"] == {"Fn::GetAtt": [group_id, "Arn"]}
        for s in statements
    )


def test_fleet_thing_group_is_named_by_the_core(synthesized: Any) -> None:
    [group] = _of_type(synthesized.template, "AWS::IoT::ThingGroup").values()
    assert group["Properties"]["ThingGroupName"] == FLEET_THING_GROUP


def _device_statements(synthesized: Any) -> dict[str, list[str]]:
    [policy] = _of_type(synthesized.template, "AWS::IoT::Policy").values()
    return {
        s["Action"]: [flatten_reference(r) for r in _as_list(s["Resource"])]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    }


def test_device_policy_confines_each_device_to_its_own_topics(synthesized: Any) -> None:
    statements = _device_statements(synthesized)
    own = [r for action, rs in statements.items() if action != "iot:AssumeRoleWithCertificate" for r in rs]
    assert own
    assert all(THING_VARIABLE.replace("${", "<").replace("}", ">") in r for r in own)
    assert not any(c in r.split(":", 5)[-1] for r in own for c in "*+#")


def test_device_policy_uses_the_cores_topic_names(synthesized: Any) -> None:
    statements = _device_statements(synthesized)
    thing = THING_VARIABLE.replace("${", "<").replace("}", ">")  # as flatten_reference renders it

    def topic(name: str) -> str:
        return name.replace("THING", thing)

    assert statements["iot:Connect"][0].endswith(f":client/{thing}")
    assert {r.split(":topic/", 1)[1] for r in statements["iot:Publish"]} >= {
        topic(results_topic("THING")),
        topic(shadow_topic("THING", "update")),
    }
    subscribed = {r.split(":topicfilter/", 1)[1] for r in statements["iot:Subscribe"]}
    received = {r.split(":topic/", 1)[1] for r in statements["iot:Receive"]}
    expected = {topic(shadow_topic("THING", op)) for op in ("update/accepted", "update/rejected", "update/delta")}
    assert expected <= subscribed == received


def _inline_recipe(synthesized: Any) -> tuple[dict[str, Any], list[Any]]:
    """The component's recipe with every CloudFormation reference replaced by a placeholder string."""
    [component] = _of_type(synthesized.template, "AWS::GreengrassV2::ComponentVersion").values()
    recipe = component["Properties"]["InlineRecipe"]
    if isinstance(recipe, str):
        return json.loads(recipe), []
    delimiter, parts = recipe["Fn::Join"]
    references = [p for p in parts if not isinstance(p, str)]
    text = delimiter.join(p if isinstance(p, str) else "REF" for p in parts)
    return json.loads(text), references


def test_inference_component_recipe_passes_the_greengrass_schema(
    synthesized: Any, validate_recipe: Callable[[dict[str, Any]], None]
) -> None:
    recipe, _ = _inline_recipe(synthesized)
    validate_recipe(recipe)
    assert (recipe["ComponentName"], recipe["ComponentVersion"]) == (INFERENCE_COMPONENT, "0.1.0")


def test_inference_component_fetches_the_staged_archive(synthesized: Any) -> None:
    recipe, references = _inline_recipe(synthesized)
    [artifact] = recipe["Manifests"][0]["Artifacts"]
    [reference] = references
    uri = reference["Fn::Sub"]
    asset_key = uri.rsplit("/", 1)[1]
    staged = (synthesized.staging_dir / "inference" / INFERENCE_ARCHIVE).read_bytes()
    assert (artifact["Uri"], artifact["Unarchive"]) == ("REF", "ZIP")
    assert uri.startswith("s3://cdk-hnb659fds-assets-${AWS::AccountId}-us-east-1/")
    assert (synthesized.outdir / f"asset.{asset_key}").read_bytes() == staged


def test_outputs_name_what_an_operator_needs(synthesized: Any) -> None:
    assert set(synthesized.template["Outputs"]) >= {
        "ArtifactsBucketName",
        "DataBucketName",
        "ModelPackageGroupName",
        "FleetThingGroupArn",
        "InferenceComponentArn",
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
    [group] = _of_type(variant, "AWS::SageMaker::ModelPackageGroup").values()
    approved = _function(variant, "model_approved.handler")
    [rule] = [
        r["Properties"]["EventPattern"]
        for r in _of_type(variant, "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"]["detail-type"] == [MODEL_PACKAGE_STATE_CHANGE]
    ]
    rendered = json.dumps(variant)
    assert group["Properties"]["ModelPackageGroupName"] == model_package_group("wine")
    assert rule["detail"]["ModelPackageGroupName"] == [model_package_group("wine")]
    assert approved["FunctionName"] == "edgeloop-lab-model-approved"
    assert approved["Environment"]["Variables"][ENV_AUTO_APPROVE_MIN_ACCURACY] == "0.9"
    assert f":greengrass:eu-west-1:123456789012:components:{model_component_name('wine')}" in rendered
    assert model_component_name("digits") not in rendered
