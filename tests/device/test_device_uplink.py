"""One contract suite for the uplinks (fake, and real MQTT against the local IoT Core stand-in), plus IPC."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol
from unittest.mock import create_autospec

import pytest
from awscrt import mqtt
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    QOS,
    ConnectionStatus,
    ConnectionStatusEvent,
    IoTCoreConnectionStatusEvent,
    UnauthorizedError,
)

from edgeloop.core.errors import LinkError
from edgeloop.core.names import HEALTH_SHADOW, NAMED_SHADOW_UPDATE_FILTER, results_topic, shadow_topic
from edgeloop.device.uplink import ConnectionWatch, IpcUplink, MemoryUplink, MqttUplink, Uplink, connect_mqtt
from edgeloop.local.broker import LocalIotCore
from edgeloop.local.link import Network, SimulatedLink
from edgeloop.local.sim.outages import Outage

THING = "dev-1"
WAIT_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ShadowService:
    """Records what IoT Core's shadow service would receive on the reserved update topics."""

    def __init__(self) -> None:
        self.documents: list[tuple[str, dict[str, Any]]] = []
        self.changed = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.changed:
            self.documents.append((topic, json.loads(payload)))
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.documents) >= count, WAIT_S)
            return list(self.documents)


@dataclass
class EmbeddedBroker:
    """The local stack's IoT Core stand-in (amqtt underneath), with a recording shadow service."""

    core: LocalIotCore
    shadows: ShadowService

    @property
    def host(self) -> str:
        return self.core.host

    @property
    def port(self) -> int:
        return self.core.port


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """The IoT Core stand-in on 127.0.0.1: plain MQTT plus IoT Core's reserved shadow topics."""
    shadows = ShadowService()
    with LocalIotCore() as core:
        core.add_reserved_service(NAMED_SHADOW_UPDATE_FILTER, shadows)
        yield EmbeddedBroker(core, shadows)


