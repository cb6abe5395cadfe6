"""Registry unit: the SageMaker model package group that holds every version of one model."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from edgeloop.core.names import model_package_group


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
