"""What starts a training job and the CreateTrainingJob request it becomes: pure, so retries are provably safe.

Three triggers: an EventBridge schedule, a direct (API-style) invoke, and a retraining signal that
edgeloop itself puts on the bus. Each carries a request id that a retry repeats (EventBridge keeps the
event id, Lambda keeps the request id of a retried asynchronous invoke), and the job name is derived from
it, so a retried trigger names the same job and SageMaker refuses to start it twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.events import EDGELOOP_SOURCE, RETRAINING_REQUESTED, SCHEDULED_EVENT, SCHEDULER_SOURCE
from edgeloop.core.names import validate_model_name
from edgeloop.core.settings import LauncherSettings

TRAINING_MODULE = ".".join(("edgeloop", "training"))
"""The module the training container runs (a name passed to `python -m`, never imported by the core)."""
TRAINING_ENTRY_POINT = ("python", "-m", TRAINING_MODULE)
"""The container entry point: the same module `edgeloop train` runs locally."""
TRAIN_CHANNEL = "train"
METRIC_DEFINITIONS = (
    {"Name": "holdout:accuracy", "Regex": r"holdout_accuracy=([0-9.]+)"},
    {"Name": "holdout:macro_f1", "Regex": r"holdout_macro_f1=([0-9.]+)"},
)
"""SageMaker MetricDefinitions matching the log line the training entry point writes."""
PARENT_VERSION_HYPERPARAMETER = "parent_version"
MODEL_NAME_HYPERPARAMETER = "model_name"
JOB_NAME_PREFIX = "edgeloop-"
_REQUEST_DIGEST_CHARS = 12
_MAX_HYPERPARAMETERS = 100


class Trigger:
    """Where a training request came from (recorded in the result, never used to decide)."""

    SCHEDULE = "schedule"
    API = "api"
    RETRAINING = "retraining"


@dataclass(frozen=True)
class TrainingRequest:
    """One request to train a model: which, with what, retrained from which version, and its retry identity."""

    model_name: str
    request_id: str
    trigger: str
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    parent_version: int | None = None

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if not self.request_id:
            raise ValidationError("request_id", "must not be empty: it is what makes a retry name the same job")
        if self.parent_version is not None and self.parent_version < 1:
            raise ValidationError("parent_version", f"must be >= 1, got {self.parent_version}")
        reserved = {MODEL_NAME_HYPERPARAMETER, PARENT_VERSION_HYPERPARAMETER} & set(self.hyperparameters)
        if reserved:
            raise ValidationError("hyperparameters", f"{sorted(reserved)} are set from the request, not passed in")

    @property
    def job_name(self) -> str:
        """Deterministic per (model, request id), within SageMaker's 63 characters."""
        digest = hashlib.sha256(self.request_id.encode()).hexdigest()[:_REQUEST_DIGEST_CHARS]
        return f"{JOB_NAME_PREFIX}{self.model_name}-{digest}"


def parse_training_request(event: object, *, default_model: str, request_id: str) -> TrainingRequest:
    """Turn any of the three trigger shapes into a request; anything else is refused by name.

    `request_id` is the invocation's own id, used for a direct invoke that does not carry one.
    """
    data = wire.mapping(event, "event")
    source, detail_type = data.get("source"), data.get("detail-type")
    if source == SCHEDULER_SOURCE and detail_type == SCHEDULED_EVENT:
        return TrainingRequest(default_model, wire.text(data, "id", "event"), Trigger.SCHEDULE)
    if source == EDGELOOP_SOURCE and detail_type == RETRAINING_REQUESTED:
        detail = wire.mapping(data.get("detail"), "event.detail")
        # A sender that may retry (the retraining trigger) names the request itself: two events, one job.
        given = wire.text(detail, "request_id", "event.detail") if "request_id" in detail else None
        own_id = given or wire.text(data, "id", "event")
        return _from_body(detail, "event.detail", own_id, Trigger.RETRAINING, default_model)
    if source is not None or detail_type is not None:
        raise ValidationError(
            "event", f"expected a Scheduled Event or {RETRAINING_REQUESTED!r}, got {source!r} / {detail_type!r}"
        )
    given = data.get("request_id")
    own_id = wire.text(data, "request_id", "event") if given is not None else request_id
    return _from_body(data, "event", own_id, Trigger.API, default_model)


def _from_body(
    body: Mapping[str, Any], where: str, request_id: str, trigger: str, default_model: str
) -> TrainingRequest:
    """The fields a direct invoke and a retraining signal share."""
    wire.only_keys(body, {"model_name", "hyperparameters", "parent_version", "request_id", "reason"}, where)
    model = wire.text(body, "model_name", where) if "model_name" in body else default_model
    parent = body.get("parent_version")
    hyperparameters = _hyperparameters(body.get("hyperparameters") or {}, f"{where}.hyperparameters")
    return TrainingRequest(
        model_name=model,
        request_id=request_id,
        trigger=trigger,
        hyperparameters=hyperparameters,
        parent_version=None if parent is None else wire.integer(body, "parent_version", where, minimum=1),
    )


def _hyperparameters(value: object, where: str) -> dict[str, str]:
    """SageMaker takes string values only: numbers are written as text, anything else is refused."""
    data = wire.mapping(value, where)
    if len(data) > _MAX_HYPERPARAMETERS:
        raise ValidationError(where, f"at most {_MAX_HYPERPARAMETERS} entries, got {len(data)}")
    out: dict[str, str] = {}
    for key, item in data.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ValidationError(f"{where}.{key}", f"must be a string or a number, got {item!r}")
        out[str(key)] = str(item)
    return out


def create_training_job_request(request: TrainingRequest, settings: LauncherSettings) -> dict[str, Any]:
    """The CreateTrainingJob parameters: entry point, train channel, output under training-output/, metrics."""
    hyperparameters = {**request.hyperparameters, MODEL_NAME_HYPERPARAMETER: request.model_name}
    if request.parent_version is not None:
        hyperparameters[PARENT_VERSION_HYPERPARAMETER] = str(request.parent_version)
    return {
        "TrainingJobName": request.job_name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image_uri,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": list(TRAINING_ENTRY_POINT),
            "MetricDefinitions": [dict(m) for m in METRIC_DEFINITIONS],
        },
        "RoleArn": settings.training_role_arn,
        "InputDataConfig": [
            {
                "ChannelName": TRAIN_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{settings.training_data_uri}{request.model_name}/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": settings.training_output_uri.rstrip("/")},
        "ResourceConfig": {"InstanceType": settings.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_s},
        "HyperParameters": hyperparameters,
    }
