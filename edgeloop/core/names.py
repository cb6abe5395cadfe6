"""Every name the cloud, the devices and the local stack must agree on: topics, shadows, components."""

from __future__ import annotations

import re

from edgeloop.core.errors import ValidationError

HEALTH_SHADOW = "edgeloop-health"
"""The named shadow where each device reports its health; the classic shadow stays the user's."""

INFERENCE_COMPONENT = "com.edgeloop.Inference"
MODEL_COMPONENT_PREFIX = "com.edgeloop.model."
FLEET_THING_GROUP = "edgeloop-fleet"
"""The thing group every edgeloop device joins; the skeleton deploys to it as one ring."""

DEFAULT_MODEL_NAME = "digits"
"""The model an environment serves when nothing names another (the built-in digits dataset's)."""
MODEL_PACKAGE_GROUP_PREFIX = "edgeloop-"
TOPIC_ROOT = "edgeloop"
MODELS_PREFIX = "models/"
"""Artifacts-bucket prefix of registered model artifacts; devices (via the token exchange role) read only here."""
RESULTS_PREFIX = "results/"
"""Data-bucket prefix where the results topic rule stores each batch message as one object."""
RESULTS_OBJECT_KEY_TEMPLATE = RESULTS_PREFIX + "${topic(3)}/${get(records, 0).seq}.json"
"""IoT rule S3 key: thing and first sequence number, so a redelivered batch overwrites its own object."""
TRAINING_DATA_PREFIX = "training-data/"
"""Data-bucket prefix of training data, one folder per model: the train channel of a training job."""
TRAINING_OUTPUT_PREFIX = "training-output/"
"""Data-bucket prefix where SageMaker training jobs write model.tar.gz; the registration λ reads only here."""
ROLLOUTS_TABLE = "edgeloop-rollouts"
"""DynamoDB table of rollouts, their decision logs and each model's last-known-good version."""
FLEET_HEALTH_TABLE = "edgeloop-fleet-health"
"""DynamoDB table of each device's last counted health report and the per-(version, ring) aggregates."""
SAMPLES_TABLE = "edgeloop-samples"
"""DynamoDB table cataloguing each uploaded sample once per (thing, seq)."""
TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
"""Both tables key on (pk, sk) strings; the item layout belongs to the cloud adapters (cloud/rollout_stores.py)."""
INPUTS_LOCAL_TOPIC = "edgeloop/inference/inputs"
"""Greengrass local pub/sub topic where sensors on the device publish inference requests."""

_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
_THING_NAME = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_COMPONENT_VERSION = re.compile(r"[1-9][0-9]*\.0\.0")


def validate_model_name(name: str) -> str:
    """Model names become S3 prefixes, package groups and component names, so keep them plain."""
    if not _MODEL_NAME.fullmatch(name):
        raise ValidationError(
            "model_name", f"{name!r} must be 2-40 lowercase letters, digits or '-', starting with a letter"
        )
    return name


def validate_thing_name(name: str) -> str:
    """Thing names are interpolated into MQTT topics, so wildcards and slashes are refused."""
    if not _THING_NAME.fullmatch(name):
        raise ValidationError("thing_name", f"{name!r} must be 1-128 of [a-zA-Z0-9:_-]")
    return name


def results_topic(thing_name: str) -> str:
    """Where a device publishes batches of inference results (MQTT QoS 1)."""
    return f"{TOPIC_ROOT}/things/{validate_thing_name(thing_name)}/results"


RESULTS_TOPIC_FILTER = f"{TOPIC_ROOT}/things/+/results"
SAMPLES_PREFIX = "samples/"
"""Data-bucket prefix where the samples topic rule stores each compressed batch of SAMPLE records as one object."""
SAMPLES_OBJECT_SUFFIX = ".json.gz"
"""A samples object is the device's gzip-compressed batch JSON, byte for byte as it was published."""
SAMPLES_OBJECT_KEY_TEMPLATE = SAMPLES_PREFIX + "${topic(3)}/${topic(5)}" + SAMPLES_OBJECT_SUFFIX
"""IoT rule S3 key: thing and sequence range from the topic alone (the payload is binary), so a retry overwrites."""
SAMPLES_REJECTED_PREFIX = "samples-rejected/"
"""Where the sample ingest sets aside an object it cannot parse (kept for inspection, never retried blindly)."""
REJECTED_REASON_SUFFIX = ".reason.txt"
"""Next to each object set aside under samples-rejected/: why the ingest refused it."""
SAMPLES_TOPIC_FILTER = f"{TOPIC_ROOT}/things/+/samples/+"
"""Every device's samples batches; the last level is the batch's sequence range, `<first>-<last>`."""

