"""Per-feature training statistics written into the manifest: the reference the device's drift monitor compares to."""

from __future__ import annotations

import numpy as np

from edgeloop.core.manifest import Baseline, FeatureBaseline, Reliability

BINS = 10
"""Histogram bins per feature: PSI over ten quantile bins is the usual choice (each bin ~10% of training rows)."""
CONFIDENCE_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Fixed confidence bins: the mass near 1 is where a confident model lives and where drift shows first."""
DECIMALS = 6
RELIABILITY_EDGES = (0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Candidate confidence bands of the reliability table (multiclass answers go below 0.5, binary ones never do)."""
MIN_BAND_ROWS = 40
"""A reliability band holds at least this many holdout rows (thinner ones merge with a neighbour): the detector
bounds each band's error rate from above, and a bound on a handful of rows says almost nothing."""


def feature_baseline(name: str, column: np.ndarray) -> FeatureBaseline:
    """Summary statistics and quantile bins of one feature (ties collapse bins, so edges stay strictly ascending:
    the edges are rounded to what the manifest keeps before ties are collapsed, or two could round to one)."""
    values = column.astype(np.float64)
    inner = np.unique(np.round(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]), DECIMALS))
    counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=inner.size + 1)
    fractions = counts / counts.sum()
    return FeatureBaseline(
        name=name,
        mean=round(float(values.mean()), DECIMALS),
        std=round(float(values.std()), DECIMALS),
        minimum=float(values.min()),
        maximum=float(values.max()),
        edges=tuple(float(e) for e in inner),
        fractions=_rounded_fractions(fractions),
    )


def baseline(
    features: np.ndarray,
    names: tuple[str, ...],
    confidences: np.ndarray,
    predicted: np.ndarray | None = None,
    classes: int = 0,
    truth: np.ndarray | None = None,
) -> Baseline:
    """The manifest's baseline: every feature of the training rows, and the model's behaviour.

    With `predicted` (class indices of `classes` labels), `confidences` and `predicted` describe the holdout:
    the device then also compares its window's confidences and predicted-class mix with them. Without it,
    `confidences` are the training rows' (the older form, whose confidence the device only reports).
    With `truth` too (the holdout's true class indices), the baseline records the reliability table.
    """
    counts = np.bincount(np.searchsorted(np.asarray(CONFIDENCE_EDGES), confidences, side="right"),
                         minlength=len(CONFIDENCE_EDGES) + 1)  # fmt: skip
    class_fractions = None
    if predicted is not None:
        if predicted.shape[0] != confidences.shape[0] or classes < 2:
            raise ValueError("predicted needs one class per confidence and classes >= 2")
        class_fractions = _rounded_fractions(np.bincount(predicted, minlength=classes) / predicted.shape[0])
    table = None
    if truth is not None:
        if predicted is None or truth.shape != predicted.shape:
            raise ValueError("truth needs predicted, one true class per predicted one")
        table = reliability(confidences, predicted != truth)
    return Baseline(
        rows=int(features.shape[0]),
        features=tuple(feature_baseline(name, features[:, i]) for i, name in enumerate(names)),
        confidence_mean=round(float(np.mean(confidences)), DECIMALS),
        confidence_edges=CONFIDENCE_EDGES,
        confidence_fractions=_rounded_fractions(counts / counts.sum()),
        holdout_rows=None if predicted is None else int(predicted.shape[0]),
        class_fractions=class_fractions,
        reliability=table,
    )


def reliability(confidences: np.ndarray, wrong: np.ndarray, min_rows: int = MIN_BAND_ROWS) -> Reliability:
    """Holdout rows and errors per confidence band, adjacent candidate bands merged until each holds min_rows."""
    edges = np.asarray(RELIABILITY_EDGES)
    band = np.searchsorted(edges, confidences, side="right")
    rows = np.bincount(band, minlength=edges.size + 1)
    errors = np.bincount(band, weights=wrong.astype(np.float64), minlength=edges.size + 1)
    kept: list[float] = []
    out_rows: list[int] = []
    out_errors: list[int] = []
    pending_rows = pending_errors = 0
    for i in range(edges.size + 1):
        pending_rows, pending_errors = pending_rows + int(rows[i]), pending_errors + round(float(errors[i]))
        if pending_rows >= min_rows and i < edges.size:
            out_rows.append(pending_rows)
            out_errors.append(pending_errors)
            kept.append(float(edges[i]))
            pending_rows = pending_errors = 0
    if out_rows and pending_rows < min_rows:  # the top band is too thin: it joins the one below
        out_rows[-1] += pending_rows
        out_errors[-1] += pending_errors
        kept.pop()
    else:
        out_rows.append(pending_rows)
        out_errors.append(pending_errors)
    return Reliability(tuple(kept), tuple(out_rows), tuple(out_errors))


def _rounded_fractions(fractions: np.ndarray) -> tuple[float, ...]:
    """Fractions rounded for the manifest, the rounding error put on the largest so they still sum to 1."""
    rounded = [round(float(f), DECIMALS) for f in fractions]
    largest = int(np.argmax(fractions))
    rounded[largest] = round(rounded[largest] + 1.0 - sum(rounded), DECIMALS)
    return tuple(rounded)
