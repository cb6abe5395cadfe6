"""The sample budget as a share of what raw streaming would have sent, on the wire, and the random share it reserves.

A daily byte limit (sampleBytesPerDay) bounds nothing in a short run and everything in a busy one; a share
holds at any request rate and run length: every reading a device serves earns `share` x its raw-equivalent
bytes (what a naive device streaming every reading would have sent, `raw_reading_bytes`), and samples spend
what was earned, priced at the bytes they are expected to take on the wire (core.share_budget: the accounts, and
the running compression ratio of the device's published SAMPLE batches), so the wire bytes spent never exceed
`share` of raw bytes. This module is what the configuration needs (settings, the Lambdas): the policy alone.

The earnings go to two accounts. The random sampler's account gets `random_share` of them and the hard-example
samplers cannot touch it, so the control sample the cloud's accuracy estimate rests on is never censored by hard
examples taking the bytes first; the random sampler may also spend the hard account once its own is empty. The
random rate follows from the budget (`random_rate`): the account first fills a bank of `bank_samples` random
samples' worth, spending `stable_spend` of its earnings while it does. What the random account holds beyond the
bank, the hard-example samplers may spend; what they leave raises the stable pace in proportion, so a device
whose hard examples are few spends all its account earns (its balance settles half a bank above the bank) and
no labels are left on the table. While a change is suspected (the device's drift flag) it spends at
`suspected_boost` times the filling rate, drawing the bank down, since labelled random samples are what both
measures the deployed version on the new world and teaches its successor. Each random
sample records the rate it was drawn at (its inclusion probability, core.estimates); the rate depends only on
what happened before the draw, never on the inference drawn, so a rate that moves does not bias the estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from edgeloop.core.errors import ConfigError

RAW_ENVELOPE_BYTES = 96
"""What a naive device adds around each reading it streams raw (thing, request id, timestamp, JSON keys)."""
RAW_DECIMALS = 4
"""A raw reading's values as a naive device would send them: rounded to this many decimals."""
STABLE_SPEND = 0.5
"""While its bank fills, the random sampler spends this share of what its account earns (more beyond the bank)."""
SUSPECTED_BOOST = 4.0
"""While a change is suspected, the random rate is this many times the filling rate (paid from the bank)."""
BANK_SAMPLES = 8
"""The random account keeps this many samples' worth for a suspected change; beyond it, the surplus is spent."""

DEFAULT_BUDGET_SHARE = 0.045
"""The default budget: sample bytes on the wire (gzipped batches, as `sample_bytes_uploaded` counts them) at most
0.045 of what streaming every reading raw would send: under the 1/20 promise by a tenth, for the estimate's error
(the bank still held keeps a short run well under it); 1/50 is a share of 0.02."""
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
