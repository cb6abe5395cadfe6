"""The EventBridge events edgeloop reacts to, parsed once into dataclasses the handlers pass on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import validate_thing_name
from edgeloop.core.registry import ApprovalStatus

SAGEMAKER_SOURCE = "aws.sagemaker"
TRAINING_JOB_STATE_CHANGE = "SageMaker Training Job State Change"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
TRAINING_JOB_COMPLETED = "Completed"
MODEL_PACKAGE_COMPLETED = "Completed"
SCHEDULER_SOURCE = "aws.events"
SCHEDULED_EVENT = "Scheduled Event"
"""What an EventBridge schedule rule delivers (detail is empty)."""
EDGELOOP_SOURCE = "edgeloop"
RETRAINING_REQUESTED = "Retraining Requested"
"""edgeloop's own signal to retrain a model; detail: model_name, parent_version, hyperparameters, reason."""


def _detail(event: object, detail_type: str) -> Mapping[str, Any]:
    data = wire.mapping(event, "event")
    if data.get("source") != SAGEMAKER_SOURCE or data.get("detail-type") != detail_type:
        raise ValidationError(
            "event",
            f"expected source {SAGEMAKER_SOURCE!r} and detail-type {detail_type!r}, "
            f"got {data.get('source')!r} / {data.get('detail-type')!r}",
        )
    return wire.mapping(data.get("detail"), "event.detail")


@dataclass(frozen=True)
class TrainingJobStateChange:
    """A training job changed state; only Completed jobs carry a model to register."""

    job_name: str
    status: str
    model_artifacts_uri: str | None
    failure_reason: str

    @property
    def completed(self) -> bool:
        """Only a Completed job has artifacts worth reading."""
        return self.status == TRAINING_JOB_COMPLETED

    @classmethod
    def from_event(cls, event: object) -> TrainingJobStateChange:
        """Parse the EventBridge event; a Completed job without artifacts is an error, not a skip."""
        detail = _detail(event, TRAINING_JOB_STATE_CHANGE)
        status = wire.text(detail, "TrainingJobStatus", "event.detail")
        artifacts = detail.get("ModelArtifacts") or {}
        uri = wire.mapping(artifacts, "event.detail.ModelArtifacts").get("S3ModelArtifacts")
        if status == TRAINING_JOB_COMPLETED and not (isinstance(uri, str) and uri.startswith("s3://")):
            raise ValidationError(
                "event.detail.ModelArtifacts.S3ModelArtifacts", f"a Completed job needs an s3:// URI, got {uri!r}"
            )
        return cls(
            job_name=wire.text(detail, "TrainingJobName", "event.detail"),
            status=status,
            model_artifacts_uri=uri if isinstance(uri, str) else None,
            failure_reason=str(detail.get("FailureReason", "")),
        )


@dataclass(frozen=True)
class ModelPackageStateChange:
    """A model package version was created or its approval changed."""

    group_name: str
    version: int
    approval: ApprovalStatus
    package_arn: str

    @classmethod
    def from_event(cls, event: object) -> ModelPackageStateChange:
        """Parse the EventBridge event for a versioned model package."""
        detail = _detail(event, MODEL_PACKAGE_STATE_CHANGE)
        where = "event.detail"
        status = wire.text(detail, "ModelApprovalStatus", where)
        try:
            approval = ApprovalStatus(status)
        except ValueError as exc:
            raise ValidationError(f"{where}.ModelApprovalStatus", f"{status!r} is not an approval status") from exc
        return cls(
            group_name=wire.text(detail, "ModelPackageGroupName", where),
            version=wire.integer(detail, "ModelPackageVersion", where, minimum=1),
            approval=approval,
            package_arn=wire.text(detail, "ModelPackageArn", where),
        )


