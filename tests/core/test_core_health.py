"""The health report: nearest-rank latency figures and a strict, lossless shadow round trip."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.drift import MAX_DRIFTED_FEATURES
from edgeloop.core.errors import ValidationError
from edgeloop.core.health import (
    DETAIL_MAX_BYTES,
    FEATURE_NAME_MAX_BYTES,
    HEALTH_SCHEMA_VERSION,
    REPORTED_MAX_BYTES,
    SHADOW_MAX_BYTES,
    HealthReport,
    LatencySummary,
    ModelState,
    OverridesReport,
    clip,
    encoded_size,
)
from edgeloop.core.overrides import OVERRIDABLE_KEYS, reported_value, resolve_overrides
from edgeloop.core.samplers import SAMPLER_ORDER
from edgeloop.core.settings import DeviceConfig

MakeReport = Callable[..., HealthReport]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([], (0.0, 0.0, 0.0, 0.0), id="empty"),
        pytest.param([7.5], (7.5, 7.5, 7.5, 7.5), id="single"),
        pytest.param([2.0, 1.0], (1.0, 2.0, 2.0, 2.0), id="two"),
        pytest.param([5.0, 1.0, 4.0, 2.0, 3.0], (3.0, 5.0, 5.0, 5.0), id="five-unsorted"),
        pytest.param([float(i) for i in range(1, 11)], (5.0, 10.0, 10.0, 10.0), id="one-to-ten"),
        pytest.param([float(i) for i in range(100, 0, -1)], (50.0, 95.0, 99.0, 100.0), id="hundred-descending"),
        pytest.param([float(i) for i in range(1, 201)], (100.0, 190.0, 198.0, 200.0), id="two-hundred"),
        pytest.param([1.0] * 99 + [1000.0], (1.0, 1.0, 1.0, 1000.0), id="one-outlier-in-100"),
        pytest.param([1.0] * 94 + [500.0] * 6, (1.0, 500.0, 500.0, 500.0), id="six-slow-in-100"),
        pytest.param([1.0] * 98 + [500.0, 1000.0], (1.0, 1.0, 500.0, 1000.0), id="two-outliers-in-100"),
        pytest.param([0.123456, 0.123456], (0.1235, 0.1235, 0.1235, 0.1235), id="rounded-to-4"),
    ],
)
def test_latency_nearest_rank(samples: list[float], expected: tuple[float, float, float, float]) -> None:
    summary = LatencySummary.from_samples(samples)
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms, summary.max_ms) == expected
    assert summary.samples == len(samples)


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
        pytest.param(
            {
                "component_version": "1.4.0",
                "model_component_version": "3.0.0",
                "model_activated_at": 1_795_000_000.25,
                "model_rollbacks": 2,
                "model_signed": True,
                "model_on_probation": False,
                "mean_confidence": 0.9312,
                "buffer_bytes": 5_000_123,
                "oldest_record_age_s": 12.5,
                "evictions": {"sample": 3, "result": 40, "alert": 0},
                "refusals": {"result": 7},
                "quarantined": 1,
                "uplink_state": "backing_off",
                "last_sync_at": 1_794_999_990.0,
                "overrides": OverridesReport({"batchMax": 8, "logLevel": "DEBUG"}, {"modelComponent": "no"}),
            },
            id="every-v2-field",
        ),
    ],
)
def test_shadow_round_trip(make_health_report: MakeReport, overrides: dict[str, Any]) -> None:
    report = make_health_report(**overrides)
    document = json.loads(json.dumps(report.to_shadow_update()))
    assert HealthReport.from_shadow(document) == report


def test_reported_document_shape(make_health_report: MakeReport) -> None:
    reported = make_health_report().to_shadow_update()["state"]["reported"]
    assert reported["model_state"] == "active"
    assert reported["latency"] == {"p50_ms": 0.25, "p95_ms": 1.25, "p99_ms": 1.5, "max_ms": 3.75, "samples": 1200}
    assert reported["schema_version"] == HEALTH_SCHEMA_VERSION
    assert len(json.dumps(reported).encode()) < 8 * 1024


def _reported(report: HealthReport, **changes: Any) -> dict[str, Any]:
    data = report.to_reported()
    data.update(changes)
    return data


LATENCY = {"p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0, "samples": 3}
COUNTS = ["inferences", "rejected_inputs", "errors", "buffer_depth", "records_produced", "records_delivered"]

BAD: list[Any] = [
    pytest.param({"firmware": "1.2"}, "health", id="unknown-key"),
    pytest.param(
        {"latency": {**LATENCY, "p90_ms": 1.0}},
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
    pytest.param({"latency": {**LATENCY, "p50_ms": math.nan}}, "health.latency.p50_ms", id="latency-nan"),
    pytest.param({"reported_at": math.inf}, "health.reported_at", id="reported-at-inf"),
    pytest.param({"schema_version": "1"}, "health.schema_version", id="schema-version-string"),
    pytest.param({"schema_version": 1}, "health.schema_version", id="schema-version-1"),
    pytest.param({"latency": {**LATENCY, "samples": -1}}, "health.latency.samples", id="latency-negative-samples"),
    pytest.param({"uplink_state": "flapping"}, "health.uplink_state", id="unknown-uplink-state"),
    pytest.param({"uplink_state": 1}, "health.uplink_state", id="uplink-state-int"),
    pytest.param({"evictions": {"sample": -1}}, "health.evictions.sample", id="negative-eviction"),
    pytest.param({"evictions": {"sample": True}}, "health.evictions.sample", id="bool-eviction"),
    pytest.param({"evictions": [1, 2]}, "health.evictions", id="evictions-list"),
    pytest.param({"evictions": {f"k{i}": 1 for i in range(9)}}, "health.evictions", id="too-many-classes"),
    pytest.param({"refusals": {"result": -2}}, "health.refusals.result", id="negative-refusal"),
    pytest.param({"model_signed": "yes"}, "health.model_signed", id="signed-string"),
    pytest.param({"model_on_probation": 0}, "health.model_on_probation", id="probation-int"),
    pytest.param({"model_rollbacks": -1}, "health.model_rollbacks", id="negative-rollbacks"),
    pytest.param({"buffer_bytes": 1.5}, "health.buffer_bytes", id="float-bytes"),
    pytest.param({"quarantined": "0"}, "health.quarantined", id="quarantined-string"),
    pytest.param({"mean_confidence": math.nan}, "health.mean_confidence", id="confidence-nan"),
    pytest.param({"last_sync_at": "yesterday"}, "health.last_sync_at", id="last-sync-string"),
    pytest.param({"model_detail": "x" * 5000}, "health.model_detail", id="detail-over-budget"),
    pytest.param({"component_version": "1." * 40}, "health.component_version", id="version-over-budget"),
    pytest.param({"overrides": None}, "health.overrides", id="overrides-null"),
    pytest.param({"overrides": {"applied": []}}, "health.overrides.rejected", id="overrides-no-rejected"),
    pytest.param({"overrides": {"applied": {}, "rejected": []}}, "health.overrides.applied", id="applied-object"),
    pytest.param(
        {"overrides": {"applied": [], "rejected": [{"key": "batchMax", "reason": 5}]}},
        "health.overrides.rejected.batchMax",
        id="override-reason-int",
    ),
    pytest.param(
        {"overrides": {"applied": [{"key": "batchMax", "value": [1]}], "rejected": []}},
        "health.overrides.applied.batchMax",
        id="override-value-list",
    ),
    pytest.param(
        {"overrides": {"applied": [{"key": "batchMax"}], "rejected": []}},
        "health.overrides.applied[0].value",
        id="override-without-value",
    ),
    pytest.param(
        {"overrides": {"applied": [{"key": "a", "value": 1}, {"key": "a", "value": 2}], "rejected": []}},
        "health.overrides.applied",
        id="override-listed-twice",
    ),
    pytest.param(
        {"overrides": {"applied": [{"key": "a", "value": 1, "why": "x"}], "rejected": []}},
        "health.overrides.applied[0]",
        id="override-entry-unknown-key",
    ),
    pytest.param(
        {"overrides": {"applied": [], "rejected": [], "pending": []}}, "health.overrides", id="overrides-unknown"
    ),
]


@pytest.mark.parametrize(("changes", "field"), BAD)
def test_from_reported_refuses(make_health_report: MakeReport, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        HealthReport.from_reported(_reported(make_health_report(), **changes))
    assert info.value.field == field


@pytest.mark.parametrize(
    "key",
    [
        "thing_name",
        "model_state",
        "inferences",
        "connected",
        "latency",
        "reported_at",
        "overrides",
    ],
)
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


def test_unknown_is_null_and_every_key_is_written(make_health_report: MakeReport) -> None:
    reported = make_health_report().to_reported()
    assert set(reported) == set(HealthReport.__dataclass_fields__)
    assert (reported["mean_confidence"], reported["evictions"], reported["uplink_state"]) == (None, None, None)
    assert reported["overrides"] == {"applied": [], "rejected": []}


def test_a_null_deleted_by_the_shadow_reads_back_as_unknown(make_health_report: MakeReport) -> None:
    """A shadow update deletes keys set to null, so the stored document simply lacks them."""
    report = make_health_report(uplink_state="offline", evictions={"sample": 2})
    stored = {key: value for key, value in report.to_reported().items() if value is not None}
    assert "mean_confidence" not in stored
    assert HealthReport.from_reported(stored) == report


def test_overrides_are_lists_so_a_shadow_update_replaces_them(make_health_report: MakeReport) -> None:
    overrides = OverridesReport({"batchMax": 8}, {"logLevel": "'TRACE'; expected one of ..."})
    reported = make_health_report(overrides=overrides).to_reported()["overrides"]
    assert reported == {
        "applied": [{"key": "batchMax", "value": 8}],
        "rejected": [{"key": "logLevel", "reason": "'TRACE'; expected one of ..."}],
    }


@pytest.mark.parametrize(
    ("text", "max_bytes"),
    [
        pytest.param("short", 16, id="fits"),
        pytest.param("x" * 100, 16, id="ascii"),
        pytest.param("\U0001f600" * 100, 40, id="emoji-escapes-to-12-bytes"),
        pytest.param('\x00\n"' * 50, 30, id="control-and-quotes"),
        pytest.param("é" * 100, 17, id="accents"),
    ],
)
def test_clip_fits_the_encoded_budget(text: str, max_bytes: int) -> None:
    clipped = clip(text, max_bytes)
    assert encoded_size(clipped) - 2 <= max_bytes
    assert clipped == text or (clipped.endswith("...") and text.startswith(clipped[:-3]))


def test_clip_keeps_text_that_fits() -> None:
    assert clip("a" * 16, 16) == "a" * 16


def _worst_case_report() -> HealthReport:
    """Every budget spent: the longest names, escaped text, huge numbers, a desired section full of junk."""
    huge, tiny = 1.2345678901234567e308, -1.2345678901234567e-300
    junk = {f"{'k' * 500}{i}": "\U0001f600" * 1000 for i in range(100)}
    junk.update(dict.fromkeys(OVERRIDABLE_KEYS, "😀" * 1000))
    rejected = resolve_overrides(DeviceConfig(), junk).report
    every_sampler = DeviceConfig(samplers=tuple((name, 1 / 3) for name in SAMPLER_ORDER))
    applied = {
        key: (tiny if isinstance(value, float) else reported_value(value))
        for key, value in vars(every_sampler).items()
        if key in OVERRIDABLE_KEYS
    } | {"logLevel": "WARNING"}
    return HealthReport(
        thing_name="t" * 128,
        model_name="m" * 40,
        model_version=2**63,
        model_state=ModelState.ROLLED_BACK,
        model_detail=clip("\U0001f600\x00" * 10_000, DETAIL_MAX_BYTES),
        inferences=2**63,
        rejected_inputs=2**63,
        errors=2**63,
        latency=LatencySummary(huge, huge, huge, huge, 2**63),
        buffer_depth=2**63,
        records_produced=2**63,
        records_delivered=2**63,
        connected=False,
        reported_at=huge,
        component_version=clip("9" * 1000, 64),
        model_component_version=clip("\U0001f600" * 1000, 64),
        model_activated_at=tiny,
        model_rollbacks=2**63,
        model_signed=False,
        model_on_probation=True,
        mean_confidence=tiny,
        buffer_bytes=2**63,
        oldest_record_age_s=huge,
        evictions={clip(f"{i}" + "\U0001f600" * 100, 32): 2**63 for i in range(8)},
        refusals={clip(f"{i}" + "\U0001f600" * 100, 32): 2**63 for i in range(8)},
        quarantined=2**63,
        uplink_state="backing_off",
        last_sync_at=huge,
        overrides=OverridesReport(applied=applied, rejected=rejected.rejected),
        drift_score=huge,
        drift_rows=2**63,
        drifted_features=tuple(
            clip(f"{i}" + "\U0001f600" * 100, FEATURE_NAME_MAX_BYTES) for i in range(MAX_DRIFTED_FEATURES)
        ),
        confidence_shift=tiny,
        confidence_psi=huge,
        samples_taken=2**63,
        samples_dropped_budget=2**63,
        sample_bytes_today=2**63,
    )


def test_a_worst_case_report_fits_the_shadow_limit() -> None:
    report = _worst_case_report()
    assert len(report.overrides.rejected) == 8
    reported = json.dumps(report.to_reported()).encode()
    assert len(reported) <= REPORTED_MAX_BYTES
    assert len(json.dumps(report.to_shadow_update()).encode()) < SHADOW_MAX_BYTES
    assert HealthReport.from_reported(json.loads(reported)) == report
