"""The one edgeloop stack: storage, training, registry, rollouts, fleet, samples, monitoring; units meet here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from edgeloop.core.events import (
    EDGELOOP_SOURCE,
    EVENT_ROUTES,
    MODEL_PACKAGE_COMPLETED,
    MODEL_PACKAGE_STATE_CHANGE,
    RETRAINING_REQUESTED,
    SAGEMAKER_SOURCE,
    TRAINING_JOB_COMPLETED,
    TRAINING_JOB_STATE_CHANGE,
)
from edgeloop.core.names import (
    INFERENCE_COMPONENT,
    LABELS_PREFIX,
    LABELS_REJECTED_PREFIX,
    MODELS_PREFIX,
    SAMPLES_PREFIX,
    SAMPLES_REJECTED_PREFIX,
    TRAINING_DATA_PREFIX,
    TRAINING_OUTPUT_PREFIX,
    model_component_name,
)
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.settings import (
    ENV_MODEL_NAME,
    ENV_ROLLOUT_POLICY,
    CloudSettings,
    LauncherSettings,
    TriggerSettings,
)
from edgeloop.core.training_jobs import JOB_NAME_PREFIX
from edgeloop.packaging import build_inference_archive, stage_lambda_asset
from infra.config import StackConfig
from infra.constructs.event_function import EventFunction
from infra.constructs.fleet import Fleet
from infra.constructs.health_ingest import HealthIngest
from infra.constructs.monitoring import Monitoring
from infra.constructs.registry import ModelRegistry
from infra.constructs.results import Results
from infra.constructs.retraining import LABEL_INGEST, RETRAINING_TRIGGER, Retraining
from infra.constructs.rings import RingGroups
from infra.constructs.rollout_state import RolloutState
from infra.constructs.samples import Samples
from infra.constructs.signing import ManifestSigningKey
from infra.constructs.storage import Storage
from infra.constructs.training import TrainingRole

TRAINING_COMPLETED = EVENT_ROUTES[TRAINING_JOB_STATE_CHANGE]
MODEL_APPROVED = EVENT_ROUTES[MODEL_PACKAGE_STATE_CHANGE]
TRAINING_LAUNCHER = EVENT_ROUTES[RETRAINING_REQUESTED]
HEALTH_INGEST = "health_ingest"
ROLLOUT_CONTROLLER = "rollout_controller"
SAMPLE_INGEST = "sample_ingest"
"""Handler modules in functions/ that no EventBridge event routes to (an IoT rule, a schedule, S3 do)."""
SAMPLES_CATALOGUE = ("PutItem", "Scan")
"""What the sample catalogue calls: a conditional Put per sample (repeats are no-ops), a COUNT Scan for reports."""
ROLLOUTS_WRITE = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query")
"""What the rollout store calls: its transactions are authorized per item action (there is no
dynamodb:TransactWriteItems permission), so Put, Update and Delete cover start and save."""
HEALTH_AGGREGATES = ("Query", "UpdateItem")
"""What the controller does to fleet health: read a version's per-ring sums, SET its own ring facts."""
HEALTH_RECORD = ("GetItem", "PutItem", "UpdateItem")
"""What health ingest does to fleet health: read a snapshot, then Put it and Update counters in one transaction."""
ROLLOUTS_READ = ("GetItem",)
"""What health ingest reads of rollouts: the active lock, the rollout it names, last-known-good (no Query)."""
BASIC_EXECUTION_POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
"""How cdk-nag names the managed policy CDK attaches to its own custom-resource handlers."""
LABELS_CATALOGUE = ("GetItem", "UpdateItem")
"""What the label ingest calls: read the sample, then Update it (and the model's label counter, in one transaction)."""
RETRAINING_STATE = ("GetItem", "PutItem")
"""What the trigger does to its own table: read the model's record, put it over the revision it read."""
KMS_VIA_DYNAMODB_READ = ("kms:Decrypt", "kms:DescribeKey")
KMS_VIA_DYNAMODB_WRITE = (*KMS_VIA_DYNAMODB_READ, "kms:Encrypt", "kms:GenerateDataKey")


