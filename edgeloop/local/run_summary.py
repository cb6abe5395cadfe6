"""The scenario summary's delivery, uplink and timeline figures (the loop's own figures are in scoring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeloop.local.fleet import SteppedDevice
from edgeloop.local.ledger import Ledger
from edgeloop.local.link import LinkStats
from edgeloop.local.sim.cost import Metered, UplinkUsage
from edgeloop.local.sim.outages import outage_seconds
from edgeloop.local.sim.scenario import Scenario
from edgeloop.local.world import World

if TYPE_CHECKING:
    from edgeloop.local.stack import LocalStack


def usage(world: World, scenario: Scenario, links: list[LinkStats], connected_minutes: float) -> UplinkUsage:
    """What the fleet sent, in the units AWS bills: every results and samples message has a rule and an S3 put."""
    messages = Metered(sum(s.messages for s in links), sum(s.billed_units for s in links))
    return UplinkUsage(
        devices=len(links),
        duration_s=scenario.run_duration_s,
        readings=world.ledger.size,
        messages=messages,
        shadow_updates=Metered(sum(s.shadow_updates for s in links), sum(s.shadow_units for s in links)),
        rules_triggered=messages,
        s3_puts=messages.count,
        connected_minutes=connected_minutes,
    )


def uplink(world: World, scenario: Scenario, links: list[LinkStats]) -> dict[str, Any]:
    """What crossed the uplink, messages and bytes, against streaming every request raw."""
    return {
        "devices": len(links),
        "simulated_s": scenario.run_duration_s,
        "messages": sum(s.messages for s in links),
        "bytes": sum(s.bytes for s in links),
        "billed_units": sum(s.billed_units for s in links),
        "shadow_updates": sum(s.shadow_updates for s in links),
        "shadow_bytes": sum(s.shadow_bytes for s in links),
        "publishes_refused_offline": sum(s.refused for s in links),
        "acks_lost": sum(s.acks_lost for s in links),
        "raw_messages": world.ledger.size,
        "raw_bytes": world.raw_bytes,
    }


def reliability(stack: LocalStack, world: World, scenario: Scenario, devices: list[SteppedDevice]) -> dict[str, Any]:
    """Produced on the devices against received by the cloud, exactly once in effect."""
    produced = sum(d.records_produced() for d in devices)
    delivered = stack.results.received + stack.sample_catalogue.count()
    return {
        "records_produced": produced,
        "records_delivered": delivered,
        "records_lost": produced - delivered,
        "duplicates_received": stack.results.duplicates + stack.samples.duplicates,
        "duplicates_ingested": world.ledger.counted_twice,
        "max_buffer_depth": world.max_buffer_depth,
        "outage_s": outage_seconds(scenario.outages),
        "requests": world.ledger.size,
        "answers_received": len(world.ledger.answered()),
        "requests_refused": sum(d.health().rejected_inputs for d in devices),
    }


def with_accuracy(ledger: Ledger, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each point gains the accuracy, per answering version, of the requests sent since the previous point."""
    size = ledger.size
    at, version = ledger.at_s[:size], ledger.version[:size]
    out, since = [], -1.0
    for point in points:
        window = (at > since) & (at <= point["t_s"])
        accuracy = {}
        for v in np.unique(version[window]).tolist():
            if v:
                accuracy[str(v)] = ledger.accuracy(window & (version == v))
        out.append({**point, "accuracy": accuracy})
        since = point["t_s"]
    return out


def scenario_events(scenario: Scenario) -> list[dict[str, Any]]:
    """The timeline's events the scenario itself schedules: its drift events and outages."""
    events: list[dict[str, Any]] = [
        {"t_s": e.at_s, "kind": "drift", "text": f"{e.kind} drift x{e.magnitude:g} on {e.share:.0%} of devices",
         "version": None}
        for e in scenario.drift
    ]  # fmt: skip
    for outage in scenario.outages:
        what = "IoT Core stand-in restart" if outage.kind == "restart" else f"{outage.scope} partition"
        flap = f", flapping every {outage.flap_s:g} s" if outage.flap_s else ""
        events.append({"t_s": outage.from_s, "kind": "outage_start" if outage.kind == "partition"
                       else "restart", "text": f"{what}{flap}", "version": None})  # fmt: skip
        events.append({"t_s": outage.to_s, "kind": "outage_end", "text": f"{what} ends", "version": None})
    return events


def timeline_point(stack: LocalStack, world: World, buffered: int) -> dict[str, Any]:
    """One timeline point: devices online and per version, buffer, delivery, all sent so far (shadow included)."""
    devices = list(world.fleet.values())
    versions: dict[str, int] = {}
    for device in devices:
        version = device.runtime.model_status().version
        key = str(version) if version is not None else "none"
        versions[key] = versions.get(key, 0) + 1
    links = [d.link.stats for d in devices]
    return {
        "t_s": round(world.now_s, 1),
        "online": sum(1 for d in devices if d.link.connected),
        "buffered": buffered,
        "produced": sum(d.records_produced() for d in devices),
        "delivered": stack.results.received + stack.sample_catalogue.count(),
        "sent_bytes_incl_shadow": sum(s.bytes + s.shadow_bytes for s in links),
        "sent_messages_incl_shadow": sum(s.messages + s.shadow_updates for s in links),
        "raw_bytes": world.raw_bytes,
        "raw_messages": world.ledger.size,
        "devices_by_version": versions,
    }
