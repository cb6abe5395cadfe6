"""The fleet unit: the thing group, the device policy, and the inference component."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from templates import as_list, of_type

from edgeloop.core.names import FLEET_THING_GROUP, INFERENCE_COMPONENT, results_topic, shadow_topic
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from infra.nag import flatten_reference

THING_VARIABLE = "${iot:Connection.Thing.ThingName}"


THING = THING_VARIABLE.replace("${", "<").replace("}", ">")
"""The policy variable as flatten_reference renders it."""


GREENGRASS_CORE_DATA_PLANE = {
    "greengrass:GetComponentVersionArtifact",
    "greengrass:ResolveComponentCandidates",
    "greengrass:GetDeploymentConfiguration",
    "greengrass:ListThingGroupsForCoreDevice",
}
"""What AWS's minimal core-device policy allows on '*' (written out here, not imported, to check the stack)."""


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
