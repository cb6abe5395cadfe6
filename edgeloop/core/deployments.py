"""What a Greengrass deployment of one model version contains; pure, so the cloud and stand-in agree."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeloop.core.errors import ValidationError
from edgeloop.core.names import HEALTH_SHADOW, INFERENCE_COMPONENT
from edgeloop.core.registry import RegistryRecord

SHADOW_MANAGER_COMPONENT = "aws.greengrass.ShadowManager"
SHADOW_MANAGER_VERSION = "2.3.9"


@dataclass(frozen=True)
class ComponentDeployment:
    """One component in a deployment: its version and the configuration merged over its defaults."""

    version: str
    merge: Mapping[str, Any] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        """The greengrassv2 CreateDeployment shape (the merge travels as a JSON string)."""
        spec: dict[str, Any] = {"componentVersion": self.version}
        if self.merge:
            spec["configurationUpdate"] = {"merge": json.dumps(self.merge, sort_keys=True)}
        return spec


@dataclass(frozen=True)
class DeploymentSpec:
    """A whole deployment: Greengrass keeps one per target, so it lists every component."""

    target_arn: str
    name: str
    components: Mapping[str, ComponentDeployment]
    fast: bool = False
    """A revert: every device at once, no abort criteria (the adapter picks the IoT job configuration)."""


def model_deployment(
    record: RegistryRecord,
    *,
    target_arn: str,
    inference_version: str,
    public_key_pem: str | None = None,
    ring: str | None = None,
    fast: bool = False,
) -> DeploymentSpec:
    """Deploy one registry version: the model, the inference component pointed at it, shadow sync.

    With a public key the inference component gets it as modelPublicKey, and then refuses any model
    whose manifest signature does not verify: an unsigned version cannot be deployed that way.
    """
    if public_key_pem is not None and not record.signed:
        raise ValidationError(
            "signed", f"{record.model_name} v{record.version} is unsigned; devices with modelPublicKey refuse it"
        )
    inference: dict[str, Any] = {
        "modelComponent": record.component_name,
        "modelComponentVersion": record.component_version,
    }
    if public_key_pem is not None:
        inference["modelPublicKey"] = public_key_pem
    name = f"edgeloop-{record.model_name}-v{record.version}" + (f"-{ring}" if ring else "")
    return DeploymentSpec(
        target_arn=target_arn,
        name=name,
        components={
            record.component_name: ComponentDeployment(record.component_version),
            INFERENCE_COMPONENT: ComponentDeployment(inference_version, inference),
            SHADOW_MANAGER_COMPONENT: _shadow_sync(),
        },
        fast=fast,
    )


def modelless_deployment(model_name: str, *, target_arn: str, inference_version: str, ring: str) -> DeploymentSpec:
    """A revert with no last-known-good version: the inference component stays, serving no model."""
    return DeploymentSpec(
        target_arn=target_arn,
        name=f"edgeloop-{model_name}-none-{ring}",
        components={
            INFERENCE_COMPONENT: ComponentDeployment(
                inference_version, {"modelComponent": "", "modelComponentVersion": ""}
            ),
            SHADOW_MANAGER_COMPONENT: _shadow_sync(),
        },
        fast=True,
    )


def _shadow_sync() -> ComponentDeployment:
    """ShadowManager syncing the named health shadow from the device to the cloud."""
    return ComponentDeployment(
        SHADOW_MANAGER_VERSION,
        {
            "synchronize": {
                "coreThing": {"classic": False, "namedShadows": [HEALTH_SHADOW]},
                "direction": "deviceToCloud",
            }
        },
    )


def merge_configuration(base: Mapping[str, Any], merge: Mapping[str, Any]) -> dict[str, Any]:
    """Greengrass's configuration merge: objects merge key by key, every other value replaces."""
    merged: dict[str, Any] = dict(base)
    for key, value in merge.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_configuration(current, value)
        else:
            merged[key] = value
    return merged
