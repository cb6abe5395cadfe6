"""Ring membership: each device in exactly one ring, chosen by a hash of its name so the fleet never reshuffles."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from edgeloop.core.errors import ValidationError
from edgeloop.core.names import validate_thing_name

RING_ATTRIBUTE = "edgeloopRing"
"""Thing attribute that pins a device to a ring by name (e.g. a lab device pinned to the canary)."""
HASH_SPAN = 2**64
"""Devices are spread over [0, 2**64) by the first eight bytes of the SHA-256 of their thing name."""


def fleet_position(thing_name: str) -> float:
    """Where a device sits in [0, 1): depends on its name only, so adding devices moves nobody else."""
    digest = hashlib.sha256(validate_thing_name(thing_name).encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SPAN


def ring_for(
    thing_name: str,
    ring_names: Sequence[str],
    shares: Sequence[float],
    attributes: Mapping[str, str] | None = None,
) -> int:
    """The ring index of a device: its pinned ring if the attribute names one, else by its fleet position."""
    if len(ring_names) != len(shares) or not ring_names:
        raise ValidationError("rings", f"{len(ring_names)} names but {len(shares)} shares")
    pinned = (attributes or {}).get(RING_ATTRIBUTE)
    if pinned is not None:
        if pinned not in ring_names:
            raise ValidationError(
                f"attributes.{RING_ATTRIBUTE}", f"{thing_name} is pinned to {pinned!r}; rings are {list(ring_names)}"
            )
        return list(ring_names).index(pinned)
    position, upper = fleet_position(thing_name), 0.0
    for index, share in enumerate(shares):
        upper += share
        if position < upper:
            return index
    return len(shares) - 1  # float rounding at the top end of the last ring


def assign_rings(
    things: Mapping[str, Mapping[str, str]], ring_names: Sequence[str], shares: Sequence[float]
) -> dict[str, int]:
    """Ring of every device (thing name -> attributes); the controller syncs ring thing groups to this."""
    return {name: ring_for(name, ring_names, shares, attributes) for name, attributes in things.items()}
