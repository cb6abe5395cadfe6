"""The training_launcher Lambda handler under moto: schedule, direct invoke and retraining signal."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from edgeloop.cloud.training import SageMakerTrainingJobs
from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.settings import ENV_TRAINING_ROLE_ARN, LauncherSettings
from functions import training_launcher

SETTINGS = LauncherSettings(
    model_name="digits",
    training_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/edgeloop-training:0.1.0",
    training_role_arn="arn:aws:iam::123456789012:role/edgeloop-dev-training",
    training_data_uri="s3://edgeloop-data/training-data/",
    training_output_uri="s3://edgeloop-data/training-output/",
)


@pytest.fixture
def deps(sagemaker: Any) -> dict[str, Any]:
    return {"jobs": SageMakerTrainingJobs(sagemaker), "settings": SETTINGS}


def _jobs(sagemaker: Any) -> list[str]:
    return [j["TrainingJobName"] for j in sagemaker.list_training_jobs()["TrainingJobSummaries"]]


def test_a_scheduled_event_starts_one_job_and_its_retry_starts_none(
    deps: dict[str, Any], event: Any, sagemaker: Any
) -> None:
    first = training_launcher.handle(event("scheduled_training"), deps, request_id="req-1")
    again = training_launcher.handle(event("scheduled_training"), deps, request_id="req-2")
    assert (first["status"], again["status"]) == ("started", "already-started")
    assert first["trainingJob"] == again["trainingJob"]
    assert _jobs(sagemaker) == [first["trainingJob"]]


def test_a_retraining_signal_passes_its_parent_version_to_the_job(
    deps: dict[str, Any], event: Any, sagemaker: Any
) -> None:
    result = training_launcher.handle(event("retraining_requested"), deps, request_id="req-1")
    assert (result["trigger"], result["parentVersion"]) == ("retraining", 3)
    job = sagemaker.describe_training_job(TrainingJobName=result["trainingJob"])
    assert job["HyperParameters"] == {"max_iter": "400", "seed": "7", "model_name": "digits", "parent_version": "3"}
    assert job["RoleArn"] == SETTINGS.training_role_arn


def test_a_direct_invoke_is_named_by_its_lambda_request_id(deps: dict[str, Any], event: Any, sagemaker: Any) -> None:
    body = event("train_api_invoke")
    a = training_launcher.handle(body, deps, request_id="req-a")
    retried = training_launcher.handle(body, deps, request_id="req-a")
    b = training_launcher.handle(body, deps, request_id="req-b")
    assert (a["status"], retried["status"], b["status"]) == ("started", "already-started", "started")
    assert sorted(_jobs(sagemaker)) == sorted({a["trainingJob"], b["trainingJob"]})


def test_bad_input_names_the_field_and_starts_nothing(deps: dict[str, Any], sagemaker: Any) -> None:
    with pytest.raises(ValidationError, match=r"event\.hyperparameters\.hidden"):
        training_launcher.handle({"hyperparameters": {"hidden": None}}, deps, request_id="r")
    assert _jobs(sagemaker) == []


def test_handler_uses_the_context_request_id_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, aws: None, event: Any
) -> None:
    for key, value in SETTINGS.to_env().items():
        monkeypatch.setenv(key, value)
    training_launcher._deps.cache_clear()
    try:
        result = training_launcher.handler(event("train_api_invoke"), SimpleNamespace(aws_request_id="ctx-1"))
        assert result["status"] == "started"
        monkeypatch.setenv(ENV_TRAINING_ROLE_ARN, "not-a-role")
        training_launcher._deps.cache_clear()
        with pytest.raises(ConfigError, match=ENV_TRAINING_ROLE_ARN):
            training_launcher.handler(event("train_api_invoke"), SimpleNamespace(aws_request_id="ctx-2"))
    finally:
        training_launcher._deps.cache_clear()
