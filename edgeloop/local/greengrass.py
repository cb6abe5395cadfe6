"""Greengrass v2 stand-in: the fleet-control API in memory, plus one simulated nucleus per device.

Simulation stand-in, not Greengrass. It keeps what edgeloop relies on: component versions are
immutable recipes, a deployment targets a thing group (members read from the local IoT registry in
moto) and replaces the previous one, each nucleus downloads its components' artifacts into the
Greengrass layout (`<root>/packages/artifacts/<component>/<version>/`), merges the deployment's
configuration over the recipe defaults, and hands the result to the running component through its IPC
stand-in (edgeloop.local.ipc: validated first, then updated, as the nucleus does). Public
components (aws.greengrass.*) are not installed: the stand-ins provide their effect directly (ShadowManager's
local shadow copy and delta topic are part of the IPC stand-in).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from awsiot.greengrasscoreipc.model import ConfigurationValidityStatus

from edgeloop.cloud.artifacts import ArtifactStore
from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.cloud.fleet import (
    DEPLOYMENT_POLICIES,
    FAST_JOB_CONFIGURATION,
    JOB_CONFIGURATION,
    PUBLIC_COMPONENT_PREFIX,
    DeploymentInfo,
    DeploymentProgress,
    MemoryFleetControl,
    check_target,
    distinct_causes,
    progress_from_job,
)
from edgeloop.core.deployments import DeploymentSpec, merge_configuration
from edgeloop.core.errors import ConfigError, EdgeloopError, FleetControlError, NotFoundError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import model_root
from edgeloop.device.uplink import Uplink
from edgeloop.local.ipc import LocalIpc, component_defaults

log = logging.getLogger(__name__)


class ExecutionStatus(StrEnum):
    """A deployment's outcome on one device, named as IoT Jobs name job executions."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class DeviceOutcome:
    """What one nucleus did with one deployment."""

    thing_name: str
    status: ExecutionStatus
    detail: str


class LocalNucleus:
    """One simulated core device's nucleus: installs artifacts and configures the inference component over IPC.

    The component (edgeloop.device.component, started against `ipc`) sees a deployment as on a core device:
    its configuration is validated through the IPC stand-in first (a REJECTED report fails the deployment),
    then lands and the component is told to re-read it.
    """

    def __init__(
        self,
        thing_name: str,
        root: Path,
        *,
        artifacts: ArtifactStore,
        cloud: Uplink | None = None,
        on_configuration: Callable[[DeviceConfig], None] | None = None,
    ) -> None:
        """cloud: the nucleus's own IoT Core connection (what the component publishes through IPC goes there);
        on_configuration: a check once the component took a configuration; it raises to fail the deployment (a
        simulated device refuses a model it could not verify there)."""
        self.thing_name = thing_name
        self.root = root
        self._artifacts = artifacts
        self._on_configuration = on_configuration
        self._last_good: dict[str, Any] | None = None
        self.ipc = LocalIpc(thing_name, component_defaults(), cloud=cloud)
        """The component's IPC client stand-in: what it reads, validates and hears, the nucleus puts there."""
        self.online: Callable[[], bool] = lambda: True
        """Whether the device is connected: IoT Jobs only reaches a device that is online (its execution waits)."""

    @property
    def artifacts_root(self) -> Path:
        """Where Greengrass keeps component artifacts: <root>/packages/artifacts."""
        return model_root(self.root)

    def apply(self, deployment: DeploymentInfo, recipes: Mapping[str, Mapping[str, Any]]) -> DeviceOutcome:
        """Install every private component of the deployment, then configure the inference component.

        On failure the device goes back to the configuration of its last successful deployment
        (failureHandlingPolicy ROLLBACK), so it keeps serving what it served before.
        """
        try:
            for name, recipe in recipes.items():
                self._install(name, recipe)
            inference = deployment.components.get(INFERENCE_COMPONENT)
            if inference is not None:
                defaults = recipes[INFERENCE_COMPONENT]["ComponentConfiguration"]["DefaultConfiguration"]
                configuration = merge_configuration(defaults, inference.merge)
                self._configure(configuration, deployment.deployment_id)
                self._last_good = configuration
        except EdgeloopError as exc:
            log.warning("%s: deployment %s failed: %s", self.thing_name, deployment.deployment_id, exc)
            return DeviceOutcome(self.thing_name, ExecutionStatus.FAILED, str(exc) + self._roll_back())
        return DeviceOutcome(self.thing_name, ExecutionStatus.SUCCEEDED, "")

    def _configure(self, configuration: dict[str, Any], deployment_id: str) -> None:
        """Validate, then update, as the nucleus does; then the device's own check, if any."""
        config = DeviceConfig.from_config(configuration)  # the nucleus's schema check; the component checks more
        report = self.ipc.validate_configuration(configuration, deployment_id)
        if report.status == ConfigurationValidityStatus.REJECTED:
            raise ConfigError("configuration", f"{INFERENCE_COMPONENT} rejected it: {report.message}")
        self._land(configuration, config)

    def _land(self, configuration: dict[str, Any], config: DeviceConfig) -> None:
        self.ipc.update_configuration(configuration)
        if self._on_configuration is not None:
            self._on_configuration(config)

    def _roll_back(self) -> str:
        """Re-apply the last good configuration, as Greengrass's ROLLBACK failure handling does."""
        if DEPLOYMENT_POLICIES["failureHandlingPolicy"] != "ROLLBACK" or self._last_good is None:
            return ""
        good = DeviceConfig.from_config(self._last_good)
        try:
            self._land(self._last_good, good)
        except EdgeloopError as exc:
            return f"; rollback failed too: {exc}"
        return f"; rolled back to {good.modelComponent or 'no model'} {good.modelComponentVersion}".rstrip()

    def _install(self, name: str, recipe: Mapping[str, Any]) -> None:
        target = self.artifacts_root / name / str(recipe["ComponentVersion"])
        for manifest in recipe.get("Manifests", []):
            for artifact in manifest.get("Artifacts", []):
                uri = str(artifact["Uri"])
                destination = target / uri.rsplit("/", 1)[-1]
                if not destination.exists():
                    _write_atomic(destination, self._artifacts.get(uri))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@dataclass
