"""Simulated device links for the stepped fleet: an Uplink per device into the local IoT Core, no sockets.

Simulation stand-in, not a connection: a thousand MQTT clients in one Python process would measure the
process, not the platform. What it keeps faithful is what the device code depends on (the Uplink
contract): publish returns only once IoT Core has the message, and raises LinkError otherwise, so the
device keeps the records; a link that drops mid-publish delivers the message but loses its PUBACK, so
the device sends it again and the cloud sees a duplicate it must recognise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeloop.core.errors import LinkError
from edgeloop.core.names import shadow_topic
from edgeloop.device.uplink import shadow_payload
from edgeloop.local.sim.cost import MESSAGE_UNIT_BYTES, SHADOW_UNIT_BYTES
from edgeloop.local.sim.outages import Outage, ack_lost, link_up

Deliver = Callable[[str, bytes], None]


@dataclass
class Network:
    """The simulated network between the fleet and IoT Core: outage schedule on the simulation's clock."""

    outages: Sequence[Outage]
    devices: int
    step_s: float
    now_s: Callable[[], float]
    rings: dict[int, str] = field(default_factory=dict)
    """Device index -> ring name, for ring-scoped partitions."""

    def up(self, device_index: int) -> bool:
        """Whether this device's link is up now."""
        return link_up(self.outages, self.now_s(), device_index, self.devices, self.rings.get(device_index, ""))

    def drops_ack(self, device_index: int) -> bool:
        """Whether a publish now reaches IoT Core but its acknowledgement is lost to a link dropping in this step."""
        ring = self.rings.get(device_index, "")
        return ack_lost(self.outages, self.now_s(), self.step_s, device_index, self.devices, ring)


@dataclass
class LinkStats:
    """What one simulated link carried: the uplink side of the cost estimate."""

    messages: int = 0
    bytes: int = 0
    shadow_updates: int = 0
    shadow_bytes: int = 0
    refused: int = 0
    acks_lost: int = 0
    """Record messages delivered whose PUBACK the device never saw (each comes back as a duplicate)."""
    billed_units: int = 0
    """IoT Core meters messages in 5 KB units."""
    shadow_units: int = 0
    """...and shadow updates in 1 KB units."""


class SimulatedLink:
    """Uplink for one simulated device: IoT Core's accept-then-PUBACK as a call, outages from the Network."""

    def __init__(
        self, device_index: int, network: Network, deliver: Deliver, *, unit_bytes: int = MESSAGE_UNIT_BYTES
    ) -> None:
        self._index = device_index
        self._network = network
        self._deliver = deliver
        self._unit = unit_bytes
        self.stats = LinkStats()

    @property
    def connected(self) -> bool:
        """Up unless an outage holds this device's link down."""
        return self._network.up(self._index)

    def publish(self, topic: str, payload: bytes) -> None:
        """Hand the message to IoT Core (rules and services run), then acknowledge; LinkError when down."""
        if not self._network.up(self._index):
            self.stats.refused += 1
            raise LinkError(f"publish to {topic} failed: link down (simulated outage)")
        self._deliver(topic, bytes(payload))
        is_shadow = topic.startswith("$aws/")
        if is_shadow:
            self.stats.shadow_updates += 1
            self.stats.shadow_bytes += len(payload)
            self.stats.shadow_units += max(1, -(-len(payload) // SHADOW_UNIT_BYTES))
        else:
            self.stats.messages += 1
            self.stats.bytes += len(payload)
            self.stats.billed_units += max(1, -(-len(payload) // self._unit))
        if self._network.drops_ack(self._index):
            self.stats.acks_lost += 0 if is_shadow else 1
            raise LinkError(f"publish to {topic}: connection lost before PUBACK (simulated outage)")

    def update_shadow(self, thing_name: str, shadow_name: str, document: Mapping[str, Any]) -> None:
        """A named-shadow update on its reserved topic, with the same guarantee."""
        self.publish(shadow_topic(thing_name, "update", shadow_name), shadow_payload(document))
