"""Samplers: named policies validated at config load, tried in order; the daily byte budget."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.samplers import (
    DEFAULT_PARAMETERS,
    SAMPLER_ORDER,
    SAMPLERS,
    SECONDS_PER_DAY,
    SampleBudget,
    SampleSignals,
    choose_sampler,
    describe,
    naive_accuracy,
    parse_samplers,
    payload_bytes,
    utc_day,
    weighted_accuracy,
)

ALL = parse_samplers({"random": 0.01, "low_confidence": 0.5, "small_margin": 0.1, "drifted": 0.2})


def signals(
    confidence: float = 0.9, margin: float = 0.8, drifted: bool = False, control: float = 0.5, drift: float = 0.5
) -> SampleSignals:
    return SampleSignals(confidence, margin, drifted, control, drift)


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        pytest.param(signals(), None, id="confident-and-clear"),
        pytest.param(signals(confidence=0.49), "low_confidence", id="unsure"),
        pytest.param(signals(confidence=0.5), None, id="threshold-is-exclusive"),
        pytest.param(signals(margin=0.05), "small_margin", id="hesitant"),
        pytest.param(signals(confidence=0.4, margin=0.05), "low_confidence", id="first-in-order-names-it"),
        pytest.param(signals(drifted=True, drift=0.1), "drifted", id="drifted-window-drawn"),
        pytest.param(signals(drifted=True, drift=0.3), None, id="drifted-window-not-drawn"),
        pytest.param(signals(drifted=False, drift=0.0), None, id="no-drift-no-drift-sample"),
        pytest.param(signals(control=0.005), "random", id="control"),
        pytest.param(signals(confidence=0.1, control=0.005), "random", id="a-control-sample-stays-a-control"),
    ],
)
def test_choose_sampler(seen: SampleSignals, expected: str | None) -> None:
    assert choose_sampler(ALL, seen) == expected


def test_only_configured_samplers_take_anything() -> None:
    only_margin = parse_samplers({"small_margin": 0.1})
    assert choose_sampler(only_margin, signals(confidence=0.01, control=0.0)) is None
    assert choose_sampler(only_margin, signals(margin=0.01)) == "small_margin"
    assert choose_sampler((), signals(confidence=0.0, margin=0.0, control=0.0)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({}, (), id="none"),
        pytest.param({"small_margin": 0.1, "random": 1}, (("random", 1.0), ("small_margin", 0.1)), id="ordered"),
        pytest.param(["low_confidence"], (("low_confidence", DEFAULT_PARAMETERS["low_confidence"]),), id="names"),
        pytest.param([], (), id="no-names"),
    ],
)
def test_parse_samplers(value: Any, expected: tuple[tuple[str, float], ...]) -> None:
    assert parse_samplers(value) == expected


@pytest.mark.parametrize(
    ("value", "field", "match"),
    [
        pytest.param({"entropyy": 0.1}, "samplers", "unknown sampler 'entropyy'; expected one of", id="typo"),
        pytest.param(["entropyy"], "samplers", "unknown sampler 'entropyy'", id="typo-in-list"),
        pytest.param({"random": 1.5}, "samplers.random", r"in \[0, 1\]", id="above-one"),
        pytest.param({"random": -0.1}, "samplers.random", r"in \[0, 1\]", id="negative"),
        pytest.param({"random": True}, "samplers.random", "number", id="boolean"),
        pytest.param({"random": "0.1"}, "samplers.random", "number", id="text"),
        pytest.param("random", "samplers", "expected an object", id="bare-string"),
        pytest.param([1, 2], "samplers", "expected an object", id="list-of-numbers"),
    ],
)
def test_bad_samplers_are_named(value: Any, field: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_samplers(value)
    assert info.value.field == field


def test_every_sampler_has_a_default_and_a_place_in_the_order() -> None:
    assert set(DEFAULT_PARAMETERS) == set(SAMPLERS) == set(SAMPLER_ORDER)
    assert SAMPLER_ORDER[0] == "random"


def test_describe_is_short() -> None:
    assert describe(ALL) == "random=0.01,low_confidence=0.5,small_margin=0.1,drifted=0.2"
    assert describe(()) == "none"


DAY = 20_000 * SECONDS_PER_DAY


def test_the_budget_admits_until_spent_and_counts_drops() -> None:
    budget = SampleBudget(limit=100)
    budget, first = budget.admit(60, DAY + 10)
    budget, second = budget.admit(50, DAY + 20)
    budget, third = budget.admit(40, DAY + 30)
    assert (first, second, third) == (True, False, True)
    assert (budget.spent, budget.taken, budget.dropped) == (100, 2, 1)
    assert budget.spent_on(DAY + 40) == 100


def test_a_new_utc_day_starts_a_new_budget() -> None:
    budget, _ = SampleBudget(limit=100).admit(100, DAY + SECONDS_PER_DAY - 1)
    assert budget.admit(1, DAY + SECONDS_PER_DAY - 0.5)[1] is False
    budget, admitted = budget.admit(1, DAY + SECONDS_PER_DAY)
    assert admitted
    assert budget.spent == 1
    assert budget.spent_on(DAY + 2 * SECONDS_PER_DAY) == 0


def test_a_zero_budget_takes_nothing_and_a_new_limit_keeps_the_day() -> None:
    budget, admitted = SampleBudget(limit=0).admit(1, DAY)
    assert not admitted
    assert budget.dropped == 1
    budget = budget.with_limit(10)
    budget, admitted = budget.admit(10, DAY)
    assert admitted
    assert (budget.taken, budget.dropped, budget.limit) == (1, 1, 10)


def test_utc_day_and_payload_bytes() -> None:
    assert utc_day(DAY) == utc_day(DAY + SECONDS_PER_DAY - 1) == 20_000
    assert utc_day(-1) == -1
    assert payload_bytes({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert payload_bytes({"a": "é"}) == len('{"a":"\\u00e9"}')


def test_the_day_counts_as_spent_once_less_than_the_smallest_sample_is_left() -> None:
    budget, _ = SampleBudget(limit=100).admit(40, DAY)
    assert not budget.exhausted(DAY + 1)  # 60 left, the smallest sample so far is 40
    budget, _ = budget.admit(45, DAY + 1)
    assert budget.exhausted(DAY + 2)  # 15 left < 40: the next one is dropped without being built
    assert not budget.exhausted(DAY + SECONDS_PER_DAY)  # a new day starts over
    budget, _ = budget.admit(90, DAY + SECONDS_PER_DAY)
    assert budget.exhausted(DAY + SECONDS_PER_DAY)  # 10 left < 40
    budget, admitted = budget.admit(8, DAY + SECONDS_PER_DAY)  # a caller may still offer a small one: it fits
    assert admitted
    assert budget.exhausted(DAY + SECONDS_PER_DAY)  # 2 left < 8, the new floor
    assert (budget.taken, budget.dropped, budget.smallest) == (4, 0, 8)


def test_a_dropped_sample_is_counted_without_spending_or_moving_the_floor() -> None:
    budget, _ = SampleBudget(limit=100).admit(40, DAY)
    budget = budget.drop(DAY + 1)
    assert (budget.spent, budget.taken, budget.dropped, budget.smallest) == (40, 1, 1, 40)
    assert budget.drop(DAY + SECONDS_PER_DAY).spent == 0  # a drop on a new day starts its count at 0


def simulated_stream(seed: int = 3, n: int = 200_000) -> tuple[float, list[tuple[str, bool, float]]]:
    """A served stream and what the samplers took from it: (sampler, correct, inclusion) per sample.

    Correctness follows confidence (the model is calibrated), the second half is a suspected change where the
    model is worse and the random rate is boosted four times: hard examples alone, or random samples
    unweighted, both misjudge the stream's accuracy; weighted random samples do not.
    """
    import random as stdlib_random

    rng = stdlib_random.Random(seed)
    correct_total = 0
    taken: list[tuple[str, bool, float]] = []
    for i in range(n):
        suspected = i >= n // 2
        rate = 0.02 if suspected else 0.005
        confidence = rng.uniform(0.34, 1.0)
        correct = rng.random() < (confidence - 0.25 if suspected else confidence)
        correct_total += correct
        settings = parse_samplers({"random": rate, "low_confidence": 0.5})
        name = choose_sampler(settings, SampleSignals(confidence, 1.0, suspected, rng.random(), 1.0))
        if name is not None:
            taken.append((name, correct, rate if name == "random" else 1.0))
    return correct_total / n, taken


def test_weighted_random_samples_estimate_the_stream_where_hard_examples_cannot() -> None:
    truth, taken = simulated_stream()
    hard = naive_accuracy(correct for name, correct, _ in taken if name != "random")
    everything = naive_accuracy(correct for _, correct, _ in taken)
    unweighted = naive_accuracy(correct for name, correct, _ in taken if name == "random")
    estimate = weighted_accuracy((correct, p) for name, correct, p in taken if name == "random")
    assert estimate.accuracy is not None
    assert estimate.standard_error is not None
    assert abs(estimate.accuracy - truth) < 3 * estimate.standard_error
    interval = estimate.interval()
    assert interval is not None
    assert interval[0] <= truth <= interval[1]
    for biased in (hard, everything, unweighted):
        assert biased is not None
        assert abs(biased - truth) > 4 * estimate.standard_error
    assert estimate.represented == pytest.approx(200_000, rel=0.05)  # the samples stand for the traffic served
    assert estimate.effective_samples < estimate.samples  # unequal weights cost some precision


@pytest.mark.parametrize("seed", range(5))
def test_the_weighted_estimate_is_unbiased_across_streams(seed: int) -> None:
    """Over several streams the estimate's errors centre on zero (no seed-specific luck)."""
    truth, taken = simulated_stream(seed=100 + seed, n=60_000)
    estimate = weighted_accuracy((correct, p) for name, correct, p in taken if name == "random")
    assert estimate.accuracy is not None
    assert estimate.standard_error is not None
    assert abs(estimate.accuracy - truth) < 3.5 * estimate.standard_error


def test_no_observations_no_estimate() -> None:
    estimate = weighted_accuracy([])
    assert (estimate.accuracy, estimate.samples, estimate.interval()) == (None, 0, None)
    assert naive_accuracy([]) is None


@pytest.mark.parametrize("inclusion", [0.0, -0.1, 1.5, math.nan])
def test_an_inclusion_that_is_not_a_probability_is_refused(inclusion: float) -> None:
    with pytest.raises(ValidationError) as info:
        weighted_accuracy([(True, inclusion)])
    assert info.value.field == "inclusion"
