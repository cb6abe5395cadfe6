"""Artifact storage port (S3 in the cloud) with an in-memory fake that passes the same contract."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import EdgeloopError, IntegrityError, NotFoundError, ValidationError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split s3://bucket/key, refusing anything else."""
    if not uri.startswith("s3://"):
        raise ValidationError("uri", f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ValidationError("uri", f"{uri!r} needs both a bucket and a key")
    return bucket, key


class ArtifactStore(Protocol):
    """Immutable blobs addressed by s3:// URI.

    `put` is durable and verified by SHA-256 on the storage side when it returns; writing the same
    bytes again is harmless. `get` raises NotFoundError for a missing object and IntegrityError when
    the bytes exceed `max_bytes` (a guard for Lambda memory), never a partial result.
    """

    def put(self, uri: str, data: bytes) -> None: ...

    def get(self, uri: str, *, max_bytes: int = ...) -> bytes: ...


DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class S3ArtifactStore:
    """ArtifactStore on S3; S3 checks the SHA-256 checksum we send, so corruption in transit fails."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def put(self, uri: str, data: bytes) -> None:
        """Upload with a SHA-256 checksum (computed by botocore) that S3 verifies before accepting the object."""
        bucket, key = parse_s3_uri(uri)
        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
        except AWS_ERRORS as exc:
            raise EdgeloopError(f"could not write {uri}: {exc}") from exc

    def get(self, uri: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """Download a whole object, refusing one larger than max_bytes before reading it."""
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except AWS_ERRORS as exc:
            if error_code(exc) in {"NoSuchKey", "NoSuchBucket", "404"}:
                raise NotFoundError(f"{uri} does not exist") from exc
            raise EdgeloopError(f"could not read {uri}: {exc}") from exc
        if int(response["ContentLength"]) > max_bytes:
            raise IntegrityError(f"{uri} is {response['ContentLength']} bytes, over the {max_bytes} limit")
        return bytes(response["Body"].read())


class MemoryArtifactStore:
    """In-memory ArtifactStore for tests and pure simulations."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def put(self, uri: str, data: bytes) -> None:
        """Store a copy of the bytes."""
        with self._lock:
            self._objects[parse_s3_uri(uri)] = bytes(data)

    def get(self, uri: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """Return the stored bytes."""
        with self._lock:
            data = self._objects.get(parse_s3_uri(uri))
        if data is None:
            raise NotFoundError(f"{uri} does not exist")
        if len(data) > max_bytes:
            raise IntegrityError(f"{uri} is {len(data)} bytes, over the {max_bytes} limit")
        return data
