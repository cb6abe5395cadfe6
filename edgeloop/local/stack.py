"""The embedded local stack: moto in server mode, the IoT Core and Greengrass stand-ins, provisioned
the way the CDK stack provisions an AWS account."""

from __future__ import annotations

import logging
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from edgeloop import __version__
from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.rings import IotRingDirectory
from edgeloop.cloud.rollout_control import RolloutContext
from edgeloop.cloud.rollout_stores import (
    DynamoFleetHealthStore,
    DynamoRolloutStore,
    FleetHealthStore,
    MemoryFleetHealthStore,
    MemoryRolloutStore,
    RolloutStore,
    table_definition,
)
from edgeloop.cloud.sample_ingest import MemoryLabellingQueue, MemorySampleCatalogue
from edgeloop.cloud.signing import KmsSigner
from edgeloop.core.errors import EdgeloopError
from edgeloop.core.events import MODEL_PACKAGE_STATE_CHANGE, SAGEMAKER_SOURCE
from edgeloop.core.names import (
    FLEET_THING_GROUP,
    HEALTH_DOCUMENTS_TOPIC_FILTER,
    NAMED_SHADOW_UPDATE_FILTER,
    RESULTS_TOPIC_FILTER,
    SAMPLES_TOPIC_FILTER,
    TRAINING_OUTPUT_PREFIX,
)
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from edgeloop.core.registry import RegistryRecord
from edgeloop.core.rings import RING_ATTRIBUTE
from edgeloop.core.rollout import DEFAULT_POLICY, RolloutPolicy
from edgeloop.core.settings import CloudSettings
from edgeloop.core.signing import SIGNING_KEY_SPEC
from edgeloop.local.backends import MotoIotData, MotoS3Objects
from edgeloop.local.broker import LocalIotCore, Rule
from edgeloop.local.devices import SimulatedDevice
from edgeloop.local.greengrass import LocalGreengrass
from edgeloop.local.iot_core import HealthRule, ResultsIngest, SamplesRule, ShadowService
from edgeloop.local.lambdas import LocalEventBus
from edgeloop.packaging import build_inference_archive, inference_recipe

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's default account: the local stack's resources all live there."""
AUTO_APPROVE_MIN_ACCURACY = 0.95
"""The local stack's approval policy: versions at or above this holdout accuracy are approved..."""
AUTO_APPROVE_MAX_DROP = 0.02
"""...unless they score more than this below the Approved version (a retrain with another seed may dip a little)."""


@dataclass(frozen=True)
class StackNames:
    """Resource names of one local stack (a short random suffix keeps runs apart)."""

    artifacts_bucket: str
    data_bucket: str
    thing_group: str

    @classmethod
    def fresh(cls) -> StackNames:
        """Names for a new stack."""
        suffix = uuid.uuid4().hex[:8]
        return cls(f"edgeloop-artifacts-{suffix}", f"edgeloop-data-{suffix}", FLEET_THING_GROUP)


