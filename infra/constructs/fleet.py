"""Fleet unit: the devices' thing group, their IoT policy and credentials, and the inference component."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_greengrassv2 as greengrassv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from edgeloop.core.names import (
    FLEET_THING_GROUP,
    MODELS_PREFIX,
    RESULTS_TOPIC_FILTER,
    SAMPLES_TOPIC_FILTER,
    SHADOW_UPDATE_TOPIC_FILTER,
    thing_filter,
)
from edgeloop.packaging import inference_recipe
from infra.nag import grant

THING_NAME = "${iot:Connection.Thing.ThingName}"
"""IoT policy variable: the policy is evaluated per connection, so each device only gets its own names."""
SHADOW_PUBLISH = ("update", "get")
SHADOW_RECEIVE = ("update/accepted", "update/rejected", "update/delta", "get/accepted", "get/rejected")
THING_TOPIC_ROOT = f"$aws/things/{THING_NAME}"
"""The reserved topics of the connected thing; the variable is followed by '/', so no other thing matches."""
GREENGRASS_TOPICS = ("greengrass/health/json", "greengrassv2/health/json", "jobs/*", "shadow/*")
"""What the nucleus publishes and receives: health, IoT jobs (deployments) and shadows (ShadowManager)."""
GREENGRASS_FILTERS = ("jobs/*", "shadow/*")
GREENGRASS_DATA_PLANE = (
    "greengrass:GetComponentVersionArtifact",
    "greengrass:ResolveComponentCandidates",
    "greengrass:GetDeploymentConfiguration",
    "greengrass:ListThingGroupsForCoreDevice",
)
"""Calls the nucleus makes with its certificate; AWS authorizes them only on Resource '*'."""


def device_results_topic() -> str:
    """The results topic with the policy variable in the thing's place."""
    return thing_filter(RESULTS_TOPIC_FILTER, THING_NAME)


def device_samples_topic() -> str:
    """The thing's samples topics, any seq range: IoT policies have no one-level wildcard, so '+' becomes '*'."""
    return thing_filter(SAMPLES_TOPIC_FILTER, THING_NAME).replace("+", "*")


def device_client_ids() -> list[str]:
    """The nucleus connects as the thing, and as thing#2, thing#3... once one connection holds 50 subscriptions.

    AWS's minimal policy writes client/<thing>*; with the policy variable that would also let a device
    connect as any thing whose name starts with its own (and so disconnect it), hence the '#'.
    """
    return [THING_NAME, f"{THING_NAME}#*"]


def device_shadow_things() -> list[str]:
    """The thing's classic shadow (thing/<thing>) and its named shadows (thing/<thing>/<shadow>)."""
    return [THING_NAME, f"{THING_NAME}/*"]


def device_shadow_topic(operation: str) -> str:
    """A health-shadow topic with the policy variable in the thing's place."""
    base = SHADOW_UPDATE_TOPIC_FILTER.replace("+", THING_NAME).removesuffix("/update")
    return f"{base}/{operation}"


class Fleet(Construct):
    """What a Greengrass core device needs from the cloud to run edgeloop."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resource_prefix: str,
        artifacts: s3.IBucket,
        key: kms.IKey,
        inference_archive: Path,
        inference_component_version: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.thing_group = iot.CfnThingGroup(
            self,
            "ThingGroup",
            thing_group_name=FLEET_THING_GROUP,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description="Every edgeloop device; the skeleton deploys to it as one ring."
            ),
        )
        self.thing_group_arn = self.thing_group.attr_arn
        self.archive = s3_assets.Asset(self, "InferenceArchive", path=str(inference_archive))
        self.inference_component = greengrassv2.CfnComponentVersion(
            self,
            "InferenceComponent",
            inline_recipe=json.dumps(inference_recipe(inference_component_version, self.archive.s3_object_url)),
        )
        # A component version is immutable: keep it when the stack changes, devices may still run it.
        self.inference_component.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        self.token_exchange_role = self._token_exchange_role(artifacts, key)
        self.role_alias = iot.CfnRoleAlias(
            self,
            "TokenExchangeRoleAlias",
            role_alias=f"{resource_prefix}-token-exchange",
            role_arn=self.token_exchange_role.role_arn,
            credential_duration_seconds=3600,
        )
        self.device_policy = iot.CfnPolicy(
            self,
            "DevicePolicy",
            policy_name=f"{resource_prefix}-device",
            policy_document=self._device_policy_document(),
        )

    def _token_exchange_role(self, artifacts: s3.IBucket, key: kms.IKey) -> iam.Role:
        """Credentials Greengrass hands its components: read model and inference artifacts, nothing else."""
        role = iam.Role(
            self,
            "TokenExchangeRole",
            assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
            description="Greengrass token exchange role: download edgeloop component artifacts",
        )
        grant(
            role,
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    artifacts.arn_for_objects(f"{MODELS_PREFIX}*"),
                    self.archive.bucket.arn_for_objects(self.archive.s3_object_key),
                ],
            ),
            wildcard_reason="Model artifacts live under content-addressed keys below models/, "
            "known only after training.",
        )
        key.grant_decrypt(role)
        return role

    def _device_policy_document(self) -> dict[str, Any]:
        """AWS's minimal Greengrass v2 core-device policy for the connected thing, plus edgeloop's own topics."""
        stack = cdk.Stack.of(self)

        def arns(resource: str, names: Iterable[str]) -> list[str]:
            return [stack.format_arn(service="iot", resource=resource, resource_name=name) for name in names]

        greengrass_topics = [f"{THING_TOPIC_ROOT}/{t}" for t in GREENGRASS_TOPICS]
        greengrass_filters = [f"{THING_TOPIC_ROOT}/{t}" for t in GREENGRASS_FILTERS]
        published = [
            device_results_topic(),
            device_samples_topic(),
            *(device_shadow_topic(op) for op in SHADOW_PUBLISH),
        ]
        received = [device_shadow_topic(op) for op in SHADOW_RECEIVE]
        return {
            "Version": "2012-10-17",
            "Statement": [
                _allow(["iot:Connect"], arns("client", device_client_ids())),
                _allow(["iot:Publish", "iot:Receive"], arns("topic", greengrass_topics)),
                _allow(["iot:Subscribe"], arns("topicfilter", greengrass_filters)),
                _allow(
                    ["iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"],
                    arns("thing", device_shadow_things()),
                ),
                _allow(["iot:AssumeRoleWithCertificate"], [self.role_alias.attr_role_alias_arn]),
                # No finer resource exists for these; cdk-nag has no IoT-policy rule to acknowledge.
                _allow(list(GREENGRASS_DATA_PLANE), ["*"]),
                # edgeloop's own topics (the health shadow's are inside shadow/* too; kept to name them).
                _allow(["iot:Publish"], arns("topic", published)),
                _allow(["iot:Subscribe"], arns("topicfilter", received)),
                _allow(["iot:Receive"], arns("topic", received)),
            ],
        }


def _allow(actions: list[str], resources: list[str]) -> dict[str, Any]:
    """One IoT policy statement."""
    return {"Effect": "Allow", "Action": actions, "Resource": resources}
