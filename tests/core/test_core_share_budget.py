"""The share budget's accounts: earned and spent per account, priced at the wire ratio the forwarder teaches."""

from __future__ import annotations

import math
import random

import pytest

from edgeloop.core.errors import ConfigError
from edgeloop.core.sample_budget import BANK_SAMPLES, BudgetPolicy
from edgeloop.core.share_budget import WIRE_PRIOR_RATIO, ShareBudget, WireRatio


def test_readings_served_earn_the_share_split_between_the_accounts() -> None:
    budget = ShareBudget(BudgetPolicy(0.02, random_share=0.25)).served(100_000)
    assert budget.earned() == pytest.approx((500.0, 1500.0))


def test_a_hard_sample_cannot_spend_the_random_reserve() -> None:
    budget = ShareBudget(BudgetPolicy(0.1, random_share=0.5)).served(10_000)  # 500 bytes in each account
    budget, admitted = budget.admit(400, random=False, bank=500)
    assert admitted
    budget, admitted = budget.admit(400, random=False, bank=500)
    assert not admitted  # 100 left in the hard account; the random account's 500 are banked
    budget, admitted = budget.admit(400, random=True)
    assert admitted
    assert (budget.random_spent, budget.hard_spent) == (400, 400)


def test_a_hard_sample_may_spend_what_the_random_account_holds_beyond_its_bank() -> None:
    budget = ShareBudget(BudgetPolicy(0.1, random_share=0.5)).served(10_000)  # 500 bytes in each account
    budget, admitted = budget.admit(700, random=False, bank=300)
    assert admitted  # 500 of its own and 200 of the random account's 500: 300 stay banked
    assert (budget.random_spent, budget.hard_spent) == (200, 500)
    _, admitted = budget.admit(1, random=False, bank=300)
    assert not admitted
    _, admitted = budget.admit(300, random=True, bank=300)
    assert admitted


def test_a_random_sample_borrows_from_the_hard_account_once_its_own_is_spent() -> None:
    budget = ShareBudget(BudgetPolicy(0.1, random_share=0.5)).served(10_000)
    budget, first = budget.admit(400, random=True)
    budget, second = budget.admit(400, random=True)  # 100 of its own left, 300 borrowed
    assert (first, second) == (True, True)
    assert (budget.random_spent, budget.hard_spent) == (500, 300)
    _, third = budget.admit(400, random=True)
    assert not third


def test_no_share_admits_everything() -> None:
    budget, admitted = ShareBudget(BudgetPolicy(0.0)).admit(10_000, random=False)
    assert admitted
    assert budget.spent == 0


@pytest.mark.parametrize("seed", range(20))
def test_spent_never_exceeds_the_share_of_raw_bytes(seed: int) -> None:
    """Any order of readings served and samples offered: the invariant holds after every step."""
    rng = random.Random(seed)
    share, random_share = rng.uniform(0.001, 1.0), rng.uniform(0.0, 1.0)
    budget = ShareBudget(BudgetPolicy(share, random_share=random_share))
    for _ in range(300):
        bank = rng.uniform(0, 3_000)
        budget, _ = budget.served(rng.randrange(0, 5_000)).admit(rng.randrange(1, 2_000), rng.random() < 0.5, bank)
        assert budget.spent <= share * budget.raw_bytes + 1e-6
        assert budget.random_spent <= random_share * share * budget.raw_bytes + 1e-6
        assert budget.hard_spent <= (1 - random_share) * share * budget.raw_bytes + 1e-6


def test_the_wire_ratio_starts_at_its_prior_and_learns_what_was_published() -> None:
    ratio = WireRatio()
    assert ratio.ratio == WIRE_PRIOR_RATIO  # nothing published: assume no compression
    ratio = ratio.published(1000, 300)
    assert WIRE_PRIOR_RATIO > ratio.ratio > 0.3  # the prior still weighs
    for _ in range(200):
        ratio = ratio.published(1000, 300)
    assert ratio.ratio == pytest.approx(0.3, abs=0.005)
    assert ratio.published(0, 50) == ratio  # nothing measured: nothing learnt


@pytest.mark.parametrize(
    "kwargs", [{"json_bytes": -1}, {"wire_bytes": -1}, {"prior": 0.0}, {"prior": math.inf}, {"prior_bytes": 0.0}]
)
def test_a_bad_wire_ratio_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        WireRatio(**kwargs)  # type: ignore[arg-type]


