"""Uplink pacing as pure functions: the link's state, retry delays and the publish rate limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from edgeloop.core.errors import ValidationError

IOT_CORE_PUBLISHES_PER_S = 100
"""IoT Core's limit of publish requests per second per connection."""


class UplinkState(StrEnum):
    """What the health report says about the uplink."""

    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    OFFLINE = "offline"


def uplink_state(*, link_up: bool, consecutive_failures: int) -> UplinkState:
    """Down beats everything; a link believed up whose last publish failed is backing off."""
    if not link_up:
        return UplinkState.OFFLINE
    return UplinkState.BACKING_OFF if consecutive_failures else UplinkState.CONNECTED


def full_jitter_delay(failures: int, *, base_s: float, cap_s: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(failures-1))) so a fleet spreads out."""
    if failures < 1:
        raise ValidationError("failures", f"must be >= 1 to compute a backoff, got {failures}")
    if not 0 < base_s <= cap_s:
        raise ValidationError("base_s", f"must satisfy 0 < base_s <= cap_s, got {base_s} and {cap_s}")
    ceiling = cap_s if failures > 64 else min(cap_s, base_s * 2 ** (failures - 1))
    draw = rand()
    if not 0.0 <= draw < 1.0:
        raise ValidationError("rand", f"must return a value in [0, 1), returned {draw}")
    return draw * ceiling


@dataclass(frozen=True)
class TokenBucket:
    """A rate limit as a value: take() answers a new bucket, or None when the caller must wait."""

    rate_per_s: float
    burst: float
    tokens: float
    updated_at: float

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0:
            raise ValidationError("rate_per_s", f"must be > 0, got {self.rate_per_s}")
        if self.burst < 1:
            raise ValidationError("burst", f"must be >= 1 so one publish can ever pass, got {self.burst}")

    @classmethod
    def full(cls, rate_per_s: float, burst: float, now: float) -> TokenBucket:
        """A bucket that allows a burst right away."""
        return cls(rate_per_s, burst, burst, now)

    def refill(self, now: float) -> TokenBucket:
        """Tokens earned since the last update, capped at the burst (a clock going back earns nothing)."""
        elapsed = max(0.0, now - self.updated_at)
        return replace(self, tokens=min(self.burst, self.tokens + elapsed * self.rate_per_s), updated_at=now)

    def take(self, now: float) -> TokenBucket | None:
        """Spend one token, or None when none is left at now."""
        current = self.refill(now)
        if current.tokens < 1:
            return None
        return replace(current, tokens=current.tokens - 1)

    def wait_s(self, now: float) -> float:
        """Seconds until take() succeeds."""
        missing = 1 - self.refill(now).tokens
        return max(0.0, missing / self.rate_per_s)
