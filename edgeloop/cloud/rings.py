"""Ring thing groups on AWS IoT: every fleet device in exactly the ring edgeloop.core.rings assigns it."""

from __future__ import annotations

import logging
from typing import Any

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import FleetControlError, NotFoundError
from edgeloop.core.names import FLEET_THING_GROUP, ring_group
from edgeloop.core.rings import ring_for
from edgeloop.core.rollout import RolloutPolicy

log = logging.getLogger(__name__)


class IotRingDirectory:
    """Ring membership kept in IoT thing groups (the targets of the rings' Greengrass deployments)."""

    def __init__(self, iot: Any, policy: RolloutPolicy) -> None:
        self._iot = iot
        self._policy = policy
        self._groups = [ring_group(name) for name in policy.ring_names]

    def ensure_groups(self) -> None:
        """Create the ring thing groups that do not exist yet (the CDK app creates them in an account)."""
        for group in self._groups:
            try:
                self._iot.create_thing_group(thingGroupName=group)
            except AWS_ERRORS as exc:
                if error_code(exc) != "ResourceAlreadyExistsException":
                    raise FleetControlError(f"could not create ring group {group}: {exc}") from exc

    def ring_of(self, thing_name: str) -> int:
        """The ring a device is in: its ring group if it has one, else where the hash (or its pin) puts it."""
        for group in self._groups_of(thing_name):
            if group in self._groups:
                return self._groups.index(group)
        return self.assigned_ring(thing_name)

    def assigned_ring(self, thing_name: str) -> int:
        """Where edgeloop.core.rings puts the device, from its name and its edgeloopRing attribute."""
        try:
            attributes = self._iot.describe_thing(thingName=thing_name).get("attributes") or {}
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"thing {thing_name} does not exist") from exc
            raise FleetControlError(f"could not read thing {thing_name}: {exc}") from exc
        return ring_for(thing_name, self._policy.ring_names, self._policy.shares, attributes)

    def assign(self, thing_name: str) -> int:
        """Put the device in its ring group and out of every other ring group; safe to repeat."""
        ring = self.assigned_ring(thing_name)
        wanted = self._groups[ring]
        current = self._groups_of(thing_name)
        try:
            for group in current:
                if group in self._groups and group != wanted:
                    self._iot.remove_thing_from_thing_group(thingGroupName=group, thingName=thing_name)
            if wanted not in current:
                self._iot.add_thing_to_thing_group(thingGroupName=wanted, thingName=thing_name)
        except AWS_ERRORS as exc:
            raise FleetControlError(f"could not put {thing_name} in ring group {wanted}: {exc}") from exc
        return ring

    def sync(self, fleet_group: str = FLEET_THING_GROUP) -> dict[str, int]:
        """Assign every member of the fleet group (new devices join a ring; nobody already placed moves)."""
        try:
            pages = self._iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=fleet_group)
            things = [thing for page in pages for thing in page["things"]]
        except AWS_ERRORS as exc:
            raise FleetControlError(f"could not list the members of {fleet_group}: {exc}") from exc
        rings = {thing: self.assign(thing) for thing in things}
        log.info("ring groups synced for %d devices of %s", len(rings), fleet_group)
        return rings

    def members(self, ring_name: str) -> list[str]:
        """The devices in one ring's thing group, sorted (what `edgeloop rollout status` lists)."""
        group = ring_group(ring_name)
        try:
            pages = self._iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=group)
            return sorted(thing for page in pages for thing in page["things"])
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"ring group {group} does not exist") from exc
            raise FleetControlError(f"could not list the members of {group}: {exc}") from exc

    def _groups_of(self, thing_name: str) -> list[str]:
        try:
            pages = self._iot.get_paginator("list_thing_groups_for_thing").paginate(thingName=thing_name)
            return [group["groupName"] for page in pages for group in page["thingGroups"]]
        except AWS_ERRORS as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"thing {thing_name} does not exist") from exc
            raise FleetControlError(f"could not list the groups of {thing_name}: {exc}") from exc
