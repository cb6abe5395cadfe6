"""The SAMPLE record's payload: one hard (or control) example as the cloud's sample ingest parses it.

{
  "schema_version": 1,
  "request_id": "r-17",                 # the request it answered (results carry the same id)
  "model_name": "digits", "model_version": 3,
  "sampler": "low_confidence",          # the core.samplers sampler that chose it
  "inclusion": 1.0,                     # the probability that sampler took it with (random: the rate in force)
  "label_index": 7, "label": "7",
  "confidence": 0.41, "margin": 0.02,   # top-1 probability, top-1 minus top-2
  "drifted": true, "drift_score": 0.31, # the device's drift window when it was taken (score may be null)
  "features": {"pixel_3": 4.0, ...},    # after the privacy filter: only what the policy released
  "privacy": {"allow_raw": true}        # core.privacy.AppliedPrivacy: the policy and epsilon applied
}

Compact on purpose (samples are paid for from a byte budget, core.sample_budget): `privacy` carries only the
entries that differ from the default policy's (no steps, no epsilon), and a missing one reads as its default;
`drift_score` is left out when the window was not scored; `inclusion` is absent in samples from devices
before it existed (their random samples cannot be weighted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.privacy import AppliedPrivacy, Released
from edgeloop.core.records import MAX_REQUEST_ID_CHARS
from edgeloop.core.samplers import SAMPLERS

SAMPLE_SCHEMA_VERSION = 1
PAYLOAD_KEYS = {
    "schema_version",
    "request_id",
    "model_name",
    "model_version",
    "sampler",
    "inclusion",
    "label_index",
    "label",
    "confidence",
    "margin",
    "drifted",
    "drift_score",
    "features",
    "privacy",
}
PRIVACY_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "dropped": (),
        "hashed": (),
        "hash_scheme": None,
        "coarsened": MappingProxyType({}),
        "laplace_epsilon": None,
        "sensitivity_basis": None,
        "sensitivity": None,
    }
)
"""The `privacy` entries a compact payload leaves out when they hold these (empty) values."""


@dataclass(frozen=True)
class Sample:
    """One sampled inference, its signals and its privacy-filtered features."""

    request_id: str
    model_name: str
    model_version: int
    sampler: str
    label_index: int
    label: str
    confidence: float
    margin: float
    drifted: bool
    drift_score: float | None
    features: Mapping[str, Released]
    privacy: AppliedPrivacy
    schema_version: int = field(default=SAMPLE_SCHEMA_VERSION)
    inclusion: float | None = None
    """The probability the naming sampler took this inference with, given its signals (None: not recorded)."""

    def __post_init__(self) -> None:
        if not 0 < len(self.request_id) <= MAX_REQUEST_ID_CHARS:
            raise ValidationError("sample.request_id", f"must be 1-{MAX_REQUEST_ID_CHARS} characters")
        if self.sampler not in SAMPLERS:
            raise ValidationError("sample.sampler", f"{self.sampler!r}; expected one of {tuple(SAMPLERS)}")
        if self.model_version < 1:
            raise ValidationError("sample.model_version", f"must be >= 1, got {self.model_version}")
        if self.label_index < 0:
            raise ValidationError("sample.label_index", f"must be >= 0, got {self.label_index}")
        if self.inclusion is not None and not (math.isfinite(self.inclusion) and 0.0 < self.inclusion <= 1.0):
            raise ValidationError("sample.inclusion", f"must be a probability in (0, 1], got {self.inclusion!r}")
        for name in ("confidence", "margin"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValidationError(f"sample.{name}", f"{getattr(self, name)} is outside [0, 1]")
        withheld = set(self.features) & set(self.privacy.policy.drop)
        if withheld:
            raise ValidationError("sample.features", f"{sorted(withheld)} are dropped by the policy yet present")
        for name, value in self.features.items():
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValidationError(f"sample.features.{name}", f"expected a number or a hash, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(f"sample.features.{name}", f"must be finite, got {value!r}")

    def to_payload(self) -> dict[str, Any]:
        """The SAMPLE record's payload."""
        payload: dict[str, Any] = {
            "schema_version": self.schema_version,
            "request_id": self.request_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "sampler": self.sampler,
            "label_index": self.label_index,
            "label": self.label,
            "confidence": self.confidence,
            "margin": self.margin,
            "drifted": self.drifted,
            "drift_score": self.drift_score,
            "features": dict(self.features),
            "privacy": compact_privacy(self.privacy.to_payload()),
        }
        if self.inclusion is not None:
            payload["inclusion"] = self.inclusion
        if self.drift_score is None:
            del payload["drift_score"]  # compact: an unscored window travels as no score
        return payload

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Sample:
        """Parse a SAMPLE record's payload, refusing unknown keys, wrong types and another schema version."""
        where = "sample"
        d = wire.mapping(data, where)
        wire.only_keys(d, PAYLOAD_KEYS, where)
        version = wire.integer(d, "schema_version", where)
        if version != SAMPLE_SCHEMA_VERSION:
            raise ValidationError(f"{where}.schema_version", f"{version}; expected {SAMPLE_SCHEMA_VERSION}")
        if not isinstance(d.get("drifted"), bool):
            raise ValidationError(f"{where}.drifted", f"expected true or false, got {d.get('drifted')!r}")
        features = wire.mapping(d.get("features"), f"{where}.features")
        return cls(
            request_id=wire.text(d, "request_id", where),
            model_name=wire.text(d, "model_name", where),
            model_version=wire.integer(d, "model_version", where, minimum=1),
            sampler=wire.text(d, "sampler", where),
            label_index=wire.integer(d, "label_index", where, minimum=0),
            label=wire.text(d, "label", where),
            confidence=wire.number(d, "confidence", where),
            margin=wire.number(d, "margin", where),
            drifted=d["drifted"],
            drift_score=None if d.get("drift_score") is None else wire.number(d, "drift_score", where),
            features=dict(features),
            privacy=AppliedPrivacy.from_payload(full_privacy(d.get("privacy"), where), f"{where}.privacy"),
            schema_version=version,
            inclusion=None if d.get("inclusion") is None else wire.number(d, "inclusion", where),
        )


def compact_privacy(privacy: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's `privacy` without the entries that hold their default (empty) value."""
    return {key: value for key, value in privacy.items() if key not in PRIVACY_DEFAULTS or value != _empty(key)}


def full_privacy(data: object, where: str) -> Mapping[str, Any]:
    """A compact `privacy` object with its left-out entries restored (a full one is returned as it is)."""
    privacy = wire.mapping(data, f"{where}.privacy")
    return {**{key: _empty(key) for key in PRIVACY_DEFAULTS}, **privacy}


def _empty(key: str) -> Any:
    """A default entry in its payload form (lists and objects as JSON gives them back)."""
    value = PRIVACY_DEFAULTS[key]
    if isinstance(value, tuple):
        return []
    if isinstance(value, Mapping):
        return {}
    return value
