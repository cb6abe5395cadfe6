"""The privacy filter every sampled input passes before it leaves the device, and the policy a sample records.

Per feature, in this order: a dropped feature never leaves; a hashed one leaves as a pseudonym,
HMAC-SHA256(key = the fleet salt, message = "<name>\\0<repr(float(value))>") cut to HASH_HEX_CHARS hex
digits, so equal values match across the fleet without the value itself travelling; every other feature
gets Laplace noise when `laplaceEpsilon` is set (scale = sensitivity / epsilon, sensitivity = the manifest
input range maximum - minimum, the bound the device enforces on every input, the result clamped back into
that range), then is rounded to its coarsening step when it has one.

Raw inputs leave only when the policy allows it: a feature that was neither hashed, noised nor coarsened
is released only with `allowRaw: true`. The default policy allows nothing raw and names no rule, so a
sample carries its signals (confidence, margin, drift) and no features at all until someone decides what
may go.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ConfigError, ValidationError

HASH_HEX_CHARS = 16
"""64 bits of the HMAC: collisions stay unlikely across millions of distinct values, the digest stays short."""
HASH_SCHEME = f"hmac-sha256/{HASH_HEX_CHARS}"
SENSITIVITY_BASIS = "input_range"
"""Laplace sensitivity is the manifest's input range: values outside it are rejected, so it truly bounds them."""
MAX_EPSILON = 100.0
VALUE_DECIMALS = 6
MIN_SALT_CHARS = 16
CONFIG_KEYS = {"allowRaw", "drop", "hash", "coarsen", "laplaceEpsilon"}

Released = float | str
"""A released feature value: a number, or a hash's hex digest."""


@dataclass(frozen=True)
class PrivacyPolicy:
    """Which features leave a device, and how: dropped, hashed, coarsened, noised, or raw only when allowed."""

    allow_raw: bool = False
    drop: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    coarsen: tuple[tuple[str, float], ...] = ()
    """(feature, grid step) pairs."""
    laplace_epsilon: float | None = None
    """Privacy budget per released feature value; None adds no noise."""

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for rule, names in (("drop", self.drop), ("hash", self.hash), ("coarsen", [n for n, _ in self.coarsen])):
            for name in names:
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"privacy.{rule}", f"feature names must be non-empty strings, got {name!r}")
                if name in seen:
                    raise ConfigError(f"privacy.{rule}", f"feature {name!r} is already under privacy.{seen[name]}")
                seen[name] = rule
        for name, step in self.coarsen:
            if not math.isfinite(step) or step <= 0:
                raise ConfigError(f"privacy.coarsen.{name}", f"step must be a finite number > 0, got {step}")
        epsilon = self.laplace_epsilon
        if epsilon is not None and not (math.isfinite(epsilon) and 0 < epsilon <= MAX_EPSILON):
            raise ConfigError("privacy.laplaceEpsilon", f"{epsilon} is outside (0, {MAX_EPSILON}]")

    @property
    def named(self) -> tuple[str, ...]:
        """Every feature a rule names."""
        return (*self.drop, *self.hash, *(n for n, _ in self.coarsen))

    def check_schema(self, features: Sequence[str]) -> None:
        """Refuse a policy naming a feature the model's input schema lacks (a typo must not let a field through)."""
        known = set(features)
        for rule, names in (("drop", self.drop), ("hash", self.hash), ("coarsen", [n for n, _ in self.coarsen])):
            for name in names:
                if name not in known:
                    shown = ", ".join(list(features)[:8]) + (", ..." if len(features) > 8 else "")
                    raise ConfigError(f"privacy.{rule}", f"feature {name!r} is not in the model's input ({shown})")

    @classmethod
    def from_config(cls, data: object) -> PrivacyPolicy:
        """Parse the `privacy` configuration object (camelCase keys, like the rest of the configuration)."""
        d = _config_mapping(data, "privacy")
        try:
            wire.only_keys(d, CONFIG_KEYS, "privacy")
        except ValidationError as exc:
            raise ConfigError(exc.field, exc.message) from exc
        allow_raw = d.get("allowRaw", False)
        if not isinstance(allow_raw, bool):
            raise ConfigError("privacy.allowRaw", f"expected true or false, got {allow_raw!r}")
        steps = _config_mapping(d.get("coarsen", {}), "privacy.coarsen")
        epsilon = d.get("laplaceEpsilon")
        return cls(
            allow_raw=allow_raw,
            drop=_names(d.get("drop", []), "privacy.drop"),
            hash=_names(d.get("hash", []), "privacy.hash"),
            coarsen=tuple((str(name), _number(step, f"privacy.coarsen.{name}")) for name, step in steps.items()),
            laplace_epsilon=None if epsilon is None else _number(epsilon, "privacy.laplaceEpsilon"),
        )

    def to_config(self) -> dict[str, Any]:
        """The configuration object (laplaceEpsilon only when noise is on: Greengrass has no null to merge)."""
        config: dict[str, Any] = {
            "allowRaw": self.allow_raw,
            "drop": list(self.drop),
            "hash": list(self.hash),
            "coarsen": dict(self.coarsen),
        }
        if self.laplace_epsilon is not None:
            config["laplaceEpsilon"] = self.laplace_epsilon
        return config


