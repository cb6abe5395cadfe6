"""The sample budget as a share of what raw streaming would have sent, and the random share it reserves.

A daily byte limit (sampleBytesPerDay) bounds nothing in a short run and everything in a busy one; a share
holds at any request rate and run length: every reading a device serves earns `share` x its raw-equivalent
bytes (what a naive device streaming every reading would have sent, `raw_reading_bytes`), and samples spend
what was earned, so sample bytes never exceed `share` of raw bytes at any moment.

The earnings go to two accounts. The random sampler's account gets `random_share` of them and the hard-example
samplers cannot touch it, so the control sample the cloud's accuracy estimate rests on is never censored by hard
examples taking the bytes first; the random sampler may also spend the hard account once its own is empty. The
random rate follows from the budget (`random_rate`): while the device is stable it spends half of what its
account earns and banks the rest; while a change is suspected (the device's drift flag) it spends at
`suspected_boost` times that rate, drawing the bank down, since labelled random samples are what both measures
the deployed version on the new world and teaches its successor. The bank is kept up to `bank_samples` random
samples' worth; what the random account holds beyond that, the hard-example samplers may spend, so a budget
whose device never suspects a change is not left unspent. Each random sample records the rate it was
drawn at (its inclusion probability, core.estimates), so a rate that moves does not bias the estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from edgeloop.core.errors import ConfigError

RAW_ENVELOPE_BYTES = 96
"""What a naive device adds around each reading it streams raw (thing, request id, timestamp, JSON keys)."""
RAW_DECIMALS = 4
"""A raw reading's values as a naive device would send them: rounded to this many decimals."""
STABLE_SPEND = 0.5
"""While stable, the random sampler spends this share of what its account earns (the rest is banked)."""
SUSPECTED_BOOST = 4.0
"""While a change is suspected, the random rate is this many times the stable rate (paid from the bank)."""
BANK_SAMPLES = 8
"""The random account keeps this many samples' worth for a suspected change; hard samples may spend the rest."""

DEFAULT_BUDGET_SHARE = 0.10
"""The default budget: sample JSON at most 1/10 of what streaming every reading raw would send, counted before
the batch's gzip; on the wire that was 2-3% of raw on the development streams (under the 1/20 promise), and
1/20 before compression left the loop with too few labels to detect a concept change or recover from it."""
DEFAULT_SAMPLERS: Mapping[str, float] = MappingProxyType({"random": 0.0, "low_confidence": 0.5, "small_margin": 0.1})
"""The default sampling policy under the default budget: the random rate is what the budget pays for (0 is only
its floor); hard examples are the unsure (top class under 1/2) and the hesitant (top two within 0.1), whatever
the number of classes; both are thinned by the budget, never by a rate tuned to a stream."""


def raw_reading_bytes(values: Sequence[float]) -> int:
    """Bytes one reading would cost streamed raw: its values as JSON (RAW_DECIMALS decimals) plus the envelope."""
    return len(json.dumps([round(float(v), RAW_DECIMALS) for v in values])) + RAW_ENVELOPE_BYTES


@dataclass(frozen=True)
class BudgetPolicy:
    """A budget share of raw-equivalent bytes, and the part of it reserved for the random sampler."""

    share: float
    """Sample bytes at most this share of raw-equivalent bytes served (0: no share budget, the daily limit only)."""
    random_share: float = 0.5
    stable_spend: float = STABLE_SPEND
    suspected_boost: float = SUSPECTED_BOOST
    bank_samples: float = BANK_SAMPLES

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("sampleBudgetShare", self.share, 0.0, 1.0),
            ("sampleRandomShare", self.random_share, 0.0, 1.0),
            ("stable_spend", self.stable_spend, 0.0, 1.0),
            ("suspected_boost", self.suspected_boost, 1.0, 1000.0),
            ("bank_samples", self.bank_samples, 0.0, 1e6),
        ):
            if isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
                raise ConfigError(name, f"{value} is outside [{low}, {high}]")

    def random_rate(
        self,
        raw_per_reading: float,
        sample_bytes: float,
        suspected: bool,
        floor: float = 0.0,
        *,
        balance: float | None = None,
        batch: int = 1,
        hard_idle: bool = False,
    ) -> float:
        """The random sampler's rate: its account's earnings per reading in samples, at the stable or boosted pace.

        floor is the configured `random` parameter: the rate never goes below what the operator asked for. The
        boost is paid from the random account's balance: with a balance given that could not pay for two
        batches of `batch` readings at the boosted rate (nor two samples), the stable rate applies, which is
        below the account's income, so random samples are thinned by a rate they record, never dropped by a
        budget that ran out (a drop would leave the stretch it happened in under-represented). hard_idle: the
        hard examples leave their account unspent (a model seldom unsure), so the random sampler's rate is paced
        on the whole budget's earnings instead of its own share (it borrows what the hard account holds).
        """
        if self.share <= 0 or sample_bytes <= 0:
            return floor
        earned = (1.0 if hard_idle else self.random_share) * self.share * raw_per_reading / sample_bytes
        stable = min(1.0, max(floor, earned * self.stable_spend))
        if not suspected:
            return stable
        boosted = min(1.0, max(floor, earned * self.stable_spend * self.suspected_boost))
        if balance is not None and balance < max(2.0, 2.0 * boosted * batch) * sample_bytes:
            return stable
        return boosted


@dataclass(frozen=True)
class ShareBudget:
    """Bytes earned (share of raw-equivalent bytes served) and spent, in the random and the hard account."""

    policy: BudgetPolicy
    raw_bytes: int = 0
    """Raw-equivalent bytes of every reading served so far."""
    random_spent: int = 0
    hard_spent: int = 0

    def earned(self) -> tuple[float, float]:
        """Bytes earned so far by the random and the hard account."""
        total = self.policy.share * self.raw_bytes
        return total * self.policy.random_share, total * (1.0 - self.policy.random_share)

    def balances(self) -> tuple[float, float]:
        """What the random and the hard account hold now (the random one may borrow from the hard one)."""
        random_earned, hard_earned = self.earned()
        random_left = random_earned - self.random_spent
        hard_left = hard_earned - self.hard_spent
        return random_left, hard_left

    def served(self, raw_bytes: int) -> ShareBudget:
        """Readings served: their raw-equivalent bytes earn the accounts their share."""
        return replace(self, raw_bytes=self.raw_bytes + raw_bytes)

    def admit(self, size: int, random: bool, bank: float = 0.0) -> tuple[ShareBudget, bool]:
        """Whether a sample of size bytes is affordable, and the budget after spending it.

        A random sample spends its own account first, then the hard one; a hard sample the hard one, then what
        the random account holds beyond `bank` bytes (the reserve a suspected change will spend).
        """
        if self.policy.share <= 0:
            return self, True
        random_left, hard_left = self.balances()
        if not random:
            spare = max(0.0, random_left - bank)
            if size > hard_left + spare:
                return self, False
            own = max(0, min(size, math.floor(hard_left)))
            return replace(self, hard_spent=self.hard_spent + own, random_spent=self.random_spent + size - own), True
        if size > random_left + hard_left:
            return self, False
        own = max(0, min(size, math.floor(random_left)))
        return replace(self, random_spent=self.random_spent + own, hard_spent=self.hard_spent + size - own), True

    @property
    def spent(self) -> int:
        """Sample bytes spent under this budget."""
        return self.random_spent + self.hard_spent

    def with_policy(self, policy: BudgetPolicy) -> ShareBudget:
        """The same history under a new share (a configuration change keeps what was served and spent)."""
        return replace(self, policy=policy)