def test_samples_are_priced_at_their_wire_bytes() -> None:
    """At a ratio of 1/4 a budget of 1000 wire bytes pays for 4000 bytes of sample JSON, not 1000."""
    budget = ShareBudget(BudgetPolicy(0.1, random_share=0.5), wire=WireRatio(prior=0.25)).served(10_000)
    admitted = 0
    while True:
        budget, ok = budget.admit(100, random=True)
        if not ok:
            break
        admitted += 1
    assert admitted == 40
    assert budget.spent == 4000
    assert budget.spent_wire == pytest.approx(1000)


def test_a_better_ratio_reprices_the_whole_history() -> None:
    budget = ShareBudget(BudgetPolicy(0.1, random_share=0.5)).served(10_000)  # 500 wire bytes per account
    budget, ok = budget.admit(500, random=True)
    assert ok
    assert budget.balances()[0] == pytest.approx(0.0)  # priced at the prior: no compression
    budget = budget.published(10**6, 2 * 10**5)  # the batches compress to about 1/5
    assert budget.balances()[0] == pytest.approx(500 - 500 * budget.wire.ratio)
    assert budget.spent_wire == pytest.approx(500 * budget.wire.ratio)
    budget, ok = budget.admit(500, random=False)  # the hard account's 500, at the prior's price too
    assert ok
    worse = budget.published(10**6, 2 * 10**6)  # batches that grew on the wire: the accounts owe until they earn
    assert sum(worse.balances()) < 0
    assert worse.admit(1, random=True)[1] is False
    assert worse.served(10**5).admit(1, random=True)[1] is True


@pytest.mark.parametrize("seed", range(20))
def test_wire_bytes_spent_never_exceed_the_share_when_a_sample_is_admitted(seed: int) -> None:
    """Readings served, batches published and samples offered in any order: each admit keeps the invariant."""
    rng = random.Random(seed)
    share, random_share = rng.uniform(0.001, 1.0), rng.uniform(0.0, 1.0)
    budget = ShareBudget(BudgetPolicy(share, random_share=random_share))
    for _ in range(300):
        budget = budget.served(rng.randrange(0, 5_000))
        if rng.random() < 0.2:
            budget = budget.published(rng.randrange(1, 10_000), rng.randrange(1, 10_000))
        budget, admitted = budget.admit(rng.randrange(1, 2_000), rng.random() < 0.5, rng.uniform(0, 3_000))
        if admitted:
            assert budget.spent_wire <= share * budget.raw_bytes + 1e-6
            random_left, hard_left = budget.balances()
            assert random_left + hard_left >= -1e-6


def _stable_run(seed: int, readings: int) -> tuple[ShareBudget, int, int]:
    """A stable device with random samples only, its rate set from its balance before each batch of 10."""
    rng = random.Random(seed)
    policy = BudgetPolicy(0.04, random_share=0.5)
    size, raw, drawn, dropped = 300, 120, 0, 0
    budget = ShareBudget(policy, wire=WireRatio(prior=0.3)).served(100 * raw)  # the first sample is paid for
    for _ in range(readings // 10):
        random_left, hard_left = budget.balances()
        idle = hard_left >= policy.bank_samples * size * 0.3  # no hard examples: the random sampler spends it all
        rate = policy.random_rate(raw, size * 0.3, False, balance=random_left + hard_left, batch=10, hard_idle=idle)
        budget = budget.served(10 * raw)
        for _ in range(10):
            if rng.random() < rate:
                drawn += 1
                budget, ok = budget.admit(size, random=True, bank=policy.bank_samples * size * 0.3)
                dropped += not ok
    return budget, drawn, dropped


@pytest.mark.parametrize("seed", range(5))
def test_a_stable_device_leaves_only_about_its_bank_and_drops_no_random_sample(seed: int) -> None:
    budget, drawn, dropped = _stable_run(seed, 200_000)
    assert drawn > 0.9 * sum(budget.earned()) / (300 * 0.3)
    earned = sum(budget.earned())
    assert dropped == 0  # thinned by the rate they record, never dropped by an empty account
    bank = BANK_SAMPLES * 300 * 0.3
    assert budget.spent_wire >= earned - 4 * bank  # a bank and a half, the idle hard account's bank, a sample or two
    assert budget.spent_wire > 0.9 * earned