class _Job:
    """The IoT job behind one deployment: its queued members, pace, abort rule and executions so far."""

    deployment: DeploymentInfo
    pace: JobPace
    queued: list[str]
    next_batch_at: float
    rate: int
    succeeded_since_increase: int = 0
    outcomes: list[DeviceOutcome] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    status: str = "IN_PROGRESS"

    def details(self) -> dict[str, int]:
        """IoT's jobProcessDetails counts, so progress is read through the adapter's own progress_from_job."""
        statuses = [o.status for o in self.outcomes]
        return {
            "numberOfQueuedThings": len(self.queued),
            "numberOfSucceededThings": statuses.count(ExecutionStatus.SUCCEEDED),
            "numberOfFailedThings": statuses.count(ExecutionStatus.FAILED),
            "numberOfCanceledThings": len(self.canceled),
        }


@dataclass(frozen=True)
class JobPace:
    """An IoT job configuration as the stand-in plays it: exponential rollout rate and FAILED-percentage abort."""

    base_per_minute: int
    increment_factor: float
    increase_after_succeeded: int
    maximum_per_minute: int
    abort_percentage: float | None
    abort_min_executed: int

    @classmethod
    def from_job_configuration(cls, config: Mapping[str, Any]) -> JobPace:
        """Read the iotJobConfiguration the boto3 adapter sends (JOB_CONFIGURATION or FAST_JOB_CONFIGURATION)."""
        rollout = config.get("jobExecutionsRolloutConfig", {})
        maximum = int(rollout.get("maximumPerMinute", 1000))
        exponential = rollout.get("exponentialRate")
        criteria = [c for c in config.get("abortConfig", {}).get("criteriaList", []) if c["failureType"] == "FAILED"]
        return cls(
            base_per_minute=int(exponential["baseRatePerMinute"]) if exponential else maximum,
            increment_factor=float(exponential["incrementFactor"]) if exponential else 1.0,
            increase_after_succeeded=int(exponential["rateIncreaseCriteria"]["numberOfSucceededThings"])
            if exponential
            else 0,
            maximum_per_minute=maximum,
            abort_percentage=float(criteria[0]["thresholdPercentage"]) if criteria else None,
            abort_min_executed=int(criteria[0]["minNumberOfExecutedThings"]) if criteria else 0,
        )


ROLLOUT_WINDOW_S = 60.0
"""IoT Jobs rates are per minute: each window of the clock starts at most `rate` executions."""


