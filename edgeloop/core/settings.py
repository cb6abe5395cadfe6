"""Configuration keys and their validation, defined once for the cloud handlers and the device."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

from edgeloop.core import wire
from edgeloop.core.approval import ApprovalPolicy
from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.names import (
    FLEET_HEALTH_TABLE,
    INFERENCE_COMPONENT,
    MODEL_COMPONENT_PREFIX,
    RETRAINING_TABLE,
    ROLLOUTS_TABLE,
    SAMPLES_TABLE,
    ring_group,
    validate_model_name,
)
from edgeloop.core.privacy import PrivacyPolicy, check_salt
from edgeloop.core.retraining import RetrainingPolicy
from edgeloop.core.rollout import DEFAULT_POLICY, RolloutPolicy
from edgeloop.core.sample_budget import BudgetPolicy
from edgeloop.core.samplers import SamplerSettings, parse_samplers, samplers_config

GREENGRASS_RESERVED_KEYS = frozenset({"accessControl"})
"""Configuration keys Greengrass itself reads; the component sees them but does not interpret them."""

GRAPH_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

ENV_ARTIFACTS_BUCKET = "EDGELOOP_ARTIFACTS_BUCKET"
ENV_FLEET_THING_GROUP_ARN = "EDGELOOP_FLEET_THING_GROUP_ARN"
ENV_INFERENCE_COMPONENT_VERSION = "EDGELOOP_INFERENCE_COMPONENT_VERSION"
ENV_AUTO_APPROVE_MIN_ACCURACY = "EDGELOOP_AUTO_APPROVE_MIN_ACCURACY"
ENV_TRAINING_OUTPUT_URI = "EDGELOOP_TRAINING_OUTPUT_URI"
ENV_AUTO_APPROVE_MAX_DROP = "EDGELOOP_AUTO_APPROVE_MAX_DROP"
"""How much lower than the Approved version's holdout accuracy an auto-approved version may score (default 0)."""
ENV_SIGNING_KEY_ID = "EDGELOOP_SIGNING_KEY_ID"
"""The KMS ECC_NIST_P256 SIGN_VERIFY key that signs manifests; unset: models ship unsigned."""
ENV_MODEL_NAME = "EDGELOOP_MODEL_NAME"
ENV_TRAINING_IMAGE_URI = "EDGELOOP_TRAINING_IMAGE_URI"
ENV_TRAINING_ROLE_ARN = "EDGELOOP_TRAINING_ROLE_ARN"
ENV_TRAINING_DATA_URI = "EDGELOOP_TRAINING_DATA_URI"
ENV_TRAINING_INSTANCE_TYPE = "EDGELOOP_TRAINING_INSTANCE_TYPE"
ENV_TRAINING_MAX_RUNTIME_S = "EDGELOOP_TRAINING_MAX_RUNTIME_S"
ENV_ROLLOUT_POLICY = "EDGELOOP_ROLLOUT_POLICY"
"""JSON rollout policy (edgeloop.core.rollout.RolloutPolicy.from_dict); unset: DEFAULT_POLICY."""
ENV_SAMPLES_TABLE = "EDGELOOP_SAMPLES_TABLE"
"""DynamoDB table cataloguing every sample once per (thing, seq)."""
ENV_LABELLING_QUEUE_URL = "EDGELOOP_LABELLING_QUEUE_URL"
"""SQS queue where new samples wait for a label."""
ENV_ROLLOUTS_TABLE = "EDGELOOP_ROLLOUTS_TABLE"
ENV_FLEET_HEALTH_TABLE = "EDGELOOP_FLEET_HEALTH_TABLE"
DEFAULT_TRAINING_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_TRAINING_MAX_RUNTIME_S = 3600
_CONFIG_TYPES: Mapping[str, type[str] | type[int] | tuple[type[int], type[float]]] = {
    "str": str,
    "int": int,
    "float": (int, float),
}
_CONFIG_PARSERS: Mapping[str, Callable[[object], Any]] = {
    "samplers": parse_samplers,
    "privacy": PrivacyPolicy.from_config,
}
"""Keys whose value is an object or a list, each with the parser that validates it."""
SECRET_KEYS = frozenset({"fleetSalt"})
"""Configuration values never echoed in an error, a log line or a report."""


