"""Ring membership: deterministic, stable as the fleet grows, pinnable, and every device in exactly one ring."""

from __future__ import annotations

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.rings import RING_ATTRIBUTE, assign_rings, fleet_position, ring_for

NAMES = ("canary", "early", "broad")
SHARES = (0.1, 0.3, 0.6)


def test_the_same_device_always_lands_in_the_same_ring() -> None:
    assert {ring_for("gw-0042", NAMES, SHARES) for _ in range(5)} == {ring_for("gw-0042", NAMES, SHARES)}
    assert 0.0 <= fleet_position("gw-0042") < 1.0


def test_adding_devices_moves_nobody_already_assigned() -> None:
    first = assign_rings({f"gw-{i}": {} for i in range(200)}, NAMES, SHARES)
    grown = assign_rings({f"gw-{i}": {} for i in range(2000)}, NAMES, SHARES)
    assert all(grown[name] == ring for name, ring in first.items())


def test_ring_sizes_follow_the_shares() -> None:
    rings = assign_rings({f"gw-{i}": {} for i in range(10_000)}, NAMES, SHARES)
    counts = [sum(1 for r in rings.values() if r == i) for i in range(3)]
    assert counts == pytest.approx([1000, 3000, 6000], rel=0.08)
    assert sum(counts) == 10_000, "each device in exactly one ring"


def test_a_pinned_device_goes_to_its_ring_whatever_its_hash() -> None:
    unpinned = [f"gw-{i}" for i in range(50) if ring_for(f"gw-{i}", NAMES, SHARES) != 0]
    assert all(ring_for(name, NAMES, SHARES, {RING_ATTRIBUTE: "canary"}) == 0 for name in unpinned)


def test_a_pin_to_an_unknown_ring_names_the_attribute_and_the_rings() -> None:
    with pytest.raises(ValidationError, match=rf"{RING_ATTRIBUTE}.*'cannary'.*canary"):
        ring_for("gw-1", NAMES, SHARES, {RING_ATTRIBUTE: "cannary"})


def test_names_and_shares_must_pair_up() -> None:
    with pytest.raises(ValidationError, match="rings"):
        ring_for("gw-1", NAMES, (0.5, 0.5))
