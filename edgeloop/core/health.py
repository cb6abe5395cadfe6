"""The health report each device writes to its named shadow, and the rules that summarise it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError

HEALTH_SCHEMA_VERSION = 1


class ModelState(StrEnum):
    """Where the device's model is in its life; every change shows in the shadow."""

    NONE = "none"
    VERIFYING = "verifying"
    ACTIVE = "active"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class LatencySummary:
    """Per-request inference latency over the last reporting window, in milliseconds."""

    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencySummary:
        """Nearest-rank percentiles; an empty window reports zeros rather than inventing numbers."""
        if not samples_ms:
            return cls(0.0, 0.0, 0.0)
        ordered = sorted(samples_ms)
        return cls(
            p50_ms=round(_nearest_rank(ordered, 50), 4),
            p99_ms=round(_nearest_rank(ordered, 99), 4),
            max_ms=round(ordered[-1], 4),
        )


def _nearest_rank(ordered: Sequence[float], percentile: float) -> float:
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class HealthReport:
    """The reported state of the health shadow; small enough for the 8 KB shadow limit."""

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

    def to_reported(self) -> dict[str, Any]:
        """The `reported` object written to the shadow."""
        data = asdict(self)
        data["model_state"] = self.model_state.value
        return data

    def to_shadow_update(self) -> dict[str, Any]:
        """A full shadow update document."""
        return {"state": {"reported": self.to_reported()}}

    @classmethod
    def from_reported(cls, data: object) -> HealthReport:
        """Parse a shadow's `reported` object, refusing anything that is not a health report."""
        where = "health"
        d = wire.mapping(data, where)
        wire.only_keys(d, set(cls.__dataclass_fields__), where)
        latency = wire.mapping(d.get("latency"), f"{where}.latency")
        wire.only_keys(latency, {"p50_ms", "p99_ms", "max_ms"}, f"{where}.latency")
        if not isinstance(d.get("connected"), bool):
            raise ValidationError(f"{where}.connected", f"expected true or false, got {d.get('connected')!r}")
        state = wire.text(d, "model_state", where)
        if state not in ModelState.__members__.values():
            raise ValidationError(f"{where}.model_state", f"{state!r} is not a model state")
        return cls(
            thing_name=wire.text(d, "thing_name", where),
            model_name=_optional_text(d, "model_name"),
            model_version=None if d.get("model_version") is None else wire.integer(d, "model_version", where),
            model_state=ModelState(state),
            model_detail=wire.text(d, "model_detail", where, allow_empty=True),
            inferences=wire.integer(d, "inferences", where, minimum=0),
            rejected_inputs=wire.integer(d, "rejected_inputs", where, minimum=0),
            errors=wire.integer(d, "errors", where, minimum=0),
            latency=LatencySummary(
                **{k: wire.number(latency, k, f"{where}.latency") for k in ("p50_ms", "p99_ms", "max_ms")}
            ),
            buffer_depth=wire.integer(d, "buffer_depth", where, minimum=0),
            records_produced=wire.integer(d, "records_produced", where, minimum=0),
            records_delivered=wire.integer(d, "records_delivered", where, minimum=0),
            connected=d["connected"],
            reported_at=wire.number(d, "reported_at", where),
            schema_version=wire.integer(d, "schema_version", where),
        )

    @classmethod
    def from_shadow(cls, document: Mapping[str, Any]) -> HealthReport:
        """Parse a full shadow document as returned by GetThingShadow."""
        state = wire.mapping(document.get("state"), "shadow.state")
        return cls.from_reported(state.get("reported"))


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"health.{key}", f"expected a string or null, got {value!r}")
    return value
