"""One contract for every ArtifactStore: S3 under moto and the in-memory fake."""

from __future__ import annotations

from typing import Any

import pytest

from edgeloop.cloud.artifacts import MemoryArtifactStore, S3ArtifactStore, parse_s3_uri
from edgeloop.core.errors import IntegrityError, NotFoundError, ValidationError


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryArtifactStore()
    return S3ArtifactStore(request.getfixturevalue("s3"))


def test_put_then_get_returns_the_same_bytes(store: Any) -> None:
    store.put("s3://edgeloop-artifacts/models/a/model.onnx", b"\x08model")
    assert store.get("s3://edgeloop-artifacts/models/a/model.onnx") == b"\x08model"


def test_putting_again_overwrites_with_the_new_bytes(store: Any) -> None:
    store.put("s3://edgeloop-artifacts/k", b"one")
    store.put("s3://edgeloop-artifacts/k", b"two")
    assert store.get("s3://edgeloop-artifacts/k") == b"two"


def test_missing_object_is_not_found(store: Any) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        store.get("s3://edgeloop-artifacts/missing")


def test_object_over_the_size_limit_is_refused(store: Any) -> None:
    store.put("s3://edgeloop-artifacts/big", b"x" * 100)
    with pytest.raises(IntegrityError, match="over the 10 limit"):
        store.get("s3://edgeloop-artifacts/big", max_bytes=10)


@pytest.mark.parametrize("uri", ["https://bucket/key", "s3://bucket-only", "s3:///key", "bucket/key"])
def test_bad_uri_is_a_validation_error(uri: str) -> None:
    with pytest.raises(ValidationError, match="uri"):
        parse_s3_uri(uri)


def test_s3_store_sends_a_checksum_that_s3_records(s3: Any) -> None:
    S3ArtifactStore(s3).put("s3://edgeloop-artifacts/c", b"abc")
    head = s3.head_object(Bucket="edgeloop-artifacts", Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
