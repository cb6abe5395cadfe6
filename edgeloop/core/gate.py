"""The accuracy gate: which compressed variants may ship, and which one a device should run.

Pure: given each variant's holdout metric and size, the bound and an optional floor, it returns the
manifest's `Gate` and the selected precision. Training measures; this decides; the manifest records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import PRECISIONS, REFERENCE_PRECISION, Gate

DEFAULT_METRIC = "accuracy"
DEFAULT_BOUND = 0.01
"""One percentage point of the metric: the drop a compressed variant may have versus the reference."""
DECIMALS = 6
"""Drops are rounded like the metrics they come from, so 0.97 - 0.96 is 0.01 and not 0.010000000000000009."""


@dataclass(frozen=True)
class GateDecision:
    """The gate as the manifest records it, the precision to ship, and why the model failed (None if it passed)."""

    gate: Gate
    selected: str
    failure: str | None = None


def decide(
    values: Mapping[str, float],
    sizes: Mapping[str, int],
    *,
    metric: str = DEFAULT_METRIC,
    bound: float = DEFAULT_BOUND,
    minimum: float | None = None,
    reference: str = REFERENCE_PRECISION,
) -> GateDecision:
    """Reject every variant that drops more than `bound` below the reference; select the smallest survivor.

    The model fails the gate (passed=False, the reference selected, every other variant rejected) when
    the reference itself scores below `minimum`: then no variant of it is good enough to deploy.
    """
    _check(values, sizes, reference, minimum)
    base = values[reference]
    if minimum is not None and not base >= minimum:
        failure = f"{reference} {metric} {base:.4f} is below the minimum {minimum:.4f}"
        rejected = {p: f"the reference failed: {failure}" for p in _ordered(values) if p != reference}
        return GateDecision(Gate(metric, bound, 0.0, False, reference, minimum, rejected), reference, failure)
    rejected = {p: why for p in _ordered(values) if (why := _rejection(values[p], base, metric, bound, minimum))}
    rejected.pop(reference, None)
    selected = min((p for p in _ordered(values) if p not in rejected), key=lambda p: sizes[p])
    drop = _drop(base, values[selected])
    return GateDecision(Gate(metric, bound, drop, True, reference, minimum, rejected), selected)


def _rejection(value: float, base: float, metric: str, bound: float, minimum: float | None) -> str | None:
    """Why one variant may not ship, or None when it may."""
    if not math.isfinite(value):
        return f"{metric} is {value}, not a number"
    drop = _drop(base, value)
    if drop > bound:
        return f"{metric} drop {drop:.4f} exceeds the bound {bound:.4f}"
    if minimum is not None and value < minimum:
        return f"{metric} {value:.4f} is below the minimum {minimum:.4f}"
    return None


def _drop(base: float, value: float) -> float:
    """How far a variant falls below the reference (negative when it scores higher)."""
    return round(base - value, DECIMALS)


def _ordered(values: Mapping[str, float]) -> list[str]:
    """Variants in PRECISIONS order, so ties in size go to the higher precision and reasons read in order."""
    return sorted(values, key=PRECISIONS.index)


def _check(values: Mapping[str, float], sizes: Mapping[str, int], reference: str, minimum: float | None) -> None:
    """Refuse a gate question that has no sound answer, naming what is missing."""
    unknown = sorted(set(values) - set(PRECISIONS))
    if unknown:
        raise ValidationError("gate.variants", f"unknown precision(s) {unknown}; expected some of {PRECISIONS}")
    if reference not in values or not math.isfinite(values[reference]):
        raise ValidationError("gate.reference", f"no finite metric for the reference variant {reference!r}")
    unsized = sorted(p for p in values if sizes.get(p, 0) < 1)
    if unsized:
        raise ValidationError("gate.sizes", f"no size (bytes >= 1) for variant(s) {unsized}")
    if minimum is not None and not 0.0 <= minimum <= 1.0:
        raise ValidationError("gate.minimum", f"{minimum} is outside [0, 1]")
