"""The stepped fleet's simulated link: delivery is a call, outages refuse it, a dropping link loses the PUBACK."""

from __future__ import annotations

import pytest

from edgeloop.core.errors import LinkError
from edgeloop.core.names import HEALTH_SHADOW, results_topic
from edgeloop.local.link import Network, SimulatedLink
from edgeloop.local.sim.outages import Outage


def _link(outages: list[Outage], clock: list[float]) -> tuple[SimulatedLink, list[tuple[str, bytes]]]:
    delivered: list[tuple[str, bytes]] = []
    network = Network(outages, devices=2, step_s=60.0, now_s=lambda: clock[0])
    return SimulatedLink(0, network, lambda t, p: delivered.append((t, p))), delivered


def test_a_publish_while_down_is_refused_and_nothing_arrives() -> None:
    clock = [100.0]
    link, delivered = _link([Outage("partition", 50.0, 200.0)], clock)
    with pytest.raises(LinkError, match="link down"):
        link.publish(results_topic("t"), b"x")
    assert delivered == []
    assert link.stats.refused == 1
    assert not link.connected


def test_a_link_dropping_within_the_step_delivers_but_loses_the_ack() -> None:
    clock = [0.0]
    link, delivered = _link([Outage("restart", 30.0, 90.0)], clock)
    with pytest.raises(LinkError, match="before PUBACK"):
        link.publish(results_topic("t"), b"x" * 6000)
    assert delivered == [(results_topic("t"), b"x" * 6000)], "the cloud has it: a retry will be a duplicate"
    assert link.stats.acks_lost == 1
    assert link.stats.billed_units == 2


def test_shadow_updates_are_counted_apart_in_one_kilobyte_units() -> None:
    clock = [0.0]
    link, delivered = _link([], clock)
    link.update_shadow("t", HEALTH_SHADOW, {"state": {"reported": {"x": "y" * 1500}}})
    assert delivered[0][0] == f"$aws/things/t/shadow/name/{HEALTH_SHADOW}/update"
    assert link.stats.shadow_updates == 1
    assert link.stats.shadow_units == 2
    assert link.stats.messages == 0
