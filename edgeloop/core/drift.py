"""Drift scoring: the population stability index of a recent window against the manifest's baseline.

PSI = sum over bins of (o - e) * ln(o / e), o and e the window's and the baseline's fractions per bin.
A bin that is empty on either side would make the logarithm infinite, so both fractions are floored at
PSI_EPSILON first (the usual fix; it caps one empty bin's contribution at about 0.9 for e = 0.1).
Rules of thumb: < 0.1 no shift, 0.1-0.2 moderate, > 0.2 significant (the default threshold).

Small windows inflate PSI: with B bins and n rows, a window drawn from the baseline itself scores about
(B - 1) / n on average (PSI is close to a chi-square statistic divided by n). No score is given under
driftMinRows rows, and the default (500 rows, 10 bins) keeps that noise floor near 0.02, a tenth of the
threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import Baseline

PSI_EPSILON = 1e-4
"""Floor applied to both fractions of a bin before the logarithm (an empty bin is not infinitely surprising)."""
MAX_DRIFTED_FEATURES = 5
"""Drifted features named in the health shadow, worst first; the score itself covers all of them."""
SCORE_DECIMALS = 4


def psi(expected: Sequence[float], observed: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of observed against expected fractions (same bins, each summing to 1)."""
    if len(expected) != len(observed):
        raise ValidationError("psi", f"{len(expected)} expected bins but {len(observed)} observed")
    total = 0.0
    for e, o in zip(expected, observed, strict=True):
        e, o = max(e, epsilon), max(o, epsilon)
        total += (o - e) * math.log(o / e)
    return total


def bin_index(edges: Sequence[float], value: float) -> int:
    """The baseline bin of one value: bin 0 is (-inf, edges[0]), bin i is [edges[i-1], edges[i])."""
    low, high = 0, len(edges)
    while low < high:  # bisect_right, spelled out so the rule matches numpy's searchsorted(side="right")
        middle = (low + high) // 2
        if value < edges[middle]:
            high = middle
        else:
            low = middle + 1
    return low


def fractions(edges: Sequence[float], values: Sequence[float]) -> tuple[float, ...]:
    """The share of values in each baseline bin (the device does the same with numpy)."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[bin_index(edges, value)] += 1
    n = len(values) or 1
    return tuple(c / n for c in counts)


@dataclass(frozen=True)
class WindowStats:
    """What the device measured over its window: per-feature bin fractions and the model's confidence."""

    rows: int
    feature_fractions: tuple[tuple[float, ...], ...]
    confidence_mean: float
    confidence_fractions: tuple[float, ...]


@dataclass(frozen=True)
class DriftSummary:
    """The window against the baseline: the worst feature's PSI, the features over threshold, the confidence shift."""

    rows: int
    score: float
    """The largest per-feature PSI: one feature moving is enough to make the model's inputs unfamiliar."""
    drifted_features: tuple[str, ...]
    """Features at or over the threshold, worst first, at most MAX_DRIFTED_FEATURES."""
    confidence_shift: float
    """Window mean confidence minus the baseline's: negative when the model has grown less sure."""
    confidence_psi: float
    threshold: float

    @property
    def drifted(self) -> bool:
        """Whether the score is at or over the threshold."""
        return self.score >= self.threshold


def summarize(baseline: Baseline, window: WindowStats, threshold: float, min_rows: int) -> DriftSummary | None:
    """Score a window against the baseline; None while the window is too small for PSI to mean anything."""
    if window.rows < min_rows:
        return None
    if len(window.feature_fractions) != len(baseline.features):
        raise ValidationError(
            "drift.window", f"{len(window.feature_fractions)} features, baseline has {len(baseline.features)}"
        )
    scores = [psi(f.fractions, o) for f, o in zip(baseline.features, window.feature_fractions, strict=True)]
    ranked = sorted(
        ((s, f.name) for s, f in zip(scores, baseline.features, strict=True) if s >= threshold),
        key=lambda pair: -pair[0],
    )
    return DriftSummary(
        rows=window.rows,
        score=round(max(scores, default=0.0), SCORE_DECIMALS),
        drifted_features=tuple(name for _, name in ranked[:MAX_DRIFTED_FEATURES]),
        confidence_shift=round(window.confidence_mean - baseline.confidence_mean, SCORE_DECIMALS),
        confidence_psi=round(psi(baseline.confidence_fractions, window.confidence_fractions), SCORE_DECIMALS),
        threshold=threshold,
    )
