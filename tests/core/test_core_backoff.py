"""Uplink pacing: link state, full-jitter backoff and the token bucket, all pure."""

from __future__ import annotations

import pytest

from edgeloop.core.backoff import TokenBucket, UplinkState, full_jitter_delay, uplink_state
from edgeloop.core.errors import ValidationError


@pytest.mark.parametrize(
    ("link_up", "failures", "expected"),
    [
        (True, 0, UplinkState.CONNECTED),
        (True, 3, UplinkState.BACKING_OFF),
        (False, 0, UplinkState.OFFLINE),
        (False, 3, UplinkState.OFFLINE),
    ],
)
def test_uplink_state(link_up: bool, failures: int, expected: UplinkState) -> None:
    assert uplink_state(link_up=link_up, consecutive_failures=failures) is expected


def test_uplink_state_wire_names() -> None:
    assert [s.value for s in UplinkState] == ["connected", "backing_off", "offline"]


def test_backoff_ceiling_doubles_per_failure_up_to_the_cap() -> None:
    almost_one = 0.999999
    ceilings = [full_jitter_delay(n, base_s=1.0, cap_s=30.0, rand=lambda: almost_one) for n in range(1, 8)]
    assert [round(c, 3) for c in ceilings] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_backoff_is_the_random_draw_times_the_ceiling() -> None:
    assert full_jitter_delay(3, base_s=0.5, cap_s=60.0, rand=lambda: 0.25) == pytest.approx(0.5)
    assert full_jitter_delay(3, base_s=0.5, cap_s=60.0, rand=lambda: 0.0) == 0.0


def test_backoff_survives_huge_failure_counts() -> None:
    assert full_jitter_delay(10_000, base_s=1.0, cap_s=60.0, rand=lambda: 0.5) == 30.0


@pytest.mark.parametrize(
    ("failures", "base", "cap", "draw", "field"),
    [
        (0, 1.0, 10.0, 0.5, "failures"),
        (1, 0.0, 10.0, 0.5, "base_s"),
        (1, 20.0, 10.0, 0.5, "base_s"),
        (1, 1.0, 10.0, 1.0, "rand"),
        (1, 1.0, 10.0, -0.1, "rand"),
    ],
)
def test_backoff_refuses_bad_input(failures: int, base: float, cap: float, draw: float, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        full_jitter_delay(failures, base_s=base, cap_s=cap, rand=lambda: draw)
    assert caught.value.field == field


def _drain(bucket: TokenBucket, now: float) -> tuple[int, TokenBucket]:
    taken = 0
    while (after := bucket.take(now)) is not None:
        bucket, taken = after, taken + 1
    return taken, bucket


def test_a_full_bucket_allows_the_burst_then_refuses() -> None:
    taken, bucket = _drain(TokenBucket.full(100, 10, now=0.0), now=0.0)
    assert taken == 10
    assert bucket.take(0.0) is None
    assert bucket.wait_s(0.0) == pytest.approx(0.01)


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    _, empty = _drain(TokenBucket.full(100, 10, now=0.0), now=0.0)
    assert _drain(empty, now=0.05)[0] == 5
    assert _drain(empty, now=100.0)[0] == 10


def test_over_one_second_the_bucket_never_passes_more_than_rate_plus_burst() -> None:
    bucket = TokenBucket.full(100, 10, now=0.0)
    taken = 0
    for step in range(1001):  # try every millisecond for one second
        now = step / 1000
        while (after := bucket.take(now)) is not None:
            bucket, taken = after, taken + 1
    assert taken == 110


def test_a_clock_going_back_earns_no_tokens() -> None:
    _, empty = _drain(TokenBucket.full(100, 10, now=5.0), now=5.0)
    assert empty.take(1.0) is None


@pytest.mark.parametrize(("rate", "burst", "field"), [(0, 10, "rate_per_s"), (10, 0.5, "burst")])
def test_bucket_refuses_bad_limits(rate: float, burst: float, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TokenBucket.full(rate, burst, now=0.0)
    assert caught.value.field == field
