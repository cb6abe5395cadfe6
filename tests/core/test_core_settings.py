"""Settings: the handler environment and the device configuration, each bad value named."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import pytest

from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.names import INFERENCE_COMPONENT, model_component_name
from edgeloop.core.settings import (
    ENV_ARTIFACTS_BUCKET,
    ENV_AUTO_APPROVE_MIN_ACCURACY,
    ENV_FLEET_THING_GROUP_ARN,
    ENV_INFERENCE_COMPONENT_VERSION,
    ENV_TRAINING_OUTPUT_URI,
    CloudSettings,
    DeviceConfig,
)

REQUIRED_ENV = [
    ENV_ARTIFACTS_BUCKET,
    ENV_FLEET_THING_GROUP_ARN,
    ENV_INFERENCE_COMPONENT_VERSION,
    ENV_TRAINING_OUTPUT_URI,
]


def test_cloud_settings_from_env(cloud_env: dict[str, str]) -> None:
    settings = CloudSettings.from_env(cloud_env)
    assert settings == CloudSettings(
        artifacts_bucket="edgeloop-artifacts",
        fleet_thing_group_arn="arn:aws:iot:eu-west-1:123456789012:thinggroup/edgeloop-fleet",
        inference_component_version="1.0.0",
        auto_approve_min_accuracy=0.9,
        training_output_uri="s3://edgeloop-data/training-output/",
    )
    assert settings.account == "123456789012"


@pytest.mark.parametrize("uri", ["https://b/training-output/", "s3://b/training-output"])
def test_training_output_uri_must_be_an_s3_prefix(cloud_env: dict[str, str], uri: str) -> None:
    with pytest.raises(ConfigError, match=ENV_TRAINING_OUTPUT_URI):
        CloudSettings.from_env({**cloud_env, ENV_TRAINING_OUTPUT_URI: uri})


@pytest.mark.parametrize("threshold", ["0.9", "0", "1", "0.123456789", None], ids=lambda t: f"threshold={t}")
def test_cloud_settings_env_round_trip(cloud_env: dict[str, str], threshold: str | None) -> None:
    env = dict(cloud_env)
    env.pop(ENV_AUTO_APPROVE_MIN_ACCURACY)
    if threshold is not None:
        env[ENV_AUTO_APPROVE_MIN_ACCURACY] = threshold
    settings = CloudSettings.from_env(env)
    assert CloudSettings.from_env(settings.to_env()) == settings
    assert settings.to_env().keys() == env.keys()


def test_cloud_settings_ignore_unrelated_variables(cloud_env: dict[str, str]) -> None:
    assert CloudSettings.from_env({**cloud_env, "PATH": "/usr/bin", "AWS_REGION": "eu-west-1"}) == (
        CloudSettings.from_env(cloud_env)
    )


@pytest.mark.parametrize("key", REQUIRED_ENV)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_missing_env_var_is_named(cloud_env: dict[str, str], key: str, how: str) -> None:
    env = dict(cloud_env)
    if how == "missing":
        del env[key]
    else:
        env[key] = ""
    with pytest.raises(ConfigError) as info:
        CloudSettings.from_env(env)
    assert info.value.field == key
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (ENV_FLEET_THING_GROUP_ARN, "edgeloop-fleet"),
        (ENV_FLEET_THING_GROUP_ARN, "arn:aws:iot:eu-west-1:123456789012:thing/edge-dev-1"),
        (ENV_AUTO_APPROVE_MIN_ACCURACY, "high"),
        (ENV_AUTO_APPROVE_MIN_ACCURACY, "1.5"),
        (ENV_AUTO_APPROVE_MIN_ACCURACY, "-0.1"),
        (ENV_AUTO_APPROVE_MIN_ACCURACY, "nan"),
    ],
    ids=["arn-plain-name", "arn-of-a-thing", "threshold-word", "threshold-above-1", "threshold-negative", "nan"],
)
def test_invalid_env_var_is_named(cloud_env: dict[str, str], key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        CloudSettings.from_env({**cloud_env, key: value})
    assert info.value.field == key


def test_device_config_defaults() -> None:
    assert DeviceConfig().to_config() == {
        "modelComponent": "",
        "modelComponentVersion": "",
        "batchMax": 32,
        "batchWaitMs": 10,
        "resultCommitMs": 20,
        "forwardBatchSize": 200,
        "healthIntervalSeconds": 5.0,
        "healthMinIntervalSeconds": 1.0,
        "intraOpThreads": 1,
        "interOpThreads": 1,
        "graphOptimization": "all",
        "modelPublicKey": "",
        "keepModelVersions": 2,
        "probationSeconds": 300.0,
        "probationMaxErrorRate": 0.05,
        "probationMinRequests": 20,
        "bufferMaxBytes": 256 * 1024 * 1024,
        "logLevel": "INFO",
        "driftWindow": 1000,
        "driftMinRows": 500,
        "driftThreshold": 0.2,
        "samplers": {},
        "sampleBytesPerDay": 1024 * 1024,
        "sampleBudgetShare": 0.0,
        "sampleRandomShare": 0.5,
        "privacy": {"allowRaw": False, "drop": [], "hash": [], "coarsen": {}},
        "fleetSalt": "",
    }
    assert DeviceConfig.from_config({}) == DeviceConfig()


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("graphOptimization", "fastest", "expected one of"),
        ("logLevel", "verbose", "expected one of"),
        ("modelPublicKey", "not a key", "PEM public key"),
        ("probationMaxErrorRate", 1.5, "outside"),
        ("bufferMaxBytes", 10, "outside"),
        ("keepModelVersions", 11, "outside"),
    ],
)
def test_device_config_new_keys_are_validated(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        DeviceConfig.from_config({key: value})
    assert info.value.field == key


def test_device_config_round_trip() -> None:
    config = DeviceConfig(
        modelComponent=model_component_name("iris-classifier"),
        modelComponentVersion="3.0.0",
        batchMax=256,
        batchWaitMs=0,
        forwardBatchSize=10_000,
        healthIntervalSeconds=0.05,
        intraOpThreads=64,
    )
    assert DeviceConfig.from_config(config.to_config()) == config


def test_device_config_reads_integer_seconds_as_float() -> None:
    config = DeviceConfig.from_config({"healthIntervalSeconds": 30})
    assert config.healthIntervalSeconds == 30.0
    assert isinstance(config.healthIntervalSeconds, float)


def test_device_config_takes_whole_floats_for_ints_as_the_nucleus_may_send_them() -> None:
    config = DeviceConfig.from_config({"batchMax": 16.0, "batchWaitMs": 0.0})
    assert (config.batchMax, config.batchWaitMs) == (16, 0)
    assert isinstance(config.batchMax, int)


TYPE_ERRORS: list[Any] = [
    pytest.param("batchMax", True, id="bool-for-int"),
    pytest.param("batchMax", "32", id="str-for-int"),
    pytest.param("batchWaitMs", 10.5, id="fraction-for-int"),
    pytest.param("intraOpThreads", None, id="null-for-int"),
    pytest.param("healthIntervalSeconds", False, id="bool-for-float"),
    pytest.param("healthIntervalSeconds", "5", id="str-for-float"),
    pytest.param("modelComponent", 5, id="int-for-str"),
    pytest.param("modelComponentVersion", ["3.0.0"], id="list-for-str"),
    pytest.param("driftThreshold", "0.2", id="str-for-threshold"),
    pytest.param("samplers", "random", id="str-for-samplers"),
    pytest.param("privacy", ["allowRaw"], id="list-for-privacy"),
]


@pytest.mark.parametrize(("key", "value"), TYPE_ERRORS)
def test_device_config_type_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceConfig.from_config({key: value})
    assert info.value.field == key
    assert repr(value) in info.value.message


@pytest.mark.parametrize("key", ["batchmax", "modelVersion", "BatchMax"])
def test_device_config_unknown_keys(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceConfig.from_config({key: 1})
    assert info.value.field == INFERENCE_COMPONENT
    assert key in info.value.message


RANGES = [
    ("batchMax", 1, 4096),
    ("batchWaitMs", 0, 10_000),
    ("resultCommitMs", 0, 10_000),
    ("forwardBatchSize", 1, 10_000),
    ("intraOpThreads", 1, 64),
    ("driftWindow", 0, 100_000),
    ("driftMinRows", 10, 1000),
    ("sampleBytesPerDay", 0, 1024**3),
]


@pytest.mark.parametrize(("key", "low", "high"), RANGES, ids=[r[0] for r in RANGES])
def test_device_config_integer_ranges(key: str, low: int, high: int) -> None:
    assert getattr(DeviceConfig.from_config({key: low}), key) == low
    assert getattr(DeviceConfig.from_config({key: high}), key) == high
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError) as info:
            DeviceConfig.from_config({key: value})
        assert info.value.field == key


@pytest.mark.parametrize("value", [0.0499, 86_400.5, 0, -5.0, math.nan, math.inf], ids=str)
def test_device_config_health_interval_range(value: float) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceConfig.from_config({"healthIntervalSeconds": value})
    assert info.value.field == "healthIntervalSeconds"


@pytest.mark.parametrize("value", [0.05, 86_400])
def test_device_config_health_interval_bounds(value: float) -> None:
    assert DeviceConfig.from_config({"healthIntervalSeconds": value}).healthIntervalSeconds == value


@pytest.mark.parametrize(
    "component", ["com.example.model.iris", "iris-classifier", "com.edgeloop.modelx", INFERENCE_COMPONENT]
)
def test_model_component_needs_the_prefix(component: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceConfig.from_config({"modelComponent": component, "modelComponentVersion": "1.0.0"})
    assert info.value.field == "modelComponent"


@pytest.mark.parametrize(
    "config",
    [
        {"modelComponent": model_component_name("iris-classifier")},
        {"modelComponentVersion": "1.0.0"},
        {"modelComponent": model_component_name("iris-classifier"), "modelComponentVersion": ""},
    ],
    ids=["component-only", "version-only", "empty-version"],
)
def test_model_component_and_version_go_together(config: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceConfig.from_config(config)
    assert info.value.field == "modelComponentVersion"


def test_config_error_is_a_validation_error() -> None:
    assert issubclass(ConfigError, ValidationError)
    assert {f.name for f in fields(DeviceConfig)} == set(DeviceConfig().to_config())


# --- drift, samplers and privacy (issue 7) ------------------------------------------------------

SALT = "a-fleet-salt-of-some-length"


def test_device_config_loop_round_trip() -> None:
    config = DeviceConfig.from_config(
        {
            "driftWindow": 2000,
            "driftMinRows": 100,
            "driftThreshold": 0.1,
            "samplers": {"small_margin": 0.05, "random": 0.002},
            "sampleBytesPerDay": 4096,
            "privacy": {"hash": ["pixel_0"], "coarsen": {"pixel_1": 4}, "laplaceEpsilon": 1},
            "fleetSalt": SALT,
        }
    )
    assert config.samplers == (("random", 0.002), ("small_margin", 0.05))
    assert config.privacy.hash == ("pixel_0",)
    assert DeviceConfig.from_config(config.to_config()) == config
    assert DeviceConfig(**config.to_config()) == config  # the object forms are parsed too


@pytest.mark.parametrize(
    ("config", "field", "match"),
    [
        pytest.param({"samplers": ["entropyy"]}, "samplers", "unknown sampler 'entropyy'; expected one of", id="typo"),
        pytest.param({"samplers": {"random": 3}}, "samplers.random", r"\[0, 1\]", id="sampler-parameter"),
        pytest.param({"privacy": {"laplaceEpsilon": -1}}, "privacy.laplaceEpsilon", "outside", id="epsilon"),
        pytest.param({"privacy": {"hash": ["a"]}}, "fleetSalt", "at least 16", id="hash-without-salt"),
        pytest.param({"driftWindow": 100, "driftMinRows": 500}, "driftMinRows", "above driftWindow", id="min-rows"),
        pytest.param({"driftWindow": 0, "samplers": ["drifted"]}, "samplers", "drift monitor", id="drifted-no-window"),
        pytest.param({"driftThreshold": 0}, "driftThreshold", "outside", id="threshold-zero"),
        pytest.param({"driftThreshold": 11}, "driftThreshold", "outside", id="threshold-huge"),
    ],
)
def test_device_config_loop_errors_name_the_key(config: dict[str, Any], field: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        DeviceConfig.from_config(config)
    assert info.value.field == field


def test_the_fleet_salt_is_never_shown() -> None:
    config = DeviceConfig.from_config({"fleetSalt": SALT, "privacy": {"hash": ["a"]}})
    assert SALT not in repr(config)
    with pytest.raises(ConfigError) as info:
        DeviceConfig.from_config({"fleetSalt": 12345678901234567})
    assert "12345678901234567" not in str(info.value)


def test_drift_is_on_and_samplers_off_by_default() -> None:
    config = DeviceConfig()
    assert (config.driftWindow, config.driftMinRows, config.driftThreshold) == (1000, 500, 0.2)
    assert config.samplers == ()
    assert config.privacy.named == ()
    assert not config.privacy.allow_raw
