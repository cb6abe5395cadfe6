"""Uplinks: the one way records and health leave the device, confirmed (QoS 1) or reported as LinkError."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from awscrt import io, mqtt
from awscrt.exceptions import AwsCrtError
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import QOS, ConnectionStatus, IoTCoreConnectionStatusEvent

from edgeloop.core.errors import LinkError
from edgeloop.core.names import shadow_topic

log = logging.getLogger(__name__)

TRANSPORT_ERRORS = (RuntimeError, AwsCrtError, OSError)
"""IPC errors derive from RuntimeError, CRT errors from AwsCrtError, timeouts and sockets from OSError."""


def _reason(exc: BaseException) -> str:
    """Why a call failed: IPC errors keep their text in .message (their str() is empty), others in str()."""
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) and message else str(exc)


class Uplink(Protocol):
    """The device's confirmed channel to IoT Core (directly, or through the Greengrass nucleus).

    Semantics every implementation honours (tests/device/test_device_uplink.py checks them):

    - ``publish(topic, payload)`` returns only once the broker (or the nucleus, which then owns
      delivery) confirmed the message at QoS 1. Anything else (offline, refused, no confirmation
      within the uplink's timeout) raises LinkError, and the caller keeps the records buffered:
      a message may then arrive twice, never zero times, and the cloud dedupes on (thing, seq).
    - ``update_shadow(thing_name, shadow_name, document)`` sends a named-shadow update document
      with the same guarantee and raises LinkError the same way.
    - ``connected`` is the uplink's best knowledge of whether the link is up right now; it is for
      health reports, never a substitute for catching LinkError.
    """

    @property
    def connected(self) -> bool:
        """Whether the link is believed to be up."""
        ...

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one message at QoS 1 and wait for the confirmation."""
        ...

    def update_shadow(self, thing_name: str, shadow_name: str, document: Mapping[str, Any]) -> None:
        """Send one named-shadow update document and wait for the confirmation."""
        ...


def shadow_payload(document: Mapping[str, Any]) -> bytes:
    """Shadow documents travel as compact JSON."""
    return json.dumps(document, separators=(",", ":")).encode()


class IpcUplink:
    """Uplink through the Greengrass nucleus (PublishToIoTCore, UpdateThingShadow over IPC)."""

    def __init__(self, ipc: GreengrassCoreIPCClientV2, timeout_s: float) -> None:
        self._ipc = ipc
        self._timeout_s = timeout_s
        self._connected = True
        self._nucleus_link: bool | None = None
        self._status_lock = threading.Lock()

    @property
    def connected(self) -> bool:
        """The nucleus's own IoT Core connection status when watched, else whether the last exchange succeeded."""
        with self._status_lock:
            return self._connected if self._nucleus_link is None else self._nucleus_link

    def watch_connection_status(self) -> bool:
        """Follow the nucleus's IoT Core connection (SubscribeToIoTCoreConnectionStatus); False if refused.

        An older nucleus or a recipe without the operation's authorization refuses the subscription;
        the uplink then keeps judging the link by each exchange's outcome, which is logged, not hidden.
        """
        try:
            future, _ = self._ipc.subscribe_to_iot_core_connection_status_async(
                on_stream_event=self._on_status,
                on_stream_error=self._on_status_error,
                on_stream_closed=self._on_status_closed,
            )
            future.result(timeout=self._timeout_s)
        except TRANSPORT_ERRORS as exc:
            log.warning("IoT Core connection status not available, judging the link by outcomes: %s", exc)
            return False
        return True

    def _on_status(self, event: IoTCoreConnectionStatusEvent) -> None:
        status = event.connection_status_event.status if event.connection_status_event else None
        if status is None:
            log.warning("IoT Core connection status event without a status: %r", event)
            return
        with self._status_lock:
            self._nucleus_link = status == ConnectionStatus.CONNECTED
        log.info("nucleus reports IoT Core connection %s", status)

    def _on_status_error(self, error: Exception) -> bool:
        log.warning("IoT Core connection status stream failed, judging the link by outcomes: %s", error)
        self._on_status_closed()
        return True  # close the stream

    def _on_status_closed(self) -> None:
        with self._status_lock:
            self._nucleus_link = None

    def publish(self, topic: str, payload: bytes) -> None:
        """PublishToIoTCore at QoS 1; refused while the nucleus reports IoT Core down.

        The nucleus answers a publish even when offline (it spools, by default in memory and dropping the
        oldest when full), so acknowledging then would move records from our durable buffer into a lossy
        one. While the watched status is DISCONNECTED, records stay in the buffer instead.
        """
        with self._status_lock:
            if self._nucleus_link is False:
                raise LinkError(f"publish to {topic} held back: the nucleus reports IoT Core disconnected")
        self._wait(
            f"publish to {topic}",
            lambda: self._ipc.publish_to_iot_core_async(topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=payload),
        )

    def update_shadow(self, thing_name: str, shadow_name: str, document: Mapping[str, Any]) -> None:
        """UpdateThingShadow through the nucleus's ShadowManager."""
        self._wait(
            f"update of shadow {shadow_name!r}",
            lambda: self._ipc.update_thing_shadow_async(
                thing_name=thing_name, shadow_name=shadow_name, payload=shadow_payload(document)
            ),
        )

    def _wait(self, what: str, call: Callable[[], Future[Any]]) -> None:
        """Run one IPC call with a deadline (the sync client would wait forever on a stuck nucleus)."""
        try:
            call().result(timeout=self._timeout_s)
        except TRANSPORT_ERRORS as exc:
            with self._status_lock:
                self._connected = False
            raise LinkError(f"{what} failed: {type(exc).__name__}: {_reason(exc)}") from exc
        with self._status_lock:
            self._connected = True


class ConnectionWatch:
    """Follows an awscrt MQTT connection's lifecycle callbacks, which awscrt only takes at construction."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._up = False

    @property
    def up(self) -> bool:
        """Whether the connection is established right now."""
        return self._up

    def wait_for(self, up: bool, timeout_s: float) -> bool:
        """Block until the link is up (or down); True if it got there within timeout_s."""
        with self._changed:
            return self._changed.wait_for(lambda: self._up == up, timeout_s)

    def on_success(self, connection: mqtt.Connection, callback_data: Any, **_: Any) -> None:
        """Connected (first time or after a reconnect)."""
        self._set(True)

    def on_resumed(self, connection: mqtt.Connection, return_code: Any, session_present: bool, **_: Any) -> None:
        """Reconnected after an interruption."""
        self._set(return_code == mqtt.ConnectReturnCode.ACCEPTED)

    def on_down(self, connection: mqtt.Connection, **_: Any) -> None:
        """Interrupted, failed or closed: the link is down until resumed."""
        self._set(False)

    def _set(self, up: bool) -> None:
        with self._changed:
            self._up = up
            self._changed.notify_all()


def connect_mqtt(
    host: str,
    port: int,
    client_id: str,
    *,
    tls: io.TlsContextOptions | None = None,
    watch: ConnectionWatch | None = None,
    timeout_s: float = 10.0,
) -> mqtt.Connection:
    """An MQTT 3.1.1 connection (plain TCP without tls, mTLS with it), connected before it returns."""
    watch = watch or ConnectionWatch()
    connection = mqtt.Connection(
        client=mqtt.Client(tls_ctx=io.ClientTlsContext(tls) if tls is not None else None),
        host_name=host,
        port=port,
        client_id=client_id,
        keep_alive_secs=30,
        reconnect_min_timeout_secs=1,
        reconnect_max_timeout_secs=30,
        on_connection_success=watch.on_success,
        on_connection_resumed=watch.on_resumed,
        on_connection_interrupted=watch.on_down,
        on_connection_failure=watch.on_down,
        on_connection_closed=watch.on_down,
    )
    try:
        connection.connect().result(timeout=timeout_s)
    except TRANSPORT_ERRORS as exc:
        raise LinkError(f"cannot connect to MQTT broker {host}:{port} as {client_id}: {exc}") from exc
    if not watch.wait_for(True, timeout_s):  # the success callback may trail the connect future
        raise LinkError(f"MQTT broker {host}:{port} accepted {client_id} but the connection did not come up")
    return connection


class MqttUplink:
    """Uplink over a direct MQTT 3.1.1 connection: IoT Core with mTLS, or the local stack's broker."""

    def __init__(
        self,
        connection: mqtt.Connection,
        timeout_s: float,
        *,
        watch: ConnectionWatch | None = None,
    ) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._watch = watch
        self._last_ok = True
        self._closed = False

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        client_id: str,
        *,
        timeout_s: float,
        tls: io.TlsContextOptions | None = None,
    ) -> MqttUplink:
        """Connect and watch the connection in one step."""
        watch = ConnectionWatch()
        connection = connect_mqtt(host, port, client_id, tls=tls, watch=watch, timeout_s=timeout_s)
        return cls(connection, timeout_s, watch=watch)

    @property
    def connection(self) -> mqtt.Connection:
        """The underlying connection (to disconnect it on shutdown)."""
        return self._connection

    @property
    def connected(self) -> bool:
        """The watched connection state, or the last publish's outcome when nothing watches it."""
        if self._closed:
            return False
        return self._watch.up if self._watch is not None else self._last_ok

    def close(self) -> None:
        """Disconnect cleanly; later publishes raise LinkError. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._last_ok = False
        try:
            self._connection.disconnect().result(timeout=self._timeout_s)
        except TRANSPORT_ERRORS as exc:
            log.warning("MQTT disconnect did not complete cleanly: %s", exc)

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK; refuse at once while the watched link is down."""
        if self._closed or (self._watch is not None and not self._watch.up):
            raise LinkError(f"publish to {topic} refused: MQTT connection is down")
        try:
            future, _ = self._connection.publish(topic, payload, mqtt.QoS.AT_LEAST_ONCE)
            future.result(timeout=self._timeout_s)
        except TRANSPORT_ERRORS as exc:
            self._last_ok = False
            raise LinkError(f"publish to {topic} failed: {type(exc).__name__}: {exc}") from exc
        self._last_ok = True

    def update_shadow(self, thing_name: str, shadow_name: str, document: Mapping[str, Any]) -> None:
        """Publish the document to the shadow's update topic at QoS 1."""
        self.publish(shadow_topic(thing_name, "update", shadow_name), shadow_payload(document))


class MemoryUplink:
    """Uplink fake: records what was sent; `online = False` makes every call raise LinkError."""

    def __init__(self, *, online: bool = True) -> None:
        self.online = online
        self.published: list[tuple[str, bytes]] = []
        self.shadows: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        """Mirrors the online switch."""
        return self.online

    def publish(self, topic: str, payload: bytes) -> None:
        """Record the message, or raise LinkError while offline."""
        self._require_online(f"publish to {topic}")
        with self._lock:
            self.published.append((topic, bytes(payload)))

    def update_shadow(self, thing_name: str, shadow_name: str, document: Mapping[str, Any]) -> None:
        """Record the document as it would arrive (JSON round trip), or raise LinkError while offline."""
        self._require_online(f"update of shadow {shadow_name!r}")
        with self._lock:
            self.shadows.append((thing_name, shadow_name, json.loads(shadow_payload(document))))

    def _require_online(self, what: str) -> None:
        if not self.online:
            raise LinkError(f"{what} failed: uplink is offline")