class LocalStack:
    """Everything the loop needs from 'the cloud', on 127.0.0.1, with nothing to install but pip packages."""

    def __init__(
        self,
        work_dir: Path,
        *,
        rollout_policy: RolloutPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
        in_process: bool = False,
    ) -> None:
        """clock drives the rollout controller and the Greengrass stand-in's job pacing (the demo's clock).

        in_process: the stack's own clients reach moto in this process instead of over HTTP, and IoT Core's
        rules run in the publisher's thread (the stepped fleet simulation; the server still answers on its
        endpoint, over the same state). A moto call then costs about a millisecond instead of ten.
        """
        self.work_dir = work_dir
        self.in_process = in_process
        self._mock: Any = None
        self._memory_tables = (MemoryRolloutStore(), MemoryFleetHealthStore()) if in_process else None
        self._public_key: str | None = None
        self.rollout_policy = rollout_policy
        self.clock = clock
        self.names = StackNames.fresh()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.iot_core = LocalIotCore(inline=in_process)
        self.devices: dict[str, SimulatedDevice] = {}
        self.signing_key_id: str | None = None
        self.model_name = ""
        self._bus: LocalEventBus | None = None
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start moto and the broker, then wire the shadow service and the results rule into moto."""
        if not log.isEnabledFor(logging.INFO):
            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's per-request access log
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        _reset_moto(self.endpoint)
        if self.in_process:
            from moto import mock_aws

            self._mock = mock_aws()
            self._mock.start()
        self.iot_core.start()
        self._started = True
        self.store = S3ArtifactStore(self.client("s3"))
        self.registry = SageMakerRegistry(self.client("sagemaker"))
        self.greengrass = LocalGreengrass(self.client("iot"), region=REGION, account=ACCOUNT, clock=self.clock)
        self.rings = IotRingDirectory(self.client("iot"), self.rollout_policy)
        objects = MotoS3Objects(ACCOUNT) if self.in_process else self.client("s3")
        self.results = ResultsIngest(objects, self.names.data_bucket)
        shadows = MotoIotData(ACCOUNT, REGION) if self.in_process else self.client("iot-data")
        self.shadows = ShadowService(shadows, self.iot_core.publish)
        self.iot_core.add_reserved_service(NAMED_SHADOW_UPDATE_FILTER, self.shadows)
        self.iot_core.add_rule(Rule("edgeloop_results", RESULTS_TOPIC_FILTER, self.results))
        self.health_rule = HealthRule(lambda event: self.event_bus().invoke("health_ingest", event).result)
        self.iot_core.add_rule(Rule("edgeloop_health", HEALTH_DOCUMENTS_TOPIC_FILTER, self.health_rule))
        self.samples = SamplesRule(
            objects,
            self.names.data_bucket,
            lambda event: self.event_bus().invoke("sample_ingest", event).result,
        )
        self.iot_core.add_rule(Rule("edgeloop_samples", SAMPLES_TOPIC_FILTER, self.samples))
        self.sample_catalogue = MemorySampleCatalogue()
        self.labelling_queue = MemoryLabellingQueue()

    def stop(self) -> None:
        """Stop devices first (they flush), then the broker (it drains rules), then moto."""
        for device in self.devices.values():
            device.stop()
        if self._started:
            self.iot_core.stop()
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
            self._moto.stop()
            self._started = False

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        """A boto3 client for the local cloud (fixed fake credentials: nothing can reach AWS)."""
        return boto3.client(
            service,
            endpoint_url=None if self.in_process else self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    # --- provisioning (what `cdk deploy` creates in an account) ----------------------------------

    @property
    def thing_group_arn(self) -> str:
        """The fleet thing group's ARN."""
        return f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{self.names.thing_group}"

    @property
    def inference_version(self) -> str:
        """The inference component version this checkout publishes."""
        return __version__

    def settings(self) -> CloudSettings:
        """The handlers' environment, as the stack sets it."""
        return CloudSettings(
            artifacts_bucket=self.names.artifacts_bucket,
            fleet_thing_group_arn=self.thing_group_arn,
            inference_component_version=self.inference_version,
            auto_approve_min_accuracy=AUTO_APPROVE_MIN_ACCURACY,
            training_output_uri=f"s3://{self.names.data_bucket}/{TRAINING_OUTPUT_PREFIX}",
            signing_key_id=self.signing_key_id,
            auto_approve_max_drop=AUTO_APPROVE_MAX_DROP,
            rollout_policy=self.rollout_policy,
        )

    def signer(self) -> KmsSigner:
        """The manifest signer on moto's KMS (moto signs DIGEST messages as RAW, so everything goes RAW here)."""
        if self.signing_key_id is None:
            raise EdgeloopError("the local stack is not provisioned: it has no signing key yet")
        return KmsSigner(self.client("kms"), self.signing_key_id, raw_message_limit=None)

    def provision(self, model_name: str, fleet_config: Mapping[str, Any] | None = None) -> None:
        """Buckets, model package group, fleet and ring thing groups, rollout tables, the inference component."""
        self.model_name = model_name
        s3 = self.client("s3")
        for bucket in (self.names.artifacts_bucket, self.names.data_bucket):
            s3.create_bucket(Bucket=bucket)
        self.registry.ensure_group(model_name)
        key = self.client("kms").create_key(
            KeySpec=SIGNING_KEY_SPEC, KeyUsage="SIGN_VERIFY", Description="edgeloop local: signs model manifests"
        )
        self.signing_key_id = str(key["KeyMetadata"]["KeyId"])
        self.client("iot").create_thing_group(thingGroupName=self.names.thing_group)
        self.rings.ensure_groups()
        dynamodb, settings = self.client("dynamodb"), self.settings()
        for table in (settings.rollouts_table, settings.fleet_health_table):
            dynamodb.create_table(**table_definition(table))
        staging = self.work_dir / "staging"
        build_inference_archive(staging)
        uri = f"s3://{self.names.artifacts_bucket}/components/inference/{self.inference_version}/{INFERENCE_ARCHIVE}"
        self.store.put(uri, (staging / INFERENCE_ARCHIVE).read_bytes())
        self.greengrass.create_component_version(
            inference_recipe(self.inference_version, uri, fleet_config=fleet_config)
        )
        self.event_bus()  # built once, before any device can report through the health rule

    def rollout_context(self) -> RolloutContext:
        """The controller's ports as the stack configures them: DynamoDB on moto, the Greengrass stand-in.

        in_process: the rollout and fleet-health tables are the in-memory adapters (the same contract suites
        as the DynamoDB ones, tests/cloud/test_cloud_rollout_stores.py): at fleet scale every health report is a
        transaction, and moto's DynamoDB is neither fast nor thread-safe enough for a thousand devices.
        """
        dynamodb, settings = self.client("dynamodb"), self.settings()
        rollouts: RolloutStore
        health: FleetHealthStore
        if self._memory_tables is not None:
            rollouts, health = self._memory_tables
        else:
            rollouts = DynamoRolloutStore(dynamodb, settings.rollouts_table)
            health = DynamoFleetHealthStore(dynamodb, settings.fleet_health_table)
        if self._public_key is None:
            self._public_key = self.signer().public_key_pem()
        return RolloutContext(
            rollouts=rollouts,
            health=health,
            registry=self.registry,
            fleet=self.greengrass,
            settings=settings,
            clock=self.clock,
            public_key_pem=self._public_key,
        )

    def event_bus(self) -> LocalEventBus:
        """EventBridge rules and direct invokes to the real handlers, with the adapters the stack would configure."""
        if self._bus is None:
            ctx = self.rollout_context()
            common = {"registry": self.registry, "fleet": self.greengrass, "settings": self.settings()}
            self._bus = LocalEventBus(
                {
                    "training_completed": {**common, "store": self.store, "signer": self.signer()},
                    "model_approved": {"ctx": ctx},
                    "rollout_controller": {"ctx": ctx, "model_name": self.model_name},
                    "health_ingest": {"ctx": ctx, "rings": self.rings},
                    "sample_ingest": {
                        "store": self.store,
                        "catalogue": self.sample_catalogue,
                        "queue": self.labelling_queue,
                    },
                }
            )
        return self._bus

    def register_thing(self, thing_name: str, ring: str | None = None) -> None:
        """Create a thing in the fleet group and its ring group (pinned to `ring` if given), as provisioning does."""
        iot = self.client("iot")
        attributes = {"attributes": {RING_ATTRIBUTE: ring}} if ring else {}
        iot.create_thing(thingName=thing_name, attributePayload=attributes)
        iot.add_thing_to_thing_group(thingGroupName=self.names.thing_group, thingName=thing_name)
        self.rings.assign(thing_name)

    def add_device(self, thing_name: str, ring: str | None = None) -> SimulatedDevice:
        """Register a thing (see register_thing), then bring a threaded simulated device online over MQTT."""
        self.register_thing(thing_name, ring)
        device = SimulatedDevice(
            thing_name,
            self.work_dir / "devices" / thing_name,
            broker=(self.iot_core.host, self.iot_core.port),
            artifacts=self.store,
        )
        self.devices[thing_name] = device
        self.greengrass.register_nucleus(device.nucleus)
        device.start()
        return device

    # --- SageMaker behaviour moto does not emulate -------------------------------------------------

    def model_package_event(self, record: RegistryRecord) -> dict[str, Any]:
        """The "SageMaker Model Package State Change" event SageMaker emits (moto emits none)."""
        package = self.client("sagemaker").describe_model_package(ModelPackageName=record.package_arn)
        if int(package["ModelPackageVersion"]) != record.version:
            raise EdgeloopError(
                f"{record.package_arn} is version {package['ModelPackageVersion']}, not {record.version}"
            )
        return eventbridge_event(
            MODEL_PACKAGE_STATE_CHANGE,
            SAGEMAKER_SOURCE,
            [record.package_arn],
            {
                "ModelPackageGroupName": package["ModelPackageGroupName"],
                "ModelPackageVersion": int(package["ModelPackageVersion"]),
                "ModelPackageArn": record.package_arn,
                "ModelPackageStatus": package["ModelPackageStatus"],
                "ModelApprovalStatus": package["ModelApprovalStatus"],
            },
        )


def eventbridge_event(
    detail_type: str, source: str, resources: list[str], detail: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    """An event in EventBridge's envelope, from the local stack's account and region (a fresh id unless given)."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def _reset_moto(endpoint: str) -> None:
    """Start from an empty account: moto's backends are process-wide, so an earlier stack's resources linger."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # our own 127.0.0.1 moto server
        response.read()
