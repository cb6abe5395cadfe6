"""The IoT Core stand-in: reserved shadow topics go to a service, rules see every matching message."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from awscrt import mqtt

from edgeloop.core.names import RESULTS_TOPIC_FILTER, SHADOW_UPDATE_TOPIC_FILTER, results_topic, shadow_topic
from edgeloop.device.uplink import MqttUplink, connect_mqtt
from edgeloop.local.broker import LocalIotCore, Rule


class Collector:
    """Collects (topic, payload) pairs and lets a test wait for a count."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()

    def __call__(self, topic: str, payload: bytes, **_: object) -> None:
        with self._changed:
            self.items.append((topic, bytes(payload)))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.items) >= count, timeout), self.items
            return list(self.items)


@pytest.fixture
def iot_core() -> Iterator[LocalIotCore]:
    with LocalIotCore() as core:
        yield core


def test_shadow_updates_reach_the_service_and_the_client_stays_connected(iot_core: LocalIotCore) -> None:
    service = Collector()
    iot_core.add_reserved_service(SHADOW_UPDATE_TOPIC_FILTER, service)
    uplink = MqttUplink.connect(iot_core.host, iot_core.port, "dev-1", timeout_s=5)
    document = {"state": {"reported": {"ok": True}}}
    uplink.update_shadow("dev-1", "edgeloop-health", document)
    uplink.update_shadow("dev-1", "edgeloop-health", document)
    items = service.wait_for(2)
    assert [topic for topic, _ in items] == [shadow_topic("dev-1", "update")] * 2
    assert json.loads(items[0][1]) == document
    assert uplink.connected
    uplink.connection.disconnect().result(5)


def test_rules_see_messages_and_subscribers_still_get_them(iot_core: LocalIotCore) -> None:
    rule = Collector()
    iot_core.add_rule(Rule("results", RESULTS_TOPIC_FILTER, rule))
    subscriber = Collector()
    listener = connect_mqtt(iot_core.host, iot_core.port, "listener")
    listener.subscribe(RESULTS_TOPIC_FILTER, mqtt.QoS.AT_LEAST_ONCE, callback=subscriber)[0].result(5)
    uplink = MqttUplink.connect(iot_core.host, iot_core.port, "dev-2", timeout_s=5)
    uplink.publish(results_topic("dev-2"), b'{"n":1}')
    assert rule.wait_for(1) == [(results_topic("dev-2"), b'{"n":1}')]
    assert subscriber.wait_for(1) == [(results_topic("dev-2"), b'{"n":1}')]
    for connection in (listener, uplink.connection):
        connection.disconnect().result(5)


def test_a_failing_rule_is_counted_and_does_not_stop_the_engine(iot_core: LocalIotCore) -> None:
    def broken(topic: str, payload: bytes) -> None:
        raise RuntimeError("destination down")

    later = Collector()
    iot_core.add_rule(Rule("broken", RESULTS_TOPIC_FILTER, broken))
    iot_core.add_rule(Rule("later", RESULTS_TOPIC_FILTER, later))
    uplink = MqttUplink.connect(iot_core.host, iot_core.port, "dev-3", timeout_s=5)
    uplink.publish(results_topic("dev-3"), b"{}")
    later.wait_for(1)
    iot_core.drain()
    assert iot_core.rule_failures == 1
    uplink.connection.disconnect().result(5)


def test_cloud_side_publish_reaches_subscribers(iot_core: LocalIotCore) -> None:
    subscriber = Collector()
    listener = connect_mqtt(iot_core.host, iot_core.port, "listener-2")
    accepted = shadow_topic("dev-4", "update/accepted")
    listener.subscribe(accepted, mqtt.QoS.AT_LEAST_ONCE, callback=subscriber)[0].result(5)
    iot_core.publish(accepted, b'{"version":1}')
    assert subscriber.wait_for(1) == [(accepted, b'{"version":1}')]
    listener.disconnect().result(5)


def test_only_reserved_filters_can_be_services(iot_core: LocalIotCore) -> None:
    with pytest.raises(Exception, match="not a reserved topic filter"):
        iot_core.add_reserved_service("edgeloop/#", Collector())
