"""The sample budgets: sampled rows become SAMPLE payloads only while sampleBytesPerDay and the share budget last.

The share budget (sampleBudgetShare, core.sample_budget) is credited with the raw-equivalent bytes of the
readings the sampling stage saw since the last look, estimated by the stage; a random sample may spend the
random account and then the hard one, a hard-example sample only the hard one. Samples are priced at their
expected wire bytes: the forwarder reports each SAMPLE batch it published (`published`), and the budget's
running compression ratio learns from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from edgeloop.core.drift import DriftSummary
from edgeloop.core.records import Record, RecordKind
from edgeloop.core.sample_budget import BudgetPolicy
from edgeloop.core.samplers import SampleBudget, payload_bytes
from edgeloop.core.share_budget import ShareBudget
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
        self._share = ShareBudget(BudgetPolicy(0.0))
        self._bank_bytes = 0.0
        self._credited: tuple[SampleStage | None, int] = (None, 0)
        """The stage last credited and how many of its readings were: a new stage starts from its own zero."""
        self._warned_day: int | None = None

    @property
    def budget(self) -> SampleBudget:
        """The budget as it stands (taken, dropped, spent today)."""
        with self._lock:
            return self._budget

    @property
    def share(self) -> ShareBudget:
        """The share budget as it stands (raw-equivalent bytes credited, bytes spent per account)."""
        with self._lock:
            return self._share

    def published(self, records: Iterable[Record], wire_bytes: int) -> None:
        """The forwarder published a SAMPLE batch of records in wire_bytes: the share budget's wire ratio learns it."""
        json_bytes = sum(payload_bytes(r.payload) for r in records if r.kind is RecordKind.SAMPLE)
        with self._lock:
            self._share = self._share.published(json_bytes, wire_bytes)

    def _credit(self, stage: SampleStage) -> None:
        """Credit the share budget with the readings the stage saw since the last look (lock held)."""
        policy: BudgetPolicy = stage.budget_policy
        if policy != self._share.policy:
            self._share = self._share.with_policy(policy)
        last, seen = self._credited
        served = stage.served - (seen if last is stage else 0)
        if served > 0:
            self._share = self._share.served(round(served * stage.raw_per_reading))
        self._credited = (stage, stage.served)
        self._bank(stage)

    def _hard_spent(self, sampler: str) -> bool:
        """Whether a hard-example sample cannot fit the share budget's hard account (lock held)."""
        if sampler == "random" or not self._share.policy.share:
            return False
        random_left, hard_left = self._share.balances()
        smallest = (self._budget.smallest or 1) * self._share.wire.ratio
        return hard_left + max(0.0, random_left - self._bank_bytes) < smallest

    def _bank(self, stage: SampleStage) -> float:
        """Wire bytes the random account keeps for a suspected change: bank_samples of the stage's mean sample price."""
        self._bank_bytes = self._share.policy.bank_samples * stage.sample_bytes * self._share.wire.ratio
        return self._bank_bytes

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
        over_share = 0
        with self._lock:
            self._credit(stage)
        for request_id, row, index, confidence, margin, name in sorted(rows, key=_random_first):
            with self._lock:
                if self._budget.exhausted(now) or self._hard_spent(name):  # dropped without building what would be
                    self._budget = self._budget.drop(now)
                    over_share += not self._budget.exhausted(now)
                    continue
            payload = stage.payload(request_id, row, index, (confidence, margin, drifted, score), name)
            size = payload_bytes(payload)
            stage.measured(size)
            with self._lock:
                share, affordable = self._share.admit(size, name == "random", self._bank_bytes)
                if size > MAX_SAMPLE_BYTES or not affordable:
                    self._budget, admitted = self._budget.drop(now), False
                    over_share += affordable is False
                else:
                    self._budget, admitted = self._budget.admit(size, now)
                    if admitted:
                        self._share = share
            if admitted:
                kept.append(payload)
        with self._lock:
            random_left, hard_left = self._share.balances()
            ratio = self._share.wire.ratio
        stage.retune(random_left, hard_left, ratio)  # after the batch: its payloads recorded their rows' rate
        if len(kept) < len(rows):  # once per budget day at WARNING; the health report counts every drop
            day = self.budget.day
            level = logging.DEBUG if self._warned_day == day else logging.WARNING
            self._warned_day = day
            spent = "sampleBudgetShare spent" if over_share else "sampleBytesPerDay spent"
            log.log(level, "%d of %d samples dropped: %s", len(rows) - len(kept), len(rows), spent)
        return kept


def _random_first(row: SampledRow) -> bool:
    """Random samples are admitted before a batch's hard examples, which could otherwise spend what they borrow."""
    return row[5] != "random"
