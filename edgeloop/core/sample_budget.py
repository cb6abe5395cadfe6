"""The sample budget as a share of what raw streaming would have sent, on the wire, and the random share it reserves.

A daily byte limit (sampleBytesPerDay) bounds nothing in a short run and everything in a busy one; a share
holds at any request rate and run length: every reading a device serves earns `share` x its raw-equivalent
bytes (what a naive device streaming every reading would have sent, `raw_reading_bytes`), and samples spend
what was earned, priced at the bytes they are expected to take on the wire. Sample batches travel gzipped
(core.sample_batches), so a sample's wire price is its JSON size times the running compression ratio of the
device's own published SAMPLE batches (`WireRatio`: wire bytes over the samples' JSON bytes, leaning on a prior
of no compression at all until enough bytes were published). The whole history is priced at the latest ratio,
so the estimate of wire bytes spent (`ShareBudget.spent_wire`) never exceeds `share` of raw bytes at any moment.

The earnings go to two accounts. The random sampler's account gets `random_share` of them and the hard-example
samplers cannot touch it, so the control sample the cloud's accuracy estimate rests on is never censored by hard
examples taking the bytes first; the random sampler may also spend the hard account once its own is empty. The
random rate follows from the budget (`random_rate`): the account first fills a bank of `bank_samples` random
samples' worth, spending `stable_spend` of its earnings while it does; once the bank is full, a stable device
spends all the account earns, so no labels are left on the table. While a change is suspected (the device's
drift flag) it spends at `suspected_boost` times the filling rate, drawing the bank down, since labelled random
samples are what both measures the deployed version on the new world and teaches its successor. Each random
sample records the rate it was drawn at (its inclusion probability, core.estimates); the rate depends only on
what happened before the draw, never on the inference drawn, so a rate that moves does not bias the estimate.
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
"""While its bank is below bank_samples, the random sampler spends this share of what its account earns."""
SUSPECTED_BOOST = 4.0
"""While a change is suspected, the random rate is this many times the filling rate (paid from the bank)."""
BANK_SAMPLES = 8
"""The random account keeps this many samples' worth for a suspected change; beyond it, all it earns is spent."""
WIRE_PRIOR_RATIO = 1.0
"""Wire bytes per sample JSON byte assumed before any batch was published: no compression (the safe side)."""
WIRE_PRIOR_BYTES = 1024
"""The prior counts as this many JSON bytes already published; the measured ratio outweighs it after a few samples."""

DEFAULT_BUDGET_SHARE = 0.04
"""The default budget: sample bytes on the wire (gzipped batches, as `sample_bytes_uploaded` counts them) at most
1/25 of what streaming every reading raw would send, safely under the 1/20 promise; 1/50 is a budget of 0.02."""
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

        sample_bytes is a sample's price (its expected bytes on the wire). floor is the configured `random`
        parameter: the rate never goes below what the operator asked for. balance: what the random sampler may
        spend now (its account; both accounts when hard_idle). Stable, the rate is the account's income times a
        pace: stable_spend while the bank (bank_samples samples) fills, and beyond it stable_spend plus the surplus
        in banks, up to the cap (stable_spend x suspected_boost): a surplus the hard examples leave is spent, so
        the balance settles half a bank above the bank instead of growing. Without a balance the stable pace is
        stable_spend. While a change is suspected the pace is the cap, paid from the balance. A rate the balance
        could not pay for two batches of `batch` readings at (nor two samples) falls back to the filling rate,
        below the account's income, so random samples are thinned by a rate they record, never dropped by a
        budget that ran out (a drop would leave the stretch it happened in under-represented). hard_idle: the hard
        examples leave their account unspent (a model seldom unsure), so the random sampler's income is the whole
        budget's (it borrows what the hard account holds).
        """
        if self.share <= 0 or sample_bytes <= 0:
            return floor
        income = (1.0 if hard_idle else self.random_share) * self.share * raw_per_reading / sample_bytes
        filling = min(1.0, max(floor, income * self.stable_spend))
        cap = self.stable_spend * self.suspected_boost
        if balance is None:
            return min(1.0, max(floor, income * cap)) if suspected else filling
        bank = max(self.bank_samples, 1.0) * sample_bytes
        pace = cap if suspected else min(cap, self.stable_spend + max(0.0, balance - bank) / bank)
        rate = min(1.0, max(floor, income * pace))
        if balance < max(2.0, 2.0 * rate * batch) * sample_bytes:
            return filling
        return rate


@dataclass(frozen=True)
class WireRatio:
    """The running compression ratio of the device's published SAMPLE batches: wire bytes per sample JSON byte.

    Measured on what the forwarder actually published (batch envelope and gzip included), against the samples'
    own JSON sizes (what the taker measures), so JSON bytes x ratio estimates a sample's wire bytes. Until
    prior_bytes of JSON were published the prior (no compression) weighs as much as what was measured.
    """

    json_bytes: int = 0
    wire_bytes: int = 0
    prior: float = WIRE_PRIOR_RATIO
    prior_bytes: float = WIRE_PRIOR_BYTES

    def __post_init__(self) -> None:
        if self.json_bytes < 0 or self.wire_bytes < 0:
            raise ConfigError("wire_ratio", f"bytes must be >= 0, got {self.json_bytes}, {self.wire_bytes}")
        if not (math.isfinite(self.prior) and self.prior > 0 and math.isfinite(self.prior_bytes)):
            raise ConfigError("wire_ratio", f"prior must be a positive ratio, got {self.prior}")
        if self.prior_bytes <= 0:
            raise ConfigError("wire_ratio", f"prior_bytes must be > 0, got {self.prior_bytes}")

    def published(self, json_bytes: int, wire_bytes: int) -> WireRatio:
        """A SAMPLE batch went out: its samples' JSON bytes and the bytes the message took on the wire."""
        if json_bytes <= 0 or wire_bytes <= 0:
            return self
        return replace(self, json_bytes=self.json_bytes + json_bytes, wire_bytes=self.wire_bytes + wire_bytes)

    @property
    def ratio(self) -> float:
        """Wire bytes per JSON byte: what was published, with the prior's weight."""
        return (self.wire_bytes + self.prior * self.prior_bytes) / (self.json_bytes + self.prior_bytes)


