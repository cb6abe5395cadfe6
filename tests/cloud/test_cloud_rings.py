"""Ring thing groups on moto IoT: devices land in exactly one ring, pins win, re-syncing moves nobody."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from edgeloop.cloud.rings import IotRingDirectory
from edgeloop.core.errors import NotFoundError
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


def test_sync_puts_every_fleet_device_in_exactly_its_ring(iot: Any) -> None:
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


def test_ring_of_reads_the_ring_group_and_falls_back_to_the_hash(iot: Any) -> None:
    rings = IotRingDirectory(iot, POLICY)
    rings.ensure_groups()
    assert rings.ring_of("lab-1") == 0, "not yet in a ring group: the pin decides"
    iot.add_thing_to_thing_group(thingGroupName=ring_group("broad"), thingName="gw-3")
    assert rings.ring_of("gw-3") == 1, "the ring group it is in wins"


def test_a_pin_changed_later_moves_the_device_out_of_its_old_ring(iot: Any) -> None:
    rings = IotRingDirectory(iot, POLICY)
    rings.ensure_groups()
    rings.sync()
    iot.update_thing(thingName="lab-1", attributePayload={"attributes": {RING_ATTRIBUTE: "broad"}})
    assert rings.assign("lab-1") == 1
    assert "lab-1" in members(iot, "broad")
    assert "lab-1" not in members(iot, "canary")


def test_an_unknown_device_is_not_found(iot: Any) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        IotRingDirectory(iot, POLICY).assign("ghost")
