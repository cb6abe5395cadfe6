"""Fleet-control port: Greengrass v2 components and deployments (moto has no greengrassv2)."""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.deployments import ComponentDeployment, DeploymentSpec
from edgeloop.core.errors import FleetControlError, NotFoundError, ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentRef:
    """A created component version."""

    name: str
    version: str
    arn: str


@dataclass(frozen=True)
class DeploymentInfo:
    """What Greengrass says about one deployment."""

    deployment_id: str
    target_arn: str
    name: str
    status: str
    components: Mapping[str, ComponentDeployment]


@dataclass(frozen=True)
class DeploymentProgress:
    """How a deployment's IoT job stands across its target group's devices."""

    targeted: int
    succeeded: int
    failed: int
    """Executions FAILED, REJECTED or TIMED_OUT: devices where the deployment did not take."""
    failure_causes: tuple[str, ...] = ()
    """Distinct causes the failed devices gave (at most MAX_FAILURE_CAUSES, each clipped), so a revert can say
    why in the devices' own words ("sha256 mismatch"), not only that a share of jobs failed."""


class FleetControl(Protocol):
    """Greengrass v2 as edgeloop uses it.

    `create_component_version` is idempotent for an identical recipe and raises FleetControlError
    when the version exists with a different recipe (component versions are immutable).
    `create_deployment` replaces the target's previous deployment, as Greengrass keeps one per target.
    `get_deployment` and `get_component_recipe` raise NotFoundError for unknown ids or versions.
    A target that is not an IoT thing or thing group ARN is refused with ValidationError, as Greengrass refuses it.
    `latest_deployment` is the target's current deployment (None before the first), so a redelivered
    approval can tell that its deployment already exists. `deployment_progress` counts the job's executions
    and, when some failed, gives a few of their causes as the devices reported them.
    """

    def create_component_version(self, recipe: Mapping[str, Any]) -> ComponentRef: ...

    def get_component_recipe(self, name: str, version: str) -> dict[str, Any]: ...

    def create_deployment(self, spec: DeploymentSpec) -> str: ...

    def get_deployment(self, deployment_id: str) -> DeploymentInfo: ...

    def latest_deployment(self, target_arn: str) -> DeploymentInfo | None: ...

    def deployment_progress(self, deployment_id: str) -> DeploymentProgress: ...


def component_arn(region: str, account: str, name: str, version: str) -> str:
    """The ARN Greengrass gives a private component version."""
    return f"arn:aws:greengrass:{region}:{account}:components:{name}:versions:{version}"


def _recipe_identity(recipe: Mapping[str, Any]) -> tuple[str, str]:
    name, version = recipe.get("ComponentName"), recipe.get("ComponentVersion")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise ValidationError("recipe", "needs ComponentName and ComponentVersion strings")
    return name, version


TARGET_ARN = re.compile(r"arn:[^:]*:iot:[^:]*:[0-9]+:(thing|thinggroup)/.+")
"""Greengrass's own pattern for a deployment target (TargetARN in the greengrassv2 service model)."""


def check_target(target_arn: str) -> str:
    """Refuse a target Greengrass would refuse, before anything is sent or recorded."""
    if not TARGET_ARN.fullmatch(target_arn):
        raise ValidationError("target_arn", f"{target_arn!r} is not an IoT thing or thing group ARN")
    return target_arn


PUBLIC_COMPONENT_PREFIX = "aws.greengrass."
"""Components AWS publishes; they exist in every account, so the stand-in does not hold their recipes."""

DEPLOYMENT_POLICIES: Mapping[str, Any] = {
    "failureHandlingPolicy": "ROLLBACK",
    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
    "configurationValidationPolicy": {"timeoutInSeconds": 60},
}
"""Per-device rollback on failure; components may defer an update while they finish a batch."""

