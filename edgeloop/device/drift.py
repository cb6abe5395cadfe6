"""The drift monitor: a fixed-size window of recent inputs, binned against the model's baseline only when asked.

Per request it costs almost nothing: the batch-1 path keeps a reference to its screened row (a fresh
array nobody writes again) in a Python list slot, three list stores in all, where a numpy row copy costs
a microsecond on a cache the session has just churned; a micro-batch copies its rows into a preallocated
array in at most two slice copies. Both write the slot of their sequence number modulo the window, so
the window always holds the last `window` rows, whichever path served them. Binning, one searchsorted
per feature over the whole window, runs when the health report is built.
"""

from __future__ import annotations

import numpy as np

from edgeloop.core.drift import DriftSummary, WindowStats, summarize
from edgeloop.device.model import LoadedModel


class DriftMonitor:
    """The last `window` screened inputs and confidences served by one model (the caller holds the lock)."""

    __slots__ = (
        "_batch_confidences",
        "_batch_rows",
        "_batch_seq",
        "_confidence_edges",
        "_edges",
        "_ramp",
        "_single_confidences",
        "_single_rows",
        "_single_seq",
        "model",
        "seen",
        "window",
    )

    def __init__(self, model: LoadedModel, window: int) -> None:
        self.model = model
        self.window = window
        baseline = model.manifest.baseline
        self._edges = [np.asarray(f.edges, dtype=np.float64) for f in baseline.features]
        self._confidence_edges = np.asarray(baseline.confidence_edges, dtype=np.float64)
        self._batch_rows = np.zeros((window, model.width), dtype=np.float32)
        self._batch_confidences = np.zeros(window, dtype=np.float32)
        self._batch_seq = np.full(window, -1, dtype=np.int64)
        self._ramp = np.arange(window, dtype=np.int64)
        self._single_rows: list[np.ndarray | None] = [None] * window
        self._single_confidences = [0.0] * window
        self._single_seq = [-1] * window
        self.seen = 0
        """Rows added so far: the next row's sequence number."""

    def add_row(self, feed: np.ndarray, confidence: float) -> None:
        """One screened row ([1, width], not written again by anyone) and its confidence: the batch-1 path."""
        seq = self.seen
        i = seq % self.window
        self._single_rows[i] = feed
        self._single_confidences[i] = confidence
        self._single_seq[i] = seq
        self.seen = seq + 1

    def add_batch(self, matrix: np.ndarray, confidences: np.ndarray) -> None:
        """A micro-batch's rows and confidences, copied in at most two slices (the window may wrap)."""
        n, window = matrix.shape[0], self.window
        if n > window:  # only the tail can be in the window
            matrix, confidences = matrix[-window:], confidences[-window:]
            self.seen += n - window
            n = window
        seen = self.seen
        start = seen % window
        first = min(n, window - start)
        if first == n:
            self._put(start, seen, matrix, confidences)
        else:  # the window wraps inside this batch
            self._put(start, seen, matrix[:first], confidences[:first])
            self._put(0, seen + first, matrix[first:], confidences[first:])
        self.seen = seen + n

    def _put(self, start: int, seq: int, rows: np.ndarray, confidences: np.ndarray) -> None:
        """Rows from window slot `start` on (no wrap), numbered from seq: three slice copies."""
        end = start + rows.shape[0]
        self._batch_rows[start:end] = rows
        self._batch_confidences[start:end] = confidences
        np.add(self._ramp[: end - start], seq, out=self._batch_seq[start:end])

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's rows and confidences, oldest first: copies, taken under the caller's lock."""
        single_seq = np.asarray(self._single_seq, dtype=np.int64)
        from_single = single_seq > self._batch_seq
        slots = np.flatnonzero(from_single | (self._batch_seq >= 0))
        rows = self._batch_rows[slots]
        confidences = self._batch_confidences[slots]
        singles = np.flatnonzero(from_single[slots])
        if singles.size:
            picked = slots[singles].tolist()
            rows[singles] = np.concatenate([self._single_rows[i] for i in picked])
            confidences[singles] = [self._single_confidences[i] for i in picked]
        order = np.argsort(np.where(from_single, single_seq, self._batch_seq)[slots], kind="stable")
        return rows[order], confidences[order]

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
