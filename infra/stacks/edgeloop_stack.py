"""The one edgeloop stack: it composes the units, and is the only place where they meet.

Each construct creates its own functions and grants them what they call on the resources it is handed;
the stack hands each one what the others made, the settings the handlers read, and the outputs.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

from edgeloop.core.names import INFERENCE_COMPONENT, LABELS_PREFIX, TRAINING_DATA_PREFIX, TRAINING_OUTPUT_PREFIX
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from edgeloop.core.settings import CloudSettings, LauncherSettings
from edgeloop.packaging import build_inference_archive
from infra.config import StackConfig
from infra.constructs.controller import (
    MODEL_APPROVED,
    ROLLOUT_CONTROLLER,
    ModelApproval,
    RolloutController,
    RolloutReach,
)
from infra.constructs.event_function import EventFunction, FunctionDefaults
from infra.constructs.fleet import Fleet
from infra.constructs.health_ingest import HEALTH_INGEST, HealthIngest
from infra.constructs.monitoring import Monitoring
from infra.constructs.registry import TRAINING_COMPLETED, ModelRegistration, ModelRegistry
from infra.constructs.results import Results
from infra.constructs.retraining import LABEL_INGEST, RETRAINING_TRIGGER, Retraining
from infra.constructs.rings import RingGroups
from infra.constructs.rollout_state import RolloutState
from infra.constructs.samples import SAMPLE_INGEST, Samples
from infra.constructs.signing import ManifestSigningKey
from infra.constructs.storage import Storage
from infra.constructs.training import TRAINING_LAUNCHER, TrainingLauncher, TrainingRole

BASIC_EXECUTION_POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
"""How cdk-nag names the managed policy CDK attaches to its own custom-resource handlers."""


class EdgeloopStack(cdk.Stack):
    """Everything one edgeloop environment needs in one account and region.

    Construct ids are logical ids: renaming one replaces its tables, buckets, keys and queues on deploy
    (tests/infra/test_infra_logical_ids.py pins them).
    """

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
        functions = FunctionDefaults(
            functions_dir=staging_dir / "functions",
            resource_prefix=config.resource_prefix,
            log_retention_days=config.log_retention_days,
        )
        self.storage = Storage(
            self,
            "Storage",
            env_name=config.env_name,
            log_retention_days=config.log_retention_days,
            samples_retention_days=config.samples_retention_days,
        )
        key = self.storage.key
        self.registry = ModelRegistry(self, "Registry", model_name=config.model_name)
        self.results = Results(self, "Results", data=self.storage.data)
        self.training_output_uri = f"s3://{self.storage.data.bucket_name}/{TRAINING_OUTPUT_PREFIX}"
        """Where training jobs write model.tar.gz, the only artifacts training_completed accepts."""
        self.training_data_uri = f"s3://{self.storage.data.bucket_name}/{TRAINING_DATA_PREFIX}"
        self.fleet = Fleet(
            self,
            "Fleet",
            resource_prefix=config.resource_prefix,
            artifacts=self.storage.artifacts,
            key=key,
            inference_archive=archive_dir / INFERENCE_ARCHIVE,
            inference_component_version=config.inference_component_version,
        )
        self.signing = ManifestSigningKey(self, "Signing", env_name=config.env_name)
        self.training = TrainingRole(
            self, "Training", resource_prefix=config.resource_prefix, data=self.storage.data, key=key
        )
        self.rollout_state = RolloutState(self, "RolloutState", key=key)
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
        self.training_completed = ModelRegistration(
            self,
            "TrainingCompleted",
            functions=functions,
            settings=settings,
            model_name=config.model_name,
            registry=self.registry,
            data=self.storage.data,
            artifacts=self.storage.artifacts,
            key=key,
            signing_key=self.signing.key,
        )
        reach = RolloutReach(
            model_name=config.model_name,
            state=self.rollout_state,
            key=key,
            signing_key=self.signing.key,
            registry=self.registry,
            rings=self.rings,
        )
        self.model_approved = ModelApproval(
            self,
            "ModelApproved",
            functions=functions,
            settings=settings,
            reach=reach,
            fleet_thing_group_arn=self.fleet.thing_group_arn,
        )
        self.training_launcher = TrainingLauncher(
            self,
            "TrainingLauncher",
            functions=functions,
            settings=LauncherSettings(
                model_name=config.model_name,
                training_image_uri=self.training.image_uri(
                    config.training_image_uri, config.inference_component_version
                ),
                training_role_arn=self.training.role_arn,
                training_data_uri=self.training_data_uri,
                training_output_uri=self.training_output_uri,
                instance_type=config.training_instance_type,
            ),
            training=self.training,
            schedule=config.training_schedule,
        )
        self.health_ingest = HealthIngest(
            self, "HealthIngest", functions=functions, settings=settings, state=self.rollout_state, key=key
        )
        self.rollout_controller = RolloutController(
            self,
            "RolloutController",
            functions=functions,
            settings=settings,
            reach=reach,
            rate_minutes=config.rollout_controller_rate_minutes,
        )
        self.samples = Samples(self, "Samples", bucket=self.storage.samples, key=key, functions=functions)
        self._acknowledge_notifications_handler()
        self.retraining = Retraining(
            self,
            "Retraining",
            functions=functions,
            model_name=config.model_name,
            policy=config.retraining_policy,
            rate_minutes=config.retraining_trigger_rate_minutes,
            bucket=self.storage.samples,
            samples_table=self.samples.table,
            state=self.rollout_state,
            key=key,
            package_arns=self.registry.package_arns,
            artifacts=self.storage.artifacts,
        )
        self.monitoring = self._monitoring()
        self._outputs()

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
            controller_logs=self.rollout_controller.handler.log_group,
        )

    def handlers(self) -> dict[str, EventFunction]:
        """Every handler of the stack by its functions/ module name."""
        return {
            TRAINING_COMPLETED: self.training_completed.handler,
            MODEL_APPROVED: self.model_approved.handler,
            TRAINING_LAUNCHER: self.training_launcher.handler,
            HEALTH_INGEST: self.health_ingest.handler,
            ROLLOUT_CONTROLLER: self.rollout_controller.handler,
            SAMPLE_INGEST: self.samples.handler,
            LABEL_INGEST: self.retraining.label_ingest,
            RETRAINING_TRIGGER: self.retraining.trigger,
        }

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
            "TrainingDataUri": self.training_data_uri,
            "TrainingRoleArn": self.training.role.role_arn,
            "TrainingLauncherFunctionName": self.training_launcher.handler.function.function_name,
            "ManifestSigningKeyArn": self.signing.key.key_arn,
            "ResultsUri": self.results.uri,
            "ResultsFailedDeliveriesQueueUrl": self.results.failed.queue_url,
            "RolloutsTableName": self.rollout_state.rollouts.table_name,
            "FleetHealthTableName": self.rollout_state.fleet_health.table_name,
            "RingThingGroups": ",".join(group.thing_group_name or "" for group in self.rings.groups.values()),
            "RolloutControllerFunctionName": self.rollout_controller.handler.function.function_name,
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