@dataclass
class Inbox:
    """What a second MQTT client received, with a way to wait for it."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_message(self, topic: str, payload: bytes, **_: Any) -> None:
        with self.changed:
            self.messages.append((topic, payload))
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.messages) >= count, WAIT_S)
            return list(self.messages)


class Endpoint(Protocol):
    """Any local broker a test runs: where to connect."""

    host: str
    port: int


def listen(broker: Endpoint, *topic_filters: str) -> tuple[mqtt.Connection, Inbox]:
    """A second client that records what arrives on the given filters."""
    inbox = Inbox()
    connection = connect_mqtt(broker.host, broker.port, f"sub-{uuid.uuid4().hex[:8]}")
    for topic_filter in topic_filters:
        future, _ = connection.subscribe(topic_filter, mqtt.QoS.AT_LEAST_ONCE, callback=inbox.on_message)
        future.result(timeout=WAIT_S)
    return connection, inbox


class Harness:
    """Drives one Uplink implementation and observes what reached the far side."""

    uplink: Uplink

    def published(self, count: int) -> list[tuple[str, bytes]]:
        raise NotImplementedError

    def shadow_documents(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def go_offline(self) -> None:
        raise NotImplementedError


class MemoryHarness(Harness):
    def __init__(self) -> None:
        self.fake = MemoryUplink()
        self.uplink = self.fake

    def published(self, count: int) -> list[tuple[str, bytes]]:
        return list(self.fake.published)

    def shadow_documents(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        return [(shadow_topic(t, "update", s), doc) for t, s, doc in self.fake.shadows]

    def go_offline(self) -> None:
        self.fake.online = False


class MqttHarness(Harness):
    def __init__(self, broker: EmbeddedBroker) -> None:
        self.watch = ConnectionWatch()
        self.thing_client = f"dev-{uuid.uuid4().hex[:8]}"
        connection = connect_mqtt(broker.host, broker.port, self.thing_client, watch=self.watch)
        self.mqtt = MqttUplink(connection, WAIT_S, watch=self.watch)
        self.uplink = self.mqtt
        self.shadows = broker.shadows
        self.seen_before = len(broker.shadows.documents)
        self.subscriber, self.inbox = listen(broker, "edgeloop/#")

    def published(self, count: int) -> list[tuple[str, bytes]]:
        return [m for m in self.inbox.wait_for(count) if m[0].startswith("edgeloop/")]

    def shadow_documents(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        return self.shadows.wait_for(self.seen_before + count)[self.seen_before :]

    def go_offline(self) -> None:
        self.mqtt.close()
        assert self.watch.wait_for(False, WAIT_S)

    def close(self) -> None:
        self.mqtt.close()
        self.subscriber.disconnect().result(timeout=WAIT_S)


class SimulatedHarness(Harness):
    """The stepped fleet's link (edgeloop.local.link): delivery into the local IoT Core is a call."""

    def __init__(self) -> None:
        self.now = 0.0
        self.outages: list[Outage] = []
        network = Network(self.outages, devices=1, step_s=60.0, now_s=lambda: self.now)
        self.delivered: list[tuple[str, bytes]] = []
        self.uplink = SimulatedLink(0, network, lambda topic, payload: self.delivered.append((topic, payload)))

    def published(self, count: int) -> list[tuple[str, bytes]]:
        return [m for m in self.delivered if not m[0].startswith("$aws/")]

    def shadow_documents(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        return [(topic, json.loads(payload)) for topic, payload in self.delivered if topic.startswith("$aws/")]

    def go_offline(self) -> None:
        self.outages.append(Outage("partition", from_s=self.now, to_s=self.now + 3600.0))


@pytest.fixture(params=["memory", "simulated", "mqtt"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        yield MemoryHarness()
        return
    if request.param == "simulated":
        yield SimulatedHarness()
        return
    made = MqttHarness(request.getfixturevalue("broker"))
    yield made
    made.close()


# --- the contract -------------------------------------------------------------------------------


def test_publish_delivers_the_payload_to_the_topic(harness: Harness) -> None:
    topic = results_topic(THING)

    harness.uplink.publish(topic, b'{"records":[]}')

    assert harness.published(1) == [(topic, b'{"records":[]}')]


def test_publishes_arrive_in_order(harness: Harness) -> None:
    topic = results_topic(THING)
    for i in range(5):
        harness.uplink.publish(topic, str(i).encode())

    assert [payload for _, payload in harness.published(5)] == [b"0", b"1", b"2", b"3", b"4"]


def test_update_shadow_delivers_the_document_on_the_shadow_update_topic(harness: Harness) -> None:
    document = {"state": {"reported": {"inferences": 3, "connected": True}}}

    harness.uplink.update_shadow(THING, HEALTH_SHADOW, document)

    assert harness.shadow_documents(1) == [(shadow_topic(THING, "update"), document)]


def test_connected_while_up(harness: Harness) -> None:
    assert harness.uplink.connected is True


def test_offline_calls_raise_link_error(harness: Harness) -> None:
    harness.go_offline()

    assert harness.uplink.connected is False
    with pytest.raises(LinkError):
        harness.uplink.publish(results_topic(THING), b"{}")
    with pytest.raises(LinkError):
        harness.uplink.update_shadow(THING, HEALTH_SHADOW, {"state": {}})


# --- MQTT specifics -----------------------------------------------------------------------------


def test_unwatched_mqtt_uplink_times_out_into_link_error(broker: EmbeddedBroker) -> None:
    connection = connect_mqtt(broker.host, broker.port, f"dev-{uuid.uuid4().hex[:8]}")
    uplink = MqttUplink(connection, timeout_s=0.2)
    connection.disconnect().result(timeout=WAIT_S)

    with pytest.raises(LinkError, match="TimeoutError"):
        uplink.publish(results_topic(THING), b"{}")
    assert uplink.connected is False


def test_connect_to_a_port_nobody_listens_on_is_a_link_error() -> None:
    with pytest.raises(LinkError, match="cannot connect"):
        connect_mqtt("127.0.0.1", _free_port(), "nobody", timeout_s=WAIT_S)


def test_publishes_after_a_shadow_update_still_arrive(broker: EmbeddedBroker) -> None:
    """IoT Core consumes reserved topics without dropping the client (plain amqtt would drop it)."""
    uplink = MqttUplink.connect(broker.host, broker.port, f"dev-{uuid.uuid4().hex[:8]}", timeout_s=WAIT_S)
    subscriber, inbox = listen(broker, "edgeloop/#")
    uplink.update_shadow(THING, HEALTH_SHADOW, {"state": {"reported": {"n": 1}}})
    uplink.publish(results_topic(THING), b"after")
    assert inbox.wait_for(1) == [(results_topic(THING), b"after")]
    assert uplink.connected
    uplink.close()
    subscriber.disconnect().result(timeout=WAIT_S)


def test_close_is_idempotent_and_leaves_the_link_down(broker: EmbeddedBroker) -> None:
    uplink = MqttUplink.connect(broker.host, broker.port, f"dev-{uuid.uuid4().hex[:8]}", timeout_s=WAIT_S)
    uplink.close()
    uplink.close()
    assert not uplink.connected
    with pytest.raises(LinkError, match="connection is down"):
        uplink.publish(results_topic(THING), b"x")


# --- IPC ----------------------------------------------------------------------------------------


def _done(result: object = None, error: Exception | None = None) -> Future[object]:
    future: Future[object] = Future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
    return future


@pytest.fixture
def ipc() -> Any:
    return create_autospec(GreengrassCoreIPCClientV2, instance=True)


def test_ipc_publish_sends_qos1_to_iot_core(ipc: Any) -> None:
    ipc.publish_to_iot_core_async.return_value = _done()

    IpcUplink(ipc, timeout_s=1.0).publish(results_topic(THING), b"payload")

    kwargs = ipc.publish_to_iot_core_async.call_args.kwargs
    assert kwargs == {"topic_name": results_topic(THING), "qos": QOS.AT_LEAST_ONCE, "payload": b"payload"}


def test_ipc_shadow_update_sends_the_document_as_json(ipc: Any) -> None:
    ipc.update_thing_shadow_async.return_value = _done()
    document = {"state": {"reported": {"model_state": "active", "latency": {"p50_ms": 0.5}}}}

    IpcUplink(ipc, timeout_s=1.0).update_shadow(THING, HEALTH_SHADOW, document)

    kwargs = ipc.update_thing_shadow_async.call_args.kwargs
    assert (kwargs["thing_name"], kwargs["shadow_name"]) == (THING, HEALTH_SHADOW)
    assert json.loads(kwargs["payload"]) == document


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda m: setattr(m, "side_effect", UnauthorizedError(message="denied")), id="raises"),
        pytest.param(lambda m: setattr(m, "return_value", _done(error=UnauthorizedError(message="no"))), id="fails"),
        pytest.param(lambda m: setattr(m, "return_value", Future()), id="never-answers"),
    ],
)
def test_ipc_failures_become_link_errors_and_mark_the_link_down(ipc: Any, setup: Any) -> None:
    setup(ipc.publish_to_iot_core_async)
    setup(ipc.update_thing_shadow_async)
    uplink = IpcUplink(ipc, timeout_s=0.05)

    with pytest.raises(LinkError, match="publish to"):
        uplink.publish(results_topic(THING), b"{}")
    with pytest.raises(LinkError, match="update of shadow"):
        uplink.update_shadow(THING, HEALTH_SHADOW, {"state": {}})
    assert uplink.connected is False


