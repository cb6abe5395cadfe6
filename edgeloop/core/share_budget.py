"""The share budget's accounts, priced on the wire: what was earned and spent, and the wire ratio that prices it.

Sample batches travel gzipped (core.sample_batches), so a sample's wire price is its JSON size times the running
compression ratio of the device's own published SAMPLE batches (`WireRatio`: wire bytes over the samples' JSON
bytes, leaning on a prior of no compression until enough bytes were published). The whole history is priced at
the latest ratio, so the estimate of wire bytes spent (`ShareBudget.spent_wire`) never exceeds the policy's
share of raw bytes once a sample is admitted. The policy itself is core.sample_budget's (kept apart: the
configuration, and so every Lambda, imports it; only the device keeps accounts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from edgeloop.core.errors import ConfigError
from edgeloop.core.sample_budget import BudgetPolicy

WIRE_PRIOR_RATIO = 1.0
"""Wire bytes per sample JSON byte assumed before any batch was published: no compression (the safe side)."""
WIRE_PRIOR_BYTES = 256
"""The prior weighs as this many JSON bytes published, less than one sample: the first batch mostly replaces it."""


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
