"""What a fleet's uplink costs per device per month on AWS IoT Core (us-east-1), against streaming raw readings.

The figures are the published us-east-1 list prices (no free tier, first volume tier) from the pages named in
SOURCES. Usage over a simulated run is billed in the service's own units (5 KB messages, 1 KB shadow
operations, 5 KB rule evaluations) and scaled linearly to a 30-day month. Raw streaming sends every reading as
its own message of at most 5 KB that triggers one rule with one action; its sink (say a batching stream) is not
priced, so the comparison flatters raw streaming rather than the edge.

Why raw streaming can be the cheaper one (`break_even`): the edge pays the Greengrass core-device fee, a fixed
sum per device per month whatever it serves, while raw streaming pays per reading (a message, a rule and an
action each) and the edge far less per reading (it batches many readings into one message). At a low request
rate the fixed fee outweighs what batching saves; the break-even rate is that fee over the per-reading saving.
Connection minutes and shadow updates are the same for both and cancel out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from edgeloop.core.errors import ValidationError

MONTH_S = 30 * 24 * 3600
KB = 1024
MESSAGE_UNIT_BYTES = 5 * KB
"""MQTT and HTTP messages are metered in 5 KB increments (an 8 KB publish is two messages)."""
SHADOW_UNIT_BYTES = 1 * KB
"""Device Shadow and registry operations are metered in 1 KB increments of the record."""
RULE_UNIT_BYTES = 5 * KB
"""Rules triggered and actions executed are metered in 5 KB increments of the processed message."""
MILLION = 1_000_000
SOURCES = (
    "AWS IoT Core pricing, aws.amazon.com/iot-core/pricing (US East (N. Virginia))",
    "AWS IoT Core additional metering details, aws.amazon.com/iot-core/pricing/additional-details",
    "Amazon S3 pricing, aws.amazon.com/s3/pricing (S3 Standard requests)",
    "AWS IoT Greengrass pricing, aws.amazon.com/greengrass/pricing (1 to 10,000 core devices)",
)


@dataclass(frozen=True)
class Pricing:
    """List prices in USD for us-east-1, as published; a different region or date is a different Pricing."""

    connectivity_per_million_minutes: float = 0.08
    messaging_per_million: float = 1.00
    """The first billion messages a month; heavier fleets pay less per message after that."""
    shadow_registry_per_million: float = 1.25
    rules_triggered_per_million: float = 0.15
    actions_executed_per_million: float = 0.15
    s3_put_per_thousand: float = 0.005
    greengrass_per_core_device_month: float = 0.16
    """Only the edge pays it: a raw-streaming device needs no Greengrass nucleus."""


@dataclass(frozen=True)
class Metered:
    """A count of requests and the billing units they come to."""

    count: int = 0
    units: int = 0

    def __post_init__(self) -> None:
        if self.count < 0 or self.units < self.count:
            raise ValidationError("metered", f"need 0 <= count <= units, got count={self.count} units={self.units}")

    @classmethod
    def of_sizes(cls, sizes: Iterable[int], unit_bytes: int) -> Metered:
        """Each request billed in whole units of unit_bytes (at least one, even when empty)."""
        counted = [max(1, math.ceil(size / unit_bytes)) for size in sizes]
        return cls(len(counted), sum(counted))

    @classmethod
    def of_mean(cls, count: int, total_bytes: int, unit_bytes: int) -> Metered:
        """count requests assumed all of the mean size, when only totals were recorded."""
        if count <= 0:
            return cls()
        return cls(count, count * max(1, math.ceil(total_bytes / count / unit_bytes)))


@dataclass(frozen=True)
class UplinkUsage:
    """What a fleet of devices sent over duration_s simulated seconds, in the units AWS bills."""

    devices: int
    duration_s: float
    readings: int
    """Readings the fleet took: what raw streaming would send, one message each."""
    messages: Metered = Metered()
    """The edge's MQTT publishes (5 KB units)."""
    shadow_updates: Metered = Metered()
    """Device Shadow updates (1 KB units); both architectures report state the same way."""
    rules_triggered: Metered = Metered()
    """The edge's rule evaluations (5 KB units); each executes actions_per_rule actions."""
    actions_per_rule: int = 1
    s3_puts: int = 0
    """Objects the edge's rule actions write to S3 (results and sample uploads)."""
    connected_minutes: float | None = None
    """None: every device connected for the whole run."""

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValidationError("devices", f"must be at least 1, got {self.devices}")
        if not self.duration_s > 0:
            raise ValidationError("duration_s", f"must be positive, got {self.duration_s}")
        if self.readings < 0 or self.actions_per_rule < 0 or self.s3_puts < 0:
            raise ValidationError("usage", "readings, actions_per_rule and s3_puts must not be negative")

    @property
    def minutes(self) -> float:
        """Connection minutes over the run."""
        if self.connected_minutes is not None:
            return self.connected_minutes
        return self.devices * self.duration_s / 60


