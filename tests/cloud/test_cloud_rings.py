"""Ring thing groups on moto IoT as IoT itself lists them (the deployments' targets), and the memory fake's registry.

What every RingDirectory promises (exactly one ring, pins win, re-syncing moves nobody, unknown devices) is
checked once against both implementations in test_cloud_rings_contract.py.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from edgeloop.cloud.rings import IotRingDirectory, MemoryRingDirectory
from edgeloop.core.errors import FleetControlError, NotFoundError
from edgeloop.core.names import FLEET_THING_GROUP, ring_group
from edgeloop.core.rings import RING_ATTRIBUTE, ring_for
from edgeloop.core.rollout import Ring, RolloutPolicy

POLICY = RolloutPolicy(rings=(Ring("canary", 0.2, 0), Ring("broad", 0.8, 0)))


@pytest.fixture
def iot(aws: None) -> Any:
    client = boto3.client("iot", region_name="us-east-1")
    client.create_thing_group(thingGroupName=FLEET_THING_GROUP)
    for i in range(20):
        client.create_thing(thingName=f"gw-{i}")
        client.add_thing_to_thing_group(thingGroupName=FLEET_THING_GROUP, thingName=f"gw-{i}")
    client.create_thing(thingName="lab-1", attributePayload={"attributes": {RING_ATTRIBUTE: "canary"}})
    client.add_thing_to_thing_group(thingGroupName=FLEET_THING_GROUP, thingName="lab-1")
    return client


def members(iot: Any, ring: str) -> set[str]:
    return {t for page in iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=ring_group(ring))
            for t in page["things"]}  # fmt: skip


def test_sync_puts_every_fleet_device_in_exactly_its_ring_thing_group(iot: Any) -> None:
    rings = IotRingDirectory(iot, POLICY)
    rings.ensure_groups()
    rings.ensure_groups()  # idempotent
    placed = rings.sync()
    canary, broad = members(iot, "canary"), members(iot, "broad")
    assert canary.isdisjoint(broad)
    assert canary | broad == {f"gw-{i}" for i in range(20)} | {"lab-1"}
    assert "lab-1" in canary, "pinned by attribute"
    for i in range(20):
        assert placed[f"gw-{i}"] == ring_for(f"gw-{i}", POLICY.ring_names, POLICY.shares)
    assert rings.sync() == placed, "a second sync moves nobody"
    groups = {g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="lab-1")["thingGroups"]}
    assert groups == {FLEET_THING_GROUP, ring_group("canary")}, "in its ring group, still in the fleet group"


def test_the_memory_registry_refuses_unknown_things_and_groups_and_adds_once() -> None:
    rings = MemoryRingDirectory(POLICY)
    with pytest.raises(NotFoundError, match="thing gw-1 does not exist"):
        rings.add_to_group(FLEET_THING_GROUP, "gw-1")
    rings.put_thing("gw-1")
    with pytest.raises(FleetControlError, match="gw-1 in edgeloop-fleet-canary: the group does not exist"):
        rings.add_to_group(ring_group("canary"), "gw-1")
    rings.add_to_group(FLEET_THING_GROUP, "gw-1")
    rings.add_to_group(FLEET_THING_GROUP, "gw-1")
    rings.ensure_groups()
    assert rings.sync() == {"gw-1": ring_for("gw-1", POLICY.ring_names, POLICY.shares)}