JOB_CONFIGURATION: Mapping[str, Any] = {
    "jobExecutionsRolloutConfig": {
        "exponentialRate": {
            "baseRatePerMinute": 10,
            "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfSucceededThings": 10},
        },
        "maximumPerMinute": 1000,
    },
    "abortConfig": {
        "criteriaList": [
            {
                "failureType": "FAILED",
                "action": "CANCEL",
                "thresholdPercentage": 10.0,
                "minNumberOfExecutedThings": 5,
            }
        ]
    },
    "timeoutConfig": {"inProgressTimeoutInMinutes": 60},
}
"""IoT Jobs pacing and abort for a ring: a slow start that speeds up as devices succeed, cancelled at 10% failures."""

FAST_JOB_CONFIGURATION: Mapping[str, Any] = {
    "jobExecutionsRolloutConfig": {"maximumPerMinute": 1000},
    "timeoutConfig": {"inProgressTimeoutInMinutes": 60},
}
"""A revert to last-known-good: every device of the ring at IoT Jobs' top rate, and no abort (it is the way back)."""


class GreengrassFleetControl:
    """FleetControl on the greengrassv2 API."""

    def __init__(self, greengrass: Any, *, account: str, iot: Any = None) -> None:
        """iot (an IoT client) is needed only for deployment_progress, which reads the deployment's IoT job."""
        self._gg = greengrass
        self._iot = iot
        self._account = account
        self._region = str(greengrass.meta.region_name)

    def create_component_version(self, recipe: Mapping[str, Any]) -> ComponentRef:
        """Create the version; if it exists, accept it only when its recipe is identical."""
        name, version = _recipe_identity(recipe)
        try:
            response = self._gg.create_component_version(inlineRecipe=json.dumps(recipe, sort_keys=True).encode())
        except AWS_ERRORS as exc:
            if error_code(exc) != "ConflictException":
                raise FleetControlError(f"could not create component {name} {version}: {exc}") from exc
            return self._existing(recipe, name, version)
        return ComponentRef(response["componentName"], response["componentVersion"], response["arn"])

    def get_component_recipe(self, name: str, version: str) -> dict[str, Any]:
        """Fetch a component version's recipe as JSON."""
        arn = component_arn(self._region, self._account, name, version)
        try:
            response = self._gg.get_component(arn=arn, recipeOutputFormat="JSON")
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"component {name} {version} does not exist") from exc
            raise FleetControlError(f"could not read component {name} {version}: {exc}") from exc
        recipe: dict[str, Any] = json.loads(response["recipe"])
        return recipe

    def create_deployment(self, spec: DeploymentSpec) -> str:
        """Create a deployment with per-device rollback and a paced, abortable IoT job."""
        try:
            response = self._gg.create_deployment(
                targetArn=check_target(spec.target_arn),
                deploymentName=spec.name,
                components={name: c.to_api() for name, c in spec.components.items()},
                deploymentPolicies=dict(DEPLOYMENT_POLICIES),
                iotJobConfiguration=dict(FAST_JOB_CONFIGURATION if spec.fast else JOB_CONFIGURATION),
            )
        except AWS_ERRORS as exc:
            raise FleetControlError(f"could not deploy {spec.name} to {spec.target_arn}: {exc}") from exc
        return str(response["deploymentId"])

    def get_deployment(self, deployment_id: str) -> DeploymentInfo:
        """Describe one deployment."""
        try:
            response = self._gg.get_deployment(deploymentId=deployment_id)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"deployment {deployment_id} does not exist") from exc
            raise FleetControlError(f"could not read deployment {deployment_id}: {exc}") from exc
        return DeploymentInfo(
            deployment_id=response["deploymentId"],
            target_arn=response["targetArn"],
            name=response.get("deploymentName", ""),
            status=response["deploymentStatus"],
            components={name: _component_from_api(spec) for name, spec in (response.get("components") or {}).items()},
        )

    def latest_deployment(self, target_arn: str) -> DeploymentInfo | None:
        """The target's latest deployment, described in full."""
        try:
            response = self._gg.list_deployments(targetArn=check_target(target_arn), historyFilter="LATEST_ONLY")
        except AWS_ERRORS as exc:
            raise FleetControlError(f"could not list deployments of {target_arn}: {exc}") from exc
        deployments = response.get("deployments") or []
        return self.get_deployment(deployments[0]["deploymentId"]) if deployments else None

    def deployment_progress(self, deployment_id: str) -> DeploymentProgress:
        """Counts of the deployment's IoT job executions (two calls, whatever the ring's size)."""
        if self._iot is None:
            raise FleetControlError("deployment progress needs an IoT client (GreengrassFleetControl(iot=...))")
        try:
            job_id = self._gg.get_deployment(deploymentId=deployment_id).get("iotJobId")
            if not job_id:
                return DeploymentProgress(0, 0, 0)
            details = self._iot.describe_job(jobId=job_id)["job"].get("jobProcessDetails", {})
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"deployment {deployment_id} or its job does not exist") from exc
            raise FleetControlError(f"could not read the progress of deployment {deployment_id}: {exc}") from exc
        progress = progress_from_job(details)
        if progress.failed:
            progress = replace(progress, failure_causes=self._failure_causes(job_id))
        return progress

    def _failure_causes(self, job_id: str) -> tuple[str, ...]:
        """What the nucleus wrote on a few FAILED executions; unreadable causes leave the counts to speak alone."""
        causes: list[str] = []
        try:
            listed = self._iot.list_job_executions_for_job(jobId=job_id, status="FAILED", maxResults=MAX_FAILURE_CAUSES)
            for summary in listed.get("executionSummaries", []):
                thing = str(summary.get("thingArn", "")).rsplit("/", 1)[-1]
                execution = self._iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"]
                details = (execution.get("statusDetails") or {}).get("detailsMap") or {}
                causes.append(f"{thing}: {details.get(FAILURE_CAUSE_KEY) or 'no cause given'}")
        except AWS_ERRORS as exc:  # the counts already decide the gate; the causes only explain it
            log.warning("failure causes of job %s not read: %s", job_id, exc)
        return distinct_causes(causes)

    def _existing(self, recipe: Mapping[str, Any], name: str, version: str) -> ComponentRef:
        if self.get_component_recipe(name, version) != json.loads(json.dumps(recipe)):
            raise FleetControlError(
                f"component {name} {version} already exists with a different recipe; "
                "component versions are immutable, publish a new version"
            )
        return ComponentRef(name, version, component_arn(self._region, self._account, name, version))