def test_an_ipc_failure_says_the_nucleus_reason(ipc: Any) -> None:
    ipc.publish_to_iot_core_async.return_value = _done(error=UnauthorizedError(message="not authorized for topic t"))

    with pytest.raises(LinkError, match="UnauthorizedError: not authorized for topic t"):
        IpcUplink(ipc, timeout_s=1.0).publish(results_topic(THING), b"{}")


def test_ipc_link_comes_back_up_after_a_success(ipc: Any) -> None:
    uplink = IpcUplink(ipc, timeout_s=1.0)
    ipc.publish_to_iot_core_async.return_value = _done(error=UnauthorizedError(message="no"))
    with pytest.raises(LinkError):
        uplink.publish("t", b"")

    ipc.publish_to_iot_core_async.return_value = _done()
    uplink.publish("t", b"")

    assert uplink.connected is True


def _status(status: str) -> IoTCoreConnectionStatusEvent:
    return IoTCoreConnectionStatusEvent(connection_status_event=ConnectionStatusEvent(status=status))


def _watched(ipc: Any) -> tuple[IpcUplink, dict[str, Any]]:
    ipc.subscribe_to_iot_core_connection_status_async.return_value = (_done(), None)
    uplink = IpcUplink(ipc, timeout_s=1.0)
    assert uplink.watch_connection_status() is True
    return uplink, ipc.subscribe_to_iot_core_connection_status_async.call_args.kwargs


