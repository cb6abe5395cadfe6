"""One contract for every TrainingJobs: SageMaker under moto and the in-memory fake; a retry never starts two."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from edgeloop.cloud.training import MemoryTrainingJobs, SageMakerTrainingJobs
from edgeloop.core.errors import EdgeloopError, NotFoundError, ValidationError
from edgeloop.core.settings import LauncherSettings
from edgeloop.core.training_jobs import TrainingRequest, Trigger, create_training_job_request

SETTINGS = LauncherSettings(
    model_name="digits",
    training_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/edgeloop-training:0.1.0",
    training_role_arn="arn:aws:iam::123456789012:role/edgeloop-dev-training",
    training_data_uri="s3://edgeloop-data/training-data/",
    training_output_uri="s3://edgeloop-data/training-output/",
)


def _params(request_id: str = "event-1") -> dict[str, Any]:
    return create_training_job_request(TrainingRequest("digits", request_id, Trigger.API), SETTINGS)


@pytest.fixture(params=["memory", "sagemaker"])
def jobs(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryTrainingJobs()
    return SageMakerTrainingJobs(request.getfixturevalue("sagemaker"))


def test_start_creates_the_job_once(jobs: Any) -> None:
    params = _params()
    assert jobs.start(params) is True
    assert jobs.start(params) is False
    assert jobs.status(params["TrainingJobName"]) == "Completed"  # moto's jobs complete at once


def test_another_request_starts_another_job(jobs: Any) -> None:
    assert jobs.start(_params("a")) is True
    assert jobs.start(_params("b")) is True


def test_unknown_job_is_not_found(jobs: Any) -> None:
    with pytest.raises(NotFoundError, match="edgeloop-digits-nope"):
        jobs.status("edgeloop-digits-nope")


def test_a_request_without_a_name_is_refused(jobs: Any) -> None:
    with pytest.raises(ValidationError, match="TrainingJobName"):
        jobs.start({})


def test_sagemaker_stores_the_entry_point_channels_and_metrics(sagemaker: Any) -> None:
    params = _params()
    SageMakerTrainingJobs(sagemaker).start(params)
    job = sagemaker.describe_training_job(TrainingJobName=params["TrainingJobName"])
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["python", "-m", "edgeloop.training"]
    assert job["InputDataConfig"][0]["ChannelName"] == "train"
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://edgeloop-data/training-output"
    assert job["HyperParameters"]["model_name"] == "digits"


def _stubbed(aws: None) -> tuple[Any, Stubber]:
    client = boto3.client("sagemaker", region_name="us-east-1")
    return client, Stubber(client)


def test_a_concurrent_duplicate_resource_in_use_counts_as_already_started(aws: None) -> None:
    client, stub = _stubbed(aws)
    params = _params()
    stub.add_client_error("describe_training_job", "ValidationException", "Requested resource not found")
    stub.add_client_error("create_training_job", "ResourceInUse", "Training job names must be unique")
    with stub:
        assert SageMakerTrainingJobs(client).start(params) is False


def test_other_create_errors_are_domain_errors_naming_the_job(aws: None) -> None:
    client, stub = _stubbed(aws)
    params = _params()
    stub.add_client_error("describe_training_job", "ValidationException", "Requested resource not found")
    stub.add_client_error("create_training_job", "ResourceLimitExceeded", "too many ml.m5.large")
    with stub, pytest.raises(EdgeloopError, match=params["TrainingJobName"]):
        SageMakerTrainingJobs(client).start(params)