FAILED_EXECUTIONS = ("numberOfFailedThings", "numberOfRejectedThings", "numberOfTimedOutThings")
MAX_FAILURE_CAUSES = 3
"""Failed executions read for their cause per progress read: a few calls, whatever the ring's size."""
FAILURE_CAUSE_CHARS = 240
FAILURE_CAUSE_KEY = "deployment-failure-cause"
"""Where the Greengrass nucleus puts why a deployment failed, in the job execution's statusDetails.detailsMap."""


def distinct_causes(causes: Iterable[str]) -> tuple[str, ...]:
    """The first MAX_FAILURE_CAUSES distinct, non-empty causes, each on one line and clipped."""
    out: list[str] = []
    for cause in causes:
        text = " ".join(cause.split())[:FAILURE_CAUSE_CHARS]
        if text and text not in out:
            out.append(text)
    return tuple(out[:MAX_FAILURE_CAUSES])


def progress_from_job(details: Mapping[str, Any]) -> DeploymentProgress:
    """DeploymentProgress from an IoT job's jobProcessDetails (every execution state counts as targeted)."""
    counts = {key: int(value) for key, value in details.items() if key.startswith("numberOf")}
    return DeploymentProgress(
        targeted=sum(counts.values()),
        succeeded=counts.get("numberOfSucceededThings", 0),
        failed=sum(counts.get(key, 0) for key in FAILED_EXECUTIONS),
    )


