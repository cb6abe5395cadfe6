"""Training triggers and the CreateTrainingJob request: three event shapes, one deterministic job name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.settings import LauncherSettings
from edgeloop.core.signing import public_key_der, public_key_pem
from edgeloop.core.training_jobs import (
    METRIC_DEFINITIONS,
    TRAINING_ENTRY_POINT,
    TrainingRequest,
    Trigger,
    create_training_job_request,
    parse_training_request,
)

SETTINGS = LauncherSettings(
    model_name="digits",
    training_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/edgeloop-training:0.1.0",
    training_role_arn="arn:aws:iam::123456789012:role/edgeloop-dev-training",
    training_data_uri="s3://edgeloop-data/training-data/",
    training_output_uri="s3://edgeloop-data/training-output/",
)
Event = Callable[[str], dict[str, Any]]


def _parse(event: object, request_id: str = "lambda-req-1") -> TrainingRequest:
    return parse_training_request(event, default_model="digits", request_id=request_id)


def test_a_schedule_trains_the_default_model_under_the_event_id(event: Event) -> None:
    scheduled = event("scheduled_training")
    request = _parse(scheduled)
    assert (request.model_name, request.trigger, request.request_id) == ("digits", Trigger.SCHEDULE, scheduled["id"])
    assert request.parent_version is None


def test_a_retraining_signal_carries_its_parent_and_hyperparameters(event: Event) -> None:
    request = _parse(event("retraining_requested"))
    assert (request.trigger, request.parent_version) == (Trigger.RETRAINING, 3)
    assert request.hyperparameters == {"max_iter": "400", "seed": "7"}


def test_a_direct_invoke_uses_the_invocations_request_id_unless_it_brings_one(event: Event) -> None:
    body = event("train_api_invoke")
    assert _parse(body).request_id == "lambda-req-1"
    assert _parse({**body, "request_id": "ticket-42"}).request_id == "ticket-42"
    assert _parse(body).hyperparameters == {"hidden": "32", "max_iter": "200"}


def test_the_same_request_always_names_the_same_job_and_another_request_another(event: Event) -> None:
    first, again = _parse(event("scheduled_training")), _parse(event("scheduled_training"))
    other = event("scheduled_training")
    other["id"] = "another-schedule-tick"
    assert first.job_name == again.job_name
    assert first.job_name != _parse(other).job_name
    assert first.job_name.startswith("edgeloop-digits-")


def test_the_longest_model_name_still_fits_sagemakers_job_name_limit() -> None:
    request = TrainingRequest("m" * 40, "id", Trigger.API)
    assert len(request.job_name) <= 63


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model_name": "Digits!"}, "model_name"),
        ({"hyperparameters": {"x": [1]}}, "event.hyperparameters.x"),
        ({"hyperparameters": {"model_name": "other"}}, "hyperparameters"),
        ({"parent_version": 0}, "event.parent_version"),
        ({"colour": "red"}, "event"),
        ({"source": "aws.s3", "detail-type": "Object Created"}, "event"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        _parse(body)
    assert info.value.field == field


def test_the_job_request_runs_the_entry_point_on_the_models_data_and_writes_to_training_output(event: Event) -> None:
    request = _parse(event("retraining_requested"))
    params = create_training_job_request(request, SETTINGS)
    algorithm = params["AlgorithmSpecification"]
    assert params["TrainingJobName"] == request.job_name
    assert algorithm["ContainerEntrypoint"] == list(TRAINING_ENTRY_POINT)
    assert algorithm["MetricDefinitions"] == list(METRIC_DEFINITIONS)
    assert params["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://edgeloop-data/training-data/digits/"
    )
    assert params["OutputDataConfig"] == {"S3OutputPath": "s3://edgeloop-data/training-output"}
    assert params["HyperParameters"] == {"max_iter": "400", "seed": "7", "model_name": "digits", "parent_version": "3"}
    assert params["RoleArn"] == SETTINGS.training_role_arn


def test_training_reports_the_metrics_the_launcher_defines() -> None:
    job = importlib.import_module("edgeloop.training.job")
    assert tuple(job.METRIC_DEFINITIONS) == METRIC_DEFINITIONS


def test_public_key_pem_round_trips_through_the_device_parser() -> None:
    der = bytes([0x30]) + bytes(range(90))
    pem = public_key_pem(der)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert all(len(line) <= 64 for line in pem.splitlines())
    assert public_key_der(pem) == der
