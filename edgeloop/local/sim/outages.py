"""Outages a scenario rehearses: network partitions (per device share, per ring, fleet-wide, optionally
flapping) and restarts of the local cloud's IoT Core stand-in, as plain functions of simulated time.

A partitioned device keeps inferring and buffering; its link refuses publishes until the partition ends.
A link that goes down while a publish is on the wire loses the acknowledgement, not the message: the cloud
has it, the device retries, and the cloud must recognise the duplicate (see `ack_lost`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError

OUTAGE_KINDS = ("partition", "restart")
OUTAGE_SCOPES = ("fleet", "ring", "share")
OUTAGE_KEYS = {"kind", "scope", "ring", "share", "from_s", "to_s", "flap_s"}


@dataclass(frozen=True)
class Outage:
    """Links down from from_s to to_s for the devices in scope; flap_s alternates down/up in periods of that length.

    kind "restart" is the IoT Core stand-in restarting: every connection drops for the span (scope is the
    fleet) and acknowledgements of publishes in flight when it goes down are lost.
    """

    kind: str
    from_s: float
    to_s: float
    scope: str = "fleet"
    ring: str | None = None
    share: float = 1.0
    flap_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTAGE_KINDS:
            raise ValidationError("outages[].kind", f"{self.kind!r}; expected one of {OUTAGE_KINDS}")
        if self.scope not in OUTAGE_SCOPES:
            raise ValidationError("outages[].scope", f"{self.scope!r}; expected one of {OUTAGE_SCOPES}")
        if self.kind == "restart" and self.scope != "fleet":
            raise ValidationError("outages[].scope", "a restart drops every connection: its scope is fleet")
        if not (math.isfinite(self.from_s) and math.isfinite(self.to_s)) or not 0 <= self.from_s < self.to_s:
            raise ValidationError("outages[].to_s", f"need 0 <= from_s < to_s, got {self.from_s} and {self.to_s}")
        if (self.scope == "ring") != (self.ring is not None):
            raise ValidationError("outages[].ring", "name a ring exactly when scope is ring")
        if not 0.0 < self.share <= 1.0:
            raise ValidationError("outages[].share", f"{self.share} is outside (0, 1]")
        if self.flap_s is not None and not (math.isfinite(self.flap_s) and self.flap_s > 0):
            raise ValidationError("outages[].flap_s", f"must be a number > 0, got {self.flap_s}")

    @property
    def duration_s(self) -> float:
        """Seconds the outage spans (flapping spans count whole: the link is unreliable throughout)."""
        return self.to_s - self.from_s

    def covers(self, device_index: int, devices: int, ring: str) -> bool:
        """Whether a device is in scope: the whole fleet, one ring, or the first share of the devices."""
        if self.scope == "ring":
            return ring == self.ring
        if self.scope == "share":
            return device_index < math.ceil(self.share * devices)
        return True

    def down_at(self, now_s: float) -> bool:
        """Whether the outage holds links down at now_s (flapping: down in even periods, up in odd ones)."""
        if not self.from_s <= now_s < self.to_s:
            return False
        if self.flap_s is None:
            return True
        return int((now_s - self.from_s) // self.flap_s) % 2 == 0

    @classmethod
    def from_dict(cls, data: object, where: str) -> Outage:
        """Validate one scenario outage entry; errors name the entry and key."""
        d = wire.mapping(data, where)
        wire.only_keys(d, OUTAGE_KEYS, where)
        try:
            return cls(
                kind=wire.text(d, "kind", where),
                from_s=wire.number(d, "from_s", where),
                to_s=wire.number(d, "to_s", where),
                scope=wire.text(d, "scope", where) if "scope" in d else "fleet",
                ring=wire.text(d, "ring", where) if "ring" in d else None,
                share=wire.number(d, "share", where) if "share" in d else 1.0,
                flap_s=wire.number(d, "flap_s", where) if "flap_s" in d else None,
            )
        except ValidationError as exc:
            raise ValidationError(exc.field.replace("outages[]", where), exc.message) from exc

    def to_dict(self) -> dict[str, Any]:
        """The scenario form, for the summary."""
        out: dict[str, Any] = {"kind": self.kind, "scope": self.scope, "from_s": self.from_s, "to_s": self.to_s}
        if self.ring is not None:
            out["ring"] = self.ring
        if self.scope == "share":
            out["share"] = self.share
        if self.flap_s is not None:
            out["flap_s"] = self.flap_s
        return out


def link_up(outages: Sequence[Outage], now_s: float, device_index: int, devices: int, ring: str) -> bool:
    """Whether a device's link to IoT Core is up at now_s."""
    return not any(o.down_at(now_s) and o.covers(device_index, devices, ring) for o in outages)


def ack_lost(
    outages: Sequence[Outage], now_s: float, step_s: float, device_index: int, devices: int, ring: str
) -> bool:
    """A publish at now_s reaches IoT Core but its PUBACK does not reach the device: the link drops within the step."""
    return link_up(outages, now_s, device_index, devices, ring) and not link_up(
        outages, now_s + step_s, device_index, devices, ring
    )


def outage_spans(outages: Sequence[Outage]) -> list[tuple[float, float]]:
    """The union of the outages' spans, merged and sorted: what the report shades."""
    spans = sorted((o.from_s, o.to_s) for o in outages)
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def outage_seconds(outages: Sequence[Outage]) -> float:
    """Simulated seconds during which at least one outage held."""
    return sum(end - start for start, end in outage_spans(outages))


def parse_outages(items: Sequence[object], where: str) -> tuple[Outage, ...]:
    """A scenario's outages list, each entry validated."""
    return tuple(Outage.from_dict(item, f"{where}[{i}]") for i, item in enumerate(items))


def outages_mapping(outages: Sequence[Outage]) -> list[Mapping[str, Any]]:
    """The summary form of a scenario's outages."""
    return [o.to_dict() for o in outages]
