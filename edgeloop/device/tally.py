"""The runtime's counters since start and its latency and confidence windows, shared by the loop and IPC threads."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

LATENCY_WINDOW = 10_000
"""Latency samples kept between health reports; bounded so a long outage cannot grow memory."""


@dataclass(frozen=True)
class TallySnapshot:
    """The counters and windows at one moment, for a health report."""

    inferences: int
    rejected_inputs: int
    errors: int
    latencies: list[float]
    confidences: list[float]
    """Per-inference confidences, aligned with latencies (same appends, same bound)."""


class Tally:
    """Counters and per-inference windows under one lock: one lock round per micro-batch."""

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self._lock = threading.Lock()
        self._inferences = 0
        self._rejected_inputs = 0
        self._errors = 0
        self._latencies: deque[float] = deque(maxlen=window)
        self._confidences: deque[float] = deque(maxlen=window)

    def count(self, *, rejected_inputs: int = 0, errors: int = 0) -> None:
        """Requests refused and failures (a failed run, a refused commit, a loop step that raised)."""
        with self._lock:
            self._rejected_inputs += rejected_inputs
            self._errors += errors

    def served(self, latency_ms: float, confidences: Sequence[float]) -> None:
        """One inference per confidence, each with the micro-batch's latency."""
        n = len(confidences)
        with self._lock:
            self._inferences += n
            if n == 1:
                self._latencies.append(latency_ms)
            else:
                self._latencies.extend([latency_ms] * n)
            self._confidences.extend(confidences)

    def snapshot(self) -> TallySnapshot:
        """Copies of the counters and windows."""
        with self._lock:
            return TallySnapshot(
                self._inferences, self._rejected_inputs, self._errors, list(self._latencies), list(self._confidences)
            )

    def forget(self, samples: int) -> None:
        """Drop the oldest `samples` of each window (what a sent report covered; later ones stay for the next)."""
        with self._lock:
            for window in (self._latencies, self._confidences):
                for _ in range(min(samples, len(window))):
                    window.popleft()