_SEQ_RANGE = re.compile(r"([1-9][0-9]{0,17})-([1-9][0-9]{0,17})")


def seq_range(first_seq: int, last_seq: int) -> str:
    """The `<first>-<last>` level of a samples topic and key: the lowest and highest seq in the batch."""
    if not 1 <= first_seq <= last_seq:
        raise ValidationError("seq_range", f"{first_seq}-{last_seq} needs 1 <= first <= last")
    return f"{first_seq}-{last_seq}"


def parse_seq_range(text: str) -> tuple[int, int]:
    """Inverse of seq_range, refusing anything it would not write (signs, leading zeros, a reversed range)."""
    match = _SEQ_RANGE.fullmatch(text)
    if not match or int(match[1]) > int(match[2]):
        raise ValidationError("seq_range", f"{text!r} is not <first>-<last> with 1 <= first <= last")
    return int(match[1]), int(match[2])


def samples_topic(thing_name: str, first_seq: int, last_seq: int) -> str:
    """Where a device publishes one compressed batch of SAMPLE records, named by its sequence range."""
    return f"{TOPIC_ROOT}/things/{validate_thing_name(thing_name)}/samples/{seq_range(first_seq, last_seq)}"


def parse_samples_topic(topic: str) -> tuple[str, int, int]:
    """Inverse of samples_topic: the thing and the batch's first and last seq."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != [TOPIC_ROOT, "things"] or parts[3] != "samples":
        raise ValidationError("topic", f"{topic!r} is not a samples topic ({SAMPLES_TOPIC_FILTER})")
    return (validate_thing_name(parts[2]), *parse_seq_range(parts[4]))


def samples_object_key(topic: str) -> str:
    """What SAMPLES_OBJECT_KEY_TEMPLATE renders to for a message on topic (the rule checks nothing more)."""
    if not topic_matches(SAMPLES_TOPIC_FILTER, topic):
        raise ValidationError("topic", f"{topic!r} does not match {SAMPLES_TOPIC_FILTER}")
    parts = topic.split("/")
    return f"{SAMPLES_PREFIX}{parts[2]}/{parts[4]}{SAMPLES_OBJECT_SUFFIX}"


def parse_samples_object_key(key: str) -> tuple[str, int, int]:
    """The thing and sequence range a samples object's key names (the ingest trusts the key over the payload)."""
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != SAMPLES_PREFIX or not parts[2].endswith(SAMPLES_OBJECT_SUFFIX):
        raise ValidationError(
            "object", f"{key!r} is not a {SAMPLES_PREFIX}<thing>/<first>-<last>{SAMPLES_OBJECT_SUFFIX} key"
        )
    return (validate_thing_name(parts[1]), *parse_seq_range(parts[2].removesuffix(SAMPLES_OBJECT_SUFFIX)))


def thing_filter(topic_filter: str, thing: str) -> str:
    """One device's part of a fleet-wide filter: its thing level bound to a name or a policy variable."""
    parts = topic_filter.split("/")
    if len(parts) < 4 or parts[:3] != [TOPIC_ROOT, "things", "+"]:
        raise ValidationError("topic_filter", f"{topic_filter!r} is not a {TOPIC_ROOT}/things/+/... filter")
    return "/".join([*parts[:2], thing, *parts[3:]])


