"""The day's sample budget: sampled rows become SAMPLE payloads only while sampleBytesPerDay lasts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeloop.core.drift import DriftSummary
from edgeloop.core.samplers import SampleBudget, payload_bytes
from edgeloop.device.sample_stage import SampleStage

log = logging.getLogger(__name__)

MAX_SAMPLE_BYTES = 64 * 1024
"""A sample payload larger than this is dropped (and counted): it would crowd a message on its own."""

SampledRow = tuple[str, np.ndarray, int, float, float, str]
"""(request id, screened row, label index, confidence, margin, sampler) of one inference a sampler took."""


class SampleTaker:
    """Privacy-filters sampled rows into SAMPLE payloads and spends the day's byte budget on them."""

    def __init__(self, bytes_per_day: int, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._budget = SampleBudget(bytes_per_day)
        self._warned_day: int | None = None

    @property
    def budget(self) -> SampleBudget:
        """The budget as it stands (taken, dropped, spent today)."""
        with self._lock:
            return self._budget

    def set_limit(self, bytes_per_day: int) -> None:
        """A new sampleBytesPerDay; what the day spent so far carries on."""
        with self._lock:
            self._budget = self._budget.with_limit(bytes_per_day)

    def take(
        self, stage: SampleStage, rows: Sequence[SampledRow], drift: DriftSummary | None, drifted: bool
    ) -> list[dict[str, Any]]:
        """The payloads of `rows` that fit the day's budget; the rest are counted as dropped."""
        score = None if drift is None else drift.score
        now = self._clock()
        kept: list[dict[str, Any]] = []
        for request_id, row, index, confidence, margin, name in rows:
            with self._lock:
                if self._budget.exhausted(now):  # counted as dropped without building what would be dropped
                    self._budget = self._budget.drop(now)
                    continue
            payload = stage.payload(request_id, row, index, (confidence, margin, drifted, score), name)
            size = payload_bytes(payload)
            with self._lock:
                if size > MAX_SAMPLE_BYTES:
                    self._budget, admitted = self._budget.drop(now), False
                else:
                    self._budget, admitted = self._budget.admit(size, now)
            if admitted:
                kept.append(payload)
        if len(kept) < len(rows):  # once per budget day at WARNING; the health report counts every drop
            day = self.budget.day
            level = logging.DEBUG if self._warned_day == day else logging.WARNING
            self._warned_day = day
            log.log(level, "%d of %d samples dropped: sampleBytesPerDay spent", len(rows) - len(kept), len(rows))
        return kept