def _config_mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"expected an object, got {value!r}")
    return value


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(where, f"expected a list of feature names, got {value!r}")
    return tuple(value)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"expected a number, got {value!r}")
    return float(value)


def check_salt(policy: PrivacyPolicy, salt: str) -> None:
    """Hashing needs a fleet salt long enough not to be guessed (the salt itself is never echoed)."""
    if policy.hash and len(salt) < MIN_SALT_CHARS:
        raise ConfigError("fleetSalt", f"must be at least {MIN_SALT_CHARS} characters when privacy.hash names features")


def hash_value(salt: str, name: str, value: float) -> str:
    """A feature value's pseudonym: truncated HMAC-SHA256 keyed by the fleet salt (see the module docstring)."""
    message = f"{name}\0{float(value)!r}".encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]


def coarsened(value: float, step: float) -> float:
    """A value rounded to the nearest multiple of step (then to VALUE_DECIMALS, so 0.1 * 3 reads 0.3)."""
    return round(round(value / step) * step, VALUE_DECIMALS)


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """The Laplace mechanism's scale b = sensitivity / epsilon: each released value is epsilon-DP."""
    return sensitivity / epsilon


def filter_features(
    policy: PrivacyPolicy,
    names: Sequence[str],
    values: Sequence[float],
    *,
    salt: str,
    noise: Sequence[float] | None,
    bounds: tuple[float, float],
) -> dict[str, Released]:
    """The features of one sample as they may leave the device; noise holds one Laplace draw per feature."""
    if policy.laplace_epsilon is not None and (noise is None or len(noise) != len(values)):
        raise ValidationError("privacy.noise", "one Laplace draw per feature is needed when laplaceEpsilon is set")
    if not (policy.allow_raw or policy.hash or policy.coarsen or policy.laplace_epsilon is not None):
        return {}  # the default policy: nothing may leave, so nothing is looked at
    dropped, hashed, steps = set(policy.drop), set(policy.hash), dict(policy.coarsen)
    low, high = bounds
    draws = noise if policy.laplace_epsilon is not None else None
    out: dict[str, Released] = {}
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        if name in dropped:
            continue
        if name in hashed:
            out[name] = hash_value(salt, name, value)
            continue
        released = draws is not None
        if draws is not None:
            value = min(high, max(low, value + draws[i]))
        if name in steps:
            value, released = coarsened(value, steps[name]), True
        if released or policy.allow_raw:
            out[name] = round(float(value), VALUE_DECIMALS)
    return out


@dataclass(frozen=True)
class AppliedPrivacy:
    """The policy a sample went through, as the cloud reads it: rules, noise and what the noise was scaled by."""

    policy: PrivacyPolicy
    sensitivity: float | None
    """The Laplace sensitivity used (SENSITIVITY_BASIS of the model's input); None without noise."""

    def to_payload(self) -> dict[str, Any]:
        """The `privacy` object of a SAMPLE payload."""
        p = self.policy
        return {
            "allow_raw": p.allow_raw,
            "dropped": list(p.drop),
            "hashed": list(p.hash),
            "hash_scheme": HASH_SCHEME if p.hash else None,
            "coarsened": dict(p.coarsen),
            "laplace_epsilon": p.laplace_epsilon,
            "sensitivity_basis": SENSITIVITY_BASIS if p.laplace_epsilon is not None else None,
            "sensitivity": self.sensitivity,
        }

    @classmethod
    def from_payload(cls, data: object, where: str = "sample.privacy") -> AppliedPrivacy:
        """Parse the `privacy` object of a SAMPLE payload."""
        d = wire.mapping(data, where)
        keys = {"allow_raw", "dropped", "hashed", "hash_scheme", "coarsened", "laplace_epsilon"}
        wire.only_keys(d, keys | {"sensitivity_basis", "sensitivity"}, where)
        if not isinstance(d.get("allow_raw"), bool):
            raise ValidationError(f"{where}.allow_raw", f"expected true or false, got {d.get('allow_raw')!r}")
        steps = wire.mapping(d.get("coarsened"), f"{where}.coarsened")
        epsilon = None if d.get("laplace_epsilon") is None else wire.number(d, "laplace_epsilon", where)
        try:
            policy = PrivacyPolicy(
                allow_raw=d["allow_raw"],
                drop=_wire_names(d, "dropped", where),
                hash=_wire_names(d, "hashed", where),
                coarsen=tuple((k, wire.number(steps, k, f"{where}.coarsened")) for k in steps),
                laplace_epsilon=epsilon,
            )
        except ConfigError as exc:
            raise ValidationError(where, exc.message) from exc
        sensitivity = None if d.get("sensitivity") is None else wire.number(d, "sensitivity", where)
        if (epsilon is None) != (sensitivity is None):
            raise ValidationError(f"{where}.sensitivity", "is given exactly when laplace_epsilon is")
        return cls(policy, sensitivity)


def _wire_names(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    names = wire.sequence(data, key, where)
    if not all(isinstance(n, str) and n for n in names):
        raise ValidationError(f"{where}.{key}", "expected a list of feature names")
    return tuple(names)