@dataclass(frozen=True)
class HealthDocument:
    """One accepted health-shadow update as the health rule (names.HEALTH_RULE_SQL) hands it on."""

    thing_name: str
    shadow_version: int
    reported: Mapping[str, Any]

    @classmethod
    def from_event(cls, event: object) -> HealthDocument:
        """Parse the rule's output; the report itself is parsed by HealthReport.from_reported."""
        data = wire.mapping(event, "event")
        wire.only_keys(data, {"thing_name", "version", "reported"}, "event")
        return cls(
            thing_name=validate_thing_name(wire.text(data, "thing_name", "event")),
            shadow_version=wire.integer(data, "version", "event", minimum=1),
            reported=wire.mapping(data.get("reported"), "event.reported"),
        )


def s3_object_uris(event: object) -> list[str]:
    """The s3:// URIs of an S3 event notification's ObjectCreated records (keys arrive URL-encoded)."""
    data = wire.mapping(event, "event")
    uris = []
    for index, record in enumerate(wire.sequence(data, "Records", "event")):
        where = f"event.Records[{index}]"
        s3 = wire.mapping(wire.mapping(record, where).get("s3"), f"{where}.s3")
        bucket = wire.text(wire.mapping(s3.get("bucket"), f"{where}.s3.bucket"), "name", f"{where}.s3.bucket")
        key = wire.text(wire.mapping(s3.get("object"), f"{where}.s3.object"), "key", f"{where}.s3.object")
        uris.append(f"s3://{bucket}/{unquote_plus(key)}")
    return uris


@dataclass(frozen=True)
class ScheduledTick:
    """One delivery of an EventBridge schedule: its event id and the time it was due (a retry repeats both)."""

    event_id: str
    at: float

    @classmethod
    def from_event(cls, event: object) -> ScheduledTick:
        """Parse a Scheduled Event; anything else is refused by its source and detail-type."""
        data = wire.mapping(event, "event")
        if data.get("source") != SCHEDULER_SOURCE or data.get("detail-type") != SCHEDULED_EVENT:
            raise ValidationError(
                "event",
                f"expected source {SCHEDULER_SOURCE!r} and detail-type {SCHEDULED_EVENT!r}, "
                f"got {data.get('source')!r} / {data.get('detail-type')!r}",
            )
        time = wire.text(data, "time", "event")
        try:
            at = datetime.fromisoformat(time)
        except ValueError as exc:
            raise ValidationError("event.time", f"{time!r} is not an ISO 8601 time") from exc
        if at.tzinfo is None:
            raise ValidationError("event.time", f"{time!r} has no time zone")
        return cls(wire.text(data, "id", "event"), at.timestamp())


ROLLOUT_COMMANDS = ("start", "step", "pause", "resume", "promote", "abort")


@dataclass(frozen=True)
class RolloutRequest:
    """What the rollout controller is asked to do: on a schedule, on an approval, or by an operator."""

    command: str
    model_name: str
    version: int | None = None
    reason: str = ""

    @classmethod
    def from_event(cls, event: object, default_model: str) -> RolloutRequest:
        """A schedule tick steps the default model; a direct invoke names the command (and version for start)."""
        data = wire.mapping(event, "event")
        if data.get("source") == SCHEDULER_SOURCE and data.get("detail-type") == SCHEDULED_EVENT:
            return cls("step", default_model)
        wire.only_keys(data, {"command", "model_name", "version", "reason"}, "event")
        command = wire.text(data, "command", "event")
        if command not in ROLLOUT_COMMANDS:
            raise ValidationError("event.command", f"{command!r}; expected one of {ROLLOUT_COMMANDS}")
        version = wire.integer(data, "version", "event", minimum=1) if "version" in data else None
        if command == "start" and version is None:
            raise ValidationError("event.version", "start needs the model version to roll out")
        model = wire.text(data, "model_name", "event") if "model_name" in data else default_model
        return cls(command, model, version, str(data.get("reason", "")))


EVENT_ROUTES: dict[str, str] = {
    TRAINING_JOB_STATE_CHANGE: "training_completed",
    MODEL_PACKAGE_STATE_CHANGE: "model_approved",
    RETRAINING_REQUESTED: "training_launcher",
    SCHEDULED_EVENT: "training_launcher",
}
"""Which handler in functions/ each event goes to; the stack's rules and the local bus share it."""
