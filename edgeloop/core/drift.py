"""Drift scoring: the population stability index of a recent window against the manifest's baseline.

PSI = sum over bins of (o - e) * ln(o / e), o and e the window's and the baseline's fractions per bin.
A bin that is empty on either side would make the logarithm infinite, so both fractions are floored at
PSI_EPSILON first (the usual fix; it caps one empty bin's contribution at about 0.9 for e = 0.1).
Rules of thumb: < 0.1 no shift, 0.1-0.2 moderate, > 0.2 significant (the default threshold).

Small windows inflate PSI: with B bins and n rows, a window drawn from the baseline itself scores about
(B - 1) / n on average (PSI is close to a chi-square statistic divided by n). No score is given under
driftMinRows rows, and the default (500 rows, 10 bins) keeps that noise floor near 0.02, a tenth of the
threshold.

Input PSI sees the inputs move (virtual drift); it cannot see the labelling concept change while the inputs
stay put. Two label-free signals watch the model's behaviour against the manifest's holdout: its confidence
distribution and its predicted-class mix. Their baselines hold only the holdout's rows (a fifth of the
training data, a few hundred rows for a small first model), so their raw PSI is noisy: a window of 200 to
400 rows against 180 holdout rows over ten classes scores 0.05 to 0.15 on average and now and then over 0.2
with nothing changed. Each behaviour signal therefore counts only the PSI sampling noise cannot
explain: the PSI of both sides' Jeffreys-smoothed counts ((count + 1/2) / (rows + bins/2), which tames the
heavy tail of near-empty bins) less the NOISE_QUANTILE quantile of that PSI under no change, chi-square with
bins - 1 degrees of freedom divided by the effective rows n m / (n + m). A stationary window then scores
above zero about once in a thousand and at the 0.2 threshold (almost) never; see tests/core/test_core_drift.py.
Label-free signals still cannot see a concept change that leaves the inputs alone (the model answers the
same inputs the same way): that is the cloud's error-rate detector (edgeloop.core.detectors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import Baseline

PSI_EPSILON = 1e-4
"""Floor applied to both fractions of a bin before the logarithm (an empty bin is not infinitely surprising)."""
MAX_DRIFTED_FEATURES = 5
"""Drifted features named in the health shadow, worst first; the score itself covers all of them."""
SCORE_DECIMALS = 4
NOISE_QUANTILE = 0.999
"""A behaviour signal scores only the PSI above this quantile of its no-change sampling distribution."""
SMOOTHING = 0.5
"""Pseudo-count added to every bin of a behaviour signal before its PSI (Jeffreys' prior)."""
INPUT, CONFIDENCE, CLASSES = "input", "confidence", "classes"
"""The drift score's parts, named in DriftSummary.source."""


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


def chi_square_quantile(degrees: int, quantile: float) -> float:
    """The chi-square quantile by Wilson and Hilferty's cube-root normal (within 3.5% at 1 degree, 1% from 7)."""
    if degrees < 1 or not 0.0 < quantile < 1.0:
        raise ValidationError(
            "chi_square_quantile", f"needs degrees >= 1 and 0 < quantile < 1, got {degrees}, {quantile}"
        )
    z = NormalDist().inv_cdf(quantile)
    spread = 2.0 / (9.0 * degrees)
    return degrees * max(0.0, 1.0 - spread + z * math.sqrt(spread)) ** 3


def noise_allowance(bins: int, window_rows: int, baseline_rows: int, quantile: float = NOISE_QUANTILE) -> float:
    """The PSI two samples of one distribution (window_rows and baseline_rows draws) stay under with `quantile`."""
    if bins < 2:
        return 0.0
    return chi_square_quantile(bins - 1, quantile) * (1.0 / window_rows + 1.0 / baseline_rows)


def smoothed(shares: Sequence[float], rows: int) -> tuple[float, ...]:
    """Fractions of `rows` draws with SMOOTHING added to every bin's count (no bin is empty, none dominates)."""
    total = rows + SMOOTHING * len(shares)
    return tuple((share * rows + SMOOTHING) / total for share in shares)


def behaviour_score(
    expected: Sequence[float], baseline_rows: int, observed: Sequence[float], window_rows: int
) -> float:
    """The smoothed PSI of a behaviour signal less its noise allowance (0.0: nothing sampling noise cannot explain)."""
    value = psi(smoothed(expected, baseline_rows), smoothed(observed, window_rows))
    return max(0.0, value - noise_allowance(len(expected), window_rows, baseline_rows))


@dataclass(frozen=True)
class WindowStats:
    """What the device measured over its window: per-feature bin fractions and the model's confidence."""

    rows: int
    feature_fractions: tuple[tuple[float, ...], ...]
    confidence_mean: float
    confidence_fractions: tuple[float, ...]
    class_fractions: tuple[float, ...] = ()
    """The share of rows predicted as each label; empty when the device did not keep the predictions."""


@dataclass(frozen=True)
class DriftSummary:
    """The window against the baseline: the drift score, its three parts, the features over threshold."""

    rows: int
    score: float
    """The largest part: input PSI, or a behaviour signal's score (confidence, class mix) where the baseline has it."""
    drifted_features: tuple[str, ...]
    """Features at or over the threshold, worst first, at most MAX_DRIFTED_FEATURES."""
    confidence_shift: float
    """Window mean confidence minus the baseline's: negative when the model has grown less sure."""
    confidence_psi: float
    """Raw PSI of the confidence bins (reported as before; noisy against a small holdout)."""
    threshold: float
    input_psi: float = 0.0
    """The largest per-feature PSI: one feature moving is enough to make the model's inputs unfamiliar."""
    confidence_score: float | None = None
    """Confidence PSI beyond sampling noise; None: an older baseline whose confidence came from training rows."""
    class_psi: float | None = None
    """Raw PSI of the predicted-class mix; None: no class baseline, or the window kept no predictions."""
    class_score: float | None = None
    """Class-mix PSI beyond sampling noise; None as for class_psi."""
    source: str = INPUT
    """Which part gave the score: input, confidence or classes."""

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
    input_psi = round(max(scores, default=0.0), SCORE_DECIMALS)
    confidence_score = class_psi = class_score = None
    held = baseline.holdout_rows
    if held is not None:
        confidence_score = _rounded(
            behaviour_score(baseline.confidence_fractions, held, window.confidence_fractions, window.rows)
        )
        if baseline.class_fractions is not None and window.class_fractions:
            if len(window.class_fractions) != len(baseline.class_fractions):
                raise ValidationError(
                    "drift.window",
                    f"{len(window.class_fractions)} classes, baseline has {len(baseline.class_fractions)}",
                )
            class_psi = _rounded(psi(baseline.class_fractions, window.class_fractions))
            class_score = _rounded(behaviour_score(baseline.class_fractions, held, window.class_fractions, window.rows))
    parts = {INPUT: input_psi, CONFIDENCE: confidence_score, CLASSES: class_score}
    source, score = max(((k, v) for k, v in parts.items() if v is not None), key=lambda kv: kv[1])
    return DriftSummary(
        rows=window.rows,
        score=score,
        drifted_features=tuple(name for _, name in ranked[:MAX_DRIFTED_FEATURES]),
        confidence_shift=_rounded(window.confidence_mean - baseline.confidence_mean),
        confidence_psi=_rounded(psi(baseline.confidence_fractions, window.confidence_fractions)),
        threshold=threshold,
        input_psi=input_psi,
        confidence_score=confidence_score,
        class_psi=class_psi,
        class_score=class_score,
        source=source,
    )


def _rounded(value: float) -> float:
    """A score as reported: SCORE_DECIMALS digits."""
    return round(value, SCORE_DECIMALS)