def test_ipc_connection_status_events_drive_connected(ipc: Any) -> None:
    uplink, handlers = _watched(ipc)

    handlers["on_stream_event"](_status(ConnectionStatus.DISCONNECTED))
    assert uplink.connected is False
    handlers["on_stream_event"](_status(ConnectionStatus.CONNECTED))
    assert uplink.connected is True


def test_ipc_publish_is_held_back_while_the_nucleus_reports_iot_core_down(ipc: Any) -> None:
    uplink, handlers = _watched(ipc)
    handlers["on_stream_event"](_status(ConnectionStatus.DISCONNECTED))
    ipc.publish_to_iot_core_async.return_value = _done()

    with pytest.raises(LinkError, match="nucleus reports IoT Core disconnected"):
        uplink.publish("t", b"")  # the nucleus would spool it in memory: the record must stay in our buffer
    ipc.publish_to_iot_core_async.assert_not_called()
    assert uplink.connected is False

    handlers["on_stream_event"](_status(ConnectionStatus.CONNECTED))
    uplink.publish("t", b"")
    assert ipc.publish_to_iot_core_async.call_count == 1


def test_forwarder_acks_nothing_while_the_nucleus_is_offline(ipc: Any) -> None:
    from edgeloop.core.records import RecordKind
    from edgeloop.device.buffer import MemoryBuffer
    from edgeloop.device.forwarder import Forwarder

    uplink, handlers = _watched(ipc)
    handlers["on_stream_event"](_status(ConnectionStatus.DISCONNECTED))
    ipc.publish_to_iot_core_async.return_value = _done()
    buffer = MemoryBuffer(THING)
    buffer.append(RecordKind.EVENT, [{"n": 1}, {"n": 2}], 1.0)

    assert Forwarder(THING, buffer, uplink).drain(10.0, 100, flush=True) == 0
    assert buffer.stats().depth == 2


def test_ipc_a_failed_status_stream_falls_back_to_outcomes(ipc: Any) -> None:
    uplink, handlers = _watched(ipc)
    handlers["on_stream_event"](_status(ConnectionStatus.DISCONNECTED))

    assert handlers["on_stream_error"](RuntimeError("stream reset")) is True

    assert uplink.connected is True  # no exchange has failed yet


def test_ipc_a_refused_status_subscription_keeps_outcome_based_state(ipc: Any) -> None:
    ipc.subscribe_to_iot_core_connection_status_async.return_value = (
        _done(error=UnauthorizedError(message="not authorized")),
        None,
    )
    uplink = IpcUplink(ipc, timeout_s=1.0)

    assert uplink.watch_connection_status() is False

    ipc.publish_to_iot_core_async.return_value = _done(error=UnauthorizedError(message="no"))
    with pytest.raises(LinkError):
        uplink.publish("t", b"")
    assert uplink.connected is False
