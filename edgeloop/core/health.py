"""The health report each device writes to its named shadow, and the rules that say when to write it.

Size rule: IoT Core refuses a shadow document over 8 KB, so every field that can grow has a budget in
JSON-encoded bytes (`clip` cuts text to it) and HealthReport refuses values over budget. With every
budget spent the reported state stays under REPORTED_MAX_BYTES, leaving room for the desired section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from edgeloop.core import wire
from edgeloop.core.backoff import UplinkState
from edgeloop.core.drift import MAX_DRIFTED_FEATURES
from edgeloop.core.errors import ValidationError
from edgeloop.core.settings import DeviceConfig

HEALTH_SCHEMA_VERSION = 2

SHADOW_MAX_BYTES = 8 * 1024
"""IoT Core's limit for a whole shadow document."""
REPORTED_MAX_BYTES = 6 * 1024
"""The most the reported state may take with every budget spent; the rest is the desired section's."""
DETAIL_MAX_BYTES = 1024
"""Budget of model_detail (an error message can be long; the shadow cannot)."""
VERSION_MAX_BYTES = 64
"""Budget of a component version string."""
OVERRIDE_KEY_MAX_BYTES = 64
OVERRIDE_REASON_MAX_BYTES = 160
MAX_REJECTED_OVERRIDES = 8
"""Rejected overrides reported; a desired section full of junk keys cannot blow the shadow."""
MAX_OVERRIDE_VALUE_BYTES = 64
MAX_APPLIED_OVERRIDES = 16
EVICTION_CLASS_MAX_BYTES = 32
MAX_EVICTION_CLASSES = 8
FEATURE_NAME_MAX_BYTES = 32
"""Budget of one drifted feature's name (MAX_DRIFTED_FEATURES of them at most)."""
UPLINK_STATES = tuple(state.value for state in UplinkState)
"""The forwarder's uplink states as they appear in the shadow."""


class ModelState(StrEnum):
    """Where the device's model is in its life; every change shows in the shadow."""

    NONE = "none"
    VERIFYING = "verifying"
    ACTIVE = "active"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


def encoded_size(value: object) -> int:
    """Bytes a value takes in the shadow document (json.dumps escapes non-ASCII, so count that)."""
    return len(json.dumps(value).encode())


def clip(text: str, max_bytes: int) -> str:
    """Cut text so that its JSON encoding (quotes excluded) fits max_bytes; a cut text ends in '...'."""
    if encoded_size(text) - 2 <= max_bytes:
        return text
    budget, kept = max_bytes - 3, []
    for char in text[:max_bytes]:
        cost = encoded_size(char) - 2
        if cost > budget:
            break
        budget -= cost
        kept.append(char)
    return "".join(kept) + "..."


def _check_budget(value: str | None, max_bytes: int, where: str) -> None:
    if value is not None and encoded_size(value) - 2 > max_bytes:
        raise ValidationError(where, f"takes more than {max_bytes} bytes in the shadow; clip it first")


