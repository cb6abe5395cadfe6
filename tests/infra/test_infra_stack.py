"""The synthesized stack: storage, registry, handlers, rules, IoT policy and component, against the core."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from templates import as_list, logical_id, of_type

from edgeloop.core.events import (
    MODEL_PACKAGE_COMPLETED,
    MODEL_PACKAGE_STATE_CHANGE,
    SAGEMAKER_SOURCE,
    TRAINING_JOB_COMPLETED,
    TRAINING_JOB_STATE_CHANGE,
)
from edgeloop.core.names import (
    FLEET_THING_GROUP,
    INFERENCE_COMPONENT,
    TRAINING_DATA_PREFIX,
    TRAINING_OUTPUT_PREFIX,
    model_component_name,
    model_package_group,
    results_topic,
    shadow_topic,
)
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from edgeloop.core.settings import (
    ENV_AUTO_APPROVE_MIN_ACCURACY,
    ENV_ROLLOUT_POLICY,
    ENV_SIGNING_KEY_ID,
    ENV_TRAINING_DATA_URI,
    ENV_TRAINING_OUTPUT_URI,
    ENV_TRAINING_ROLE_ARN,
    CloudSettings,
    LauncherSettings,
)
from edgeloop.core.signing import SIGNING_KEY_SPEC
from infra.nag import flatten_reference

LAUNCHER = LauncherSettings("digits", "img:1", "arn:aws:iam::1:role/r", "s3://d/training-data/", "s3://d/out/")
THING_VARIABLE = "${iot:Connection.Thing.ThingName}"
THING = THING_VARIABLE.replace("${", "<").replace("}", ">")
"""The policy variable as flatten_reference renders it."""
WILDCARD_ONLY_ACTIONS = {
    "sagemaker:ListModelPackages",
    "greengrass:CreateDeployment",
    "greengrass:ListDeployments",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
}
"""Actions AWS authorizes only on Resource '*'; nothing else may use it."""
GREENGRASS_CORE_DATA_PLANE = {
    "greengrass:GetComponentVersionArtifact",
    "greengrass:ResolveComponentCandidates",
    "greengrass:GetDeploymentConfiguration",
    "greengrass:ListThingGroupsForCoreDevice",
}
"""What AWS's minimal core-device policy allows on '*' (written out here, not imported, to check the stack)."""


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    [function] = [
        r["Properties"]
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"]["Handler"] == name
    ]
    props: dict[str, Any] = function
    return props


def _statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _render(node: Any, refs: dict[str, str]) -> str:
    """A CloudFormation string value with each Ref replaced as if deployed (only Ref and Fn::Join occur)."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        return refs[node["Ref"]]
    delimiter, parts = node["Fn::Join"]
    return str(delimiter).join(_render(part, refs) for part in parts)


def _matches(pattern: dict[str, Any], event: dict[str, Any], refs: dict[str, str] | None = None) -> bool:
    """EventBridge matching for the patterns we use: exact values, prefixes, nested objects."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not _matches(expected, value, refs):
                return False
        elif not any(_value_matches(e, value, refs or {}) for e in expected):
            return False
    return True


def _value_matches(expected: Any, value: Any, refs: dict[str, str]) -> bool:
    if isinstance(expected, dict) and set(expected) == {"prefix"}:
        return isinstance(value, str) and value.startswith(_render(expected["prefix"], refs))
    return bool(value == expected)


