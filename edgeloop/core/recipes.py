"""Greengrass recipes rendered from the core's names, so accessControl can never drift from the code."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any

from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.names import (
    HEALTH_SHADOW,
    INFERENCE_COMPONENT,
    INPUTS_LOCAL_TOPIC,
    RESULTS_TOPIC_FILTER,
    SAMPLES_TOPIC_FILTER,
    thing_filter,
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
                "policyDescription": "Publish this device's inference results and its hard-example sample batches.",
                "operations": ["aws.greengrass#PublishToIoTCore"],
                # The samples filter keeps its '+' for the batch's seq range: IPC policies take MQTT wildcards.
                "resources": [thing_filter(topic, thing_var) for topic in (RESULTS_TOPIC_FILTER, SAMPLES_TOPIC_FILTER)],
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


def inference_recipe_values(
    component_version: str, archive_uri: str, fleet_config: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Every placeholder of the inference recipe template, from the core's definitions.

    fleet_config sets the fleet's own defaults (samplers, privacy policy, salt...) over DeviceConfig's;
    it is validated as a whole configuration first, so a bad key fails here, not on every device.
    """
    config = DeviceConfig.from_config({**DeviceConfig().to_config(), **(fleet_config or {})})
    defaults: dict[str, Any] = {**config.to_config(), ACCESS_CONTROL_KEY: inference_access_control()}
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


DIGEST_ALGORITHM = "SHA-256"


def artifact_digest(data: bytes) -> str:
    """A recipe artifact's Digest: base64 of its SHA-256, which Greengrass checks after download."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _hex_digest(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def model_recipe(
    record: RegistryRecord, manifest: ModelManifest, *, manifest_bytes: bytes, signature: bytes | None = None
) -> dict[str, Any]:
    """The recipe of a model component: artifacts only, readable by the inference component, each with its Digest.

    The device finds the files by name, so the URIs must end in the manifest's own file names. The
    recipe is a pure function of the record and the bytes, so a retried publish renders it identically.
    """
    if ModelManifest.from_json(manifest_bytes) != manifest:
        raise ValidationError("manifest_bytes", "do not hold the manifest the recipe is rendered for")
    if record.signed != (signature is not None):
        raise ValidationError("signature", f"record says signed={record.signed} but signature is {signature!r:.20}")
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
    artifacts = [
        _artifact(record.artifact_uri, _hex_digest(record.sha256)),
        _artifact(record.manifest_uri, artifact_digest(manifest_bytes)),
    ]
    if record.signature_uri is not None and signature is not None:
        artifacts.append(_artifact(record.signature_uri, artifact_digest(signature)))
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
                "Artifacts": artifacts,
            }
        ],
    }


def _artifact(uri: str, digest: str) -> dict[str, Any]:
    return {
        "Uri": uri,
        "Digest": digest,
        "Algorithm": DIGEST_ALGORITHM,
        "Permission": {"Read": "ALL", "Execute": "NONE"},
    }