@dataclass(frozen=True)
class LatencySummary:
    """Per-request inference latency over the last reporting window, in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    """How many requests the window holds; 0 means the figures are zeros because nothing ran."""

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencySummary:
        """Nearest-rank percentiles; an empty window says samples=0 rather than inventing numbers."""
        if not samples_ms:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        ordered = sorted(samples_ms)
        return cls(
            p50_ms=round(_nearest_rank(ordered, 50), 4),
            p95_ms=round(_nearest_rank(ordered, 95), 4),
            p99_ms=round(_nearest_rank(ordered, 99), 4),
            max_ms=round(ordered[-1], 4),
            samples=len(ordered),
        )

    @classmethod
    def from_reported(cls, data: object, where: str) -> LatencySummary:
        """Parse the `latency` object of a report."""
        d = wire.mapping(data, where)
        wire.only_keys(d, set(cls.__dataclass_fields__), where)
        figures = {k: wire.number(d, k, where) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
        return cls(**figures, samples=wire.integer(d, "samples", where, minimum=0))


def _nearest_rank(ordered: Sequence[float], percentile: float) -> float:
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class OverridesReport:
    """What the device did with the desired section: overrides applied, and each refused with its reason."""

    applied: Mapping[str, Any] = field(default_factory=dict)
    rejected: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.applied) > MAX_APPLIED_OVERRIDES or len(self.rejected) > MAX_REJECTED_OVERRIDES:
            raise ValidationError("health.overrides", "too many entries for the shadow; clip them first")
        for key, value in self.applied.items():
            _check_budget(key, OVERRIDE_KEY_MAX_BYTES, "health.overrides.applied")
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValidationError(f"health.overrides.applied.{key}", f"expected a number or string, got {value!r}")
            if encoded_size(value) > MAX_OVERRIDE_VALUE_BYTES:
                raise ValidationError(f"health.overrides.applied.{key}", "value too long for the shadow")
        for key, reason in self.rejected.items():
            _check_budget(key, OVERRIDE_KEY_MAX_BYTES, "health.overrides.rejected")
            _check_budget(reason, OVERRIDE_REASON_MAX_BYTES, f"health.overrides.rejected.{clip(key, 32)}")

    def to_reported(self) -> dict[str, Any]:
        """The `overrides` object of the report: lists, because a shadow update replaces a list but merges an object.

        (An object would keep an override refused yesterday in the shadow after it was fixed today.)
        """
        return {
            "applied": [{"key": key, "value": value} for key, value in self.applied.items()],
            "rejected": [{"key": key, "reason": reason} for key, reason in self.rejected.items()],
        }

    @classmethod
    def from_reported(cls, data: object, where: str) -> OverridesReport:
        """Parse the `overrides` object of a report."""
        d = wire.mapping(data, where)
        wire.only_keys(d, {"applied", "rejected"}, where)
        applied = _pairs(d, "applied", "value", f"{where}")
        for key, value in applied.items():
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValidationError(f"{where}.applied.{key}", f"expected a number or string, got {value!r}")
        rejected = _pairs(d, "rejected", "reason", f"{where}")
        for key, reason in rejected.items():
            if not isinstance(reason, str):
                raise ValidationError(f"{where}.rejected.{key}", f"expected a string, got {reason!r}")
        return cls(applied=applied, rejected=rejected)


def _pairs(data: Mapping[str, Any], key: str, value_key: str, where: str) -> dict[str, Any]:
    """A list of {"key": ..., value_key: ...} objects as a dict; a repeated key is an error."""
    pairs: dict[str, Any] = {}
    for i, item in enumerate(wire.sequence(data, key, where)):
        entry = wire.mapping(item, f"{where}.{key}[{i}]")
        wire.only_keys(entry, {"key", value_key}, f"{where}.{key}[{i}]")
        name = wire.text(entry, "key", f"{where}.{key}[{i}]")
        if name in pairs:
            raise ValidationError(f"{where}.{key}", f"{name!r} is listed twice")
        if value_key not in entry:
            raise ValidationError(f"{where}.{key}[{i}].{value_key}", "is required")
        pairs[name] = entry[value_key]
    return pairs


@dataclass(frozen=True)
class HealthReport:
    """The reported state of the health shadow; within REPORTED_MAX_BYTES by construction.

    None means unknown (the part of the runtime that knows it is not wired or has no data yet),
    never zero: a report does not invent numbers.
    """

    thing_name: str
    model_name: str | None
    model_version: int | None
    model_state: ModelState
    model_detail: str
    inferences: int
    rejected_inputs: int
    errors: int
    latency: LatencySummary
    buffer_depth: int
    records_produced: int
    records_delivered: int
    connected: bool
    reported_at: float
    schema_version: int = HEALTH_SCHEMA_VERSION
    component_version: str | None = None
    """The inference component's own version (the recipe passes it on the command line)."""
    model_component_version: str | None = None
    model_activated_at: float | None = None
    model_rollbacks: int | None = None
    model_signed: bool | None = None
    """Whether the serving model's manifest signature was verified; None when no model serves."""
    model_on_probation: bool | None = None
    mean_confidence: float | None = None
    """Mean top-class confidence over the window; None when nothing was inferred in it."""
    buffer_bytes: int | None = None
    oldest_record_age_s: float | None = None
    evictions: Mapping[str, int] | None = None
    """Records evicted from the full buffer, cumulative, by class (lowercase record kind)."""
    refusals: Mapping[str, int] | None = None
    """Records the full buffer refused (the bound held only more important ones), cumulative, by class."""
    quarantined: int | None = None
    """Corrupt buffer databases moved aside, cumulative."""
    uplink_state: str | None = None
    last_sync_at: float | None = None
    """When the uplink last had a batch confirmed by the far side."""
    overrides: OverridesReport = field(default_factory=OverridesReport)
    drift_score: float | None = None
    """The largest per-feature PSI of the drift window against the model's baseline; None: too few rows or off."""
    drift_rows: int | None = None
    """Rows the drift score covers."""
    drifted_features: tuple[str, ...] | None = None
    """Features at or over driftThreshold, worst first (at most MAX_DRIFTED_FEATURES, names clipped)."""
    confidence_shift: float | None = None
    """Window mean confidence minus the baseline's; negative: the model is less sure than in training."""
    confidence_psi: float | None = None
    samples_taken: int | None = None
    """Hard-example and control samples buffered, cumulative since start; None when no sampler is configured."""
    samples_dropped_budget: int | None = None
    """Samples dropped because the day's sampleBytesPerDay was spent (or one sample alone was too big), cumulative."""
    sample_bytes_today: int | None = None
    """Sample payload bytes spent on the current UTC day."""

    def __post_init__(self) -> None:
        _check_budget(self.model_detail, DETAIL_MAX_BYTES, "health.model_detail")
        _check_budget(self.component_version, VERSION_MAX_BYTES, "health.component_version")
        _check_budget(self.model_component_version, VERSION_MAX_BYTES, "health.model_component_version")
        if self.uplink_state is not None and self.uplink_state not in UPLINK_STATES:
            raise ValidationError("health.uplink_state", f"{self.uplink_state!r}; expected one of {UPLINK_STATES}")
        _check_by_class(self.evictions, "health.evictions")
        _check_by_class(self.refusals, "health.refusals")
        if self.drifted_features is not None:
            if len(self.drifted_features) > MAX_DRIFTED_FEATURES:
                raise ValidationError("health.drifted_features", f"more than {MAX_DRIFTED_FEATURES} names")
            for name in self.drifted_features:
                _check_budget(name, FEATURE_NAME_MAX_BYTES, "health.drifted_features")

    def to_reported(self) -> dict[str, Any]:
        """The `reported` object written to the shadow."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["latency"] = asdict(self.latency)
        data["model_state"] = self.model_state.value
        data["evictions"] = None if self.evictions is None else dict(self.evictions)
        data["refusals"] = None if self.refusals is None else dict(self.refusals)
        data["overrides"] = self.overrides.to_reported()
        data["drifted_features"] = None if self.drifted_features is None else list(self.drifted_features)
        return data

    def to_shadow_update(self) -> dict[str, Any]:
        """A full shadow update document."""
        return {"state": {"reported": self.to_reported()}}

    @property
    def lost_total(self) -> int | None:
        """Records evicted or refused by the buffer so far, whatever the class; None when unknown."""
        if self.evictions is None and self.refusals is None:
            return None
        return sum((self.evictions or {}).values()) + sum((self.refusals or {}).values())

    @classmethod
    def from_reported(cls, data: object) -> HealthReport:
        """Parse a shadow's `reported` object, refusing anything that is not a version-2 health report."""
        where = "health"
        d = wire.mapping(data, where)
        wire.only_keys(d, set(cls.__dataclass_fields__), where)
        version = wire.integer(d, "schema_version", where)
        if version != HEALTH_SCHEMA_VERSION:
            raise ValidationError(
                f"{where}.schema_version", f"{version} is not supported; expected {HEALTH_SCHEMA_VERSION}"
            )
        state = wire.text(d, "model_state", where)
        if state not in ModelState.__members__.values():
            raise ValidationError(f"{where}.model_state", f"{state!r} is not a model state")
        return cls(
            thing_name=wire.text(d, "thing_name", where),
            model_name=_optional(d, "model_name", wire.text),
            model_version=_optional(d, "model_version", wire.integer),
            model_state=ModelState(state),
            model_detail=wire.text(d, "model_detail", where, allow_empty=True),
            inferences=wire.integer(d, "inferences", where, minimum=0),
            rejected_inputs=wire.integer(d, "rejected_inputs", where, minimum=0),
            errors=wire.integer(d, "errors", where, minimum=0),
            latency=LatencySummary.from_reported(d.get("latency"), f"{where}.latency"),
            buffer_depth=wire.integer(d, "buffer_depth", where, minimum=0),
            records_produced=wire.integer(d, "records_produced", where, minimum=0),
            records_delivered=wire.integer(d, "records_delivered", where, minimum=0),
            connected=_flag(d, "connected", where),
            reported_at=wire.number(d, "reported_at", where),
            schema_version=version,
            component_version=_optional(d, "component_version", wire.text),
            model_component_version=_optional(d, "model_component_version", wire.text),
            model_activated_at=_optional(d, "model_activated_at", wire.number),
            model_rollbacks=_optional(d, "model_rollbacks", _count),
            model_signed=_optional(d, "model_signed", _flag),
            model_on_probation=_optional(d, "model_on_probation", _flag),
            mean_confidence=_optional(d, "mean_confidence", wire.number),
            buffer_bytes=_optional(d, "buffer_bytes", _count),
            oldest_record_age_s=_optional(d, "oldest_record_age_s", wire.number),
            evictions=_optional(d, "evictions", _counts),
            refusals=_optional(d, "refusals", _counts),
            quarantined=_optional(d, "quarantined", _count),
            uplink_state=_optional(d, "uplink_state", wire.text),
            last_sync_at=_optional(d, "last_sync_at", wire.number),
            overrides=OverridesReport.from_reported(d.get("overrides"), f"{where}.overrides"),
            drift_score=_optional(d, "drift_score", wire.number),
            drift_rows=_optional(d, "drift_rows", _count),
            drifted_features=_optional(d, "drifted_features", _names),
            confidence_shift=_optional(d, "confidence_shift", wire.number),
            confidence_psi=_optional(d, "confidence_psi", wire.number),
            samples_taken=_optional(d, "samples_taken", _count),
            samples_dropped_budget=_optional(d, "samples_dropped_budget", _count),
            sample_bytes_today=_optional(d, "sample_bytes_today", _count),
        )

    @classmethod
    def from_shadow(cls, document: Mapping[str, Any]) -> HealthReport:
        """Parse a full shadow document as returned by GetThingShadow."""
        state = wire.mapping(document.get("state"), "shadow.state")
        return cls.from_reported(state.get("reported"))


