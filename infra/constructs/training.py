"""Training unit: the SageMaker execution role (training data in, training output out) and the launcher that uses it."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from edgeloop.core.events import EDGELOOP_SOURCE, EVENT_ROUTES, RETRAINING_REQUESTED
from edgeloop.core.names import TRAINING_DATA_PREFIX, TRAINING_OUTPUT_PREFIX
from edgeloop.core.settings import LauncherSettings
from edgeloop.core.training_jobs import JOB_NAME_PREFIX
from infra.constructs.event_function import FunctionDefaults
from infra.nag import grant

TRAINING_REPOSITORY = "edgeloop-training"
"""The ECR repository of the default training image (edgeloop[training] installed, tagged by version)."""
METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"
TRAINING_LAUNCHER = EVENT_ROUTES[RETRAINING_REQUESTED]


class TrainingRole(Construct):
    """The role SageMaker training jobs run as; the launcher may pass only this role, only to SageMaker."""

    def __init__(
        self, scope: Construct, construct_id: str, *, resource_prefix: str, data: s3.IBucket, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        role_name = f"{resource_prefix}-training"
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{resource_prefix} training jobs: read training data, write training output",
        )
        self.role_arn = stack.format_arn(service="iam", region="", resource="role", resource_name=role_name)
        """The role's ARN spelled out (not a token), so the launcher's settings can check its shape at synth."""
        self.repository_arn = stack.format_arn(service="ecr", resource="repository", resource_name=TRAINING_REPOSITORY)
        self.default_image_uri = f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{TRAINING_REPOSITORY}"
        grant(
            self.role,
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[data.arn_for_objects(f"{TRAINING_DATA_PREFIX}*")]),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[data.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{TRAINING_DATA_PREFIX}*"]}},
            ),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[data.arn_for_objects(f"{TRAINING_OUTPUT_PREFIX}*")]
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{METRICS_NAMESPACE}:log-stream:*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            wildcard_reason="Training jobs choose their own data files, output folders and log streams "
            "under these fixed prefixes.",
        )
        grant(
            self.role,
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]),
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], resources=[self.repository_arn]
            ),
        )
        grant(
            self.role,
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{METRICS_NAMESPACE}:*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            wildcard_reason="ecr:GetAuthorizationToken and cloudwatch:PutMetricData accept only '*' (the metric "
            "namespace is pinned by condition); SageMaker names the log streams of each job.",
        )

    def image_uri(self, configured: str | None, version: str) -> str:
        """The configured training image, else the default repository tagged with the edgeloop version."""
        return configured or f"{self.default_image_uri}:{version}"


class TrainingLauncher(Construct):
    """The training launcher: on edgeloop's retraining signal, on the configured schedule, or invoked directly.

    Its function is the child "Default", whose id CDK leaves out of logical ids: its resources keep the
    ids they had when the stack built the function itself.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionDefaults,
        settings: LauncherSettings,
        training: TrainingRole,
        schedule: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = functions.build(
            self,
            "Default",
            name=TRAINING_LAUNCHER,
            environment=settings.to_env(),
            event_pattern=events.EventPattern(
                source=[EDGELOOP_SOURCE],
                detail_type=[RETRAINING_REQUESTED],
                detail={"model_name": [settings.model_name]},
            ),
            description="Start a SageMaker training job on a retraining signal",
        )
        if schedule is not None:
            self.handler.add_rule(
                "Schedule",
                description=f"Retrain {settings.model_name} on a schedule",
                schedule=events.Schedule.expression(schedule),
            )
        self._grant(settings.model_name, training)

    def _grant(self, model_name: str, training: TrainingRole) -> None:
        """Start and describe this model's jobs, passing only the training role, only to SageMaker."""
        job_arns = cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{JOB_NAME_PREFIX}{model_name}-*"
        )
        self.handler.allow(
            iam.PolicyStatement(
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"], resources=[job_arns]
            ),
            wildcard_reason="Job names end in a digest of each request, so only the model's prefix is known.",
        )
        self.handler.allow(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[training.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
