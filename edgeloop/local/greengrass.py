"""Greengrass v2 stand-in: the fleet-control API in memory, plus one simulated nucleus per device.

Simulation stand-in, not Greengrass. It keeps what edgeloop relies on: component versions are
immutable recipes, a deployment targets a thing group (members read from the local IoT registry in
moto) and replaces the previous one, each nucleus downloads its components' artifacts into the
Greengrass layout (`<root>/packages/artifacts/<component>/<version>/`), merges the deployment's
configuration over the recipe defaults, and hands the result to the running component. Public
components (aws.greengrass.*) are not installed: the stand-in provides their effect directly (the
devices reach the shadow service over MQTT instead of through ShadowManager).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgeloop.cloud.artifacts import ArtifactStore
from edgeloop.cloud.fleet import PUBLIC_COMPONENT_PREFIX, DeploymentInfo, MemoryFleetControl
from edgeloop.core.deployments import merge_configuration
from edgeloop.core.errors import EdgeloopError, NotFoundError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import model_root

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
    """One simulated core device's nucleus: installs artifacts and configures the inference component."""

    def __init__(
        self,
        thing_name: str,
        root: Path,
        *,
        artifacts: ArtifactStore,
        on_configuration: Callable[[DeviceConfig], None],
    ) -> None:
        """on_configuration hands the merged configuration to the component; it raises if the component
        refuses it (as a component that fails its configuration validation fails the deployment)."""
        self.thing_name = thing_name
        self.root = root
        self._artifacts = artifacts
        self._on_configuration = on_configuration

    @property
    def artifacts_root(self) -> Path:
        """Where Greengrass keeps component artifacts: <root>/packages/artifacts."""
        return model_root(self.root)

    def apply(self, deployment: DeploymentInfo, recipes: Mapping[str, Mapping[str, Any]]) -> DeviceOutcome:
        """Install every private component of the deployment, then configure the inference component."""
        try:
            for name, recipe in recipes.items():
                self._install(name, recipe)
            inference = deployment.components.get(INFERENCE_COMPONENT)
            if inference is not None:
                defaults = recipes[INFERENCE_COMPONENT]["ComponentConfiguration"]["DefaultConfiguration"]
                self._on_configuration(DeviceConfig.from_config(merge_configuration(defaults, inference.merge)))
        except EdgeloopError as exc:
            log.warning("%s: deployment %s failed: %s", self.thing_name, deployment.deployment_id, exc)
            return DeviceOutcome(self.thing_name, ExecutionStatus.FAILED, str(exc))
        return DeviceOutcome(self.thing_name, ExecutionStatus.SUCCEEDED, "")

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


class LocalGreengrass(MemoryFleetControl):
    """The Greengrass v2 cloud service stand-in: deployments reach the nuclei of the target group."""

    def __init__(self, iot: Any, *, region: str, account: str) -> None:
        super().__init__(region=region, account=account)
        self._iot = iot
        self._nuclei: dict[str, LocalNucleus] = {}
        self._outcomes: dict[str, list[DeviceOutcome]] = {}
        self._outcome_lock = threading.Lock()
        self.on_deployment(self._deliver)

    def register_nucleus(self, nucleus: LocalNucleus) -> None:
        """A core device came online and will receive its group's deployments."""
        self._nuclei[nucleus.thing_name] = nucleus

    def outcomes(self, deployment_id: str) -> list[DeviceOutcome]:
        """Per-device results of a deployment (the job executions)."""
        self.get_deployment(deployment_id)
        with self._outcome_lock:
            return list(self._outcomes.get(deployment_id, []))

    def _deliver(self, deployment: DeploymentInfo) -> None:
        recipes = {
            name: self.get_component_recipe(name, spec.version)
            for name, spec in deployment.components.items()
            if not name.startswith(PUBLIC_COMPONENT_PREFIX)
        }
        outcomes = [self._nuclei[thing].apply(deployment, recipes) for thing in self._members(deployment)]
        with self._outcome_lock:
            self._outcomes[deployment.deployment_id] = outcomes

    def _members(self, deployment: DeploymentInfo) -> list[str]:
        group = deployment.target_arn.rsplit("/", 1)[-1]
        if ":thinggroup/" not in deployment.target_arn:
            raise NotFoundError(f"deployment target {deployment.target_arn} is not a thing group")
        pages = self._iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=group)
        members = [thing for page in pages for thing in page["things"]]
        missing = sorted(set(members) - set(self._nuclei))
        if missing:
            log.info("deployment %s: %d member(s) have no running nucleus: %s", deployment.name, len(missing), missing)
        return [thing for thing in members if thing in self._nuclei]
