"""A new model's probation after activation, and the model status the health shadow shows.

An error is an accepted request whose inference raised; a rejected input (wrong shape, NaN, out of schema) is the
caller's fault and counts in neither the errors nor the requests. The model fails probation as soon as at least
`min_requests` requests were observed within the window and more than `max_error_rate` of them errored; it passes
when the window ends otherwise (too little traffic to judge is not a reason to roll back). A window of 0 seconds
turns probation off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from edgeloop.core.health import ModelState
from edgeloop.core.settings import DeviceConfig


class Verdict(StrEnum):
    """Where a model on probation stands."""

    WATCHING = "watching"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class ProbationPolicy:
    """How long a new model is watched and what error rate sends it back."""

    seconds: float
    max_error_rate: float
    min_requests: int

    @classmethod
    def from_config(cls, config: DeviceConfig) -> ProbationPolicy:
        """The probation keys of the component configuration (validated there)."""
        return cls(config.probationSeconds, config.probationMaxErrorRate, config.probationMinRequests)


@dataclass(frozen=True)
class Probation:
    """Requests and errors observed since a model was activated."""

    started_at: float
    requests: int = 0
    errors: int = 0

    def observe(self, policy: ProbationPolicy, now: float, requests: int, errors: int) -> Probation:
        """Count a batch's outcome; what happens after the window is not the probation's business."""
        if now - self.started_at >= policy.seconds:
            return self
        return replace(self, requests=self.requests + requests, errors=self.errors + errors)

    @property
    def error_rate(self) -> float:
        """Errors per observed request (0 before the first)."""
        return self.errors / self.requests if self.requests else 0.0


def verdict(policy: ProbationPolicy, probation: Probation, now: float) -> Verdict:
    """FAILED once enough requests show too many errors; PASSED when the window is over; WATCHING until then."""
    if probation.requests >= policy.min_requests and probation.error_rate > policy.max_error_rate:
        return Verdict.FAILED
    if now - probation.started_at >= policy.seconds:
        return Verdict.PASSED
    return Verdict.WATCHING


def failure_reason(policy: ProbationPolicy, probation: Probation) -> str:
    """Why a model failed probation, in words for the health shadow."""
    return (
        f"{probation.errors} of {probation.requests} requests failed ({probation.error_rate:.1%} > "
        f"{policy.max_error_rate:.1%}) within the {policy.seconds:g}s probation"
    )


@dataclass(frozen=True)
class ModelStatus:
    """The model manager's state for the health report: what serves, how it got there, and how often it rolled back."""

    state: ModelState
    detail: str
    model_name: str | None = None
    version: int | None = None
    component_version: str | None = None
    activated_at: float | None = None
    rollbacks: int = 0
    signed: bool | None = None
    on_probation: bool = False