@dataclass(frozen=True)
class CostEstimate:
    """USD per device per 30-day month for the edge's uplink and for streaming every reading raw."""

    edge_usd_per_device_month: float
    raw_usd_per_device_month: float
    assumptions: dict[str, object] = field(default_factory=dict)
    edge_breakdown: dict[str, float] = field(default_factory=dict)
    raw_breakdown: dict[str, float] = field(default_factory=dict)
    break_even: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """summary.json's cost section."""
        return {
            "edge_usd_per_device_month": round(self.edge_usd_per_device_month, 6),
            "raw_usd_per_device_month": round(self.raw_usd_per_device_month, 6),
            "assumptions": self.assumptions,
            "edge_breakdown_usd_per_device_month": {k: round(v, 6) for k, v in self.edge_breakdown.items()},
            "raw_breakdown_usd_per_device_month": {k: round(v, 6) for k, v in self.raw_breakdown.items()},
            "break_even": self.break_even,
        }


def estimate(usage: UplinkUsage, pricing: Pricing = Pricing()) -> CostEstimate:
    """Price the edge's usage and the raw-streaming alternative, per device per month."""
    scale = MONTH_S / usage.duration_s / usage.devices
    edge = {k: v * scale for k, v in _edge_charges(usage, pricing).items()}
    edge["greengrass"] = pricing.greengrass_per_core_device_month
    raw = {k: v * scale for k, v in _raw_charges(usage, pricing).items()}
    even = break_even(usage.readings * scale, edge, raw)
    return CostEstimate(sum(edge.values()), sum(raw.values()), assumptions(usage, pricing), edge, raw, even)


PER_READING_ITEMS = ("messaging", "rules", "actions", "s3_puts")
"""The line items that grow with the readings served (connectivity and shadow are the same for both)."""
FIXED_ITEMS = ("greengrass",)
"""The edge's line items that do not grow with the readings served."""


def break_even(readings_per_device_month: float, edge: dict[str, float], raw: dict[str, float]) -> dict[str, object]:
    """The request rate per device above which the edge costs less than raw streaming, and why.

    Both per-reading costs come from the run (USD per device-month over readings per device-month); the edge's
    is an upper bound at higher rates (fuller batches bill fewer 5 KB units per reading), so the break-even
    rate is one too. None when the edge saves nothing per reading.
    """
    fixed = sum(edge.get(k, 0.0) for k in FIXED_ITEMS)
    if readings_per_device_month <= 0:
        return {"requests_per_s_per_device": None, "why": "no readings served: nothing to compare per reading"}
    edge_each = sum(edge.get(k, 0.0) for k in PER_READING_ITEMS) / readings_per_device_month
    raw_each = sum(raw.get(k, 0.0) for k in PER_READING_ITEMS) / readings_per_device_month
    run_rate = readings_per_device_month / MONTH_S
    saving = raw_each - edge_each
    rate = fixed / saving / MONTH_S if saving > 0 else None
    result: dict[str, object] = {
        "requests_per_s_per_device": None if rate is None else round(rate, 6),
        "run_requests_per_s_per_device": round(run_rate, 6),
        "edge_fixed_usd_per_device_month": round(fixed, 6),
        "edge_usd_per_million_readings": round(edge_each * MILLION, 4),
        "raw_usd_per_million_readings": round(raw_each * MILLION, 4),
    }
    if rate is None:
        result["why"] = "the edge costs as much per reading as raw streaming here: it never catches up its fixed fee"
    else:
        side = "below" if run_rate < rate else "above"
        result["why"] = (
            f"the edge pays a fixed ${fixed:.2f} per device-month (Greengrass core device) whatever it serves; "
            f"raw streaming pays ${raw_each * MILLION:.2f} per million readings (a message, a rule and an action "
            f"each) against the edge's ${edge_each * MILLION:.2f} (batched); the saving pays the fee back above "
            f"{rate:.4g} requests/s per device ({rate * 60:.3g} a minute); this run served {run_rate:.4g}, {side} it"
        )
    return result