def _check_by_class(counts: Mapping[str, int] | None, where: str) -> None:
    if counts is None:
        return
    if len(counts) > MAX_EVICTION_CLASSES:
        raise ValidationError(where, f"more than {MAX_EVICTION_CLASSES} classes")
    for kind, count in counts.items():
        _check_budget(kind, EVICTION_CLASS_MAX_BYTES, where)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError(f"{where}.{kind}", f"expected a count >= 0, got {count!r}")


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValidationError(f"{where}.{key}", f"expected true or false, got {value!r}")
    return value


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    return wire.integer(data, key, where, minimum=0)


def _counts(data: Mapping[str, Any], key: str, where: str) -> dict[str, int]:
    counts = wire.mapping(data[key], f"{where}.{key}")
    return {kind: _count(counts, kind, f"{where}.{key}") for kind in counts}


def _names(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    names = wire.sequence(data, key, where)
    if not all(isinstance(name, str) for name in names):
        raise ValidationError(f"{where}.{key}", f"expected a list of names, got {names!r}")
    return tuple(names)


def _optional(data: Mapping[str, Any], key: str, read: Callable[[Mapping[str, Any], str, str], Any]) -> Any:
    """A key that may be null or absent: both mean unknown (a shadow update deletes a key set to null)."""
    return None if data.get(key) is None else read(data, key, "health")


# --- when to report -------------------------------------------------------------------------------

BUFFER_FILL_THRESHOLDS = (0.5, 0.8, 0.95)
"""Fractions of bufferMaxBytes whose crossing (either way) is worth a report before the interval."""


@dataclass(frozen=True)
class ReportPolicy:
    """How often the health shadow is written: on the interval, and on a change but never faster than the floor."""

    interval_s: float
    min_interval_s: float
    buffer_max_bytes: int | None = None
    drift_threshold: float | None = None

    @classmethod
    def from_config(cls, config: DeviceConfig) -> ReportPolicy:
        """The policy a device configuration asks for."""
        return cls(
            config.healthIntervalSeconds, config.healthMinIntervalSeconds, config.bufferMaxBytes, config.driftThreshold
        )

    @property
    def floor_s(self) -> float:
        """The shortest gap between two writes (a floor above the interval would never fire)."""
        return min(self.min_interval_s, self.interval_s)


def _fill_band(report: HealthReport, policy: ReportPolicy) -> int | None:
    if report.buffer_bytes is None or not policy.buffer_max_bytes:
        return None
    fill = report.buffer_bytes / policy.buffer_max_bytes
    return sum(fill >= t for t in BUFFER_FILL_THRESHOLDS)


def _over_threshold(report: HealthReport, policy: ReportPolicy) -> bool | None:
    if report.drift_score is None or policy.drift_threshold is None:
        return None
    return report.drift_score >= policy.drift_threshold


def _model_of(report: HealthReport) -> tuple[object, ...]:
    return (
        report.model_state,
        report.model_version,
        report.model_component_version,
        report.model_detail,
        report.model_on_probation,
    )


def _fill_crossed(last: int | bool | None, current: int | bool | None) -> bool:
    return last is not None and current is not None and last != current


def _increased(last: int | None, current: int | None) -> bool:
    return current is not None and current > (last or 0)


ChangeRule = Callable[[HealthReport, HealthReport, ReportPolicy], bool]

CHANGE_RULES: Mapping[str, ChangeRule] = MappingProxyType(
    {
        "model": lambda a, b, _: _model_of(a) != _model_of(b),
        "rollback": lambda a, b, _: _increased(a.model_rollbacks, b.model_rollbacks),
        "uplink": lambda a, b, _: (a.uplink_state, a.connected) != (b.uplink_state, b.connected),
        "records lost": lambda a, b, _: _increased(a.lost_total, b.lost_total),
        "quarantine": lambda a, b, _: _increased(a.quarantined, b.quarantined),
        "overrides": lambda a, b, _: a.overrides != b.overrides,
        "component": lambda a, b, _: a.component_version != b.component_version,
        "buffer fill": lambda a, b, p: _fill_crossed(_fill_band(a, p), _fill_band(b, p)),
        "drift": lambda a, b, p: _fill_crossed(_over_threshold(a, p), _over_threshold(b, p)),
    }
)
"""Changes worth a report before the interval is up, each a named test of (last sent, current, policy)."""


def report_due(
    last: HealthReport | None, current: HealthReport, now: float, policy: ReportPolicy, last_attempt_at: float | None
) -> str | None:
    """Why the health shadow should be written now (a CHANGE_RULES name, "first" or "interval"), or None.

    `last` is the last report the far side accepted; `last_attempt_at` the last write tried, failed or
    not, so a dead uplink is retried at most once per floor.
    """
    if last_attempt_at is not None and now - last_attempt_at < policy.floor_s:
        return None
    if last is None:
        return "first"
    for name, changed in CHANGE_RULES.items():
        if changed(last, current, policy):
            return name
    since = now - max(last.reported_at, last_attempt_at if last_attempt_at is not None else -math.inf)
    return "interval" if since >= policy.interval_s else None
