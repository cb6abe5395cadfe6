"""When the health shadow is written: on the interval, on a significant change, never faster than the floor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.health import (
    CHANGE_RULES,
    HealthReport,
    ModelState,
    OverridesReport,
    ReportPolicy,
    report_due,
)
from edgeloop.core.settings import DeviceConfig

MakeReport = Callable[..., HealthReport]

T0 = 1_795_000_000.0
POLICY = ReportPolicy(interval_s=30.0, min_interval_s=2.0, buffer_max_bytes=1000, drift_threshold=0.2)

BASE: dict[str, Any] = {
    "reported_at": T0,
    "uplink_state": "connected",
    "evictions": {"sample": 1},
    "quarantined": 0,
    "model_rollbacks": 0,
    "buffer_bytes": 100,
    "component_version": "1.0.0",
    "drift_score": 0.05,
}


@pytest.mark.parametrize(
    ("changes", "after_s", "last_attempt_after_s", "expected"),
    [
        pytest.param({}, 1.0, 0.0, None, id="nothing-new-before-interval"),
        pytest.param({}, 30.0, 0.0, "interval", id="interval-reached"),
        pytest.param({}, 29.9, 0.0, None, id="just-before-interval"),
        pytest.param({"inferences": 10**6}, 10.0, 0.0, None, id="counts-alone-wait-for-interval"),
        pytest.param({"model_state": ModelState.VERIFYING}, 2.0, 0.0, "model", id="model-state"),
        pytest.param({"model_version": 4}, 2.0, 0.0, "model", id="model-version"),
        pytest.param({"model_detail": "rejected: tampered"}, 2.0, 0.0, "model", id="model-detail"),
        pytest.param({"model_component_version": "4.0.0"}, 2.0, 0.0, "model", id="model-component-version"),
        pytest.param({"model_state": ModelState.ROLLED_BACK}, 1.9, 0.0, None, id="change-within-floor-waits"),
        pytest.param({"model_rollbacks": 1}, 2.0, 0.0, "rollback", id="rollback"),
        pytest.param({"uplink_state": "offline"}, 2.0, 0.0, "uplink", id="uplink-state"),
        pytest.param({"connected": False}, 2.0, 0.0, "uplink", id="connected-flag"),
        pytest.param({"evictions": {"sample": 2}}, 2.0, 0.0, "records lost", id="evictions-increased"),
        pytest.param({"evictions": {"sample": 1, "result": 1}}, 2.0, 0.0, "records lost", id="new-class-evicted"),
        pytest.param({"refusals": {"result": 1}}, 2.0, 0.0, "records lost", id="append-refused"),
        pytest.param({"model_on_probation": True}, 2.0, 0.0, "model", id="probation"),
        pytest.param({"quarantined": 1}, 2.0, 0.0, "quarantine", id="quarantine"),
        pytest.param({"overrides": OverridesReport({"batchMax": 8})}, 2.0, 0.0, "overrides", id="overrides"),
        pytest.param({"component_version": "1.1.0"}, 2.0, 0.0, "component", id="component-version"),
        pytest.param({"buffer_bytes": 499}, 2.0, 0.0, None, id="buffer-same-band"),
        pytest.param({"buffer_bytes": 500}, 2.0, 0.0, "buffer fill", id="buffer-crosses-half"),
        pytest.param({"buffer_bytes": 950}, 2.0, 0.0, "buffer fill", id="buffer-crosses-95"),
        pytest.param({"buffer_bytes": None}, 2.0, 0.0, None, id="buffer-becoming-unknown-is-no-reason"),
        pytest.param({"drift_score": 0.19}, 2.0, 0.0, None, id="drift-below-threshold"),
        pytest.param({"drift_score": 0.2}, 2.0, 0.0, "drift", id="drift-reaches-threshold"),
        pytest.param({"drift_score": 3.0}, 2.0, 0.0, "drift", id="drift-far-over"),
        pytest.param({"drift_score": None}, 2.0, 0.0, None, id="drift-becoming-unknown-is-no-reason"),
        pytest.param({"model_state": ModelState.REJECTED}, 5.0, 4.0, None, id="floor-counts-failed-attempts"),
        pytest.param({"model_state": ModelState.REJECTED}, 6.0, 4.0, "model", id="retry-after-floor"),
        pytest.param({}, 31.0, 29.0, None, id="failed-attempt-restarts-floor"),
        pytest.param({}, 45.0, 20.0, None, id="interval-counts-from-last-attempt"),
        pytest.param({}, 50.0, 20.0, "interval", id="interval-after-failed-attempt"),
    ],
)
def test_report_due(
    make_health_report: MakeReport,
    changes: dict[str, Any],
    after_s: float,
    last_attempt_after_s: float,
    expected: str | None,
) -> None:
    last = make_health_report(**BASE)
    current = make_health_report(**{**BASE, **changes, "reported_at": T0 + after_s})
    assert report_due(last, current, T0 + after_s, POLICY, T0 + last_attempt_after_s) == expected


def test_the_first_report_is_due_at_once(make_health_report: MakeReport) -> None:
    assert report_due(None, make_health_report(), T0, POLICY, None) == "first"


def test_a_failed_first_report_is_retried_after_the_floor(make_health_report: MakeReport) -> None:
    current = make_health_report()
    assert report_due(None, current, T0 + 1.0, POLICY, T0) is None
    assert report_due(None, current, T0 + 2.0, POLICY, T0) == "first"


def test_eviction_counts_going_unknown_is_no_reason(make_health_report: MakeReport) -> None:
    last = make_health_report(**BASE)
    current = make_health_report(**{**BASE, "evictions": None, "reported_at": T0 + 3})
    assert report_due(last, current, T0 + 3, POLICY, T0) is None


def test_without_a_buffer_bound_fill_is_not_watched(make_health_report: MakeReport) -> None:
    policy = ReportPolicy(interval_s=30.0, min_interval_s=2.0, buffer_max_bytes=None)
    last = make_health_report(**BASE)
    current = make_health_report(**{**BASE, "buffer_bytes": 10**9})
    assert report_due(last, current, T0 + 3, policy, T0) is None


@pytest.mark.parametrize(
    ("interval", "minimum", "floor"),
    [(5.0, 1.0, 1.0), (0.5, 1.0, 0.5), (3.0, 3.0, 3.0)],
    ids=["floor-below-interval", "interval-below-floor", "equal"],
)
def test_the_floor_is_never_above_the_interval(interval: float, minimum: float, floor: float) -> None:
    assert ReportPolicy(interval_s=interval, min_interval_s=minimum).floor_s == floor


def test_a_floor_above_the_interval_still_reports_on_the_interval(make_health_report: MakeReport) -> None:
    policy = ReportPolicy(interval_s=0.5, min_interval_s=10.0)
    last = make_health_report(reported_at=T0)
    assert report_due(last, make_health_report(reported_at=T0 + 0.5), T0 + 0.5, policy, T0) == "interval"


def test_policy_from_device_config() -> None:
    config = DeviceConfig(healthIntervalSeconds=12.0, healthMinIntervalSeconds=3.0, bufferMaxBytes=2 * 1024**2)
    assert ReportPolicy.from_config(config) == ReportPolicy(12.0, 3.0, 2 * 1024**2, 0.2)


def test_every_rule_is_named_and_exercised() -> None:
    assert set(CHANGE_RULES) == {
        "model",
        "rollback",
        "uplink",
        "records lost",
        "quarantine",
        "overrides",
        "component",
        "buffer fill",
        "drift",
    }
