"""The sample taker: sampled rows become SAMPLE payloads while the day's byte budget lasts."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest
from support import FakeClock

from edgeloop.core.records import Record, RecordKind
from edgeloop.core.sample_budget import BudgetPolicy
from edgeloop.core.samplers import payload_bytes
from edgeloop.device.sample_stage import SampleStage
from edgeloop.device.sample_taker import MAX_SAMPLE_BYTES, SampledRow, SampleTaker

DAY_S = 86_400.0


class Stage:
    """A SampleStage stand-in whose payloads carry `padding` bytes of features, noting what it built."""

    def __init__(self, padding: int = 100, share: float = 0.0, raw_per_reading: float = 200.0) -> None:
        self.padding = padding
        self.built: list[str] = []
        self.budget_policy = BudgetPolicy(share)
        self.served = 0
        self.raw_per_reading = raw_per_reading
        self.sample_bytes = 1000.0  # x bank_samples: the random account is all bank
        self.sizes: list[int] = []

    def measured(self, size: int) -> None:
        self.sizes.append(size)

    def retune(
        self, random_balance: float | None = None, hard_balance: float | None = None, wire_ratio: float = 1.0
    ) -> None:
        self.retuned = len(self.sizes)
        self.wire_ratio = wire_ratio

    def payload(self, request_id: str, row: np.ndarray, label_index: int, signals: Any, sampler: str) -> dict[str, Any]:
        self.built.append(request_id)
        return {"request_id": request_id, "sampler": sampler, "features": "x" * self.padding}


def rows(n: int) -> list[SampledRow]:
    return [(f"r{i}", np.zeros(4), 1, 0.4, 0.1, "low_confidence") for i in range(n)]


def take(taker: SampleTaker, stage: Stage, sampled: list[SampledRow]) -> list[dict[str, Any]]:
    return taker.take(stage, sampled, None, False)  # type: ignore[arg-type]


def test_rows_within_the_budget_become_payloads_and_are_counted() -> None:
    taker = SampleTaker(100_000, FakeClock())

    kept = take(taker, Stage(), rows(3))

    assert [p["request_id"] for p in kept] == ["r0", "r1", "r2"]
    budget = taker.budget
    assert (budget.taken, budget.dropped) == (3, 0)
    assert budget.spent_on(FakeClock()()) == sum(payload_bytes(p) for p in kept)


def test_once_the_day_is_spent_rows_are_dropped_without_building_them(caplog: pytest.LogCaptureFixture) -> None:
    stage = Stage()
    size = payload_bytes(Stage().payload("r0", np.zeros(4), 1, None, "low_confidence"))
    taker = SampleTaker(2 * size, FakeClock())

    with caplog.at_level(logging.WARNING):
        kept = take(taker, stage, rows(5))

    assert len(kept) == 2
    assert stage.built == ["r0", "r1"]  # the rest were dropped before a payload was made
    assert (taker.budget.taken, taker.budget.dropped) == (2, 3)
    assert "3 of 5 samples dropped: sampleBytesPerDay spent" in caplog.text


def test_the_drop_warning_comes_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    taker = SampleTaker(0, FakeClock())
    with caplog.at_level(logging.WARNING):
        take(taker, Stage(), rows(1))
        take(taker, Stage(), rows(1))
    assert caplog.text.count("samples dropped") == 1


def test_a_new_day_brings_a_new_budget() -> None:
    clock = FakeClock()
    size = payload_bytes(Stage().payload("r0", np.zeros(4), 1, None, "low_confidence"))
    taker = SampleTaker(size, clock)
    assert len(take(taker, Stage(), rows(2))) == 1
    clock.now += DAY_S

    assert len(take(taker, Stage(), rows(1))) == 1


def test_an_oversized_payload_is_dropped_and_counted() -> None:
    taker = SampleTaker(10 * MAX_SAMPLE_BYTES, FakeClock())

    assert take(taker, Stage(padding=MAX_SAMPLE_BYTES + 1), rows(1)) == []
    assert (taker.budget.taken, taker.budget.dropped) == (0, 1)


def test_a_new_limit_keeps_what_the_day_spent() -> None:
    taker = SampleTaker(100_000, FakeClock())
    take(taker, Stage(), rows(2))
    spent = taker.budget.spent_on(FakeClock()())

    taker.set_limit(spent)

    assert take(taker, Stage(), rows(1)) == []
    assert taker.budget.taken == 2


def test_the_stand_in_stage_has_the_real_stage_s_payload_signature() -> None:
    real = SampleStage.payload.__code__.co_varnames[: SampleStage.payload.__code__.co_argcount]
    stand_in = Stage.payload.__code__.co_varnames[: Stage.payload.__code__.co_argcount]
    assert real == stand_in


def test_under_a_share_samples_spend_what_the_readings_served_earned() -> None:
    taker = SampleTaker(10_000_000, FakeClock())
    stage = Stage(padding=100, share=0.1, raw_per_reading=200.0)
    stage.served = 50  # 50 x 200 raw bytes x 10%: 1000 bytes, 500 in each account
    size = payload_bytes(Stage(padding=100).payload("r0", np.zeros(4), 1, None, "low_confidence"))

    kept = take(taker, stage, rows(10))

    assert len(kept) == 500 // size  # hard samples spend the hard account only
    random_rows = [(f"c{i}", np.zeros(4), 1, 0.9, 0.9, "random") for i in range(10)]
    assert len(take(taker, stage, random_rows)) == 1000 // size - len(kept)  # random: its own, then the rest
    share = taker.share
    assert share.raw_bytes == 10_000
    assert share.spent <= 1000
    assert taker.budget.dropped == 20 - (1000 // size)
    stage.served += 50
    assert len(take(taker, stage, random_rows)) >= 1  # newly served readings earn more


def test_a_new_stage_is_credited_from_its_own_start() -> None:
    taker = SampleTaker(10_000_000, FakeClock())
    first = Stage(share=0.1, raw_per_reading=100.0)
    first.served = 100
    take(taker, first, [])
    second = Stage(share=0.1, raw_per_reading=100.0)
    second.served = 30
    take(taker, second, [])
    assert taker.share.raw_bytes == 13_000


def sample_records(payloads: list[dict[str, Any]]) -> list[Record]:
    return [Record("dev-1", i, RecordKind.SAMPLE, 1.0, p) for i, p in enumerate(payloads)]


def test_published_batches_teach_the_share_its_wire_price() -> None:
    """A batch that went out at a quarter of its samples' JSON bytes: the same budget then pays for about 4x."""
    stage = Stage(padding=100, share=0.1, raw_per_reading=200.0)
    stage.served = 50  # 1000 wire bytes earned, 500 in each account
    size = payload_bytes(Stage(padding=100).payload("r0", np.zeros(4), 1, None, "low_confidence"))
    naive = SampleTaker(10_000_000, FakeClock())
    priced = SampleTaker(10_000_000, FakeClock())
    payloads = [Stage(padding=100).payload(f"p{i}", np.zeros(4), 1, None, "random") for i in range(200)]
    priced.published(sample_records(payloads), sum(payload_bytes(p) for p in payloads) // 4)
    priced.published([Record("dev-1", 0, RecordKind.RESULT, 1.0, {"x": 1})], 10**6)  # results teach nothing

    ratio = priced.share.wire.ratio
    assert 0.25 < ratio < 0.3  # a quarter, and the prior's small weight
    assert len(take(naive, stage, rows(50))) == 500 // size
    stage2 = Stage(padding=100, share=0.1, raw_per_reading=200.0)
    stage2.served = 50
    kept = take(priced, stage2, rows(50))
    assert len(kept) == math.floor(500 / (size * ratio))
    assert priced.share.spent_wire <= 1000
    assert stage2.wire_ratio == ratio  # the stage prices its random rate the same way