@dataclass(frozen=True)
class CloudSettings:
    """What every cloud handler needs from its environment, checked once at cold start."""

    artifacts_bucket: str
    fleet_thing_group_arn: str
    inference_component_version: str
    auto_approve_min_accuracy: float | None
    training_output_uri: str
    auto_approve_max_drop: float = 0.0
    signing_key_id: str | None = None
    rollout_policy: RolloutPolicy = DEFAULT_POLICY
    rollouts_table: str = ROLLOUTS_TABLE
    fleet_health_table: str = FLEET_HEALTH_TABLE

    @property
    def approval_policy(self) -> ApprovalPolicy:
        """The registry's auto-approval policy from these settings."""
        return ApprovalPolicy(self.auto_approve_min_accuracy, self.auto_approve_max_drop)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloudSettings:
        """Read and validate the handler environment; a missing key names itself."""

        need = partial(_need, env)
        arn = need(ENV_FLEET_THING_GROUP_ARN)
        if not arn.startswith("arn:") or ":thinggroup/" not in arn:
            raise ConfigError(ENV_FLEET_THING_GROUP_ARN, f"{arn!r} is not a thing group ARN")
        max_drop = _fraction(env, ENV_AUTO_APPROVE_MAX_DROP)
        return cls(
            artifacts_bucket=need(ENV_ARTIFACTS_BUCKET),
            fleet_thing_group_arn=arn,
            inference_component_version=need(ENV_INFERENCE_COMPONENT_VERSION),
            auto_approve_min_accuracy=_fraction(env, ENV_AUTO_APPROVE_MIN_ACCURACY),
            training_output_uri=_s3_prefix(env, ENV_TRAINING_OUTPUT_URI),
            auto_approve_max_drop=0.0 if max_drop is None else max_drop,
            signing_key_id=env.get(ENV_SIGNING_KEY_ID) or None,
            rollout_policy=rollout_policy_from_env(env),
            rollouts_table=env.get(ENV_ROLLOUTS_TABLE) or ROLLOUTS_TABLE,
            fleet_health_table=env.get(ENV_FLEET_HEALTH_TABLE) or FLEET_HEALTH_TABLE,
        )

    def ring_group_arn(self, ring_name: str) -> str:
        """The ARN of a ring's thing group, beside the fleet group (same account and region)."""
        prefix = self.fleet_thing_group_arn.rsplit("/", 1)[0]
        return f"{prefix}/{ring_group(ring_name)}"

    @property
    def account(self) -> str:
        """The account id, read from the fleet thing group ARN (no STS call needed)."""
        return self.fleet_thing_group_arn.split(":")[4]

    def to_env(self) -> dict[str, str]:
        """The inverse of from_env: what the stack and the local stack put in a handler's environment."""
        env = {
            ENV_ARTIFACTS_BUCKET: self.artifacts_bucket,
            ENV_FLEET_THING_GROUP_ARN: self.fleet_thing_group_arn,
            ENV_INFERENCE_COMPONENT_VERSION: self.inference_component_version,
            ENV_TRAINING_OUTPUT_URI: self.training_output_uri,
        }
        if self.auto_approve_min_accuracy is not None:
            env[ENV_AUTO_APPROVE_MIN_ACCURACY] = str(self.auto_approve_min_accuracy)
        if self.auto_approve_max_drop:
            env[ENV_AUTO_APPROVE_MAX_DROP] = str(self.auto_approve_max_drop)
        if self.signing_key_id:
            env[ENV_SIGNING_KEY_ID] = self.signing_key_id
        if self.rollout_policy != DEFAULT_POLICY:
            env[ENV_ROLLOUT_POLICY] = json.dumps(self.rollout_policy.to_dict(), sort_keys=True)
        if self.rollouts_table != ROLLOUTS_TABLE:
            env[ENV_ROLLOUTS_TABLE] = self.rollouts_table
        if self.fleet_health_table != FLEET_HEALTH_TABLE:
            env[ENV_FLEET_HEALTH_TABLE] = self.fleet_health_table
        return env


