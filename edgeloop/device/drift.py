"""The drift monitor: a window of recent inputs, binned against the model's baseline only when asked.

Per request it costs almost nothing: both paths keep a reference to their screened rows (fresh arrays
nobody writes again) in a queue of blocks, a row from the batch-1 path or a micro-batch's matrix, where
copying them into a ring would cost a write to memory the session has just pushed out of the cache (about
a microsecond per row, several per micro-batch). The oldest blocks go once the newer ones hold `window`
rows. Binning, one searchsorted per feature over the whole window, runs when the health report is built.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import numpy as np

from edgeloop.core.drift import DriftSummary, WindowStats, summarize
from edgeloop.device.onnx_model import LoadedModel

Block = tuple[np.ndarray, np.ndarray | Sequence[float], int]
"""(screened rows [n, width], their confidences, n) as one path handed them over."""


class DriftMonitor:
    """The last `window` screened inputs and confidences served by one model, under its own lock."""

    __slots__ = ("_blocks", "_confidence_edges", "_edges", "_held", "_lock", "model", "seen", "width", "window")

    def __init__(self, model: LoadedModel, window: int) -> None:
        self.model = model
        self.window = window
        self.width = model.width
        baseline = model.manifest.baseline
        self._edges = [np.asarray(f.edges, dtype=np.float64) for f in baseline.features]
        self._confidence_edges = np.asarray(baseline.confidence_edges, dtype=np.float64)
        self._blocks: deque[Block] = deque()
        self._held = 0
        """Rows in _blocks: the window, and fewer than the oldest block's rows beyond it."""
        self._lock = threading.Lock()
        self.seen = 0
        """Rows added so far."""

    def add_row(self, feed: np.ndarray, confidence: float) -> None:
        """One screened row ([1, width], not written again by anyone) and its confidence."""
        self.add_batch(feed, [confidence])

    def add_batch(self, matrix: np.ndarray, confidences: np.ndarray | Sequence[float]) -> None:
        """A micro-batch's screened rows and confidences (fresh, not written again by anyone; a list for one row)."""
        n = total = matrix.shape[0]
        window = self.window
        if n > window:  # only the tail can be in the window
            matrix, confidences, n = matrix[-window:], confidences[-window:], window
        with self._lock:
            self.seen += total
            blocks = self._blocks
            blocks.append((matrix, confidences, n))
            held = self._held + n
            while held - blocks[0][2] >= window:
                held -= blocks.popleft()[2]
            self._held = held

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's rows and confidences (float32), oldest first: copies."""
        with self._lock:
            blocks = list(self._blocks)
        if not blocks:
            return np.empty((0, self.width), dtype=np.float32), np.empty(0, dtype=np.float32)
        rows = np.concatenate([block for block, _, _ in blocks], dtype=np.float32)
        confidences = np.concatenate([np.asarray(c, dtype=np.float32).reshape(-1) for _, c, _ in blocks])
        return rows[-self.window :], confidences[-self.window :]

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
