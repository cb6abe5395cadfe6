"""The drift monitor: a window of recent inputs, binned against the model's baseline only when asked.

Per request it costs almost nothing: both paths keep a reference to their screened rows (fresh arrays
nobody writes again) in a queue of blocks, a row from the batch-1 path or a micro-batch's matrix, where
copying them into a ring would cost a write to memory the session has just pushed out of the cache (about
a microsecond per row, several per micro-batch). The oldest blocks go once the newer ones hold `window`
rows. Binning, one searchsorted per feature over the whole window, runs when the health report is built.
The predicted class indices ride along the same way (the list or array the model returned), so the window's
predicted-class mix costs the hot path nothing either.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import numpy as np

from edgeloop.core.drift import DriftSummary, WindowStats, summarize
from edgeloop.device.onnx_model import LoadedModel

Block = tuple[np.ndarray, np.ndarray | Sequence[float], np.ndarray | Sequence[int] | None, int]
"""(screened rows [n, width], their confidences, their predicted class indices or None, n) as one path handed them."""


class DriftMonitor:
    """The last `window` screened inputs and confidences served by one model, under its own lock."""

    __slots__ = (
        "_blocks",
        "_classes",
        "_confidence_edges",
        "_edges",
        "_held",
        "_last",
        "_lock",
        "model",
        "seen",
        "width",
        "window",
    )

    def __init__(self, model: LoadedModel, window: int) -> None:
        self.model = model
        self.window = window
        self.width = model.width
        baseline = model.manifest.baseline
        self._edges = [np.asarray(f.edges, dtype=np.float64) for f in baseline.features]
        self._confidence_edges = np.asarray(baseline.confidence_edges, dtype=np.float64)
        self._classes = 0 if baseline.class_fractions is None else len(baseline.class_fractions)
        self._last: tuple[np.ndarray, np.ndarray | None] | None = None
        """The latest snapshot's rows and their classes: summary(rows, ...) finds the classes of the rows it gets."""
        self._blocks: deque[Block] = deque()
        self._held = 0
        """Rows in _blocks: the window, and fewer than the oldest block's rows beyond it."""
        self._lock = threading.Lock()
        self.seen = 0
        """Rows added so far."""

    def add_row(self, feed: np.ndarray, confidence: float, index: int | None = None) -> None:
        """One screened row ([1, width], not written again by anyone), its confidence and predicted class index."""
        self.add_batch(feed, [confidence], None if index is None else [index])

    def add_batch(
        self,
        matrix: np.ndarray,
        confidences: np.ndarray | Sequence[float],
        classes: np.ndarray | Sequence[int] | None = None,
    ) -> None:
        """A micro-batch's screened rows, confidences and predicted class indices (fresh, not written again by anyone;
        lists for one row). Without classes the window has no predicted-class mix until they have left it."""
        n = total = matrix.shape[0]
        window = self.window
        if n > window:  # only the tail can be in the window
            matrix, confidences, n = matrix[-window:], confidences[-window:], window
            classes = None if classes is None else classes[-window:]
        with self._lock:
            self.seen += total
            blocks = self._blocks
            blocks.append((matrix, confidences, classes, n))
            held = self._held + n
            while held - blocks[0][3] >= window:
                held -= blocks.popleft()[3]
            self._held = held

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's rows and confidences (float32), oldest first: copies. summary() knows their classes."""
        with self._lock:
            blocks = list(self._blocks)
        if not blocks:
            rows, confidences = np.empty((0, self.width), dtype=np.float32), np.empty(0, dtype=np.float32)
            self._last = (rows, None)
            return rows, confidences
        window = self.window
        rows = np.concatenate([block for block, _, _, _ in blocks], dtype=np.float32)[-window:]
        confidences = np.concatenate([np.asarray(c, dtype=np.float32).reshape(-1) for _, c, _, _ in blocks])[-window:]
        classes = None
        if all(c is not None for _, _, c, _ in blocks):
            classes = np.concatenate([np.asarray(c, dtype=np.int64).reshape(-1) for _, _, c, _ in blocks])[-window:]
        self._last = (rows, classes)
        return rows, confidences

    def classes_of(self, rows: np.ndarray) -> np.ndarray | None:
        """The predicted classes of the rows the latest snapshot() returned (None: other rows, or not all kept)."""
        last = self._last
        return last[1] if last is not None and last[0] is rows else None

    def stats(self, rows: np.ndarray, confidences: np.ndarray, classes: np.ndarray | None = None) -> WindowStats:
        """Bin fractions per feature and for the confidence, with the baseline's edges and bin rule; the class mix."""
        n = rows.shape[0]
        if n == 0:
            return WindowStats(0, (), 0.0, ())
        columns = tuple(_fractions(edges, rows[:, j]) for j, edges in enumerate(self._edges))
        mix: tuple[float, ...] = ()
        if classes is not None and self._classes and classes.shape[0] == n:
            shares: list[float] = (np.bincount(classes, minlength=self._classes)[: self._classes] / n).tolist()
            mix = tuple(shares)
        return WindowStats(
            rows=n,
            feature_fractions=columns,
            confidence_mean=float(confidences.mean(dtype=np.float64)),
            confidence_fractions=_fractions(self._confidence_edges, confidences),
            class_fractions=mix,
        )

    def summary(
        self, rows: np.ndarray, confidences: np.ndarray, threshold: float, min_rows: int
    ) -> DriftSummary | None:
        """The window scored against the baseline (the class mix too when these are the latest snapshot's rows)."""
        if rows.shape[0] < min_rows:
            return None
        stats = self.stats(rows, confidences, self.classes_of(rows))
        return summarize(self.model.manifest.baseline, stats, threshold, min_rows)


def _fractions(edges: np.ndarray, values: np.ndarray) -> tuple[float, ...]:
    """core.drift.fractions, vectorized: searchsorted(side="right") is the baseline's own bin rule."""
    counts = np.bincount(np.searchsorted(edges, values.astype(np.float64), side="right"), minlength=edges.size + 1)
    shares: list[float] = (counts / values.shape[0]).tolist()
    return tuple(shares)