def _component_from_api(spec: Mapping[str, Any]) -> ComponentDeployment:
    update = spec.get("configurationUpdate") or {}
    merge = json.loads(update["merge"]) if update.get("merge") else {}
    return ComponentDeployment(version=spec["componentVersion"], merge=merge)


class MemoryFleetControl:
    """In-memory FleetControl; the local Greengrass stand-in builds on it to deliver deployments."""

    def __init__(self, region: str = "us-east-1", account: str = "123456789012") -> None:
        self._region, self._account = region, account
        self._recipes: dict[tuple[str, str], dict[str, Any]] = {}
        self._deployments: dict[str, DeploymentInfo] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[DeploymentInfo], None]] = []
        self._progress: dict[str, DeploymentProgress] = {}

    def on_deployment(self, listener: Callable[[DeploymentInfo], None]) -> None:
        """Call listener with every new deployment (the stand-in's nucleus subscribes here)."""
        self._listeners.append(listener)

    def create_component_version(self, recipe: Mapping[str, Any]) -> ComponentRef:
        """Store the recipe; identical re-creation is accepted, a different recipe refused."""
        name, version = _recipe_identity(recipe)
        normalized = json.loads(json.dumps(recipe))
        with self._lock:
            existing = self._recipes.setdefault((name, version), normalized)
        if existing != normalized:
            raise FleetControlError(
                f"component {name} {version} already exists with a different recipe; "
                "component versions are immutable, publish a new version"
            )
        return ComponentRef(name, version, component_arn(self._region, self._account, name, version))

    def get_component_recipe(self, name: str, version: str) -> dict[str, Any]:
        """Return a stored recipe."""
        with self._lock:
            recipe = self._recipes.get((name, version))
        if recipe is None:
            raise NotFoundError(f"component {name} {version} does not exist")
        return json.loads(json.dumps(recipe))  # type: ignore[no-any-return]

    def create_deployment(self, spec: DeploymentSpec) -> str:
        """Record the deployment as the target's latest and tell the listeners; private components must exist."""
        check_target(spec.target_arn)
        for name, component in spec.components.items():
            if not name.startswith(PUBLIC_COMPONENT_PREFIX):
                self.get_component_recipe(name, component.version)
        with self._lock:
            deployment_id = f"deployment-{next(self._ids):06d}"
            for old_id, old in self._deployments.items():
                if old.target_arn == spec.target_arn and old.status == "ACTIVE":
                    self._deployments[old_id] = _with_status(old, "INACTIVE")
            info = DeploymentInfo(deployment_id, spec.target_arn, spec.name, "ACTIVE", dict(spec.components))
            self._deployments[deployment_id] = info
        for listener in self._listeners:
            listener(info)
        return deployment_id

    def latest_deployment(self, target_arn: str) -> DeploymentInfo | None:
        """The target's most recent deployment."""
        check_target(target_arn)
        with self._lock:
            mine = [d for d in self._deployments.values() if d.target_arn == target_arn]
        return mine[-1] if mine else None

    def get_deployment(self, deployment_id: str) -> DeploymentInfo:
        """Return one deployment."""
        with self._lock:
            info = self._deployments.get(deployment_id)
        if info is None:
            raise NotFoundError(f"deployment {deployment_id} does not exist")
        return info

    def deployment_progress(self, deployment_id: str) -> DeploymentProgress:
        """What record_progress said of the deployment (nothing targeted until then); the stand-in overrides it."""
        self.get_deployment(deployment_id)
        with self._lock:
            return self._progress.get(deployment_id, DeploymentProgress(0, 0, 0))

    def record_progress(self, deployment_id: str, progress: DeploymentProgress) -> None:
        """Set a deployment's job counts, as devices would by running their job executions."""
        with self._lock:
            self._progress[deployment_id] = progress


def _with_status(info: DeploymentInfo, status: str) -> DeploymentInfo:
    return DeploymentInfo(info.deployment_id, info.target_arn, info.name, status, info.components)
