"""Fleet unit: the devices' thing group, their IoT policy and credentials, and the inference component."""

from __future__ import annotations

import json
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

from edgeloop.core.names import FLEET_THING_GROUP, RESULTS_TOPIC_FILTER, SHADOW_UPDATE_TOPIC_FILTER
from edgeloop.packaging import inference_recipe
from infra.nag import grant

THING_NAME = "${iot:Connection.Thing.ThingName}"
"""IoT policy variable: the policy is evaluated per connection, so each device only gets its own names."""
MODELS_PREFIX = "models/"
SHADOW_PUBLISH = ("update", "get")
SHADOW_RECEIVE = ("update/accepted", "update/rejected", "update/delta", "get/accepted", "get/rejected")


def device_results_topic() -> str:
    """The results topic with the policy variable in the thing's place."""
    return RESULTS_TOPIC_FILTER.replace("+", THING_NAME)


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
        """Each device may connect as itself, publish its results and health, and hear its shadow's replies."""
        stack = cdk.Stack.of(self)

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="iot", resource=resource, resource_name=name)

        published = [device_results_topic(), *(device_shadow_topic(op) for op in SHADOW_PUBLISH)]
        received = [device_shadow_topic(op) for op in SHADOW_RECEIVE]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", THING_NAME)},
                {"Effect": "Allow", "Action": "iot:Publish", "Resource": [arn("topic", t) for t in published]},
                {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [arn("topicfilter", t) for t in received]},
                {"Effect": "Allow", "Action": "iot:Receive", "Resource": [arn("topic", t) for t in received]},
                {
                    "Effect": "Allow",
                    "Action": "iot:AssumeRoleWithCertificate",
                    "Resource": self.role_alias.attr_role_alias_arn,
                },
            ],
        }
