"""Training-job port on SageMaker CreateTrainingJob, with an in-memory fake under one contract."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import EdgeloopError, NotFoundError, ValidationError


class TrainingJobs(Protocol):
    """Starts training jobs by name, at most once per name.

    `start` takes CreateTrainingJob parameters and returns True when it started the job, False when a
    job of that name exists already (a retried trigger): it never starts a second one. `status` is the
    job's TrainingJobStatus and raises NotFoundError for an unknown name.
    """

    def start(self, params: Mapping[str, Any]) -> bool: ...

    def status(self, job_name: str) -> str: ...


def _name(params: Mapping[str, Any]) -> str:
    name = params.get("TrainingJobName")
    if not isinstance(name, str) or not name:
        raise ValidationError("TrainingJobName", "is required")
    return name


class SageMakerTrainingJobs:
    """TrainingJobs on SageMaker; a duplicate name (ResourceInUse) means the job was started already."""

    def __init__(self, sagemaker: Any) -> None:
        self._sm = sagemaker

    def start(self, params: Mapping[str, Any]) -> bool:
        """Create the job unless one of that name exists (checked first: not every endpoint refuses duplicates)."""
        name = _name(params)
        try:
            self.status(name)
            return False
        except NotFoundError:
            pass
        try:
            self._sm.create_training_job(**params)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceInUse":
                return False
            raise EdgeloopError(f"could not start training job {name}: {exc}") from exc
        return True

    def status(self, job_name: str) -> str:
        """DescribeTrainingJob's status."""
        try:
            response = self._sm.describe_training_job(TrainingJobName=job_name)
        except AWS_ERRORS as exc:
            if error_code(exc) in {"ValidationException", "ResourceNotFound"}:
                raise NotFoundError(f"training job {job_name} does not exist") from exc
            raise EdgeloopError(f"could not describe training job {job_name}: {exc}") from exc
        return str(response["TrainingJobStatus"])


class MemoryTrainingJobs:
    """In-memory TrainingJobs: jobs 'complete' at once, as moto's do."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, params: Mapping[str, Any]) -> bool:
        """Record the job unless its name is taken."""
        name = _name(params)
        with self._lock:
            if name in self.jobs:
                return False
            self.jobs[name] = dict(params)
        return True

    def status(self, job_name: str) -> str:
        """Completed for a known job."""
        with self._lock:
            if job_name not in self.jobs:
                raise NotFoundError(f"training job {job_name} does not exist")
        return "Completed"