def _edge_charges(usage: UplinkUsage, pricing: Pricing) -> dict[str, float]:
    """USD over the run, per line item, for what the edge sent."""
    rules = usage.rules_triggered.units
    return {
        "connectivity": usage.minutes * pricing.connectivity_per_million_minutes / MILLION,
        "messaging": usage.messages.units * pricing.messaging_per_million / MILLION,
        "shadow": usage.shadow_updates.units * pricing.shadow_registry_per_million / MILLION,
        "rules": rules * pricing.rules_triggered_per_million / MILLION,
        "actions": rules * usage.actions_per_rule * pricing.actions_executed_per_million / MILLION,
        "s3_puts": usage.s3_puts * pricing.s3_put_per_thousand / 1000,
    }


def _raw_charges(usage: UplinkUsage, pricing: Pricing) -> dict[str, float]:
    """USD over the run, per line item, for one message, one rule and one action per reading."""
    n = usage.readings
    return {
        "connectivity": usage.minutes * pricing.connectivity_per_million_minutes / MILLION,
        "messaging": n * pricing.messaging_per_million / MILLION,
        "shadow": usage.shadow_updates.units * pricing.shadow_registry_per_million / MILLION,
        "rules": n * pricing.rules_triggered_per_million / MILLION,
        "actions": n * pricing.actions_executed_per_million / MILLION,
    }


def assumptions(usage: UplinkUsage, pricing: Pricing = Pricing()) -> dict[str, object]:
    """The prices, metering rules and usage behind an estimate, stated so a reader can redo the sums."""
    return {
        "region": "us-east-1",
        "currency": "USD",
        "month_days": MONTH_S // 86400,
        "prices": {f.name: getattr(pricing, f.name) for f in fields(pricing)},
        "metering": {
            "message_unit_bytes": MESSAGE_UNIT_BYTES,
            "shadow_unit_bytes": SHADOW_UNIT_BYTES,
            "rule_unit_bytes": RULE_UNIT_BYTES,
        },
        "usage": {
            "devices": usage.devices,
            "duration_s": usage.duration_s,
            "readings": usage.readings,
            "messages": usage.messages.count,
            "message_units": usage.messages.units,
            "shadow_updates": usage.shadow_updates.count,
            "shadow_units": usage.shadow_updates.units,
            "rules_triggered_units": usage.rules_triggered.units,
            "actions_per_rule": usage.actions_per_rule,
            "s3_puts": usage.s3_puts,
            "connected_minutes": round(usage.minutes, 3),
        },
        "notes": [
            "list prices, no free tier, first messaging volume tier (under a billion messages a month)",
            "usage over the simulated run scaled linearly to a 30-day month per device",
            "raw streaming: every reading its own message (one 5 KB unit), one rule, one action; "
            "the raw sink's own charges are not included",
            "the edge pays the Greengrass core-device fee; both pay the same connection minutes and shadow updates",
        ],
        "sources": list(SOURCES),
    }
