"""From one device's health reports to increments of the per-(rollout, version, ring) aggregates.

The health-ingest handler keeps each device's last counted report (a DeviceSnapshot) and adds only what a
new report changes, so aggregates are sums of atomic counter updates. A report whose shadow version is not
newer than the snapshot's changes nothing: IoT rules deliver at least once and not always in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.health import HealthReport, ModelState
from edgeloop.core.names import validate_thing_name
from edgeloop.core.rollout import LATENCY_BUCKETS_MS, VersionHealth, latency_bucket

FAILED_STATES = frozenset({ModelState.REJECTED, ModelState.ROLLED_BACK})
"""A device in one of these while its ring targets a version did not activate that version."""
NO_BUCKET = -1
FLOAT_SLACK = 1e-6
"""How far below zero a float sum may round (scores added and removed again) and still read as zero."""


@dataclass(frozen=True)
class DeviceSnapshot:
    """What the aggregates already hold from one device: its last counted report, reduced to the counted parts."""

    thing_name: str
    ring: int
    shadow_version: int = 0
    model_version: int | None = None
    active: bool = False
    inferences: int = 0
    errors: int = 0
    p99_bucket: int = NO_BUCKET
    """The histogram bucket this device's p99 sits in for model_version (NO_BUCKET: none yet)."""
    failed_versions: tuple[int, ...] = ()
    """Versions this device was counted as failing to activate (each counted once)."""
    drift: float | None = None
    """The drift score this device holds in model_version's drift sum (a level, counted once per device)."""

    def __post_init__(self) -> None:
        validate_thing_name(self.thing_name)
        if self.ring < 0:
            raise ValidationError("ring", f"must be >= 0, got {self.ring}")

    def to_dict(self) -> dict[str, Any]:
        """Item form for the devices table."""
        return {
            "thing_name": self.thing_name,
            "ring": self.ring,
            "shadow_version": self.shadow_version,
            "model_version": self.model_version,
            "active": self.active,
            "inferences": self.inferences,
            "errors": self.errors,
            "p99_bucket": self.p99_bucket,
            "failed_versions": list(self.failed_versions),
            "drift": self.drift,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSnapshot:
        """Parse the item form."""
        where = "device"
        wire.only_keys(data, set(cls.__dataclass_fields__), where)
        version = data.get("model_version")
        return cls(
            thing_name=wire.text(data, "thing_name", where),
            ring=wire.integer(data, "ring", where, minimum=0),
            shadow_version=wire.integer(data, "shadow_version", where, minimum=0),
            model_version=None if version is None else wire.integer(data, "model_version", where, minimum=1),
            active=bool(data.get("active", False)),
            inferences=wire.integer(data, "inferences", where, minimum=0),
            errors=wire.integer(data, "errors", where, minimum=0),
            p99_bucket=wire.integer(data, "p99_bucket", where, minimum=NO_BUCKET),
            failed_versions=tuple(int(v) for v in wire.sequence(data, "failed_versions", where)),
            drift=None if data.get("drift") is None else wire.number(data, "drift", where),
        )


@dataclass(frozen=True)
class Contribution:
    """The device's new snapshot and the increments (possibly negative) it adds to each version's aggregate."""

    snapshot: DeviceSnapshot
    increments: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    """version -> {VersionHealth field or 'p99_histogram.<bucket>': increment}."""


def contribution(
    previous: DeviceSnapshot,
    report: HealthReport,
    shadow_version: int,
    targeted_version: int | None,
) -> Contribution | None:
    """What a new report adds; None when the snapshot already counted this shadow version or a later one.

    Counters on the device restart from zero with the component, so a drop means a restart: the new value
    is all new. Inferences between two reports count for the version the later report names.
    """
    if shadow_version <= previous.shadow_version:
        return None
    adds: dict[int, dict[str, float]] = {}

    def add(version: int | None, key: str, amount: float) -> None:
        if version is not None and amount:
            bucket = adds.setdefault(version, {})
            bucket[key] = bucket.get(key, 0) + amount

    version = report.model_version
    active = report.model_state is ModelState.ACTIVE and version is not None
    if (previous.model_version, previous.active) != (version, active):
        add(previous.model_version if previous.active else None, "devices_on_version", -1)
        add(version if active else None, "devices_on_version", 1)
    inferences = _since(previous.inferences, report.inferences)
    errors = _since(previous.errors, report.errors)
    add(version, "inferences", inferences)
    add(version, "errors", errors)
    samples = report.latency.samples
    if report.mean_confidence is not None and samples:
        add(version, "confidence_sum", report.mean_confidence * samples)
        add(version, "confidence_count", samples)
    bucket = previous.p99_bucket if version == previous.model_version else NO_BUCKET
    if samples:
        new_bucket = latency_bucket(report.latency.p99_ms)
        if (version, new_bucket) != (previous.model_version, previous.p99_bucket):
            if previous.p99_bucket != NO_BUCKET:
                add(previous.model_version, f"p99_histogram.{previous.p99_bucket}", -1)
            add(version, f"p99_histogram.{new_bucket}", 1)
        bucket = new_bucket
    elif version != previous.model_version and previous.p99_bucket != NO_BUCKET:
        add(previous.model_version, f"p99_histogram.{previous.p99_bucket}", -1)
    drift = report.drift_score if report.drift_score is not None else _kept_drift(previous, version)
    if (previous.model_version, previous.drift) != (version, drift):
        if previous.drift is not None:
            add(previous.model_version, "drift_sum", -previous.drift)
            add(previous.model_version, "drift_count", -1)
        if drift is not None:
            add(version, "drift_sum", drift)
            add(version, "drift_count", 1)
    failed = previous.failed_versions
    refused = report.model_state in FAILED_STATES and version != targeted_version
    if targeted_version is not None and refused and targeted_version not in failed:
        add(targeted_version, "activation_failures", 1)
        failed = (*failed, targeted_version)
    snapshot = replace(
        previous,
        shadow_version=shadow_version,
        model_version=version,
        active=active,
        inferences=report.inferences,
        errors=report.errors,
        p99_bucket=bucket,
        failed_versions=failed,
        drift=drift,
    )
    return Contribution(snapshot, {v: dict(changes) for v, changes in adds.items()})


def _kept_drift(previous: DeviceSnapshot, version: int | None) -> float | None:
    """A report without a score (too few rows since a swap) keeps the last one only for the same version."""
    return previous.drift if version == previous.model_version else None


def _since(previous: int, current: int) -> int:
    """Growth of a device counter since the last counted report (a restart starts it from zero)."""
    return current - previous if current >= previous else current


def apply_increments(health: VersionHealth, increments: Mapping[str, float]) -> VersionHealth:
    """The aggregate after one contribution: what the DynamoDB ADD does, for the in-memory store and tests."""
    values = health.to_dict()
    histogram = list(health.p99_histogram)
    for key, amount in increments.items():
        if key.startswith("p99_histogram."):
            index = int(key.split(".", 1)[1])
            if not 0 <= index <= len(LATENCY_BUCKETS_MS):
                raise ValidationError("increments", f"no histogram bucket {index}")
            histogram[index] += int(amount)
        elif key in values and key != "p99_histogram":
            values[key] += int(amount) if isinstance(values[key], int) else amount
            if isinstance(values[key], float) and -FLOAT_SLACK < values[key] < 0:
                values[key] = 0.0  # a sum of scores added and taken away again: rounding, not a negative
        else:
            raise ValidationError("increments", f"unknown aggregate field {key!r}")
    values["p99_histogram"] = histogram
    return VersionHealth.from_dict(values)