class LocalGreengrass(MemoryFleetControl):
    """The Greengrass v2 cloud service stand-in: deployments reach the nuclei of the target group as IoT jobs.

    Each deployment's job starts executions at the pace of its job configuration on `clock` (the demo's
    clock): `baseRatePerMinute` devices in the first minute, the rate multiplied by `incrementFactor`
    after every `numberOfSucceededThings` successes, never above `maximumPerMinute`; a revert (spec.fast)
    runs at the maximum rate. Once `minNumberOfExecutedThings` ran and the FAILED share reaches
    `thresholdPercentage`, the job is CANCELED and its queued executions with it. A device whose deployment
    fails rolls back to its previous components (failureHandlingPolicy ROLLBACK). A new deployment to a
    target cancels the queued executions of the previous one, as Greengrass replaces it. Executions run
    synchronously, so the job timeout never fires here. Call `advance()` as the clock moves.
    """

    def __init__(self, iot: Any, *, region: str, account: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(region=region, account=account)
        self._iot = iot
        self._clock = clock
        self._nuclei: dict[str, LocalNucleus] = {}
        self._jobs: dict[str, _Job] = {}
        self._jobs_lock = threading.RLock()

    def register_nucleus(self, nucleus: LocalNucleus) -> None:
        """A core device came online and will receive its group's deployments."""
        self._nuclei[nucleus.thing_name] = nucleus

    def create_deployment(self, spec: DeploymentSpec) -> str:
        """Record the deployment, queue its job for the target's members, and start the first executions."""
        members = self._members(spec.target_arn, spec.name)  # before anything is recorded: nothing half-applied
        configuration = FAST_JOB_CONFIGURATION if spec.fast else JOB_CONFIGURATION
        pace = JobPace.from_job_configuration(configuration)
        with self._jobs_lock:
            deployment_id = super().create_deployment(spec)
            for job in self._jobs.values():
                if job.deployment.target_arn == spec.target_arn and job.status == "IN_PROGRESS":
                    _cancel(job, "replaced by a newer deployment to the same target")
            info = self.get_deployment(deployment_id)
            self._jobs[deployment_id] = _Job(info, pace, members, self._clock(), pace.base_per_minute)
            self.advance()
        return deployment_id

    def advance(self) -> None:
        """Start every execution whose turn has come on the clock, in every job still in progress."""
        now = self._clock()
        with self._jobs_lock:
            for job in list(self._jobs.values()):
                while job.status == "IN_PROGRESS" and job.queued and job.next_batch_at <= now:
                    self._run_batch(job)
                    job.next_batch_at += ROLLOUT_WINDOW_S
                if job.status == "IN_PROGRESS" and not job.queued:
                    job.status = "COMPLETED"

    def outcomes(self, deployment_id: str) -> list[DeviceOutcome]:
        """Per-device results of a deployment so far (the job executions that ran)."""
        self.get_deployment(deployment_id)
        with self._jobs_lock:
            job = self._jobs.get(deployment_id)
            return list(job.outcomes) if job else []

    def job_status(self, deployment_id: str) -> str:
        """IN_PROGRESS, COMPLETED or CANCELED (after an abort, or when a newer deployment replaced it)."""
        self.get_deployment(deployment_id)
        with self._jobs_lock:
            return self._jobs[deployment_id].status

    def deployment_progress(self, deployment_id: str) -> DeploymentProgress:
        """The job's execution counts, read as the boto3 adapter reads IoT's jobProcessDetails."""
        self.get_deployment(deployment_id)
        with self._jobs_lock:
            job = self._jobs.get(deployment_id)
            if job is None:
                return DeploymentProgress(0, 0, 0)
            failed = [f"{o.thing_name}: {o.detail}" for o in job.outcomes if o.status is ExecutionStatus.FAILED]
            return replace(progress_from_job(job.details()), failure_causes=distinct_causes(failed))

    def _run_batch(self, job: _Job) -> None:
        """Start up to `rate` executions; a device that is offline keeps its execution queued until it reconnects."""
        recipes = self._deployment_recipes(job.deployment)
        reachable = [thing for thing in job.queued if self._nuclei[thing].online()][: job.rate]
        for thing in reachable:
            job.queued.remove(thing)
            outcome = self._nuclei[thing].apply(job.deployment, recipes)
            job.outcomes.append(outcome)
            if outcome.status is ExecutionStatus.SUCCEEDED:
                job.succeeded_since_increase += 1
            if _abort_due(job):
                _cancel(job, "abort criteria met")
                return
        pace = job.pace
        if pace.increase_after_succeeded and job.succeeded_since_increase >= pace.increase_after_succeeded:
            job.rate = min(pace.maximum_per_minute, max(job.rate + 1, int(job.rate * pace.increment_factor)))
            job.succeeded_since_increase = 0

    def _deployment_recipes(self, deployment: DeploymentInfo) -> dict[str, dict[str, Any]]:
        return {
            name: self.get_component_recipe(name, spec.version)
            for name, spec in deployment.components.items()
            if not name.startswith(PUBLIC_COMPONENT_PREFIX)
        }

    def _members(self, target_arn: str, name: str) -> list[str]:
        if ":thinggroup/" not in check_target(target_arn):
            raise NotFoundError(f"deployment target {target_arn} is not a thing group")
        group = target_arn.rsplit("/", 1)[-1]
        try:
            pages = self._iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=group)
            members = [thing for page in pages for thing in page["things"]]
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"deployment target {target_arn} does not exist") from exc
            raise FleetControlError(f"could not list the members of {target_arn}: {exc}") from exc
        missing = sorted(set(members) - set(self._nuclei))
        if missing:
            log.info("deployment %s: %d member(s) have no running nucleus: %s", name, len(missing), missing)
        return sorted(thing for thing in members if thing in self._nuclei)


def _abort_due(job: _Job) -> bool:
    """IoT Jobs' abortConfig: FAILED executions reached thresholdPercentage of at least minNumberOfExecutedThings."""
    pace, executed = job.pace, len(job.outcomes)
    if pace.abort_percentage is None or executed < max(pace.abort_min_executed, 1):
        return False
    failed = sum(1 for o in job.outcomes if o.status is ExecutionStatus.FAILED)
    return failed * 100.0 / executed >= pace.abort_percentage


def _cancel(job: _Job, why: str) -> None:
    log.info("job of %s canceled (%s): %d queued execution(s) canceled", job.deployment.name, why, len(job.queued))
    job.canceled.extend(job.queued)
    job.queued = []
    job.status = "CANCELED"
