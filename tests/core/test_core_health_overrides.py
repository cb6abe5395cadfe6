"""Desired-state overrides: only tuning keys, each validated, refused ones reported with a reason."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

import pytest

from edgeloop.core.health import (
    MAX_REJECTED_OVERRIDES,
    OVERRIDE_KEY_MAX_BYTES,
    OVERRIDE_REASON_MAX_BYTES,
    encoded_size,
)
from edgeloop.core.overrides import NOT_OVERRIDABLE, OVERRIDABLE_KEYS, OverrideResult, resolve_overrides
from edgeloop.core.settings import DeviceConfig

BASE = DeviceConfig(batchMax=16, healthIntervalSeconds=10.0)


def test_overridable_keys_are_device_config_keys_but_never_model_or_key_material() -> None:
    assert {f.name for f in fields(DeviceConfig)} >= OVERRIDABLE_KEYS
    assert not OVERRIDABLE_KEYS & {"modelComponent", "modelComponentVersion", "modelPublicKey", "bufferMaxBytes"}


@pytest.mark.parametrize("desired", [None, {}], ids=["none", "empty"])
def test_no_desired_state_keeps_the_base(desired: dict[str, Any] | None) -> None:
    assert resolve_overrides(BASE, desired) == OverrideResult(BASE)


def test_valid_overrides_are_applied_and_reported() -> None:
    desired = {"batchMax": 8, "logLevel": "DEBUG", "probationMaxErrorRate": 0.2, "healthIntervalSeconds": 60}
    result = resolve_overrides(BASE, desired)
    assert (result.config.batchMax, result.config.logLevel, result.config.probationMaxErrorRate) == (8, "DEBUG", 0.2)
    assert result.config.healthIntervalSeconds == 60.0
    assert result.applied == {
        "batchMax": 8,
        "logLevel": "DEBUG",
        "probationMaxErrorRate": 0.2,
        "healthIntervalSeconds": 60.0,
    }
    assert result.rejected == {}
    assert result.config.modelComponent == BASE.modelComponent


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        pytest.param("batchMax", 0, "outside [1, 4096]", id="out-of-range"),
        pytest.param("batchMax", "8", "expected int", id="wrong-type"),
        pytest.param("batchMax", True, "expected int", id="bool-is-not-int"),
        pytest.param("batchMax", None, "expected int", id="null"),
        pytest.param("probationMaxErrorRate", 1.5, "outside [0.0, 1.0]", id="rate-above-one"),
        pytest.param("logLevel", "TRACE", "expected one of", id="unknown-log-level"),
        pytest.param("healthIntervalSeconds", {"s": 1}, "expected float", id="object"),
        pytest.param("modelComponent", "com.edgeloop.model.x", NOT_OVERRIDABLE, id="model-selection"),
        pytest.param("modelPublicKey", "", NOT_OVERRIDABLE, id="key-material"),
        pytest.param("bufferMaxBytes", 2 * 1024**2, NOT_OVERRIDABLE, id="buffer-size"),
        pytest.param("accessControl", {}, NOT_OVERRIDABLE, id="greengrass-reserved"),
        pytest.param("batchmax", 8, NOT_OVERRIDABLE, id="typo"),
    ],
)
def test_a_bad_override_is_refused_with_its_reason_and_the_base_stays(key: str, value: Any, reason: str) -> None:
    result = resolve_overrides(BASE, {key: value, "batchWaitMs": 3})
    assert reason in result.rejected[key]
    assert result.applied == {"batchWaitMs": 3}
    assert result.config == DeviceConfig(batchMax=16, healthIntervalSeconds=10.0, batchWaitMs=3)


def test_the_reported_overrides_survive_json() -> None:
    result = resolve_overrides(BASE, {"batchMax": 8, "nope": 1})
    assert json.loads(json.dumps(result.report.to_reported())) == {
        "applied": [{"key": "batchMax", "value": 8}],
        "rejected": [{"key": "nope", "reason": NOT_OVERRIDABLE}],
    }


def test_a_flood_of_bad_keys_is_counted_not_listed() -> None:
    desired = {f"junk-{i:03d}": i for i in range(50)} | {"batchMax": 8}
    result = resolve_overrides(BASE, desired)
    assert result.applied == {"batchMax": 8}
    assert len(result.rejected) == MAX_REJECTED_OVERRIDES
    assert result.rejected["..."] == f"{50 - MAX_REJECTED_OVERRIDES + 1} more refused overrides not listed"


def test_long_keys_and_reasons_are_clipped() -> None:
    result = resolve_overrides(BASE, {"x" * 1000: 1, "logLevel": "\U0001f600" * 1000})
    assert len(result.rejected) == 2
    for key, reason in result.rejected.items():
        assert encoded_size(key) - 2 <= OVERRIDE_KEY_MAX_BYTES
        assert encoded_size(reason) - 2 <= OVERRIDE_REASON_MAX_BYTES
    assert result.config == BASE


def test_clipped_keys_that_collide_are_counted() -> None:
    desired = {"k" * 100 + "a": 1, "k" * 100 + "b": 2}
    assert list(resolve_overrides(BASE, desired).rejected.values())[-1] == "1 more refused overrides not listed"


# --- the loop's tuning keys (issue 7) -----------------------------------------------------------


def test_drift_and_sampling_are_tunable_but_privacy_never() -> None:
    assert {"driftThreshold", "driftWindow", "driftMinRows", "samplers", "sampleBytesPerDay"} <= OVERRIDABLE_KEYS
    assert not OVERRIDABLE_KEYS & {"privacy", "fleetSalt"}


def test_samplers_and_thresholds_are_overridden_and_reported_as_short_values() -> None:
    desired = {"samplers": {"low_confidence": 0.4, "random": 0.01}, "driftThreshold": 0.3, "sampleBytesPerDay": 4096}
    result = resolve_overrides(BASE, desired)
    assert result.config.samplers == (("random", 0.01), ("low_confidence", 0.4))
    assert (result.config.driftThreshold, result.config.sampleBytesPerDay) == (0.3, 4096)
    assert result.applied == {
        "samplers": "random=0.01,low_confidence=0.4",
        "driftThreshold": 0.3,
        "sampleBytesPerDay": 4096,
    }
    assert result.rejected == {}


@pytest.mark.parametrize(
    ("desired", "key", "reason"),
    [
        pytest.param({"samplers": {"entropyy": 0.1}}, "samplers", "unknown sampler 'entropyy'", id="unknown-sampler"),
        pytest.param({"samplers": {"random": 2}}, "samplers", r"in \[0, 1\]", id="sampler-parameter"),
        pytest.param({"driftThreshold": 0}, "driftThreshold", "outside", id="threshold"),
        pytest.param({"driftMinRows": 5000}, "driftMinRows", "above driftWindow", id="min-rows-over-window"),
        pytest.param(
            {"privacy": {"allowRaw": True}}, "privacy", re.escape(NOT_OVERRIDABLE), id="privacy-is-not-overridable"
        ),
        pytest.param({"fleetSalt": "x" * 32}, "fleetSalt", re.escape(NOT_OVERRIDABLE), id="salt-is-not-overridable"),
    ],
)
def test_bad_loop_overrides_are_refused_with_the_key(desired: dict[str, Any], key: str, reason: str) -> None:
    result = resolve_overrides(BASE, desired)
    assert result.config == BASE
    assert list(result.rejected) == [key]
    assert re.search(reason, result.rejected[key])
