"""The sample budget policy: the random rate it pays for, its defaults, and what the default samplers take."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from edgeloop.core.errors import ConfigError
from edgeloop.core.sample_budget import (
    DEFAULT_BUDGET_SHARE,
    DEFAULT_SAMPLERS,
    RAW_ENVELOPE_BYTES,
    STABLE_SPEND,
    SUSPECTED_BOOST,
    BudgetPolicy,
    raw_reading_bytes,
)
from edgeloop.core.samplers import SampleSignals, choose_sampler, parse_samplers


def test_a_raw_reading_is_its_rounded_values_as_json_plus_the_envelope() -> None:
    values = [1.23456789, -0.5, 3.0]
    assert raw_reading_bytes(values) == len(json.dumps([1.2346, -0.5, 3.0])) + RAW_ENVELOPE_BYTES


def test_the_random_rate_is_what_its_account_pays_for_boosted_while_suspected() -> None:
    policy = BudgetPolicy(0.04, random_share=0.5)
    stable = policy.random_rate(raw_per_reading=120, sample_bytes=300, suspected=False)
    suspected = policy.random_rate(raw_per_reading=120, sample_bytes=300, suspected=True)
    assert stable == pytest.approx(0.5 * 0.04 * 120 / 300 * 0.5)  # half of what the account earns
    assert suspected == pytest.approx(stable * SUSPECTED_BOOST)
    assert policy.random_rate(120, 300, False, floor=0.05) == 0.05  # the configured parameter is a floor
    assert BudgetPolicy(0.9).random_rate(1000, 10, True) == 1.0
    assert BudgetPolicy(0.0).random_rate(120, 300, True, floor=0.01) == 0.01  # no share: the parameter as it is


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"share": 1.5}, "sampleBudgetShare", id="share-over-one"),
        pytest.param({"share": -0.1}, "sampleBudgetShare", id="share-negative"),
        pytest.param({"share": math.nan}, "sampleBudgetShare", id="share-nan"),
        pytest.param({"share": 0.1, "random_share": 2.0}, "sampleRandomShare", id="random-share-over-one"),
        pytest.param({"share": 0.1, "suspected_boost": 0.5}, "suspected_boost", id="boost-below-one"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        BudgetPolicy(**kwargs)
    assert info.value.field == field


def test_the_boost_waits_for_a_balance_that_can_pay_for_it() -> None:
    """Random samples are thinned by a rate they record, never dropped by an empty account."""
    policy = BudgetPolicy(0.04)
    stable = policy.random_rate(120, 300, suspected=False)
    boosted = policy.random_rate(120, 300, suspected=True)
    assert policy.random_rate(120, 300, True, balance=0.0, batch=32) == stable
    assert policy.random_rate(120, 300, True, balance=2 * 300 - 1, batch=1) == stable
    assert policy.random_rate(120, 300, True, balance=2 * 300, batch=1) == boosted
    enough = 2 * boosted * 1000 * 300
    assert policy.random_rate(120, 300, True, balance=enough - 1, batch=1000) == stable
    assert policy.random_rate(120, 300, True, balance=enough, batch=1000) == boosted


def test_while_hard_examples_leave_their_account_idle_the_random_rate_paces_on_the_whole_budget() -> None:
    policy = BudgetPolicy(0.04, random_share=0.25)
    own = policy.random_rate(120, 300, suspected=False)
    assert policy.random_rate(120, 300, False, hard_idle=True) == pytest.approx(own / 0.25)


def test_beyond_its_bank_a_stable_device_spends_the_surplus_too() -> None:
    policy = BudgetPolicy(0.04, random_share=0.5)
    income = 0.5 * 0.04 * 120 / 300
    bank = policy.bank_samples * 300
    assert policy.random_rate(120, 300, False) == pytest.approx(income * STABLE_SPEND)  # no balance known: filling
    assert policy.random_rate(120, 300, False, balance=bank) == pytest.approx(income * STABLE_SPEND)  # the bank
    assert policy.random_rate(120, 300, False, balance=1.5 * bank) == pytest.approx(income)  # where it settles
    assert policy.random_rate(120, 300, False, balance=2 * bank) == pytest.approx(1.5 * income)  # the surplus
    capped = income * STABLE_SPEND * SUSPECTED_BOOST
    assert policy.random_rate(120, 300, False, balance=100 * bank) == pytest.approx(capped)
    assert policy.random_rate(120, 300, True, balance=100 * bank) == pytest.approx(capped)
    assert policy.random_rate(120, 300, False, balance=bank, floor=0.5) == 0.5


def _signals(probabilities: list[float]) -> SampleSignals:
    top, second = sorted(probabilities, reverse=True)[:2]
    return SampleSignals(top, top - second, False, 1.0, 1.0)


def _spread(classes: int, top: float, second: float | None = None) -> list[float]:
    """A prediction over `classes` classes: top, then second (default: an even share), the rest shared evenly."""
    rest = classes - 1
    second = (1.0 - top) / rest if second is None else second
    return [top, second] + [(1.0 - top - second) / (rest - 1)] * (rest - 1) if rest > 1 else [top, 1.0 - top]


@pytest.mark.parametrize("classes", [2, 3, 5, 10])
def test_the_default_samplers_take_hard_examples_whatever_the_number_of_classes(classes: int) -> None:
    """What DEFAULT_SAMPLERS means for 2, 3, 5 and 10 classes: the unsure and the hesitant are hard examples,
    the confident are not. A binary model's top class is never under 1/2, so low_confidence cannot fire for it;
    small_margin then reads top-1 under 0.55 (top two within 0.1), its hard examples near the boundary."""
    settings = parse_samplers(dict(DEFAULT_SAMPLERS))
    hesitant = _spread(classes, 0.52, 0.45) if classes > 2 else [0.54, 0.46]
    assert choose_sampler(settings, _signals(hesitant)) == "small_margin"
    confident = _spread(classes, 0.95)
    assert choose_sampler(settings, _signals(confident)) is None
    if classes > 2:
        unsure = _spread(classes, 0.45, 0.2)  # top under 1/2, a clear margin over the runner-up
        assert choose_sampler(settings, _signals(unsure)) == "low_confidence"
    else:
        assert choose_sampler(settings, _signals([0.6, 0.4])) is None  # a binary 0.6 is neither
    assert all(abs(sum(p) - 1.0) < 1e-9 for p in (hesitant, confident))


def test_the_device_page_states_the_default_share_and_the_wire_prior() -> None:
    page = " ".join((Path(__file__).parents[2] / "docs" / "device.md").read_text().split())
    assert f"`DEFAULT_BUDGET_SHARE` (a share of {DEFAULT_BUDGET_SHARE:g} of raw bytes, on the wire" in page
    assert DEFAULT_BUDGET_SHARE < 1 / 20
    assert "`WIRE_PRIOR_BYTES` of JSON" in page
    assert "half a bank above the bank" in page  # test_beyond_its_bank_a_stable_device_spends_the_surplus_too
