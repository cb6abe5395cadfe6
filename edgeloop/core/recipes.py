"""Greengrass recipes rendered from the core's names, so accessControl can never drift from the code."""

from __future__ import annotations

import json
import string
from typing import Any

from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.names import (
    HEALTH_SHADOW,
    INFERENCE_COMPONENT,
    INPUTS_LOCAL_TOPIC,
    RESULTS_TOPIC_FILTER,
)
from edgeloop.core.overrides import DESIRED_CHANGE_OPERATION
from edgeloop.core.registry import RegistryRecord
from edgeloop.core.settings import DeviceConfig

RECIPE_FORMAT_VERSION = "2020-01-25"
PUBLISHER = "edgeloop"
INFERENCE_ARCHIVE = "inference.zip"
"""The inference component's one artifact: main.py plus the edgeloop core and device packages."""


DEVICE_REQUIREMENTS = ("onnxruntime>=1.18", "numpy>=1.26", "awsiotsdk>=1.21", "cryptography>=42")
"""What the inference component installs into its venv on the device; pyproject's `device` extra matches."""

ACCESS_CONTROL_KEY = "accessControl"
"""Greengrass reads IPC authorization from this key of the component's configuration."""


def inference_access_control() -> dict[str, Any]:
    """The inference component's IPC permissions, each resource built from the core's names."""
    thing_var = "{iot:thingName}"
    return {
        "aws.greengrass.ipc.mqttproxy": {
            f"{INFERENCE_COMPONENT}:mqttproxy:1": {
                "policyDescription": "Publish this device's inference results.",
                "operations": ["aws.greengrass#PublishToIoTCore"],
                "resources": [RESULTS_TOPIC_FILTER.replace("+", thing_var)],
            }
        },
        "aws.greengrass.ShadowManager": {
            f"{INFERENCE_COMPONENT}:shadow:1": {
                "policyDescription": "Read and write this device's health shadow.",
                "operations": ["aws.greengrass#GetThingShadow", "aws.greengrass#UpdateThingShadow"],
                "resources": [f"$aws/things/{thing_var}/shadow/name/{HEALTH_SHADOW}"],
            }
        },
        "aws.greengrass.ipc.pubsub": {
            f"{INFERENCE_COMPONENT}:pubsub:1": {
                "policyDescription": "Receive inference requests from local sensor components.",
                "operations": ["aws.greengrass#SubscribeToTopic"],
                "resources": [INPUTS_LOCAL_TOPIC],
            },
            f"{INFERENCE_COMPONENT}:shadow-delta:1": {
                "policyDescription": "Follow desired-state changes (config overrides) of this device's health shadow.",
                "operations": ["aws.greengrass#SubscribeToTopic"],
                "resources": [f"$aws/things/{thing_var}/shadow/name/{HEALTH_SHADOW}/{DESIRED_CHANGE_OPERATION}"],
            },
        },
    }


def inference_recipe_values(component_version: str, archive_uri: str) -> dict[str, str]:
    """Every placeholder of the inference recipe template, from the core's definitions."""
    defaults: dict[str, Any] = {**DeviceConfig().to_config(), ACCESS_CONTROL_KEY: inference_access_control()}
    return {
        "COMPONENT_NAME": INFERENCE_COMPONENT,
        "COMPONENT_VERSION": component_version,
        "ARCHIVE_URI": archive_uri,
        "ARCHIVE_DIR": INFERENCE_ARCHIVE.removesuffix(".zip"),
        "DEFAULT_CONFIGURATION": json.dumps(defaults, sort_keys=True),
        "DEVICE_REQUIREMENTS": " ".join(f"'{requirement}'" for requirement in DEVICE_REQUIREMENTS),
    }


def render_recipe(template: str, values: dict[str, str]) -> dict[str, Any]:
    """Fill a ${NAME} template; a placeholder without a value is an error, never left in place."""
    quoted = {k: v if k == "DEFAULT_CONFIGURATION" else json.dumps(v)[1:-1] for k, v in values.items()}
    try:
        text = string.Template(template).substitute(quoted)
    except KeyError as exc:
        raise ValidationError("recipe template", f"placeholder ${{{exc.args[0]}}} has no value") from exc
    except ValueError as exc:
        raise ValidationError("recipe template", str(exc)) from exc
    try:
        recipe: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError("recipe template", f"does not render to JSON ({exc})") from exc
    return recipe


def model_recipe(record: RegistryRecord, manifest: ModelManifest) -> dict[str, Any]:
    """The recipe of a model component: artifacts only, readable by the inference component.

    The device finds the files by name, so the URIs must end in the manifest's own file names.
    """
    if record.model_name != manifest.model_name:
        raise ValidationError("model_name", f"record is {record.model_name!r} but manifest is {manifest.model_name!r}")
    if record.sha256 != manifest.selected_artifact.sha256:
        raise ValidationError(
            "sha256", f"record {record.sha256} differs from manifest {manifest.selected_artifact.sha256}"
        )
    for field, uri, name in (
        ("artifact_uri", record.artifact_uri, manifest.selected),
        ("manifest_uri", record.manifest_uri, MANIFEST_FILE),
    ):
        if not uri.endswith(f"/{name}"):
            raise ValidationError(field, f"{uri!r} must end with /{name}: the device looks the file up by name")
    manifest_uri = record.manifest_uri
    return {
        "RecipeFormatVersion": RECIPE_FORMAT_VERSION,
        "ComponentName": record.component_name,
        "ComponentVersion": record.component_version,
        "ComponentDescription": (
            f"edgeloop model {record.model_name} v{record.version} "
            f"(holdout accuracy {manifest.holdout_accuracy:.4f}, sha256 {record.sha256[:12]})"
        ),
        "ComponentPublisher": PUBLISHER,
        "ComponentConfiguration": {
            "DefaultConfiguration": {
                "modelName": record.model_name,
                "modelVersion": record.version,
                "manifest": MANIFEST_FILE,
                "artifact": manifest.selected,
            }
        },
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {},
                "Artifacts": [
                    {"Uri": record.artifact_uri, "Permission": {"Read": "ALL", "Execute": "NONE"}},
                    {"Uri": manifest_uri, "Permission": {"Read": "ALL", "Execute": "NONE"}},
                ],
            }
        ],
    }
