"""Device reports to aggregate increments: deltas only, once per shadow version, restarts and version changes."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.fleet_health import NO_BUCKET, DeviceSnapshot, apply_increments, contribution
from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.rollout import VersionHealth, latency_bucket

MakeReport = Callable[..., HealthReport]


def window(p99: float, samples: int) -> LatencySummary:
    return LatencySummary(p50_ms=p99 / 2, p95_ms=p99, p99_ms=p99, max_ms=p99, samples=samples)


def report(make: MakeReport, version: int, inferences: int, errors: int = 0, **changes: object) -> HealthReport:
    values: dict[str, object] = {
        "model_version": version,
        "inferences": inferences,
        "errors": errors,
        "latency": window(8.0, 100),
        "mean_confidence": 0.9,
    }
    values.update(changes)
    return make(**values)


def fold(snapshot: DeviceSnapshot, reports: list[tuple[HealthReport, int]], target: int | None = 3):
    """Feed reports in order; return the final snapshot and the aggregate of every version."""
    totals: dict[int, VersionHealth] = {}
    for health, shadow_version in reports:
        done = contribution(snapshot, health, shadow_version, target)
        if done is None:
            continue
        snapshot = done.snapshot
        for version, increments in done.increments.items():
            totals[version] = apply_increments(totals.get(version, VersionHealth()), increments)
    return snapshot, totals


FRESH = DeviceSnapshot("edge-dev-1", ring=0)


def test_a_first_report_counts_the_device_and_everything_it_did(make_health_report: MakeReport) -> None:
    snapshot, totals = fold(FRESH, [(report(make_health_report, 3, 500, 5), 1)])
    health = totals[3]
    assert (health.devices_on_version, health.inferences, health.errors) == (1, 500, 5)
    assert health.confidence_count == 100
    assert health.mean_confidence == pytest.approx(0.9)
    assert health.p99_histogram[latency_bucket(8.0)] == 1
    assert (snapshot.shadow_version, snapshot.model_version, snapshot.active) == (1, 3, True)


def test_later_reports_add_only_the_difference(make_health_report: MakeReport) -> None:
    _, totals = fold(FRESH, [(report(make_health_report, 3, 500), 1), (report(make_health_report, 3, 800, 2), 2)])
    assert (totals[3].devices_on_version, totals[3].inferences, totals[3].errors) == (1, 800, 2)
    assert sum(totals[3].p99_histogram) == 1, "a device holds one place in the p99 histogram"


@pytest.mark.parametrize("shadow_version", [1, 0], ids=["duplicate", "older"])
def test_a_duplicate_or_older_shadow_document_changes_nothing(
    make_health_report: MakeReport, shadow_version: int
) -> None:
    first = contribution(FRESH, report(make_health_report, 3, 500), 1, 3)
    assert first is not None
    assert contribution(first.snapshot, report(make_health_report, 3, 900), shadow_version, 3) is None


def test_a_component_restart_counts_the_new_counters_whole(make_health_report: MakeReport) -> None:
    _, totals = fold(FRESH, [(report(make_health_report, 3, 500), 1), (report(make_health_report, 3, 40), 2)])
    assert totals[3].inferences == 540


def test_moving_to_another_version_moves_the_device_and_its_histogram_place(make_health_report: MakeReport) -> None:
    slow = window(150.0, 50)
    snapshot, totals = fold(
        FRESH, [(report(make_health_report, 3, 500), 1), (report(make_health_report, 4, 600, latency=slow), 2)], None
    )
    assert (totals[3].devices_on_version, sum(totals[3].p99_histogram)) == (0, 0)
    assert (totals[4].devices_on_version, totals[4].inferences) == (1, 100)
    assert totals[4].p99_histogram[latency_bucket(150.0)] == 1
    assert snapshot.p99_bucket == latency_bucket(150.0)


def test_a_rejected_candidate_counts_one_activation_failure_once(make_health_report: MakeReport) -> None:
    rejected = report(make_health_report, 3, 500, model_state=ModelState.REJECTED, model_detail="v4 self-test failed")
    snapshot, totals = fold(FRESH, [(report(make_health_report, 3, 400), 1), (rejected, 2), (rejected, 3)], target=4)
    assert totals[4].activation_failures == 1
    assert totals[4].devices_on_version == 0
    assert snapshot.failed_versions == (4,)
    assert totals[3].devices_on_version == 0, "a device that is not active counts on no version"


def test_a_device_on_the_targeted_version_is_no_failure(make_health_report: MakeReport) -> None:
    _, totals = fold(FRESH, [(report(make_health_report, 4, 400), 1)], target=4)
    assert totals[4].activation_failures == 0


def test_a_report_without_inferences_in_its_window_keeps_the_histogram(make_health_report: MakeReport) -> None:
    idle = report(make_health_report, 3, 500, latency=window(0.0, 0), mean_confidence=None)
    snapshot, totals = fold(FRESH, [(report(make_health_report, 3, 500), 1), (idle, 2)])
    assert snapshot.p99_bucket == latency_bucket(8.0)
    assert sum(totals[3].p99_histogram) == 1
    assert totals[3].confidence_count == 100


def test_snapshots_round_trip_and_refuse_bad_items() -> None:
    snapshot = DeviceSnapshot("edge-dev-1", 2, 7, 3, True, 10, 1, 4, (2,))
    assert DeviceSnapshot.from_dict(snapshot.to_dict()) == snapshot
    with pytest.raises(ValidationError, match="ring"):
        DeviceSnapshot("edge-dev-1", ring=-1)
    assert FRESH.p99_bucket == NO_BUCKET


def test_increments_to_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown aggregate field 'inferencez'"):
        apply_increments(VersionHealth(), {"inferencez": 1})
    with pytest.raises(ValidationError, match="bucket 99"):
        apply_increments(VersionHealth(), {"p99_histogram.99": 1})


def test_many_devices_sum_to_the_fleet(make_health_report: MakeReport) -> None:
    totals = [
        fold(DeviceSnapshot(f"dev-{i}", ring=0), [(report(make_health_report, 3, 100 * (i + 1)), 1)])[1][3]
        for i in range(10)
    ]
    fleet = reduce(lambda a, b: a + b, totals)
    assert (fleet.devices_on_version, fleet.inferences) == (10, 5500)


def test_each_device_holds_its_current_drift_score_once(make_health_report: MakeReport) -> None:
    reports = [
        (report(make_health_report, 3, 100, drift_score=0.1), 1),
        (report(make_health_report, 3, 200, drift_score=0.4), 2),
        (report(make_health_report, 3, 300, drift_score=None), 3),  # a window too small to score: keep 0.4
    ]
    _, totals = fold(FRESH, reports)
    assert (totals[3].drift_count, totals[3].drift_sum) == (1, pytest.approx(0.4))
    assert totals[3].mean_drift == pytest.approx(0.4)
    _, moved = fold(FRESH, [*reports, (report(make_health_report, 4, 350, drift_score=None), 4)], None)
    assert (moved[3].drift_count, moved[3].drift_sum) == (0, pytest.approx(0.0)), "the score left with the device"
    assert moved[4].drift_count == 0, "and v4 has none from it until it scores"