def _need(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise ConfigError(key, "environment variable is required")
    return value


def _fraction(env: Mapping[str, str], key: str) -> float | None:
    """An optional number in [0, 1]; an empty value counts as unset."""
    text = env.get(key, "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(key, f"{text!r} is not a number") from exc
    if not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"{value} is outside [0, 1]")
    return value


def _s3_prefix(env: Mapping[str, str], key: str) -> str:
    value = _need(env, key)
    if not value.startswith("s3://") or not value.endswith("/") or len(value) < 7:
        raise ConfigError(key, f"{value!r} must be an s3:// prefix ending in '/'")
    return value


@dataclass(frozen=True)
class LauncherSettings:
    """What the training launcher needs: which model, which image and role, where data and output live."""

    model_name: str
    training_image_uri: str
    training_role_arn: str
    training_data_uri: str
    training_output_uri: str
    instance_type: str = DEFAULT_TRAINING_INSTANCE_TYPE
    max_runtime_s: int = DEFAULT_TRAINING_MAX_RUNTIME_S

    def __post_init__(self) -> None:
        try:
            validate_model_name(self.model_name)
        except ValidationError as exc:
            raise ConfigError(ENV_MODEL_NAME, exc.message) from exc
        if not self.training_role_arn.startswith("arn:") or ":role/" not in self.training_role_arn:
            raise ConfigError(ENV_TRAINING_ROLE_ARN, f"{self.training_role_arn!r} is not an IAM role ARN")
        if not self.instance_type.startswith("ml."):
            raise ConfigError(ENV_TRAINING_INSTANCE_TYPE, f"{self.instance_type!r} is not a SageMaker instance type")
        if not 60 <= self.max_runtime_s <= 28 * 86_400:
            raise ConfigError(ENV_TRAINING_MAX_RUNTIME_S, f"{self.max_runtime_s} is outside [60, 2419200]")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LauncherSettings:
        """Read and validate the launcher's environment; a bad key names itself."""
        runtime_text = env.get(ENV_TRAINING_MAX_RUNTIME_S) or str(DEFAULT_TRAINING_MAX_RUNTIME_S)
        if not runtime_text.isdigit():
            raise ConfigError(ENV_TRAINING_MAX_RUNTIME_S, f"{runtime_text!r} is not a whole number of seconds")
        return cls(
            model_name=_need(env, ENV_MODEL_NAME),
            training_image_uri=_need(env, ENV_TRAINING_IMAGE_URI),
            training_role_arn=_need(env, ENV_TRAINING_ROLE_ARN),
            training_data_uri=_s3_prefix(env, ENV_TRAINING_DATA_URI),
            training_output_uri=_s3_prefix(env, ENV_TRAINING_OUTPUT_URI),
            instance_type=env.get(ENV_TRAINING_INSTANCE_TYPE) or DEFAULT_TRAINING_INSTANCE_TYPE,
            max_runtime_s=int(runtime_text),
        )

    def to_env(self) -> dict[str, str]:
        """The inverse of from_env, for the stack and the local stack."""
        return {
            ENV_MODEL_NAME: self.model_name,
            ENV_TRAINING_IMAGE_URI: self.training_image_uri,
            ENV_TRAINING_ROLE_ARN: self.training_role_arn,
            ENV_TRAINING_DATA_URI: self.training_data_uri,
            ENV_TRAINING_OUTPUT_URI: self.training_output_uri,
            ENV_TRAINING_INSTANCE_TYPE: self.instance_type,
            ENV_TRAINING_MAX_RUNTIME_S: str(self.max_runtime_s),
        }


@dataclass(frozen=True)
class DeviceConfig:
    """The inference component's configuration (Greengrass ComponentConfiguration, camelCase keys)."""

    modelComponent: str = ""  # noqa: N815 - Greengrass configuration keys are camelCase
    modelComponentVersion: str = ""  # noqa: N815
    batchMax: int = 32  # noqa: N815
    batchWaitMs: int = 10  # noqa: N815
    resultCommitMs: int = 20  # noqa: N815 - results wait at most this long to be committed together (0: every batch)
    forwardBatchSize: int = 200  # noqa: N815
    healthIntervalSeconds: float = 5.0  # noqa: N815
    healthMinIntervalSeconds: float = 1.0  # noqa: N815 - floor between reports triggered by a change
    intraOpThreads: int = 1  # noqa: N815
    interOpThreads: int = 1  # noqa: N815
    graphOptimization: str = "all"  # noqa: N815 - onnxruntime graph optimization level
    modelPublicKey: str = ""  # noqa: N815 - PEM ECDSA P-256 key; when set, unsigned models are refused
    keepModelVersions: int = 2  # noqa: N815 - verified previous versions kept on disk for local rollback
    probationSeconds: float = 300.0  # noqa: N815 - watch a new model this long after activation
    probationMaxErrorRate: float = 0.05  # noqa: N815 - roll back locally above this error rate
    probationMinRequests: int = 20  # noqa: N815 - no verdict on fewer requests than this
    bufferMaxBytes: int = 256 * 1024 * 1024  # noqa: N815 - the durable buffer's bound; eviction beyond
    logLevel: str = "INFO"  # noqa: N815
    driftWindow: int = 1000  # noqa: N815 - recent inputs the drift monitor compares to the baseline (0: off)
    driftMinRows: int = 500  # noqa: N815 - no drift score on fewer rows (PSI's noise floor is ~(bins - 1) / rows)
    driftThreshold: float = 0.2  # noqa: N815 - PSI at or above which a feature (and the device) counts as drifted
    samplers: SamplerSettings = ()  # hard-example samplers and their parameters (core.samplers)
    sampleBytesPerDay: int = 1024 * 1024  # noqa: N815 - sample payload bytes per UTC day; beyond, dropped and counted
    sampleBudgetShare: float = 0.0  # noqa: N815 - sample bytes on the wire at most this share of raw bytes (0: off)
    sampleRandomShare: float = 0.5  # noqa: N815 - share of that budget reserved for the random sampler
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)  # what of a sampled input may leave (core.privacy)
    fleetSalt: str = field(default="", repr=False)  # noqa: N815 - HMAC key of privacy.hash; a secret

    def __post_init__(self) -> None:
        samplers: object = self.samplers
        if isinstance(samplers, tuple) and all(isinstance(pair, tuple) for pair in samplers):
            samplers = dict(samplers)  # the parsed form, re-checked: a hand-built config is validated too
        object.__setattr__(self, "samplers", parse_samplers(samplers))
        if not isinstance(self.privacy, PrivacyPolicy):  # DeviceConfig(**config.to_config()) hands the object form
            object.__setattr__(self, "privacy", PrivacyPolicy.from_config(self.privacy))
        if self.modelComponent and not self.modelComponent.startswith(MODEL_COMPONENT_PREFIX):
            raise ConfigError("modelComponent", f"{self.modelComponent!r} must start with {MODEL_COMPONENT_PREFIX}")
        if bool(self.modelComponent) != bool(self.modelComponentVersion):
            raise ConfigError("modelComponentVersion", "modelComponent and its version are set together")
        for name, low, high in (
            ("batchMax", 1, 4096),
            ("batchWaitMs", 0, 10_000),
            ("resultCommitMs", 0, 10_000),
            ("forwardBatchSize", 1, 10_000),
            ("intraOpThreads", 1, 64),
            ("interOpThreads", 1, 64),
            ("keepModelVersions", 0, 10),
            ("probationMinRequests", 1, 1_000_000),
            ("bufferMaxBytes", 1024 * 1024, 64 * 1024**3),
            ("healthIntervalSeconds", 0.05, 86_400),
            ("healthMinIntervalSeconds", 0.05, 86_400),
            ("probationSeconds", 0, 7 * 86_400),
            ("probationMaxErrorRate", 0.0, 1.0),
            ("driftWindow", 0, 100_000),
            ("driftMinRows", 10, 100_000),
            ("driftThreshold", 0.001, 10.0),
            ("sampleBytesPerDay", 0, 1024**3),
            ("sampleBudgetShare", 0.0, 1.0),
            ("sampleRandomShare", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(name, f"{value} is outside [{low}, {high}]")
        if self.graphOptimization not in GRAPH_OPTIMIZATIONS:
            raise ConfigError("graphOptimization", f"{self.graphOptimization!r}; expected one of {GRAPH_OPTIMIZATIONS}")
        if self.logLevel not in LOG_LEVELS:
            raise ConfigError("logLevel", f"{self.logLevel!r}; expected one of {LOG_LEVELS}")
        if self.modelPublicKey and "BEGIN PUBLIC KEY" not in self.modelPublicKey:
            raise ConfigError("modelPublicKey", "must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
        self._check_loop()

    def _check_loop(self) -> None:
        """Drift, samplers and privacy agree with each other (each was checked on its own when parsed)."""
        if self.driftWindow and self.driftMinRows > self.driftWindow:
            raise ConfigError("driftMinRows", f"{self.driftMinRows} is above driftWindow {self.driftWindow}")
        if not self.driftWindow and any(name == "drifted" for name, _ in self.samplers):
            raise ConfigError("samplers", "sampler 'drifted' needs the drift monitor (driftWindow > 0)")
        check_salt(self.privacy, self.fleetSalt)

    @property
    def budget_policy(self) -> BudgetPolicy:
        """The share budget these keys describe (core.sample_budget)."""
        return BudgetPolicy(self.sampleBudgetShare, self.sampleRandomShare)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> DeviceConfig:
        """Validate a configuration document: unknown keys and wrong types are errors, not defaults."""
        data = {k: v for k, v in data.items() if k not in GREENGRASS_RESERVED_KEYS}
        try:
            wire.only_keys(data, {f.name for f in fields(cls)}, INFERENCE_COMPONENT)
        except ValidationError as exc:
            raise ConfigError(exc.field, exc.message) from exc
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            parser = _CONFIG_PARSERS.get(f.name)
            if parser is not None:
                values[f.name] = parser(value)
                continue
            if f.type == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON from the nucleus may carry whole numbers as 32.0
            expected = _CONFIG_TYPES[str(f.type)]
            if isinstance(value, bool) or not isinstance(value, expected):
                shown = "a secret value" if f.name in SECRET_KEYS else repr(value)
                raise ConfigError(f.name, f"expected {f.type}, got {shown}")
            values[f.name] = float(value) if f.type == "float" else value
        return cls(**values)

    def to_config(self) -> dict[str, Any]:
        """The configuration document (the recipe's DefaultConfiguration uses the defaults)."""
        config = {f.name: getattr(self, f.name) for f in fields(self)}
        config["samplers"] = samplers_config(self.samplers)
        config["privacy"] = self.privacy.to_config()
        return config


def rollout_policy_from_env(env: Mapping[str, str]) -> RolloutPolicy:
    """The rollout policy from its JSON variable; a bad one names the variable and the field."""
    text = env.get(ENV_ROLLOUT_POLICY)
    if not text:
        return DEFAULT_POLICY
    try:
        return RolloutPolicy.from_dict(wire.mapping(json.loads(text), ENV_ROLLOUT_POLICY))
    except json.JSONDecodeError as exc:
        raise ConfigError(ENV_ROLLOUT_POLICY, f"is not valid JSON ({exc})") from exc
    except ValidationError as exc:
        raise ConfigError(f"{ENV_ROLLOUT_POLICY}.{exc.field}", exc.message) from exc


ENV_RETRAINING_TABLE = "EDGELOOP_RETRAINING_TABLE"
"""DynamoDB table of each model's retraining trigger state."""
ENV_RETRAINING_POLICY = "EDGELOOP_RETRAINING_POLICY"
"""JSON retraining policy (edgeloop.core.retraining.RetrainingPolicy.from_dict); unset: its defaults."""
ENV_EVENT_BUS_NAME = "EDGELOOP_EVENT_BUS_NAME"
"""The EventBridge bus the Retraining Requested event goes to (the training launcher's rule listens there)."""
DEFAULT_EVENT_BUS = "default"


@dataclass(frozen=True)
class TriggerSettings:
    """What the retraining trigger needs: the model, its policy, the tables it reads and the one it writes."""

    model_name: str
    policy: RetrainingPolicy = field(default_factory=RetrainingPolicy)
    samples_table: str = SAMPLES_TABLE
    retraining_table: str = RETRAINING_TABLE
    rollouts_table: str = ROLLOUTS_TABLE
    fleet_health_table: str = FLEET_HEALTH_TABLE
    event_bus_name: str = DEFAULT_EVENT_BUS

    def __post_init__(self) -> None:
        try:
            validate_model_name(self.model_name)
        except ValidationError as exc:
            raise ConfigError(ENV_MODEL_NAME, exc.message) from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TriggerSettings:
        """Read and validate the trigger's environment; a bad key names itself."""
        return cls(
            model_name=_need(env, ENV_MODEL_NAME),
            policy=retraining_policy_from_env(env),
            samples_table=env.get(ENV_SAMPLES_TABLE) or SAMPLES_TABLE,
            retraining_table=env.get(ENV_RETRAINING_TABLE) or RETRAINING_TABLE,
            rollouts_table=env.get(ENV_ROLLOUTS_TABLE) or ROLLOUTS_TABLE,
            fleet_health_table=env.get(ENV_FLEET_HEALTH_TABLE) or FLEET_HEALTH_TABLE,
            event_bus_name=env.get(ENV_EVENT_BUS_NAME) or DEFAULT_EVENT_BUS,
        )

    def to_env(self) -> dict[str, str]:
        """The inverse of from_env, every key spelled out (the stack passes its own table names)."""
        return {
            ENV_MODEL_NAME: self.model_name,
            ENV_RETRAINING_POLICY: json.dumps(self.policy.to_dict(), sort_keys=True),
            ENV_SAMPLES_TABLE: self.samples_table,
            ENV_RETRAINING_TABLE: self.retraining_table,
            ENV_ROLLOUTS_TABLE: self.rollouts_table,
            ENV_FLEET_HEALTH_TABLE: self.fleet_health_table,
            ENV_EVENT_BUS_NAME: self.event_bus_name,
        }


def retraining_policy_from_env(env: Mapping[str, str]) -> RetrainingPolicy:
    """The retraining policy from its JSON variable; a bad one names the variable and the field."""
    text = env.get(ENV_RETRAINING_POLICY)
    if not text:
        return RetrainingPolicy()
    try:
        return RetrainingPolicy.from_dict(json.loads(text), ENV_RETRAINING_POLICY)
    except json.JSONDecodeError as exc:
        raise ConfigError(ENV_RETRAINING_POLICY, f"is not valid JSON ({exc})") from exc
    except ValidationError as exc:
        raise ConfigError(exc.field, exc.message) from exc
