"""The CDK context keys the stack reads, validated once so a typo fails synth with the key's name."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import edgeloop
from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.names import DEFAULT_MODEL_NAME, ring_group, validate_model_name
from edgeloop.core.retraining import RetrainingPolicy
from edgeloop.core.rollout import DEFAULT_POLICY, RolloutPolicy

CONTEXT_ENV_NAME = "edgeloop:envName"
CONTEXT_ACCOUNT = "edgeloop:account"
CONTEXT_REGION = "edgeloop:region"
CONTEXT_MODEL_NAME = "edgeloop:modelName"
CONTEXT_AUTO_APPROVE = "edgeloop:autoApproveMinAccuracy"
CONTEXT_INFERENCE_VERSION = "edgeloop:inferenceComponentVersion"
CONTEXT_CDK_NAG = "edgeloop:cdkNag"
CONTEXT_AUTO_APPROVE_MAX_DROP = "edgeloop:autoApproveMaxDrop"
CONTEXT_TRAINING_SCHEDULE = "edgeloop:trainingSchedule"
CONTEXT_TRAINING_IMAGE = "edgeloop:trainingImageUri"
CONTEXT_TRAINING_INSTANCE_TYPE = "edgeloop:trainingInstanceType"
CONTEXT_ROLLOUT_POLICY = "edgeloop:rolloutPolicy"
CONTEXT_ROLLOUT_CONTROLLER_RATE = "edgeloop:rolloutControllerRate"
CONTEXT_LOG_RETENTION = "edgeloop:logRetentionDays"
CONTEXT_SAMPLES_RETENTION = "edgeloop:samplesRetentionDays"
CONTEXT_RETRAINING_POLICY = "edgeloop:retrainingPolicy"
CONTEXT_RETRAINING_TRIGGER_RATE = "edgeloop:retrainingTriggerRate"
KEY_PREFIX = "edgeloop:"
"""Context keys under this prefix are edgeloop's: one that is not a CONTEXT_* key is a typo."""

DEFAULT_ROLLOUT_CONTROLLER_RATE_MINUTES = 5
MAX_ROLLOUT_CONTROLLER_RATE_MINUTES = 1440
"""A day: a controller that looks less often than that would miss every ring's bake time."""

DEFAULT_RETRAINING_TRIGGER_RATE_MINUTES = 15
"""Drift must stay high for the policy's drift_for_s (an hour by default): a few looks per hour resolve it."""

