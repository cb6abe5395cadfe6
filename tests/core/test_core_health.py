"""The health report: nearest-rank latency figures and a strict, lossless shadow round trip."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.health import HEALTH_SCHEMA_VERSION, HealthReport, LatencySummary, ModelState

MakeReport = Callable[..., HealthReport]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([], (0.0, 0.0, 0.0), id="empty"),
        pytest.param([7.5], (7.5, 7.5, 7.5), id="single"),
        pytest.param([2.0, 1.0], (1.0, 2.0, 2.0), id="two"),
        pytest.param([5.0, 1.0, 4.0, 2.0, 3.0], (3.0, 5.0, 5.0), id="five-unsorted"),
        pytest.param([float(i) for i in range(1, 11)], (5.0, 10.0, 10.0), id="one-to-ten"),
        pytest.param([float(i) for i in range(100, 0, -1)], (50.0, 99.0, 100.0), id="hundred-descending"),
        pytest.param([float(i) for i in range(1, 201)], (100.0, 198.0, 200.0), id="two-hundred"),
        pytest.param([1.0] * 99 + [1000.0], (1.0, 1.0, 1000.0), id="one-outlier-in-100"),
        pytest.param([1.0] * 98 + [500.0, 1000.0], (1.0, 500.0, 1000.0), id="two-outliers-in-100"),
        pytest.param([0.123456, 0.123456], (0.1235, 0.1235, 0.1235), id="rounded-to-4"),
    ],
)
def test_latency_nearest_rank(samples: list[float], expected: tuple[float, float, float]) -> None:
    summary = LatencySummary.from_samples(samples)
    assert (summary.p50_ms, summary.p99_ms, summary.max_ms) == expected


def test_latency_leaves_samples_untouched() -> None:
    samples = [3.0, 1.0, 2.0]
    LatencySummary.from_samples(samples)
    assert samples == [3.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="active"),
        pytest.param(
            {"model_name": None, "model_version": None, "model_state": ModelState.NONE, "connected": False},
            id="no-model",
        ),
        pytest.param({"model_state": ModelState.REJECTED, "model_detail": "sha256 mismatch"}, id="rejected"),
        pytest.param({"latency": LatencySummary.from_samples([])}, id="empty-latency"),
    ],
)
def test_shadow_round_trip(make_health_report: MakeReport, overrides: dict[str, Any]) -> None:
    report = make_health_report(**overrides)
    document = json.loads(json.dumps(report.to_shadow_update()))
    assert HealthReport.from_shadow(document) == report


def test_reported_document_shape(make_health_report: MakeReport) -> None:
    reported = make_health_report().to_shadow_update()["state"]["reported"]
    assert reported["model_state"] == "active"
    assert reported["latency"] == {"p50_ms": 0.25, "p99_ms": 1.5, "max_ms": 3.75}
    assert reported["schema_version"] == HEALTH_SCHEMA_VERSION
    assert len(json.dumps(reported).encode()) < 8 * 1024


def _reported(report: HealthReport, **changes: Any) -> dict[str, Any]:
    data = report.to_reported()
    data.update(changes)
    return data


COUNTS = ["inferences", "rejected_inputs", "errors", "buffer_depth", "records_produced", "records_delivered"]

BAD: list[Any] = [
    pytest.param({"firmware": "1.2"}, "health", id="unknown-key"),
    pytest.param(
        {"latency": {"p50_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0, "p90_ms": 1.0}},
        "health.latency",
        id="unknown-latency-key",
    ),
    pytest.param({"model_state": "exploded"}, "health.model_state", id="bad-state"),
    pytest.param({"model_state": "ACTIVE"}, "health.model_state", id="state-wrong-case"),
    pytest.param({"model_state": 2}, "health.model_state", id="state-int"),
    *(pytest.param({key: -1}, f"health.{key}", id=f"negative-{key}") for key in COUNTS),
    *(pytest.param({key: True}, f"health.{key}", id=f"bool-{key}") for key in COUNTS),
    pytest.param({"inferences": 1.5}, "health.inferences", id="float-count"),
    pytest.param({"connected": "false"}, "health.connected", id="connected-string"),
    pytest.param({"connected": 1}, "health.connected", id="connected-int"),
    pytest.param({"connected": None}, "health.connected", id="connected-null"),
    pytest.param({"model_name": 5}, "health.model_name", id="model-name-int"),
    pytest.param({"model_version": "3"}, "health.model_version", id="model-version-string"),
    pytest.param({"thing_name": ""}, "health.thing_name", id="thing-empty"),
    pytest.param({"latency": [1.0, 2.0, 3.0]}, "health.latency", id="latency-list"),
    pytest.param(
        {"latency": {"p50_ms": math.nan, "p99_ms": 1.0, "max_ms": 1.0}}, "health.latency.p50_ms", id="latency-nan"
    ),
    pytest.param({"reported_at": math.inf}, "health.reported_at", id="reported-at-inf"),
    pytest.param({"schema_version": "1"}, "health.schema_version", id="schema-version-string"),
]


@pytest.mark.parametrize(("changes", "field"), BAD)
def test_from_reported_refuses(make_health_report: MakeReport, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        HealthReport.from_reported(_reported(make_health_report(), **changes))
    assert info.value.field == field


@pytest.mark.parametrize("key", ["thing_name", "model_state", "inferences", "connected", "latency", "reported_at"])
def test_from_reported_refuses_missing_keys(make_health_report: MakeReport, key: str) -> None:
    data = make_health_report().to_reported()
    del data[key]
    with pytest.raises(ValidationError) as info:
        HealthReport.from_reported(data)
    assert info.value.field.startswith(f"health.{key}")


def test_unknown_key_message_names_it(make_health_report: MakeReport) -> None:
    with pytest.raises(ValidationError, match="firmware"):
        HealthReport.from_reported(_reported(make_health_report(), firmware="1.2"))


@pytest.mark.parametrize(
    ("document", "field"),
    [({}, "shadow.state"), ({"state": "x"}, "shadow.state"), ({"state": {"desired": {}}}, "health")],
    ids=["no-state", "state-string", "no-reported"],
)
def test_from_shadow_refuses_documents_without_a_report(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        HealthReport.from_shadow(document)
    assert info.value.field == field
