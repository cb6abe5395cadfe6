"""Ring thing groups on AWS IoT: every fleet device in exactly the ring edgeloop.core.rings assigns it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import FleetControlError, NotFoundError
from edgeloop.core.names import FLEET_THING_GROUP, ring_group
from edgeloop.core.rings import ring_for
from edgeloop.core.rollout import RolloutPolicy

log = logging.getLogger(__name__)


class RingDirectory(Protocol):
    """Which ring each fleet device is in, kept as one static thing group per ring (the rings' deployment targets).

    `ensure_groups` creates the ring groups and is safe to repeat. `assign` puts a device in the ring
    edgeloop.core.rings gives it (its edgeloopRing pin, else the hash of its name) and out of every other
    ring group; repeating it changes nothing. `sync` assigns every member of the fleet group and returns
    thing name -> ring index. `ring_of` is the ring group the device is in, else where it would be assigned.
    An unknown device raises NotFoundError (from assign, assigned_ring and ring_of), so does `members` of a
    ring whose group does not exist; a pin naming no ring raises ValidationError; a group the registry
    cannot write or list (a ring group before ensure_groups, a missing fleet group) raises FleetControlError.
    """

    def ensure_groups(self) -> None: ...

    def ring_of(self, thing_name: str) -> int: ...

    def assigned_ring(self, thing_name: str) -> int: ...

    def assign(self, thing_name: str) -> int: ...

    def sync(self, fleet_group: str = FLEET_THING_GROUP) -> dict[str, int]: ...

    def members(self, ring_name: str) -> list[str]: ...


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


class MemoryRingDirectory:
    """In-memory RingDirectory over its own small thing registry: things with attributes, and static groups.

    `put_thing` and `add_to_group` stand in for IoT's create_thing/update_thing and add_thing_to_thing_group
    (what provisioning or an operator does), so tests set up the same fleets for this and the IoT adapter.
    """

    def __init__(self, policy: RolloutPolicy, *, fleet_group: str = FLEET_THING_GROUP) -> None:
        self._policy = policy
        self._rings = [ring_group(name) for name in policy.ring_names]
        self._attributes: dict[str, dict[str, str]] = {}
        self._groups: dict[str, list[str]] = {fleet_group: []}
        self._lock = threading.RLock()

    def put_thing(self, thing_name: str, attributes: Mapping[str, str] | None = None) -> None:
        """Register a thing or replace its attributes."""
        with self._lock:
            self._attributes[thing_name] = dict(attributes or {})

    def add_to_group(self, group: str, thing_name: str) -> None:
        """Add a thing to an existing static group (a no-op when it is a member already)."""
        with self._lock:
            self._known(thing_name)
            if group not in self._groups:
                raise FleetControlError(f"could not put {thing_name} in {group}: the group does not exist")
            if thing_name not in self._groups[group]:
                self._groups[group].append(thing_name)

    def ensure_groups(self) -> None:
        """Create the ring groups that do not exist yet."""
        with self._lock:
            for group in self._rings:
                self._groups.setdefault(group, [])

    def ring_of(self, thing_name: str) -> int:
        """The ring group the device is in, else its assigned ring."""
        with self._lock:
            self._known(thing_name)
            for group in self._rings:
                if thing_name in self._groups.get(group, []):
                    return self._rings.index(group)
            return self.assigned_ring(thing_name)

    def assigned_ring(self, thing_name: str) -> int:
        """Where edgeloop.core.rings puts the device."""
        with self._lock:
            attributes = self._known(thing_name)
        return ring_for(thing_name, self._policy.ring_names, self._policy.shares, attributes)

    def assign(self, thing_name: str) -> int:
        """Into its ring group, out of every other ring group."""
        with self._lock:
            ring = self.assigned_ring(thing_name)
            self.add_to_group(self._rings[ring], thing_name)
            for group in self._rings:
                members = self._groups.get(group, [])
                if group != self._rings[ring] and thing_name in members:
                    members.remove(thing_name)
            return ring

    def sync(self, fleet_group: str = FLEET_THING_GROUP) -> dict[str, int]:
        """Assign every member of the fleet group."""
        with self._lock:
            if fleet_group not in self._groups:
                raise FleetControlError(f"could not list the members of {fleet_group}: the group does not exist")
            return {thing: self.assign(thing) for thing in list(self._groups[fleet_group])}

    def members(self, ring_name: str) -> list[str]:
        """The devices in one ring's group, sorted."""
        group = ring_group(ring_name)
        with self._lock:
            if group not in self._groups:
                raise NotFoundError(f"ring group {group} does not exist")
            return sorted(self._groups[group])

    def _known(self, thing_name: str) -> dict[str, str]:
        attributes = self._attributes.get(thing_name)
        if attributes is None:
            raise NotFoundError(f"thing {thing_name} does not exist")
        return attributes
