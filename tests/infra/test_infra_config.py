"""infra.config: every edgeloop:* context key is documented in cdk.json and a bad value names its key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import edgeloop
from edgeloop.core.errors import ConfigError
from edgeloop.core.retraining import RetrainingPolicy
from edgeloop.core.rollout import DEFAULT_POLICY, Ring, RolloutPolicy
from infra import config as cfg
from infra.config import StackConfig

CONTEXT_KEYS = sorted(v for k, v in vars(cfg).items() if k.startswith("CONTEXT_"))


def _config(context: dict[str, Any]) -> StackConfig:
    return StackConfig.from_context(context.get)


def test_cdk_json_context_is_valid_and_documents_every_key(cdk_context: dict[str, Any]) -> None:
    config = _config(cdk_context)
    docs = " ".join(json.loads((Path(cfg.__file__).parents[1] / "cdk.json").read_text())["context"]["//"])
    assert sorted(cdk_context) == CONTEXT_KEYS
    assert all(f"{key}:" in docs for key in CONTEXT_KEYS)
    assert (config.env_name, config.stack_name, config.region, config.model_name) == (
        "dev",
        "edgeloop-dev",
        "us-east-1",
        "digits",
    )


def test_defaults_follow_the_package_and_leave_the_account_to_deploy_time() -> None:
    config = _config({cfg.CONTEXT_ENV_NAME: "prod"})
    assert config.inference_component_version == edgeloop.__version__
    assert config.account is None
    assert config.auto_approve_min_accuracy is None
    assert config.cdk_nag is True


def test_command_line_strings_are_read_like_cdk_json_values() -> None:
    config = _config(
        {
            cfg.CONTEXT_ENV_NAME: "stage-2",
            cfg.CONTEXT_ACCOUNT: "123456789012",
            cfg.CONTEXT_REGION: "eu-central-1",
            cfg.CONTEXT_AUTO_APPROVE: "0.95",
            cfg.CONTEXT_INFERENCE_VERSION: "2.10.0",
            cfg.CONTEXT_CDK_NAG: "false",
        }
    )
    assert (config.account, config.region, config.auto_approve_min_accuracy) == ("123456789012", "eu-central-1", 0.95)
    assert (config.inference_component_version, config.cdk_nag) == ("2.10.0", False)
    assert _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_AUTO_APPROVE: 1}).auto_approve_min_accuracy == 1.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (cfg.CONTEXT_ENV_NAME, None),
        (cfg.CONTEXT_ENV_NAME, "Dev"),
        (cfg.CONTEXT_ENV_NAME, "dev_1"),
        (cfg.CONTEXT_ENV_NAME, "dev-"),
        (cfg.CONTEXT_ENV_NAME, "a" * 17),
        (cfg.CONTEXT_ENV_NAME, 7),
        (cfg.CONTEXT_ACCOUNT, "12345"),
        (cfg.CONTEXT_ACCOUNT, 123456789012),
        (cfg.CONTEXT_REGION, "US-EAST-1"),
        (cfg.CONTEXT_REGION, "useast1"),
        (cfg.CONTEXT_MODEL_NAME, "Digits"),
        (cfg.CONTEXT_MODEL_NAME, "d"),
        (cfg.CONTEXT_AUTO_APPROVE, "1.5"),
        (cfg.CONTEXT_AUTO_APPROVE, -0.1),
        (cfg.CONTEXT_AUTO_APPROVE, "high"),
        (cfg.CONTEXT_AUTO_APPROVE, "nan"),
        (cfg.CONTEXT_AUTO_APPROVE, ""),
        (cfg.CONTEXT_AUTO_APPROVE, True),
        (cfg.CONTEXT_INFERENCE_VERSION, "1.0"),
        (cfg.CONTEXT_INFERENCE_VERSION, "0.1.0.dev1"),
        (cfg.CONTEXT_CDK_NAG, "yes"),
        (cfg.CONTEXT_AUTO_APPROVE_MAX_DROP, "2"),
        (cfg.CONTEXT_TRAINING_SCHEDULE, "weekly"),
        (cfg.CONTEXT_TRAINING_SCHEDULE, "rate(7 fortnights)"),
        (cfg.CONTEXT_TRAINING_IMAGE, "edgeloop-training"),
        (cfg.CONTEXT_TRAINING_INSTANCE_TYPE, "m5.large"),
        (cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE, 0),
        (cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE, "0"),
        (cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE, 1441),
        (cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE, "5.5"),
        (cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE, 2.5),
        (cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE, True),
        (cfg.CONTEXT_ROLLOUT_POLICY, "{not json"),
        (cfg.CONTEXT_ROLLOUT_POLICY, ["canary"]),
        (cfg.CONTEXT_LOG_RETENTION, 100),
        (cfg.CONTEXT_LOG_RETENTION, 0),
        (cfg.CONTEXT_LOG_RETENTION, "ninety"),
        (cfg.CONTEXT_SAMPLES_RETENTION, 0),
        (cfg.CONTEXT_SAMPLES_RETENTION, 3654),
        (cfg.CONTEXT_SAMPLES_RETENTION, "1y"),
    ],
)
def test_a_bad_context_value_raises_naming_its_key(key: str, value: object) -> None:
    context: dict[str, Any] = {cfg.CONTEXT_ENV_NAME: "dev", key: value}
    with pytest.raises(ConfigError) as raised:
        _config(context)
    assert raised.value.field == key


def test_build_app_refuses_bad_context_before_staging_anything(tmp_path: Path, cdk_context: dict[str, Any]) -> None:
    from infra.app import build_app

    cdk_context[cfg.CONTEXT_AUTO_APPROVE] = "2"
    with pytest.raises(ConfigError, match=r"edgeloop:autoApproveMinAccuracy: '2' is outside \[0, 1\]"):
        build_app(staging_dir=tmp_path / "staging", context=cdk_context, outdir=str(tmp_path / "out"))
    assert not (tmp_path / "staging").exists()


def test_training_and_policy_keys_are_read() -> None:
    config = _config(
        {
            cfg.CONTEXT_ENV_NAME: "dev",
            cfg.CONTEXT_AUTO_APPROVE_MAX_DROP: "0.02",
            cfg.CONTEXT_TRAINING_SCHEDULE: "cron(0 3 ? * MON *)",
            cfg.CONTEXT_TRAINING_IMAGE: "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.2.3",
        }
    )
    assert (config.auto_approve_max_drop, config.training_schedule) == (0.02, "cron(0 3 ? * MON *)")
    assert config.training_image_uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.2.3"
    defaults = _config({cfg.CONTEXT_ENV_NAME: "dev"})
    assert (defaults.training_schedule, defaults.training_image_uri, defaults.auto_approve_max_drop) == (
        None,
        None,
        0.0,
    )


TWO_RINGS = RolloutPolicy(rings=(Ring("pilot", 0.1, bake_s=60), Ring("all", 0.9, bake_s=60)), ring_timeout_s=600)


def test_the_rollout_policy_and_controller_rate_are_read_from_an_object_or_its_json_text() -> None:
    from_object = _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_ROLLOUT_POLICY: TWO_RINGS.to_dict()})
    from_text = _config(
        {
            cfg.CONTEXT_ENV_NAME: "dev",
            cfg.CONTEXT_ROLLOUT_POLICY: json.dumps(TWO_RINGS.to_dict()),
            cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE: "15",
        }
    )
    defaults = _config({cfg.CONTEXT_ENV_NAME: "dev"})
    assert from_object.rollout_policy == from_text.rollout_policy == TWO_RINGS
    assert (from_object.rollout_controller_rate_minutes, from_text.rollout_controller_rate_minutes) == (5, 15)
    assert (defaults.rollout_policy, defaults.rollout_controller_rate_minutes) == (DEFAULT_POLICY, 5)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda p: p["rings"][0].update(share=0.2), "rings", "shares add up to 1.1, not 1"),
        (lambda p: p["rings"][1].update(name="Broad Ring"), "rings[Broad Ring].name", "lowercase"),
        (lambda p: p.update(colour="red"), "policy", "colour"),
    ],
    ids=["sizes do not add up", "ring name makes no group name", "unknown key"],
)
def test_a_bad_rollout_policy_stops_synth_naming_the_key_and_the_field(
    change: Any, field: str, message: str, tmp_path: Path, cdk_context: dict[str, Any]
) -> None:
    from infra.app import build_app

    policy = TWO_RINGS.to_dict()
    change(policy)
    cdk_context[cfg.CONTEXT_ROLLOUT_POLICY] = policy
    with pytest.raises(ConfigError, match=message) as raised:
        build_app(staging_dir=tmp_path / "staging", context=cdk_context, outdir=str(tmp_path / "out"))
    assert raised.value.field == f"{cfg.CONTEXT_ROLLOUT_POLICY}.{field}"
    assert str(raised.value).startswith(f"{cfg.CONTEXT_ROLLOUT_POLICY}.")


def test_retention_keys_are_read_from_numbers_or_command_line_strings() -> None:
    config = _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_LOG_RETENTION: "30", cfg.CONTEXT_SAMPLES_RETENTION: 7})
    assert (config.log_retention_days, config.samples_retention_days) == (30, 7)
    default = _config({cfg.CONTEXT_ENV_NAME: "dev"})
    assert (default.log_retention_days, default.samples_retention_days) == (90, 365)


def test_an_unknown_edgeloop_key_stops_synth_naming_it_and_the_known_keys(
    tmp_path: Path, cdk_context: dict[str, Any]
) -> None:
    from infra.app import build_app

    cdk_context["edgeloop:ringSize"] = 3
    with pytest.raises(ConfigError, match=r"edgeloop:ringSize: is not an edgeloop context key; expected one of .*"):
        build_app(staging_dir=tmp_path / "staging", context=cdk_context, outdir=str(tmp_path / "out"))
    assert not (tmp_path / "staging").exists()
    cfg.check_known_keys({k: v for k, v in cdk_context.items() if k != "edgeloop:ringSize"} | {"@aws-cdk/x:y": True})


@pytest.mark.parametrize(
    ("cli_env", "key"),
    [
        ({cfg.ENV_CLI_ACCOUNT: "210987654321", cfg.ENV_CLI_REGION: "us-east-1"}, cfg.CONTEXT_ACCOUNT),
        ({cfg.ENV_CLI_ACCOUNT: "123456789012", cfg.ENV_CLI_REGION: "eu-west-1"}, cfg.CONTEXT_REGION),
    ],
)
def test_a_pinned_account_or_region_the_credentials_do_not_deploy_to_stops_synth(
    cli_env: dict[str, str], key: str
) -> None:
    config = _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_ACCOUNT: "123456789012"})
    with pytest.raises(ConfigError) as raised:
        config.check_target(cli_env)
    assert raised.value.field == key
    assert cli_env[cfg.ENV_CLI_ACCOUNT if key == cfg.CONTEXT_ACCOUNT else cfg.ENV_CLI_REGION] in raised.value.message


def test_matching_or_absent_credentials_and_an_unpinned_account_pass_the_target_check() -> None:
    pinned = _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_ACCOUNT: "123456789012"})
    pinned.check_target({cfg.ENV_CLI_ACCOUNT: "123456789012", cfg.ENV_CLI_REGION: "us-east-1"})
    pinned.check_target({})  # offline synth: the CLI found no credentials
    _config({cfg.CONTEXT_ENV_NAME: "dev"}).check_target({cfg.ENV_CLI_ACCOUNT: "210987654321"})


def test_the_retraining_policy_and_trigger_rate_are_read_and_a_bad_field_is_named() -> None:
    policy = {"min_new_labels": 200, "drift_for_s": 1800}
    from_object = _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_RETRAINING_POLICY: policy})
    from_text = _config(
        {
            cfg.CONTEXT_ENV_NAME: "dev",
            cfg.CONTEXT_RETRAINING_POLICY: json.dumps(policy),
            cfg.CONTEXT_RETRAINING_TRIGGER_RATE: "30",
        }
    )
    defaults = _config({cfg.CONTEXT_ENV_NAME: "dev"})
    assert from_object.retraining_policy == from_text.retraining_policy == RetrainingPolicy(200, drift_for_s=1800)
    assert (from_object.retraining_trigger_rate_minutes, from_text.retraining_trigger_rate_minutes) == (15, 30)
    assert defaults.retraining_policy == RetrainingPolicy()
    for bad, field in (
        ({"min_new_labels": "many"}, "edgeloop:retrainingPolicy.min_new_labels"),
        ({"min_new_labels": 10, "min_labels_on_drift": 20}, "edgeloop:retrainingPolicy.min_labels_on_drift"),
        ({"colour": "red"}, "edgeloop:retrainingPolicy"),
        ("{not json", "edgeloop:retrainingPolicy"),
    ):
        with pytest.raises(ConfigError) as raised:
            _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_RETRAINING_POLICY: bad})
        assert raised.value.field == field
    with pytest.raises(ConfigError, match="edgeloop:retrainingTriggerRate"):
        _config({cfg.CONTEXT_ENV_NAME: "dev", cfg.CONTEXT_RETRAINING_TRIGGER_RATE: 0})
