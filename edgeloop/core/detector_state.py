"""The error-stream detector's state (edgeloop.core.detectors): a few counters the cloud trigger stores as JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError

_COUNTS = (
    "reference_errors",
    "reference_trials",
    "refreshes",
    "warmup_left",
    "pending_errors",
    "pending_trials",
    "monitored",
    "skipped",
    "alarms",
)


@dataclass(frozen=True)
class DetectorState:
    """Everything the detector knows, small enough for one item: reference counts and one CUSUM per alternative."""

    reference_errors: int
    reference_trials: int
    refreshes: int = 0
    """Times watched samples joined the reference (j of its risk b_j)."""
    warmup_left: int = 0
    pending_errors: int = 0
    pending_trials: int = 0
    """Watched samples since the last refresh, not yet in the reference."""
    monitored: int = 0
    skipped: int = 0
    """Samples not used (biased ones under use='unbiased')."""
    alarms: int = 0
    cusums: tuple[tuple[float, int, int], ...] = ()
    """Per alternative: (statistic, samples in its current run, errors in that run)."""

    def __post_init__(self) -> None:
        where = "detector_state"
        for key in _COUNTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"{where}.{key}", f"must be an integer >= 0, got {value!r}")
        if self.reference_errors > self.reference_trials:
            raise ValidationError(f"{where}.reference_errors", "more errors than trials")
        if self.pending_errors > self.pending_trials or self.pending_trials > self.monitored:
            raise ValidationError(f"{where}.pending_trials", "pending samples must be watched samples")
        for statistic, run, errors in self.cusums:
            if not math.isfinite(statistic) or statistic < 0.0 or not 0 <= errors <= run <= self.monitored:
                raise ValidationError(f"{where}.cusums", f"({statistic}, {run}, {errors}) is not a CUSUM state")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the trigger's state item."""
        data: dict[str, Any] = {key: getattr(self, key) for key in _COUNTS}
        data["cusums"] = [list(c) for c in self.cusums]
        return data

    @classmethod
    def from_dict(cls, data: object) -> DetectorState:
        """Parse a persisted state, refusing anything that is not one (ValidationError naming the field)."""
        where = "detector_state"
        d = wire.mapping(data, where)
        wire.only_keys(d, set(cls.__dataclass_fields__), where)
        cusums = []
        for item in wire.sequence(d, "cusums", where):
            if not isinstance(item, list) or len(item) != 3:
                raise ValidationError(f"{where}.cusums", f"expected [statistic, run, errors], got {item!r}")
            statistic = finite_number(item[0], f"{where}.cusums")
            run, errors = (_count(v, f"{where}.cusums") for v in item[1:])
            cusums.append((statistic, run, errors))
        counts = {key: wire.integer(d, key, where, minimum=0) for key in _COUNTS}
        return cls(**counts, cusums=tuple(cusums))


def finite_number(value: object, where: str) -> float:
    """A finite JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(where, f"expected a finite number, got {value!r}")
    return float(value)


def _count(value: object, where: str) -> int:
    """A JSON integer >= 0 (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(where, f"expected an integer >= 0, got {value!r}")
    return value
