"""Registry unit: the model package group, and training_completed, which registers each completed job's model in it."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from edgeloop.core.events import (
    EVENT_ROUTES,
    SAGEMAKER_SOURCE,
    TRAINING_JOB_COMPLETED,
    TRAINING_JOB_STATE_CHANGE,
)
from edgeloop.core.names import MODELS_PREFIX, TRAINING_OUTPUT_PREFIX, model_component_name, model_package_group
from edgeloop.core.settings import CloudSettings
from infra.constructs.event_function import FunctionDefaults, handler_env
from infra.constructs.grants import component_arns, list_model_packages, read_model_packages

TRAINING_COMPLETED = EVENT_ROUTES[TRAINING_JOB_STATE_CHANGE]


class ModelRegistry(Construct):
    """One model package group, named by the core, kept when the stack goes (it holds the versions)."""

    def __init__(self, scope: Construct, construct_id: str, *, model_name: str) -> None:
        super().__init__(scope, construct_id)
        self.group_name = model_package_group(model_name)
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=self.group_name,
            model_package_group_description=f"edgeloop model {model_name}: one version per training job",
        )
        self.group.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        stack = cdk.Stack.of(self)
        self.group_arn = stack.format_arn(
            service="sagemaker", resource="model-package-group", resource_name=self.group_name
        )
        self.package_arns = stack.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{self.group_name}/*"
        )
        """Every versioned package of the group (arn:...:model-package/<group>/<version>)."""


class ModelRegistration(Construct):
    """training_completed on SageMaker's completed-job events: model into models/, a version, a model component.

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
        model_name: str,
        registry: ModelRegistry,
        data: s3.IBucket,
        artifacts: s3.IBucket,
        key: kms.IKey,
        signing_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = functions.build(
            self,
            "Default",
            name=TRAINING_COMPLETED,
            environment=handler_env(settings),
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[TRAINING_JOB_STATE_CHANGE],
                detail={
                    "TrainingJobStatus": [TRAINING_JOB_COMPLETED],
                    # Only jobs writing into our data bucket: any other completed job in the account is not ours.
                    "ModelArtifacts": {"S3ModelArtifacts": events.Match.prefix(settings.training_output_uri)},
                },
            ),
            description="Register a completed training job's model and create its Greengrass component",
        )
        self._grant(model_name, registry, data, artifacts, key, signing_key)

    def _grant(
        self,
        model_name: str,
        registry: ModelRegistry,
        data: s3.IBucket,
        artifacts: s3.IBucket,
        key: kms.IKey,
        signing_key: kms.IKey,
    ) -> None:
        """Read the job's model.tar.gz, write models/, register a version, create the model component."""
        self.handler.allow(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[data.arn_for_objects(f"{TRAINING_OUTPUT_PREFIX}*")]
            ),
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"], resources=[artifacts.arn_for_objects(f"{MODELS_PREFIX}*")]
            ),
            wildcard_reason="Training jobs name their output folders and models are stored under their sha256, "
            "so only the prefix is known at deploy time (the approved version's manifest is read back from there).",
        )
        self.handler.allow(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]),
            iam.PolicyStatement(actions=["kms:Sign"], resources=[signing_key.key_arn]),
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackageGroup"], resources=[registry.group_arn]),
        )
        self.handler.allow(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModelPackage"], resources=[registry.group_arn, registry.package_arns]
            ),
            read_model_packages(registry.package_arns),
            list_model_packages(),
            iam.PolicyStatement(
                actions=["greengrass:CreateComponentVersion", "greengrass:GetComponent"],
                resources=component_arns(cdk.Stack.of(self), model_component_name(model_name)),
            ),
            wildcard_reason="Package and component versions are numbered by the registry as models arrive; "
            "ListModelPackages supports no resource-level permission.",
        )