def thing_from_results_topic(topic: str) -> str:
    """Inverse of results_topic, used by the cloud side to trust the topic over the payload."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != "things" or parts[3] != "results":
        raise ValidationError("topic", f"{topic!r} is not a results topic")
    return validate_thing_name(parts[2])


def shadow_topic(thing_name: str, operation: str, shadow_name: str = HEALTH_SHADOW) -> str:
    """The reserved IoT Core topic for a named-shadow operation (update, update/accepted, ...)."""
    return f"$aws/things/{validate_thing_name(thing_name)}/shadow/name/{shadow_name}/{operation}"


SHADOW_UPDATE_TOPIC_FILTER = f"$aws/things/+/shadow/name/{HEALTH_SHADOW}/update"
NAMED_SHADOW_UPDATE_FILTER = "$aws/things/+/shadow/name/+/update"
HEALTH_DOCUMENTS_TOPIC_FILTER = f"$aws/things/+/shadow/name/{HEALTH_SHADOW}/update/documents"
"""Where IoT Core publishes each accepted update of a health shadow: the previous and current documents."""
HEALTH_RULE_SQL = (
    "SELECT current.state.reported AS reported, current.version AS version, topic(3) AS thing_name "
    f"FROM '{HEALTH_DOCUMENTS_TOPIC_FILTER}'"
)
"""The IoT rule that feeds functions/health_ingest.py: the reported state, its shadow version and the thing."""


def parse_named_shadow_topic(topic: str) -> tuple[str, str, str]:
    """Split $aws/things/<thing>/shadow/name/<shadow>/<operation...> into its three parts."""
    parts = topic.split("/")
    if len(parts) < 7 or parts[:2] != ["$aws", "things"] or parts[3:5] != ["shadow", "name"] or not parts[5]:
        raise ValidationError("topic", f"{topic!r} is not a named-shadow topic")
    return validate_thing_name(parts[2]), parts[5], "/".join(parts[6:])


def thing_from_shadow_topic(topic: str) -> str:
    """Extract the thing name from a named-shadow topic of the health shadow."""
    parts = topic.split("/")
    if len(parts) < 7 or parts[:2] != ["$aws", "things"] or parts[3:6] != ["shadow", "name", HEALTH_SHADOW]:
        raise ValidationError("topic", f"{topic!r} is not a {HEALTH_SHADOW} shadow topic")
    return validate_thing_name(parts[2])


def model_component_name(model_name: str) -> str:
    """Greengrass component that carries one model's artifacts."""
    return MODEL_COMPONENT_PREFIX + validate_model_name(model_name)


def model_package_group(model_name: str) -> str:
    """SageMaker Model Registry group holding every version of one model."""
    return MODEL_PACKAGE_GROUP_PREFIX + validate_model_name(model_name)


def model_from_package_group(group: str) -> str:
    """Inverse of model_package_group, refusing groups edgeloop does not own."""
    if not group.startswith(MODEL_PACKAGE_GROUP_PREFIX):
        raise ValidationError("model_package_group", f"{group!r} does not start with {MODEL_PACKAGE_GROUP_PREFIX!r}")
    return validate_model_name(group.removeprefix(MODEL_PACKAGE_GROUP_PREFIX))


def component_version(model_version: int) -> str:
    """Greengrass needs semantic versions; registry versions are integers, so map N to N.0.0."""
    if model_version < 1:
        raise ValidationError("model_version", f"{model_version} must be >= 1")
    return f"{model_version}.0.0"


def model_version_from_component(version: str) -> int:
    """Inverse of component_version, refusing anything edgeloop did not publish."""
    if not _COMPONENT_VERSION.fullmatch(version):
        raise ValidationError("component_version", f"{version!r} is not of the form N.0.0")
    return int(version.partition(".")[0])


def artifact_prefix(model_name: str, sha256: str) -> str:
    """Content-addressed S3 prefix for a model's artifacts: a retried upload rewrites the same bytes."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValidationError("sha256", f"{sha256!r} is not a lowercase hex SHA-256")
    return f"{MODELS_PREFIX}{validate_model_name(model_name)}/{sha256}/"


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching ('+' one level, '#' the rest), as IoT Core rules and subscriptions use it."""
    filter_parts, topic_parts = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(filter_parts):
        if part == "#":
            return True
        if index >= len(topic_parts) or (part != "+" and part != topic_parts[index]):
            return False
    return len(filter_parts) == len(topic_parts)


def results_object_key(thing_name: str, first_seq: int) -> str:
    """What RESULTS_OBJECT_KEY_TEMPLATE renders to for one batch (the local stand-in writes the same keys)."""
    return f"{RESULTS_PREFIX}{validate_thing_name(thing_name)}/{first_seq}.json"


def ring_group(ring_name: str) -> str:
    """The thing group of one rollout ring: devices in exactly one of them, deployments target them."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", ring_name):
        raise ValidationError("ring", f"{ring_name!r} must be 1-31 lowercase letters, digits or '-'")
    return f"{FLEET_THING_GROUP}-{ring_name}"


LABELS_PREFIX = "labels/"
"""Samples-bucket prefix where the labelling tool writes one label object per sample: labels/<thing>/<seq>.json."""
LABELS_REJECTED_PREFIX = "labels-rejected/"
"""Where the label ingest sets aside a label object it cannot record (same key below the prefix)."""
RETRAINING_TABLE = "edgeloop-retraining"
"""DynamoDB table holding each model's retraining trigger state (one item per model, conditional writes)."""
