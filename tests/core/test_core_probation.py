"""The probation verdict after a model swap: when a new model is sent back, and when it is trusted."""

from __future__ import annotations

import pytest

from edgeloop.core.probation import Probation, ProbationPolicy, Verdict, failure_reason, verdict
from edgeloop.core.settings import DeviceConfig

POLICY = ProbationPolicy(seconds=60.0, max_error_rate=0.1, min_requests=10)


@pytest.mark.parametrize(
    ("requests", "errors", "elapsed", "expected"),
    [
        (0, 0, 0.0, Verdict.WATCHING),
        (9, 9, 10.0, Verdict.WATCHING),  # too few requests to judge
        (10, 1, 10.0, Verdict.WATCHING),  # exactly at the limit is not above it
        (10, 2, 10.0, Verdict.FAILED),
        (100, 11, 59.9, Verdict.FAILED),
        (100, 10, 60.0, Verdict.PASSED),
        (5, 5, 60.0, Verdict.PASSED),  # too little traffic is not a reason to roll back
        (20, 20, 120.0, Verdict.FAILED),  # counted within the window, judged late
    ],
)
def test_verdict(requests: int, errors: int, elapsed: float, expected: Verdict) -> None:
    probation = Probation(started_at=1_000.0, requests=requests, errors=errors)

    assert verdict(POLICY, probation, 1_000.0 + elapsed) is expected


@pytest.mark.parametrize(
    ("policy", "probation", "expected"),
    [
        (ProbationPolicy(0.0, 0.1, 1), Probation(0.0), Verdict.PASSED),  # a 0 s window turns probation off
        (ProbationPolicy(60.0, 0.0, 1), Probation(0.0, 1, 1), Verdict.FAILED),  # zero tolerance
        (ProbationPolicy(60.0, 1.0, 1), Probation(0.0, 50, 50), Verdict.WATCHING),  # a rate of 1 never fails
    ],
    ids=["off", "zero-tolerance", "never"],
)
def test_verdict_at_the_policy_limits(policy: ProbationPolicy, probation: Probation, expected: Verdict) -> None:
    assert verdict(policy, probation, 30.0 if policy.seconds else 0.0) is expected


def test_observe_counts_within_the_window_only() -> None:
    probation = Probation(started_at=0.0)

    probation = probation.observe(POLICY, 1.0, requests=8, errors=1)
    probation = probation.observe(POLICY, 59.0, requests=2, errors=2)
    after = probation.observe(POLICY, 60.0, requests=100, errors=100)

    assert (probation.requests, probation.errors) == (10, 3)
    assert after == probation


def test_the_policy_comes_from_the_device_config() -> None:
    config = DeviceConfig(probationSeconds=30.0, probationMaxErrorRate=0.2, probationMinRequests=7)

    assert ProbationPolicy.from_config(config) == ProbationPolicy(30.0, 0.2, 7)


def test_failure_reason_names_the_counts_and_the_limit() -> None:
    reason = failure_reason(POLICY, Probation(0.0, requests=20, errors=5))

    assert reason == "5 of 20 requests failed (25.0% > 10.0%) within the 60s probation"
