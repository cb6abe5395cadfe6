"""Configuration keys and their validation, defined once for the cloud handlers and the device."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.names import INFERENCE_COMPONENT, MODEL_COMPONENT_PREFIX
from edgeloop.core.privacy import PrivacyPolicy, check_salt
from edgeloop.core.sampling import SamplerSettings, parse_samplers, samplers_config

GREENGRASS_RESERVED_KEYS = frozenset({"accessControl"})
"""Configuration keys Greengrass itself reads; the component sees them but does not interpret them."""

GRAPH_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

ENV_ARTIFACTS_BUCKET = "EDGELOOP_ARTIFACTS_BUCKET"
ENV_FLEET_THING_GROUP_ARN = "EDGELOOP_FLEET_THING_GROUP_ARN"
ENV_INFERENCE_COMPONENT_VERSION = "EDGELOOP_INFERENCE_COMPONENT_VERSION"
ENV_AUTO_APPROVE_MIN_ACCURACY = "EDGELOOP_AUTO_APPROVE_MIN_ACCURACY"
ENV_TRAINING_OUTPUT_URI = "EDGELOOP_TRAINING_OUTPUT_URI"
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloudSettings:
        """Read and validate the handler environment; a missing key names itself."""

        def need(key: str) -> str:
            value = env.get(key, "")
            if not value:
                raise ConfigError(key, "environment variable is required")
            return value

        arn = need(ENV_FLEET_THING_GROUP_ARN)
        if not arn.startswith("arn:") or ":thinggroup/" not in arn:
            raise ConfigError(ENV_FLEET_THING_GROUP_ARN, f"{arn!r} is not a thing group ARN")
        threshold_text = env.get(ENV_AUTO_APPROVE_MIN_ACCURACY, "")
        threshold: float | None = None
        if threshold_text:
            try:
                threshold = float(threshold_text)
            except ValueError as exc:
                raise ConfigError(ENV_AUTO_APPROVE_MIN_ACCURACY, f"{threshold_text!r} is not a number") from exc
            if not 0.0 <= threshold <= 1.0:
                raise ConfigError(ENV_AUTO_APPROVE_MIN_ACCURACY, f"{threshold} is outside [0, 1]")
        output_uri = need(ENV_TRAINING_OUTPUT_URI)
        if not output_uri.startswith("s3://") or not output_uri.endswith("/"):
            raise ConfigError(ENV_TRAINING_OUTPUT_URI, f"{output_uri!r} must be an s3:// prefix ending in '/'")
        return cls(
            artifacts_bucket=need(ENV_ARTIFACTS_BUCKET),
            fleet_thing_group_arn=arn,
            inference_component_version=need(ENV_INFERENCE_COMPONENT_VERSION),
            auto_approve_min_accuracy=threshold,
            training_output_uri=output_uri,
        )

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
        return env


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
    samplers: SamplerSettings = ()  # hard-example samplers and their parameters (core.sampling)
    sampleBytesPerDay: int = 1024 * 1024  # noqa: N815 - sample payload bytes per UTC day; beyond, dropped and counted
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
