"""The drift monitor: a fixed-size ring of recent inputs, binned against the model's baseline only when asked.

Per request it costs one row copy into a preallocated array (two on a batch that wraps); the binning,
one searchsorted per feature over the whole window, runs when the health report is built.
"""

from __future__ import annotations

import numpy as np

from edgeloop.core.drift import DriftSummary, WindowStats, summarize
from edgeloop.device.model import LoadedModel


class DriftMonitor:
    """The last `window` screened inputs and confidences served by one model (the caller holds the lock)."""

    def __init__(self, model: LoadedModel, window: int) -> None:
        self.model = model
        self.window = window
        baseline = model.manifest.baseline
        self._edges = [np.asarray(f.edges, dtype=np.float64) for f in baseline.features]
        self._confidence_edges = np.asarray(baseline.confidence_edges, dtype=np.float64)
        self._rows = np.zeros((window, model.width), dtype=np.float32)
        self._confidences = np.zeros(window, dtype=np.float32)
        self._next = 0
        self.seen = 0

    def add_row(self, feed: np.ndarray, confidence: float) -> None:
        """One screened row ([1, width]) and its confidence: the batch-1 path's only drift cost."""
        i = self._next
        self._rows[i] = feed
        self._confidences[i] = confidence
        self._next = i + 1 if i + 1 < self.window else 0
        self.seen += 1

    def add_batch(self, matrix: np.ndarray, confidences: np.ndarray) -> None:
        """A micro-batch's rows and confidences, in at most two slice copies (the ring may wrap)."""
        n = matrix.shape[0]
        if n >= self.window:
            matrix, confidences = matrix[-self.window :], confidences[-self.window :]
            self._rows[:], self._confidences[:] = matrix, confidences
            self._next, self.seen = 0, self.seen + n
            return
        start = self._next
        first = min(n, self.window - start)
        self._rows[start : start + first] = matrix[:first]
        self._confidences[start : start + first] = confidences[:first]
        if first < n:
            self._rows[: n - first] = matrix[first:]
            self._confidences[: n - first] = confidences[first:]
        self._next = (start + n) % self.window
        self.seen += n

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the filled part of the window (taken under the caller's lock, binned outside it)."""
        filled = min(self.seen, self.window)
        return self._rows[:filled].copy(), self._confidences[:filled].copy()

    def stats(self, rows: np.ndarray, confidences: np.ndarray) -> WindowStats:
        """Bin fractions per feature and for the confidence, with the baseline's edges and bin rule."""
        n = rows.shape[0]
        if n == 0:
            return WindowStats(0, (), 0.0, ())
        columns = tuple(_fractions(edges, rows[:, j]) for j, edges in enumerate(self._edges))
        return WindowStats(
            rows=n,
            feature_fractions=columns,
            confidence_mean=float(confidences.mean(dtype=np.float64)),
            confidence_fractions=_fractions(self._confidence_edges, confidences),
        )

    def summary(
        self, rows: np.ndarray, confidences: np.ndarray, threshold: float, min_rows: int
    ) -> DriftSummary | None:
        """The window scored against the baseline; None below min_rows."""
        if rows.shape[0] < min_rows:
            return None
        return summarize(self.model.manifest.baseline, self.stats(rows, confidences), threshold, min_rows)


def _fractions(edges: np.ndarray, values: np.ndarray) -> tuple[float, ...]:
    """core.drift.fractions, vectorized: searchsorted(side="right") is the baseline's own bin rule."""
    counts = np.bincount(np.searchsorted(edges, values.astype(np.float64), side="right"), minlength=edges.size + 1)
    shares: list[float] = (counts / values.shape[0]).tolist()
    return tuple(shares)
