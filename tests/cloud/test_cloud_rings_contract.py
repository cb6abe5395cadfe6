"""One contract for the RingDirectory port, run against the IoT adapter (on moto's thing groups) and the memory fake.

Each implementation comes with a `Registry`: the few things provisioning or an operator does to the thing
registry (create a thing, change its attributes, add it to a group), done through IoT for the adapter and
through the fake's own registry for the fake, so both face the same fleet. Tests assert on effects read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import boto3
import pytest

from edgeloop.cloud.rings import IotRingDirectory, MemoryRingDirectory, RingDirectory
from edgeloop.core.errors import FleetControlError, NotFoundError, ValidationError
from edgeloop.core.names import FLEET_THING_GROUP, ring_group
from edgeloop.core.rings import RING_ATTRIBUTE, ring_for
from edgeloop.core.rollout import Ring, RolloutPolicy

POLICY = RolloutPolicy(rings=(Ring("canary", 0.2, 0), Ring("broad", 0.8, 0)))
FLEET = [f"gw-{i}" for i in range(20)]


class Registry(Protocol):
    """The thing registry under a RingDirectory, as provisioning and operators change it."""

    def put_thing(self, thing_name: str, attributes: Mapping[str, str] | None = None) -> None: ...

    def add_to_group(self, group: str, thing_name: str) -> None: ...


class IotRegistry:
    """The registry on moto IoT."""

    def __init__(self, iot: Any) -> None:
        self.iot = iot

    def put_thing(self, thing_name: str, attributes: Mapping[str, str] | None = None) -> None:
        payload = {"attributes": dict(attributes or {})}
        try:
            self.iot.create_thing(thingName=thing_name, attributePayload=payload)
        except self.iot.exceptions.ResourceAlreadyExistsException:
            self.iot.update_thing(thingName=thing_name, attributePayload=payload)

    def add_to_group(self, group: str, thing_name: str) -> None:
        self.iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing_name)


@pytest.fixture(params=["iot", "memory"])
def world(request: pytest.FixtureRequest) -> tuple[RingDirectory, Registry]:
    """A directory and its registry: a fleet group of gw-0..gw-19 and lab-1 (pinned to the canary), no ring groups."""
    directory: RingDirectory
    registry: Registry
    if request.param == "iot":
        request.getfixturevalue("aws")
        iot = boto3.client("iot", region_name="us-east-1")
        iot.create_thing_group(thingGroupName=FLEET_THING_GROUP)
        directory, registry = IotRingDirectory(iot, POLICY), IotRegistry(iot)
    else:
        memory = MemoryRingDirectory(POLICY)
        directory, registry = memory, memory
    for thing in FLEET:
        registry.put_thing(thing)
        registry.add_to_group(FLEET_THING_GROUP, thing)
    registry.put_thing("lab-1", {RING_ATTRIBUTE: "canary"})
    registry.add_to_group(FLEET_THING_GROUP, "lab-1")
    return directory, registry


def test_sync_puts_every_fleet_device_in_exactly_its_ring(world: tuple[RingDirectory, Registry]) -> None:
    rings, _ = world
    rings.ensure_groups()
    rings.ensure_groups()  # idempotent
    placed = rings.sync()
    canary, broad = set(rings.members("canary")), set(rings.members("broad"))
    assert canary.isdisjoint(broad)
    assert canary | broad == {*FLEET, "lab-1"}
    assert placed["lab-1"] == 0, "pinned by attribute"
    assert "lab-1" in canary
    for thing in FLEET:
        assert placed[thing] == ring_for(thing, POLICY.ring_names, POLICY.shares)
    assert 0 < len(canary) < len(broad), "the hash spreads the fleet over both rings"
    assert rings.sync() == placed, "a second sync moves nobody"
    assert rings.members("broad") == sorted(broad)


def test_a_thing_outside_the_fleet_group_is_not_synced(world: tuple[RingDirectory, Registry]) -> None:
    rings, registry = world
    registry.put_thing("bench-1")
    rings.ensure_groups()
    assert "bench-1" not in rings.sync()
    assert "bench-1" not in rings.members("canary") + rings.members("broad")


def test_assign_is_idempotent_and_returns_the_ring(world: tuple[RingDirectory, Registry]) -> None:
    rings, _ = world
    rings.ensure_groups()
    expected = ring_for("gw-7", POLICY.ring_names, POLICY.shares)
    assert rings.assign("gw-7") == rings.assign("gw-7") == expected
    assert rings.members(POLICY.ring_names[expected]) == ["gw-7"]
    assert rings.members(POLICY.ring_names[1 - expected]) == []


def test_ring_of_reads_the_ring_group_and_falls_back_to_the_assignment(world: tuple[RingDirectory, Registry]) -> None:
    rings, registry = world
    rings.ensure_groups()
    assert rings.ring_of("lab-1") == rings.assigned_ring("lab-1") == 0, "not yet in a ring group: the pin decides"
    registry.add_to_group(ring_group("broad"), "lab-1")
    assert rings.ring_of("lab-1") == 1, "the ring group it is in wins over the pin"
    assert rings.assigned_ring("lab-1") == 0, "while the assignment still says canary"
    assert rings.assign("lab-1") == 0
    assert rings.ring_of("lab-1") == 0, "assign moved it back to its ring"
    assert "lab-1" not in rings.members("broad")


def test_a_pin_changed_later_moves_the_device_out_of_its_old_ring(world: tuple[RingDirectory, Registry]) -> None:
    rings, registry = world
    rings.ensure_groups()
    rings.sync()
    registry.put_thing("lab-1", {RING_ATTRIBUTE: "broad"})
    assert rings.assign("lab-1") == 1
    assert "lab-1" in rings.members("broad")
    assert "lab-1" not in rings.members("canary")
    assert rings.ring_of("lab-1") == 1


def test_a_pin_naming_no_ring_is_refused_by_name(world: tuple[RingDirectory, Registry]) -> None:
    rings, registry = world
    rings.ensure_groups()
    registry.put_thing("lab-2", {RING_ATTRIBUTE: "canry"})
    with pytest.raises(ValidationError, match=r"lab-2 is pinned to 'canry'; rings are \['canary', 'broad'\]"):
        rings.assign("lab-2")
    assert "lab-2" not in rings.members("canary") + rings.members("broad")


def test_an_unknown_device_is_not_found(world: tuple[RingDirectory, Registry]) -> None:
    rings, _ = world
    rings.ensure_groups()
    for call in (rings.assign, rings.assigned_ring, rings.ring_of):
        with pytest.raises(NotFoundError, match="thing ghost does not exist"):
            call("ghost")


def test_ring_groups_must_exist_before_devices_are_placed(world: tuple[RingDirectory, Registry]) -> None:
    rings, _ = world
    with pytest.raises(NotFoundError, match=r"ring group edgeloop-fleet-canary does not exist"):
        rings.members("canary")
    with pytest.raises(FleetControlError, match="gw-1"):
        rings.assign("gw-1")
    rings.ensure_groups()
    assert rings.members("canary") == rings.members("broad") == []


def test_an_unknown_ring_or_fleet_group_is_refused(world: tuple[RingDirectory, Registry]) -> None:
    rings, _ = world
    rings.ensure_groups()
    with pytest.raises(NotFoundError, match="edgeloop-fleet-staging does not exist"):
        rings.members("staging")
    with pytest.raises(ValidationError, match="must be 1-31 lowercase"):
        rings.members("Canary")
    with pytest.raises(FleetControlError, match="could not list the members of no-such-fleet"):
        rings.sync("no-such-fleet")