DEFAULT_REGION = "us-east-1"
DEFAULT_LOG_RETENTION_DAYS = 90
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""The retention periods CloudWatch Logs accepts (anything else fails at deploy, so it fails at synth)."""
DEFAULT_SAMPLES_RETENTION_DAYS = 365
MAX_SAMPLES_RETENTION_DAYS = 3653
ENV_CLI_ACCOUNT = "CDK_DEFAULT_ACCOUNT"
ENV_CLI_REGION = "CDK_DEFAULT_REGION"
"""What the cdk CLI sets from the credentials it deploys with (absent offline)."""

_ENV_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?")
_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")
_SEMVER = re.compile(r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)")
_SCHEDULE = re.compile(r"(?:rate\(\d+ (?:minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))")
_IMAGE = re.compile(r"\S+/\S+(?::\S+|@sha256:[0-9a-f]{64})")
_INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9]+\.[a-z0-9]+")

ContextGetter = Callable[[str], object]


@dataclass(frozen=True)
class StackConfig:
    """One deployment of edgeloop: which environment, account, region and model it serves."""

    env_name: str
    account: str | None
    region: str
    model_name: str
    inference_component_version: str
    auto_approve_min_accuracy: float | None
    cdk_nag: bool
    auto_approve_max_drop: float = 0.0
    training_schedule: str | None = None
    """An EventBridge schedule expression (rate(7 days), cron(...)) for the training launcher; None: no schedule."""
    training_image_uri: str | None = None
    """The training image; None: <account>.dkr.ecr.<region>.amazonaws.com/edgeloop-training:<inference version>."""
    training_instance_type: str = "ml.m5.large"
    rollout_policy: RolloutPolicy = DEFAULT_POLICY
    """The rings (one thing group each) and gates the rollout controller applies."""
    rollout_controller_rate_minutes: int = DEFAULT_ROLLOUT_CONTROLLER_RATE_MINUTES
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    """How long the Lambdas' log groups and the access-log bucket keep what they hold."""
    samples_retention_days: int = DEFAULT_SAMPLES_RETENTION_DAYS
    """How long captured samples (and set-aside ones) stay in the samples bucket before they expire."""
    retraining_policy: RetrainingPolicy = field(default_factory=RetrainingPolicy)
    """When the retraining trigger starts a training run: enough new labels, or sustained fleet drift."""
    retraining_trigger_rate_minutes: int = DEFAULT_RETRAINING_TRIGGER_RATE_MINUTES

    @property
    def stack_name(self) -> str:
        """CloudFormation stack name; generated resource names start with it."""
        return f"edgeloop-{self.env_name}"

    @property
    def resource_prefix(self) -> str:
        """Prefix of the names we set explicitly (functions, role alias, IoT policy)."""
        return self.stack_name

    @classmethod
    def from_context(cls, get: ContextGetter) -> StackConfig:
        """Read every edgeloop:* context key (cdk.json or -c key=value); bad values raise ConfigError."""
        return cls(
            env_name=_matching(get, CONTEXT_ENV_NAME, _ENV_NAME, "1-16 lowercase letters, digits or '-'", None),
            account=_account(get),
            region=_matching(get, CONTEXT_REGION, _REGION, "an AWS region such as us-east-1", DEFAULT_REGION),
            model_name=_model_name(get),
            inference_component_version=_matching(
                get, CONTEXT_INFERENCE_VERSION, _SEMVER, "MAJOR.MINOR.PATCH", edgeloop.__version__
            ),
            auto_approve_min_accuracy=_fraction(get, CONTEXT_AUTO_APPROVE),
            cdk_nag=_flag(get, CONTEXT_CDK_NAG, default=True),
            auto_approve_max_drop=_fraction(get, CONTEXT_AUTO_APPROVE_MAX_DROP) or 0.0,
            training_schedule=_optional(get, CONTEXT_TRAINING_SCHEDULE, _SCHEDULE, "rate(N unit) or cron(...)"),
            training_image_uri=_optional(get, CONTEXT_TRAINING_IMAGE, _IMAGE, "an image URI with a tag or digest"),
            training_instance_type=_matching(
                get, CONTEXT_TRAINING_INSTANCE_TYPE, _INSTANCE_TYPE, "a SageMaker instance type", "ml.m5.large"
            ),
            rollout_policy=_rollout_policy(get),
            rollout_controller_rate_minutes=_minutes(
                get,
                CONTEXT_ROLLOUT_CONTROLLER_RATE,
                DEFAULT_ROLLOUT_CONTROLLER_RATE_MINUTES,
                MAX_ROLLOUT_CONTROLLER_RATE_MINUTES,
            ),
            log_retention_days=_log_retention(get),
            samples_retention_days=_days(
                get, CONTEXT_SAMPLES_RETENTION, DEFAULT_SAMPLES_RETENTION_DAYS, MAX_SAMPLES_RETENTION_DAYS
            ),
            retraining_policy=_retraining_policy(get),
            retraining_trigger_rate_minutes=_minutes(
                get,
                CONTEXT_RETRAINING_TRIGGER_RATE,
                DEFAULT_RETRAINING_TRIGGER_RATE_MINUTES,
                MAX_ROLLOUT_CONTROLLER_RATE_MINUTES,
            ),
        )

    def check_target(self, cli_env: Mapping[str, str]) -> None:
        """A pinned account (and then its region) must be the one the CLI's credentials deploy to."""
        if self.account is None:
            return
        for key, pinned, env_key in (
            (CONTEXT_ACCOUNT, self.account, ENV_CLI_ACCOUNT),
            (CONTEXT_REGION, self.region, ENV_CLI_REGION),
        ):
            actual = cli_env.get(env_key)
            if actual and actual != pinned:
                raise ConfigError(key, f"is {pinned!r} but the CLI's credentials deploy to {actual!r} ({env_key})")


def check_known_keys(context: Mapping[str, object]) -> None:
    """Refuse an edgeloop:* key this app does not read: a misspelt key would otherwise be silently ignored."""
    known = {v for k, v in globals().items() if k.startswith("CONTEXT_")}
    for key in sorted(context):
        if key.startswith(KEY_PREFIX) and key not in known:
            raise ConfigError(key, f"is not an edgeloop context key; expected one of {', '.join(sorted(known))}")