@dataclass(frozen=True)
class ShareBudget:
    """Bytes earned (share of raw-equivalent bytes served) and spent, in the random and the hard account.

    Earnings and balances are in wire bytes; what was spent is kept in sample JSON bytes and priced at the wire
    ratio as it stands, so a better estimate of the ratio re-prices the whole history, not only what comes next.
    """

    policy: BudgetPolicy
    raw_bytes: int = 0
    """Raw-equivalent bytes of every reading served so far."""
    random_spent: int = 0
    """Sample JSON bytes the random account paid for (as are hard_spent's)."""
    hard_spent: int = 0
    wire: WireRatio = WireRatio()

    def earned(self) -> tuple[float, float]:
        """Wire bytes earned so far by the random and the hard account."""
        total = self.policy.share * self.raw_bytes
        return total * self.policy.random_share, total * (1.0 - self.policy.random_share)

    def balances(self) -> tuple[float, float]:
        """Wire bytes the random and the hard account hold now (the random one may borrow from the hard one)."""
        random_earned, hard_earned = self.earned()
        ratio = self.wire.ratio
        return random_earned - self.random_spent * ratio, hard_earned - self.hard_spent * ratio

    def served(self, raw_bytes: int) -> ShareBudget:
        """Readings served: their raw-equivalent bytes earn the accounts their share."""
        return replace(self, raw_bytes=self.raw_bytes + raw_bytes)

    def published(self, json_bytes: int, wire_bytes: int) -> ShareBudget:
        """A SAMPLE batch went out: the wire ratio learns from it (core: WireRatio.published)."""
        return replace(self, wire=self.wire.published(json_bytes, wire_bytes))

    def admit(self, size: int, random: bool, bank: float = 0.0) -> tuple[ShareBudget, bool]:
        """Whether a sample of size JSON bytes is affordable at its wire price, and the budget after spending it.

        A random sample spends its own account first, then the hard one; a hard sample the hard one, then what
        the random account holds beyond `bank` wire bytes (the reserve a suspected change will spend). An account
        in debt (a ratio that grew re-prices the past) counts against the other, so the total is never overspent.
        """
        if self.policy.share <= 0:
            return self, True
        random_left, hard_left = self.balances()
        ratio = self.wire.ratio
        price = size * ratio
        if not random:
            spare = random_left - bank if random_left > bank else min(0.0, random_left)  # a debt counts against it
            if price > hard_left + spare:
                return self, False
            own = max(0, min(size, math.floor(hard_left / ratio)))
            return replace(self, hard_spent=self.hard_spent + own, random_spent=self.random_spent + size - own), True
        if price > random_left + hard_left:
            return self, False
        own = max(0, min(size, math.floor(random_left / ratio)))
        return replace(self, random_spent=self.random_spent + own, hard_spent=self.hard_spent + size - own), True

    @property
    def spent(self) -> int:
        """Sample JSON bytes spent under this budget."""
        return self.random_spent + self.hard_spent

    @property
    def spent_wire(self) -> float:
        """Wire bytes spent under this budget, as the wire ratio now prices them."""
        return self.spent * self.wire.ratio

    def with_policy(self, policy: BudgetPolicy) -> ShareBudget:
        """The same history under a new share (a configuration change keeps what was served and spent)."""
        return replace(self, policy=policy)
