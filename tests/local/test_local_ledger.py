"""The scenario's ledger: request ids, answers counted once, accuracy by mask, a bounded uniform reservoir."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.local.ledger import Ledger, Reservoir, TruthTable, request_id, request_index


def test_request_ids_carry_their_ledger_index() -> None:
    assert request_index(request_id("edgeloop-device-007", 42)) == 42
    assert request_index("someone-elses-id") is None
    assert request_index("thing-sabc") is None


def test_answers_are_kept_once_and_a_second_answer_is_counted_as_counted_twice() -> None:
    ledger = Ledger()
    first = ledger.add(0.0, 0, np.array([1, 2, 3]))
    ledger.answer(first, 1, 1)
    ledger.answer(first + 1, 0, 1)
    ledger.answer(first, 1, 1)
    ledger.answer(99, 1, 1)  # not a request the world made: ignored
    assert ledger.counted_twice == 1
    assert ledger.answered().tolist() == [0, 1]
    assert ledger.accuracy(np.ones(ledger.size, dtype=bool)) == 0.5
    assert ledger.accuracy(np.zeros(ledger.size, dtype=bool)) is None


def test_the_ledger_grows_past_its_first_chunk_without_losing_rows() -> None:
    ledger = Ledger()
    for step in range(3):
        ledger.add(float(step), step, np.full(40_000, step, dtype=np.int16))
    assert ledger.size == 120_000
    assert ledger.truth[:120_000:40_000].tolist() == [0, 1, 2]
    assert (ledger.predicted[: ledger.size] == -1).all()


def test_the_truth_table_answers_by_request_id() -> None:
    ledger = Ledger()
    ledger.add(0.0, 0, np.array([4, 5]))
    truth = TruthTable(ledger)
    assert truth[request_id("t", 1)] == 5
    assert truth.get(request_id("t", 2)) is None
    assert truth.get("not-ours") is None
    with pytest.raises(KeyError):
        truth["t-s0000009"]


def test_the_reservoir_stays_bounded_and_samples_the_whole_stream() -> None:
    reservoir = Reservoir(100, 2, np.random.default_rng(0))
    for start in range(0, 10_000, 50):
        reservoir.add(np.arange(start, start + 50, dtype=np.float64).repeat(2).reshape(50, 2), start)
    rows, index = reservoir.kept()
    assert rows.shape == (100, 2)
    assert reservoir.seen == 10_000
    assert (rows[:, 0] == index).all(), "each kept row keeps its own ledger index"
    assert index.min() < 2_500, "early rows are kept..."
    assert index.max() > 7_500, "...and late ones alike"