def _text(get: ContextGetter, key: str, default: str | None) -> str:
    value = get(key)
    if value is None:
        if default is None:
            raise ConfigError(key, f"is required: set it in cdk.json or pass -c {key}=...")
        return default
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {value!r}")
    return value


def _matching(get: ContextGetter, key: str, pattern: re.Pattern[str], shape: str, default: str | None) -> str:
    value = _text(get, key, default)
    if not pattern.fullmatch(value):
        raise ConfigError(key, f"{value!r} is not {shape}")
    return value


def _optional(get: ContextGetter, key: str, pattern: re.Pattern[str], shape: str) -> str | None:
    """A key whose absence (null) switches a feature off or to its default."""
    return None if get(key) is None else _matching(get, key, pattern, shape, None)


def _account(get: ContextGetter) -> str | None:
    """None keeps the stack account-agnostic: CloudFormation fills the account in at deploy time."""
    if get(CONTEXT_ACCOUNT) is None:
        return None
    return _matching(get, CONTEXT_ACCOUNT, _ACCOUNT, "a 12-digit AWS account id", None)


def _model_name(get: ContextGetter) -> str:
    value = _text(get, CONTEXT_MODEL_NAME, DEFAULT_MODEL_NAME)
    try:
        return validate_model_name(value)
    except ValidationError as exc:
        raise ConfigError(CONTEXT_MODEL_NAME, exc.message) from exc


def _fraction(get: ContextGetter, key: str) -> float | None:
    """A number in [0, 1]; -c passes strings, cdk.json passes numbers, so both are read."""
    value = get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(key, f"expected a number in [0, 1], got {value!r}")
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigError(key, f"{value!r} is not a number") from exc
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ConfigError(key, f"{value!r} is outside [0, 1]")
    return number


def _flag(get: ContextGetter, key: str, *, default: bool) -> bool:
    value = get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ConfigError(key, f"expected true or false, got {value!r}")


def _rollout_policy(get: ContextGetter) -> RolloutPolicy:
    """The policy as a JSON object (cdk.json) or its JSON text (-c); a bad field is named under the key."""
    key = CONTEXT_ROLLOUT_POLICY
    value = get(key)
    if value is None:
        return DEFAULT_POLICY
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"is not valid JSON ({exc})") from exc
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a rollout policy object, got {value!r}")
    try:
        policy = RolloutPolicy.from_dict(value)
        for name in policy.ring_names:
            ring_group(name)  # each ring becomes a thing group: its name must make a valid group name
    except ValidationError as exc:
        raise ConfigError(f"{key}.{exc.field}", exc.message) from exc
    return policy


def _retraining_policy(get: ContextGetter) -> RetrainingPolicy:
    """The retraining policy as a JSON object (cdk.json) or its JSON text (-c); a bad field is named under the key."""
    key = CONTEXT_RETRAINING_POLICY
    value = get(key)
    if value is None:
        return RetrainingPolicy()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"is not valid JSON ({exc})") from exc
    try:
        return RetrainingPolicy.from_dict(value, key)
    except ValidationError as exc:
        field = exc.field.removeprefix(key).removeprefix(".").removeprefix("retraining.")
        raise ConfigError(f"{key}.{field}" if field else key, exc.message) from exc


def _minutes(get: ContextGetter, key: str, default: int, maximum: int) -> int:
    """A whole number of minutes in [1, maximum]; -c passes it as a string."""
    return _whole(get, key, default, maximum, "minutes")


def _days(get: ContextGetter, key: str, default: int, maximum: int) -> int:
    """A whole number of days in [1, maximum]; -c passes it as a string."""
    return _whole(get, key, default, maximum, "days")


def _whole(get: ContextGetter, key: str, default: int, maximum: int, unit: str) -> int:
    value = get(key)
    if value is None:
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected a whole number of {unit}, got {value!r}")
    if not 1 <= value <= maximum:
        raise ConfigError(key, f"{value} is outside [1, {maximum}] {unit}")
    return value


def _log_retention(get: ContextGetter) -> int:
    """One of the periods CloudWatch Logs offers."""
    days = _days(get, CONTEXT_LOG_RETENTION, DEFAULT_LOG_RETENTION_DAYS, LOG_RETENTION_DAYS[-1])
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError(CONTEXT_LOG_RETENTION, f"{days} is not one of {', '.join(map(str, LOG_RETENTION_DAYS))} days")
    return days