def _rule_for(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        r["Properties"]
        for r in of_type(template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    [rule] = rules
    return rule


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


def test_the_signing_key_is_an_ecc_p256_sign_verify_key_that_is_kept(synthesized: Any) -> None:
    keys = of_type(synthesized.template, "AWS::KMS::Key")
    signing = keys[logical_id(synthesized, synthesized.stack.signing.key)]
    assert len(keys) == 2
    assert (signing["Properties"]["KeySpec"], signing["Properties"]["KeyUsage"]) == (SIGNING_KEY_SPEC, "SIGN_VERIFY")
    assert signing["DeletionPolicy"] == "Retain"


def _key_grants(synthesized: Any, role: Any, key: Any) -> set[str]:
    role_id, key_id = logical_id(synthesized, role), logical_id(synthesized, key)
    return {
        action
        for s in _statements_of_role(synthesized.template, role_id)
        if s["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
        for action in as_list(s["Action"])
    }


def test_only_training_completed_may_sign_and_only_model_approved_may_read_the_public_key(synthesized: Any) -> None:
    stack = synthesized.stack
    key = stack.signing.key
    assert _key_grants(synthesized, stack.training_completed.handler.role, key) == {"kms:Sign"}
    assert _key_grants(synthesized, stack.model_approved.handler.role, key) == {"kms:GetPublicKey"}
    assert _key_grants(synthesized, stack.rollout_controller.handler.role, key) == {"kms:GetPublicKey"}
    assert _key_grants(synthesized, stack.training_launcher.handler.role, key) == set()
    assert _key_grants(synthesized, stack.health_ingest.handler.role, key) == set()
    for name in ("training_completed", "model_approved", "rollout_controller"):
        env = _function(synthesized.template, f"{name}.handler")["Environment"]["Variables"]
        assert env[ENV_SIGNING_KEY_ID] == {"Fn::GetAtt": [logical_id(synthesized, key), "Arn"]}


def test_the_launcher_starts_only_this_models_jobs_and_passes_only_the_training_role(synthesized: Any) -> None:
    stack = synthesized.stack
    statements = _statements_of_role(
        synthesized.template, logical_id(synthesized, stack.training_launcher.handler.role)
    )
    [create] = [s for s in statements if "sagemaker:CreateTrainingJob" in as_list(s["Action"])]
    assert flatten_reference(create["Resource"]).endswith(":training-job/edgeloop-digits-*")
    [passing] = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert flatten_reference(passing["Resource"]).endswith(":role/edgeloop-dev-training")
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    env = _function(synthesized.template, "training_launcher.handler")["Environment"]["Variables"]
    assert set(env) == set(LAUNCHER.to_env())
    assert flatten_reference(env[ENV_TRAINING_ROLE_ARN]).endswith(":role/edgeloop-dev-training")
    assert flatten_reference(env[ENV_TRAINING_DATA_URI]).endswith(f"/{TRAINING_DATA_PREFIX}")


def test_the_training_role_reads_training_data_and_writes_training_output_only(synthesized: Any) -> None:
    role = synthesized.template["Resources"][logical_id(synthesized, synthesized.stack.training.role)]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    statements = _statements_of_role(synthesized.template, logical_id(synthesized, synthesized.stack.training.role))
    s3 = {
        action: flatten_reference(r)
        for s in statements
        for action in as_list(s["Action"])
        if action.startswith("s3:")
        for r in as_list(s["Resource"])
    }
    assert s3["s3:GetObject"].endswith(f"/{TRAINING_DATA_PREFIX}*")
    assert s3["s3:PutObject"].endswith(f"/{TRAINING_OUTPUT_PREFIX}*")


def test_the_retraining_rule_takes_edgeloops_signal_for_this_model_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = logical_id(synthesized, synthesized.stack.training_launcher.handler.function)
    [rule] = [
        r["Properties"]
        for r in of_type(synthesized.template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    signal, other_model, foreign = (
        event("retraining_requested"),
        event("retraining_requested"),
        event("retraining_requested"),
    )
    other_model["detail"]["model_name"] = "wine"
    foreign["source"] = "someone.else"
    assert [_matches(rule["EventPattern"], e) for e in (signal, other_model, foreign)] == [True, False, False]
    assert "DeadLetterConfig" in rule["Targets"][0]


def test_model_package_group_is_named_by_the_core(synthesized: Any) -> None:
    [group] = of_type(synthesized.template, "AWS::SageMaker::ModelPackageGroup").values()
    assert group["Properties"]["ModelPackageGroupName"] == model_package_group("digits")
    assert group["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("name", ["training_completed", "model_approved"])
def test_handlers_run_python_311_with_the_core_settings_and_a_dead_letter_queue(synthesized: Any, name: str) -> None:
    props = _function(synthesized.template, f"{name}.handler")
    env = props["Environment"]["Variables"]
    settings = CloudSettings(
        "bucket", "arn:aws:iot:r:1:thinggroup/g", "0.1.0", None, "s3://data/out/", 0.0, "key", rollouts_table="t"
    )
    data_id = logical_id(synthesized, synthesized.stack.storage.data)
    assert props["Runtime"] == "python3.11"
    assert props["FunctionName"] == f"edgeloop-dev-{name.replace('_', '-')}"
    assert set(env) == set(replace(settings, fleet_health_table="h").to_env()) | {ENV_ROLLOUT_POLICY}
    assert env[next(iter(settings.to_env()))] == {"Ref": logical_id(synthesized, synthesized.stack.storage.artifacts)}
    assert _render(env[ENV_TRAINING_OUTPUT_URI], {data_id: "data"}) == f"s3://data/{TRAINING_OUTPUT_PREFIX}"
    assert "Fn::GetAtt" in props["DeadLetterConfig"]["TargetArn"]
    assert props["Code"]["S3Key"].endswith(".zip")


def test_training_completed_rule_takes_completed_jobs_writing_to_our_training_output_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = logical_id(synthesized, synthesized.stack.training_completed.handler.function)
    data_id = logical_id(synthesized, synthesized.stack.storage.data)
    rule = _rule_for(synthesized.template, function_id)
    output_prefix = {"Fn::Join": ["", ["s3://", {"Ref": data_id}, f"/{TRAINING_OUTPUT_PREFIX}"]]}
    assert rule["EventPattern"] == {
        "source": [SAGEMAKER_SOURCE],
        "detail-type": [TRAINING_JOB_STATE_CHANGE],
        "detail": {
            "TrainingJobStatus": [TRAINING_JOB_COMPLETED],
            "ModelArtifacts": {"S3ModelArtifacts": [{"prefix": output_prefix}]},
        },
    }
    deployed = {data_id: "edgeloop-data"}  # the bucket the sample events name
    completed = event("training_job_completed")
    elsewhere = event("training_job_completed")
    elsewhere["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://edgeloop-data/other-team/job/output/model.tar.gz"
    other_bucket = event("training_job_completed")
    other_bucket["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://someone-else/training-output/j/model.tar.gz"
    results = [_matches(rule["EventPattern"], e, deployed) for e in (completed, elsewhere, other_bucket)]
    assert results == [True, False, False]
    assert not _matches(rule["EventPattern"], event("training_job_failed"), deployed)
    assert "DeadLetterConfig" in rule["Targets"][0]


def test_model_approved_rule_takes_approvals_of_our_group_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = logical_id(synthesized, synthesized.stack.model_approved.handler.function)
    pattern = _rule_for(synthesized.template, function_id)["EventPattern"]
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
    matched = [_matches(pattern, e) for e in (approved, rejected, pending, other_group, in_progress)]
    assert matched == [True, True, False, False, False]


def test_only_actions_without_resource_permissions_use_a_bare_wildcard(synthesized: Any) -> None:
    for policy in of_type(synthesized.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert all(not a.endswith(":*") and a != "*" for a in actions), statement
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= WILDCARD_ONLY_ACTIONS, statement


def test_training_completed_may_create_only_its_models_component(synthesized: Any) -> None:
    role_id = logical_id(synthesized, synthesized.stack.training_completed.handler.role)
    resources = [
        flatten_reference(r)
        for s in _statements_of_role(synthesized.template, role_id)
        if "greengrass:CreateComponentVersion" in as_list(s["Action"])
        for r in as_list(s["Resource"])
    ]
    component = model_component_name("digits")
    assert resources
    assert all(r.endswith((f":components:{component}", f":components:{component}:versions:*")) for r in resources)


def test_model_approved_reads_the_fleet_group(synthesized: Any) -> None:
    role_id = logical_id(synthesized, synthesized.stack.model_approved.handler.role)
    group_id = synthesized.stack.get_logical_id(synthesized.stack.fleet.thing_group)
    statements = _statements_of_role(synthesized.template, role_id)
    assert any(
        "iot:DescribeThingGroup" in as_list(s["Action"]) and s["Resource"] == {"Fn::GetAtt": [group_id, "Arn"]}
        for s in statements
    )


def test_fleet_thing_group_is_named_by_the_core(synthesized: Any) -> None:
    group = synthesized.template["Resources"][synthesized.stack.get_logical_id(synthesized.stack.fleet.thing_group)]
    assert group["Properties"]["ThingGroupName"] == FLEET_THING_GROUP


def _device_statements(synthesized: Any) -> list[tuple[set[str], list[str]]]:
    [policy] = of_type(synthesized.template, "AWS::IoT::Policy").values()
    return [
        (set(as_list(s["Action"])), [flatten_reference(r) for r in as_list(s["Resource"])])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]


def _device_grants(synthesized: Any, action: str, resource_type: str) -> set[str]:
    """The resource names (after ':<type>/') the device policy allows for one action."""
    return {
        r.split(f":{resource_type}/", 1)[1]
        for actions, resources in _device_statements(synthesized)
        if action in actions
        for r in resources
        if f":{resource_type}/" in r
    }


def test_device_policy_confines_each_device_to_its_own_names(synthesized: Any) -> None:
    own = [
        r
        for actions, resources in _device_statements(synthesized)
        if not actions & ({"iot:AssumeRoleWithCertificate"} | GREENGRASS_CORE_DATA_PLANE)
        for r in resources
    ]
    assert own
    assert all(THING in r for r in own)
    # A wildcard right after the thing variable would reach every thing whose name starts with this one's.
    assert not [r for r in own if f"{THING}*" in r or f"{THING}+" in r]
    assert all(r.partition(THING)[2][:1] in ("", "/", "#") for r in own)


def test_device_policy_grants_aws_minimal_greengrass_core_device_policy(synthesized: Any) -> None:
    root = f"$aws/things/{THING}"
    assert _device_grants(synthesized, "iot:Connect", "client") == {THING, f"{THING}#*"}
    greengrass_topics = {f"{root}/{t}" for t in ("greengrass/health/json", "greengrassv2/health/json")}
    greengrass_topics |= {f"{root}/jobs/*", f"{root}/shadow/*"}
    assert greengrass_topics <= _device_grants(synthesized, "iot:Publish", "topic")
    assert greengrass_topics <= _device_grants(synthesized, "iot:Receive", "topic")
    assert {f"{root}/jobs/*", f"{root}/shadow/*"} <= _device_grants(synthesized, "iot:Subscribe", "topicfilter")
    for action in ("iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"):
        assert _device_grants(synthesized, action, "thing") == {THING, f"{THING}/*"}
    [alias] = [
        r for actions, rs in _device_statements(synthesized) if "iot:AssumeRoleWithCertificate" in actions for r in rs
    ]
    assert alias.endswith(".RoleAliasArn>")


def test_device_policy_allows_a_bare_wildcard_only_for_greengrass_data_plane_calls(synthesized: Any) -> None:
    wildcard = [(actions, resources) for actions, resources in _device_statements(synthesized) if "*" in resources]
    assert wildcard == [(GREENGRASS_CORE_DATA_PLANE, ["*"])]


def test_device_policy_uses_the_cores_topic_names(synthesized: Any) -> None:
    def topic(name: str) -> str:
        return name.replace("THING", THING)

    assert {topic(results_topic("THING")), topic(shadow_topic("THING", "update"))} <= _device_grants(
        synthesized, "iot:Publish", "topic"
    )
    subscribed = _device_grants(synthesized, "iot:Subscribe", "topicfilter")
    received = _device_grants(synthesized, "iot:Receive", "topic")
    expected = {topic(shadow_topic("THING", op)) for op in ("update/accepted", "update/rejected", "update/delta")}
    assert expected <= subscribed
    assert expected <= received


def _inline_recipe(synthesized: Any) -> tuple[dict[str, Any], list[Any]]:
    """The component's recipe with every CloudFormation reference replaced by a placeholder string."""
    [component] = of_type(synthesized.template, "AWS::GreengrassV2::ComponentVersion").values()
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
    approved = _function(variant, "model_approved.handler")
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