class EdgeloopStack(cdk.Stack):
    """Everything one edgeloop environment needs in one account and region."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, staging_dir: Path) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=config.stack_name,
            description=f"edgeloop {config.env_name}: model registry, event handlers and Greengrass fleet",
            env=cdk.Environment(account=config.account, region=config.region),
        )
        cdk.Tags.of(self).add("edgeloop:env", config.env_name)
        self.config = config
        archive_dir = staging_dir / "inference"
        build_inference_archive(archive_dir)
        self.storage = Storage(
            self,
            "Storage",
            env_name=config.env_name,
            log_retention_days=config.log_retention_days,
            samples_retention_days=config.samples_retention_days,
        )
        self.registry = ModelRegistry(self, "Registry", model_name=config.model_name)
        self.results = Results(self, "Results", data=self.storage.data)
        self.training_output_uri = f"s3://{self.storage.data.bucket_name}/{TRAINING_OUTPUT_PREFIX}"
        """Where training jobs write model.tar.gz, the only artifacts training_completed accepts."""
        self.fleet = Fleet(
            self,
            "Fleet",
            resource_prefix=config.resource_prefix,
            artifacts=self.storage.artifacts,
            key=self.storage.key,
            inference_archive=archive_dir / INFERENCE_ARCHIVE,
            inference_component_version=config.inference_component_version,
        )
        self.signing = ManifestSigningKey(self, "Signing", env_name=config.env_name)
        self.training = TrainingRole(
            self, "Training", resource_prefix=config.resource_prefix, data=self.storage.data, key=self.storage.key
        )
        self.rollout_state = RolloutState(self, "RolloutState", key=self.storage.key)
        self.rings = RingGroups(self, "Rings", policy=config.rollout_policy)
        settings = CloudSettings(
            artifacts_bucket=self.storage.artifacts.bucket_name,
            fleet_thing_group_arn=self.fleet.thing_group_arn,
            inference_component_version=config.inference_component_version,
            auto_approve_min_accuracy=config.auto_approve_min_accuracy,
            training_output_uri=self.training_output_uri,
            auto_approve_max_drop=config.auto_approve_max_drop,
            signing_key_id=self.signing.key.key_arn,
            rollout_policy=config.rollout_policy,
            rollouts_table=self.rollout_state.rollouts.table_name,
            fleet_health_table=self.rollout_state.fleet_health.table_name,
        )
        self.training_completed = self._function(
            TRAINING_COMPLETED,
            staging_dir,
            settings,
            detail_type=TRAINING_JOB_STATE_CHANGE,
            detail={
                "TrainingJobStatus": [TRAINING_JOB_COMPLETED],
                # Only jobs writing into our data bucket: any other completed job in the account is not ours.
                "ModelArtifacts": {"S3ModelArtifacts": events.Match.prefix(self.training_output_uri)},
            },
            description="Register a completed training job's model and create its Greengrass component",
        )
        self.model_approved = self._function(
            MODEL_APPROVED,
            staging_dir,
            settings,
            detail_type=MODEL_PACKAGE_STATE_CHANGE,
            detail={
                "ModelPackageGroupName": [self.registry.group_name],
                "ModelPackageStatus": [MODEL_PACKAGE_COMPLETED],
                "ModelApprovalStatus": [ApprovalStatus.APPROVED.value, ApprovalStatus.REJECTED.value],
            },
            description="Deploy an approved model version to the fleet; record a rejection",
        )
        self.training_launcher = self._launcher(staging_dir)
        self.health_ingest = HealthIngest(
            self,
            "HealthIngest",
            function_name=HEALTH_INGEST,
            asset_dir=stage_lambda_asset(HEALTH_INGEST, staging_dir / "functions"),
            resource_prefix=config.resource_prefix,
            environment=_handler_env(settings),
            log_retention_days=config.log_retention_days,
        )
        self.rollout_controller = self._controller(staging_dir, settings)
        self.samples = self._samples(staging_dir)
        self.retraining = self._retraining(staging_dir)
        self._grant_training_completed()
        self._grant_model_approved()
        self._grant_training_launcher()
        self._grant_health_ingest()
        self._grant_rollout_control(self.rollout_controller)
        self._grant_sample_ingest()
        self._grant_retraining()
        self.monitoring = self._monitoring()
        self._outputs()

    def _samples(self, staging_dir: Path) -> Samples:
        """The samples unit, its ingest fed by the samples bucket's ObjectCreated notifications under samples/."""
        config = self.config
        samples = Samples(
            self,
            "Samples",
            bucket=self.storage.samples,
            key=self.storage.key,
            function_name=SAMPLE_INGEST,
            asset_dir=stage_lambda_asset(SAMPLE_INGEST, staging_dir / "functions"),
            resource_prefix=config.resource_prefix,
            log_retention_days=config.log_retention_days,
        )
        # Only samples/: the objects the ingest sets aside under samples-rejected/ must not trigger it again.
        self.storage.samples.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(samples.handler.function),
            s3.NotificationKeyFilter(prefix=SAMPLES_PREFIX),
        )
        self._acknowledge_notifications_handler()
        return samples

    def _acknowledge_notifications_handler(self) -> None:
        """CDK's own handler that writes the bucket's notification configuration (one per stack)."""
        handler = next(c for c in self.node.children if c.node.id.startswith("BucketNotificationsHandler"))
        cdk.Validations.of(handler).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM4[Policy::{BASIC_EXECUTION_POLICY}]",
                reason="CDK's BucketNotificationsHandler, a deploy-time custom resource that writes the samples "
                "bucket's notification configuration, logs with this managed policy; CDK owns its role.",
            )
        )

    def _grant_sample_ingest(self) -> None:
        """Read a new samples object, set a bad one aside, catalogue each sample, queue it for labelling."""
        samples, bucket = self.samples, self.storage.samples
        samples.handler.allow(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{SAMPLES_PREFIX}*")]),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{SAMPLES_REJECTED_PREFIX}*")]
            ),
            wildcard_reason="Samples objects are named by the publishing thing and its sequence range, "
            "known only when a device publishes them; bad ones are set aside under the same name, with their reason.",
        )
        samples.handler.allow(
            _table_statement(samples.table, SAMPLES_CATALOGUE),
            self._key_via_dynamodb(KMS_VIA_DYNAMODB_WRITE),
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[samples.labelling.queue_arn]),
            # S3 decrypts what the ingest reads and encrypts what it sets aside with the caller's key rights.
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.storage.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.{self.url_suffix}"}},
            ),
        )

    def _retraining(self, staging_dir: Path) -> Retraining:
        """Labels and the trigger; the label ingest runs on objects the labelling tool writes under labels/."""
        config, functions = self.config, staging_dir / "functions"
        settings = TriggerSettings(
            model_name=config.model_name,
            policy=config.retraining_policy,
            samples_table=self.samples.table.table_name,
            rollouts_table=self.rollout_state.rollouts.table_name,
            fleet_health_table=self.rollout_state.fleet_health.table_name,
        )
        retraining = Retraining(
            self,
            "Retraining",
            key=self.storage.key,
            settings=settings,
            trigger_asset_dir=stage_lambda_asset(RETRAINING_TRIGGER, functions),
            label_ingest_asset_dir=stage_lambda_asset(LABEL_INGEST, functions),
            resource_prefix=config.resource_prefix,
            rate_minutes=config.retraining_trigger_rate_minutes,
            log_retention_days=config.log_retention_days,
        )
        # Only labels/: what the ingest sets aside under labels-rejected/ must not trigger it again.
        self.storage.samples.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(retraining.label_ingest.function),
            s3.NotificationKeyFilter(prefix=LABELS_PREFIX),
        )
        return retraining

    def _grant_retraining(self) -> None:
        """Label ingest: read labels, set bad ones aside, label catalogued samples. Trigger: read, decide, put once."""
        ingest, trigger, bucket = self.retraining.label_ingest, self.retraining.trigger, self.storage.samples
        ingest.allow(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{LABELS_PREFIX}*")]),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{LABELS_REJECTED_PREFIX}*")]
            ),
            wildcard_reason="Label objects are named by the labelled sample's thing and sequence number, "
            "known only when a labeller writes them; bad ones are set aside under the same name.",
        )
        ingest.allow(
            _table_statement(self.samples.table, LABELS_CATALOGUE),
            self._key_via_dynamodb(KMS_VIA_DYNAMODB_WRITE),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.storage.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.{self.url_suffix}"}},
            ),
        )
        trigger.allow(
            _table_statement(self.retraining.table, RETRAINING_STATE),
            _table_statement(self.samples.table, ("GetItem",)),
            _table_statement(self.rollout_state.rollouts, ROLLOUTS_READ),
            _table_statement(self.rollout_state.fleet_health, ("Query",)),
            self._key_via_dynamodb(KMS_VIA_DYNAMODB_WRITE),
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[self.format_arn(service="events", resource="event-bus", resource_name="default")],
                conditions={
                    "StringEquals": {"events:source": EDGELOOP_SOURCE, "events:detail-type": RETRAINING_REQUESTED}
                },
            ),
        )

    def _monitoring(self) -> Monitoring:
        """The dashboard and alarms over every function, dead-letter queue and topic rule of the stack."""
        functions = {name: f.function for name, f in self.handlers().items()}
        queues = {f"{name} dead letters": f.dead_letters for name, f in self.handlers().items()}
        queues.update(
            {
                "results failed deliveries": self.results.failed,
                "health failed deliveries": self.health_ingest.failed,
                "samples failed deliveries": self.samples.failed,
                "labelling dead letters": self.samples.labelling_dead_letters,
            }
        )
        return Monitoring(
            self,
            "Monitoring",
            dashboard_name=self.config.stack_name,
            functions=functions,
            dead_letters=queues,
            topic_rules={"results": self.results.rule, "health": self.health_ingest.rule, "samples": self.samples.rule},
            health_logs=self.health_ingest.handler.log_group,
            controller_logs=self.rollout_controller.log_group,
        )

    def handlers(self) -> dict[str, EventFunction]:
        """Every handler of the stack by its functions/ module name."""
        return {
            TRAINING_COMPLETED: self.training_completed,
            MODEL_APPROVED: self.model_approved,
            TRAINING_LAUNCHER: self.training_launcher,
            HEALTH_INGEST: self.health_ingest.handler,
            ROLLOUT_CONTROLLER: self.rollout_controller,
            SAMPLE_INGEST: self.samples.handler,
            LABEL_INGEST: self.retraining.label_ingest,
            RETRAINING_TRIGGER: self.retraining.trigger,
        }

    def _controller(self, staging_dir: Path, settings: CloudSettings) -> EventFunction:
        """The rollout controller: one step of the model's active rollout per tick, or an operator's invoke."""
        config = self.config
        controller = EventFunction(
            self,
            "RolloutController",
            function_name=ROLLOUT_CONTROLLER,
            asset_dir=stage_lambda_asset(ROLLOUT_CONTROLLER, staging_dir / "functions"),
            resource_prefix=config.resource_prefix,
            environment={**_handler_env(settings), ENV_MODEL_NAME: config.model_name},
            event_pattern=None,
            description="Step the model's active rollout through its rings; start, pause, resume, promote, abort",
            log_retention_days=config.log_retention_days,
        )
        controller.add_rule(
            "Schedule",
            description=f"Step the active rollout of {config.model_name} on a schedule",
            schedule=events.Schedule.rate(cdk.Duration.minutes(config.rollout_controller_rate_minutes)),
        )
        return controller

    def _launcher(self, staging_dir: Path) -> EventFunction:
        """The training launcher: on edgeloop's retraining signal, on the configured schedule, or invoked directly."""
        config = self.config
        settings = LauncherSettings(
            model_name=config.model_name,
            training_image_uri=self.training.image_uri(config.training_image_uri, config.inference_component_version),
            training_role_arn=self.training.role_arn,
            training_data_uri=f"s3://{self.storage.data.bucket_name}/{TRAINING_DATA_PREFIX}",
            training_output_uri=self.training_output_uri,
            instance_type=config.training_instance_type,
        )
        launcher = EventFunction(
            self,
            "TrainingLauncher",
            function_name=TRAINING_LAUNCHER,
            asset_dir=stage_lambda_asset(TRAINING_LAUNCHER, staging_dir / "functions"),
            resource_prefix=config.resource_prefix,
            environment=settings.to_env(),
            event_pattern=events.EventPattern(
                source=[EDGELOOP_SOURCE],
                detail_type=[RETRAINING_REQUESTED],
                detail={"model_name": [config.model_name]},
            ),
            description="Start a SageMaker training job on a retraining signal",
            log_retention_days=config.log_retention_days,
        )
        if config.training_schedule is not None:
            launcher.add_rule(
                "Schedule",
                description=f"Retrain {config.model_name} on a schedule",
                schedule=events.Schedule.expression(config.training_schedule),
            )
        return launcher

    def _grant_training_launcher(self) -> None:
        """Start and describe this model's jobs, passing only the training role, only to SageMaker."""
        job_arns = self.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{JOB_NAME_PREFIX}{self.config.model_name}-*"
        )
        self.training_launcher.allow(
            iam.PolicyStatement(
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"], resources=[job_arns]
            ),
            wildcard_reason="Job names end in a digest of each request, so only the model's prefix is known.",
        )
        self.training_launcher.allow(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.training.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )

    def _function(
        self,
        name: str,
        staging_dir: Path,
        settings: CloudSettings,
        *,
        detail_type: str,
        detail: dict[str, Any],
        description: str,
    ) -> EventFunction:
        """A handler from functions/ staged as plain Python, on a rule for one SageMaker event."""
        return EventFunction(
            self,
            "".join(part.title() for part in name.split("_")),
            function_name=name,
            asset_dir=stage_lambda_asset(name, staging_dir / "functions"),
            resource_prefix=self.config.resource_prefix,
            environment=_handler_env(settings),
            event_pattern=events.EventPattern(source=[SAGEMAKER_SOURCE], detail_type=[detail_type], detail=detail),
            description=description,
            log_retention_days=self.config.log_retention_days,
        )

    def _component_arns(self, component: str) -> list[str]:
        """A component and all its versions (CreateComponentVersion acts on the first, reads on the second)."""
        base = self.format_arn(
            service="greengrass",
            resource="components",
            resource_name=component,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        return [base, f"{base}:versions:*"]

    def _grant_training_completed(self) -> None:
        """Read the job's model.tar.gz, write models/, register a version, create the model component."""
        self.training_completed.allow(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.storage.data.arn_for_objects(f"{TRAINING_OUTPUT_PREFIX}*")],
            ),
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[self.storage.artifacts.arn_for_objects(f"{MODELS_PREFIX}*")],
            ),
            wildcard_reason="Training jobs name their output folders and models are stored under their sha256, "
            "so only the prefix is known at deploy time (the approved version's manifest is read back from there).",
        )
        self.training_completed.allow(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.storage.key.key_arn]),
            iam.PolicyStatement(actions=["kms:Sign"], resources=[self.signing.key.key_arn]),
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackageGroup"], resources=[self.registry.group_arn]),
        )
        self.training_completed.allow(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModelPackage"],
                resources=[self.registry.group_arn, self.registry.package_arns],
            ),
            _read_model_packages(self.registry.package_arns),
            _list_model_packages(),
            iam.PolicyStatement(
                actions=["greengrass:CreateComponentVersion", "greengrass:GetComponent"],
                resources=self._component_arns(model_component_name(self.config.model_name)),
            ),
            wildcard_reason="Package and component versions are numbered by the registry as models arrive; "
            "ListModelPackages supports no resource-level permission.",
        )

    def _grant_model_approved(self) -> None:
        """Deploy to the fleet's thing group, and start rollouts through the rings as the controller does."""
        self.model_approved.allow(
            iam.PolicyStatement(
                actions=["iot:DescribeThingGroup", "iot:CreateJob"], resources=[self.fleet.thing_group_arn]
            ),
        )
        self._grant_rollout_control(self.model_approved)

    def _grant_rollout_control(self, function: EventFunction) -> None:
        """What start_rollout and step call: both tables, the registry, ring deployments and their jobs."""
        state = self.rollout_state
        function.allow(
            _table_statement(state.rollouts, ROLLOUTS_WRITE),
            _table_statement(state.fleet_health, HEALTH_AGGREGATES),
            self._key_via_dynamodb(KMS_VIA_DYNAMODB_WRITE),
            iam.PolicyStatement(actions=["kms:GetPublicKey"], resources=[self.signing.key.key_arn]),
            # Greengrass checks these on the deployment's target with the caller's credentials.
            iam.PolicyStatement(actions=["iot:DescribeThingGroup", "iot:CreateJob"], resources=self.rings.arns),
        )
        function.allow(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
                resources=[self.registry.package_arns],
            ),
            _list_model_packages(),
            # CreateDeployment and ListDeployments support no resource-level permission; the IoT calls
            # Greengrass makes with our credentials (its dependent actions) bind it to the ring groups.
            iam.PolicyStatement(actions=["greengrass:CreateDeployment", "greengrass:ListDeployments"], resources=["*"]),
            iam.PolicyStatement(
                actions=["greengrass:GetDeployment"],
                resources=[
                    self.format_arn(
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
                    self._component_arns(name)[1]
                    for name in (model_component_name(self.config.model_name), INFERENCE_COMPONENT)
                ],
            ),
            iam.PolicyStatement(
                actions=["iot:CreateJob", "iot:DescribeJob", "iot:UpdateJob", "iot:CancelJob"],
                resources=[self.format_arn(service="iot", resource="job", resource_name="*")],
            ),
            iam.PolicyStatement(
                actions=["iot:DescribeThing", "iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"],
                resources=[self.format_arn(service="iot", resource="thing", resource_name="*")],
            ),
            wildcard_reason="greengrass:CreateDeployment, greengrass:ListDeployments and sagemaker:ListModelPackages "
            "accept only '*'; Greengrass names the deployments and their IoT jobs and touches the things of "
            "whichever devices are in the ring groups; package and component versions are numbered as models arrive.",
        )

    def _grant_health_ingest(self) -> None:
        """Count a report: the device's snapshot and counters, what its ring targets, which ring it is in."""
        state = self.rollout_state
        handler = self.health_ingest.handler
        handler.allow(
            _table_statement(state.fleet_health, HEALTH_RECORD),
            _table_statement(state.rollouts, ROLLOUTS_READ),
            self._key_via_dynamodb(KMS_VIA_DYNAMODB_WRITE),
        )
        handler.allow(
            iam.PolicyStatement(
                actions=["iot:ListThingGroupsForThing", "iot:DescribeThing"],
                resources=[self.format_arn(service="iot", resource="thing", resource_name="*")],
            ),
            wildcard_reason="Any device of the fleet may report; its thing name is known only from the shadow topic.",
        )

    def _key_via_dynamodb(self, actions: tuple[str, ...]) -> iam.PolicyStatement:
        """The tables' key, usable only through DynamoDB (which encrypts and decrypts items with it)."""
        return iam.PolicyStatement(
            actions=list(actions),
            resources=[self.storage.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{self.region}.{self.url_suffix}"}},
        )

    def _outputs(self) -> None:
        """What the CLI, the docs and an operator need after deploy."""
        for name, value in {
            "ArtifactsBucketName": self.storage.artifacts.bucket_name,
            "DataBucketName": self.storage.data.bucket_name,
            "ModelPackageGroupName": self.registry.group_name,
            "FleetThingGroupArn": self.fleet.thing_group_arn,
            "InferenceComponentArn": self.fleet.inference_component.attr_arn,
            "InferenceComponentName": INFERENCE_COMPONENT,
            "TokenExchangeRoleAlias": self.fleet.role_alias.role_alias or "",
            "DevicePolicyName": self.fleet.device_policy.policy_name or "",
            "TrainingOutputUri": self.training_output_uri,
            "TrainingDataUri": f"s3://{self.storage.data.bucket_name}/{TRAINING_DATA_PREFIX}",
            "TrainingRoleArn": self.training.role.role_arn,
            "TrainingLauncherFunctionName": self.training_launcher.function.function_name,
            "ManifestSigningKeyArn": self.signing.key.key_arn,
            "ResultsUri": self.results.uri,
            "ResultsFailedDeliveriesQueueUrl": self.results.failed.queue_url,
            "RolloutsTableName": self.rollout_state.rollouts.table_name,
            "FleetHealthTableName": self.rollout_state.fleet_health.table_name,
            "RingThingGroups": ",".join(group.thing_group_name or "" for group in self.rings.groups.values()),
            "RolloutControllerFunctionName": self.rollout_controller.function.function_name,
            "HealthFailedDeliveriesQueueUrl": self.health_ingest.failed.queue_url,
            "SamplesBucketName": self.storage.samples.bucket_name,
            "SamplesUri": self.samples.uri,
            "SamplesTableName": self.samples.table.table_name,
            "LabellingQueueUrl": self.samples.labelling.queue_url,
            "SamplesFailedDeliveriesQueueUrl": self.samples.failed.queue_url,
            "LabelsUri": f"s3://{self.storage.samples.bucket_name}/{LABELS_PREFIX}",
            "RetrainingTableName": self.retraining.table.table_name,
            "RetrainingTriggerFunctionName": self.retraining.trigger.function.function_name,
            "DashboardName": self.config.stack_name,
        }.items():
            cdk.CfnOutput(self, name, value=value)


def _list_model_packages() -> iam.PolicyStatement:
    """ListModelPackages has no resource-level permission; it is read-only and finds versions by number."""
    return iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"])


def _read_model_packages(package_arns: str) -> iam.PolicyStatement:
    """Describe the group's versions (the registry record lives in their customer metadata)."""
    return iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[package_arns])


def _handler_env(settings: CloudSettings) -> dict[str, str]:
    """The handlers' environment, with the rollout policy always spelled out (the ring groups follow it)."""
    return {**settings.to_env(), ENV_ROLLOUT_POLICY: json.dumps(settings.rollout_policy.to_dict(), sort_keys=True)}


def _table_statement(table: dynamodb.ITable, actions: tuple[str, ...]) -> iam.PolicyStatement:
    """Item-level DynamoDB actions on one table (no index exists, so none is granted)."""
    return iam.PolicyStatement(actions=[f"dynamodb:{action}" for action in actions], resources=[table.table_arn])
