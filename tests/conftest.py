"""Fixtures shared by every test tier: real-shaped events and a moto-mocked AWS account."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from support import load_event

REGION = "us-east-1"


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    """Load a real-shaped sample event from tests/events/ by file stem."""
    return load_event


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account with fake credentials, so no test can reach real AWS."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    """An S3 client with the artifacts and data buckets created."""
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket="edgeloop-artifacts")
    client.create_bucket(Bucket="edgeloop-data")
    return client


@pytest.fixture
def sagemaker(aws: None) -> Any:
    """A SageMaker client on moto."""
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def kms(aws: None) -> Any:
    """A KMS client on moto."""
    return boto3.client("kms", region_name=REGION)
