"""Rollout control: model_approved, which starts a rollout, and the controller, which steps it through the rings.

Both act on the same things (the rollout tables, the registry, the ring groups' deployments and their
jobs), so both are granted by one function from one set of props.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from edgeloop.core.events import (
    EVENT_ROUTES,
    MODEL_PACKAGE_COMPLETED,
    MODEL_PACKAGE_STATE_CHANGE,
    SAGEMAKER_SOURCE,
)
from edgeloop.core.names import INFERENCE_COMPONENT, model_component_name
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.settings import ENV_MODEL_NAME, CloudSettings
from infra.constructs.event_function import EventFunction, FunctionDefaults, handler_env
from infra.constructs.grants import (
    KMS_VIA_DYNAMODB_WRITE,
    component_arns,
    key_via,
    list_model_packages,
    table_statement,
)
from infra.constructs.registry import ModelRegistry
from infra.constructs.rings import RingGroups
from infra.constructs.rollout_state import RolloutState

MODEL_APPROVED = EVENT_ROUTES[MODEL_PACKAGE_STATE_CHANGE]
ROLLOUT_CONTROLLER = "rollout_controller"
ROLLOUTS_WRITE = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query")
"""What the rollout store calls: its transactions are authorized per item action (there is no
dynamodb:TransactWriteItems permission), so Put, Update and Delete cover start and save."""
HEALTH_AGGREGATES = ("Query", "UpdateItem")
"""What the controller does to fleet health: read a version's per-ring sums, SET its own ring facts."""


@dataclass(frozen=True, kw_only=True)
class RolloutReach:
    """What starting and stepping a rollout touches, handed to both functions by the composing stack."""

    model_name: str
    state: RolloutState
    key: kms.IKey
    """The tables' key."""
    signing_key: kms.IKey
    """Whose public key the controller checks manifests against."""
    registry: ModelRegistry
    rings: RingGroups


class ModelApproval(Construct):
    """model_approved on the group's approval events: deploy the version to the fleet, or record its rejection.

    Its function is the child "Default", whose id CDK leaves out of logical ids: its resources keep the
    ids they had when the stack built the function itself.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionDefaults,
        settings: CloudSettings,
        reach: RolloutReach,
        fleet_thing_group_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = functions.build(
            self,
            "Default",
            name=MODEL_APPROVED,
            environment=handler_env(settings),
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[MODEL_PACKAGE_STATE_CHANGE],
                detail={
                    "ModelPackageGroupName": [reach.registry.group_name],
                    "ModelPackageStatus": [MODEL_PACKAGE_COMPLETED],
                    "ModelApprovalStatus": [ApprovalStatus.APPROVED.value, ApprovalStatus.REJECTED.value],
                },
            ),
            description="Deploy an approved model version to the fleet; record a rejection",
        )
        # Deploy to the fleet's thing group, and start rollouts through the rings as the controller does.
        self.handler.allow(
            iam.PolicyStatement(actions=["iot:DescribeThingGroup", "iot:CreateJob"], resources=[fleet_thing_group_arn]),
        )
        grant_rollout_control(self.handler, reach)


class RolloutController(Construct):
    """The rollout controller: one step of the model's active rollout per tick, or an operator's invoke.

    Its function is the child "Default", whose id CDK leaves out of logical ids: its resources keep the
    ids they had when the stack built the function itself.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionDefaults,
        settings: CloudSettings,
        reach: RolloutReach,
        rate_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = functions.build(
            self,
            "Default",
            name=ROLLOUT_CONTROLLER,
            environment={**handler_env(settings), ENV_MODEL_NAME: reach.model_name},
            event_pattern=None,
            description="Step the model's active rollout through its rings; start, pause, resume, promote, abort",
        )
        self.schedule = self.handler.add_rule(
            "Schedule",
            description=f"Step the active rollout of {reach.model_name} on a schedule",
            schedule=events.Schedule.rate(cdk.Duration.minutes(rate_minutes)),
        )
        grant_rollout_control(self.handler, reach)


def grant_rollout_control(function: EventFunction, reach: RolloutReach) -> None:
    """What start_rollout and step call: both tables, the registry, ring deployments and their jobs."""
    stack = cdk.Stack.of(function)
    function.allow(
        table_statement(reach.state.rollouts, ROLLOUTS_WRITE),
        table_statement(reach.state.fleet_health, HEALTH_AGGREGATES),
        key_via(reach.key, "dynamodb", KMS_VIA_DYNAMODB_WRITE),
        iam.PolicyStatement(actions=["kms:GetPublicKey"], resources=[reach.signing_key.key_arn]),
        # Greengrass checks these on the deployment's target with the caller's credentials.
        iam.PolicyStatement(actions=["iot:DescribeThingGroup", "iot:CreateJob"], resources=reach.rings.arns),
    )
    function.allow(
        iam.PolicyStatement(
            actions=["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
            resources=[reach.registry.package_arns],
        ),
        list_model_packages(),
        # CreateDeployment and ListDeployments support no resource-level permission; the IoT calls
        # Greengrass makes with our credentials (its dependent actions) bind it to the ring groups.
        iam.PolicyStatement(actions=["greengrass:CreateDeployment", "greengrass:ListDeployments"], resources=["*"]),
        iam.PolicyStatement(
            actions=["greengrass:GetDeployment"],
            resources=[
                stack.format_arn(
                    service="greengrass",
                    resource="deployments",
                    resource_name="*",
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
        ),
        iam.PolicyStatement(
            actions=["greengrass:GetComponent"],
            resources=[
                component_arns(stack, name)[1] for name in (model_component_name(reach.model_name), INFERENCE_COMPONENT)
            ],
        ),
        iam.PolicyStatement(
            actions=[
                "iot:CreateJob",
                "iot:DescribeJob",
                "iot:UpdateJob",
                "iot:CancelJob",
                "iot:ListJobExecutionsForJob",
            ],
            resources=[stack.format_arn(service="iot", resource="job", resource_name="*")],
        ),
        iam.PolicyStatement(
            actions=[
                "iot:DescribeThing",
                "iot:GetThingShadow",
                "iot:UpdateThingShadow",
                "iot:DeleteThingShadow",
                "iot:DescribeJobExecution",  # a failed device's deployment-failure-cause
            ],
            resources=[stack.format_arn(service="iot", resource="thing", resource_name="*")],
        ),
        wildcard_reason="greengrass:CreateDeployment, greengrass:ListDeployments and sagemaker:ListModelPackages "
        "accept only '*'; Greengrass names the deployments and their IoT jobs and touches the things of "
        "whichever devices are in the ring groups; package and component versions are numbered as models arrive.",
    )
