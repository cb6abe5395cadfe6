"""Greengrass IPC stand-in: the subset of GreengrassCoreIPCClientV2 the inference component calls, served in-process.

Simulation stand-in, not the nucleus's IPC server. The component (edgeloop.device.component) runs against it
unchanged; the local nucleus (edgeloop.local.greengrass.LocalNucleus) drives the other side of it. What it keeps
faithful is what the component relies on:

- configuration: GetConfiguration returns the component's whole configuration (the nucleus's accessControl
  included); a deployment first asks every SubscribeToValidateConfigurationUpdates stream and collects the
  validity reports (a REJECTED one fails the deployment), then stores the configuration and tells every
  SubscribeToConfigurationUpdate stream;
- local pub/sub: PublishToTopic reaches every SubscribeToTopic stream whose filter matches (MQTT wildcards),
  synchronously, as a JSON or a binary message;
- ShadowManager: GetThingShadow reads the local copy of a named shadow (ResourceNotFoundError when there is
  none), UpdateThingShadow merges into it and syncs it to IoT Core, and a change of the desired section from the
  cloud publishes the delta on the shadow's local `update/delta` topic, as ShadowManager does;
- IoT Core: PublishToIoTCore goes out through the nucleus's own connection (an Uplink), confirmed or failed;
  SubscribeToIoTCoreConnectionStatus receives what `report_connection` says.

Streams are called in the caller's thread, one after another, so a stepped simulation stays deterministic.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    ConfigurationUpdateEvent,
    ConfigurationUpdateEvents,
    ConfigurationValidityReport,
    ConfigurationValidityStatus,
    ConnectionStatus,
    ConnectionStatusEvent,
    GetConfigurationResponse,
    GetThingShadowResponse,
    InvalidArgumentsError,
    IoTCoreConnectionStatusEvent,
    JsonMessage,
    MessageContext,
    PublishToIoTCoreResponse,
    ResourceNotFoundError,
    SendConfigurationValidityReportResponse,
    ServiceError,
    SubscribeToConfigurationUpdateResponse,
    SubscribeToTopicResponse,
    SubscribeToValidateConfigurationUpdatesResponse,
    SubscriptionResponseMessage,
    UpdateThingShadowResponse,
    ValidateConfigurationUpdateEvent,
    ValidateConfigurationUpdateEvents,
)

from edgeloop.core.errors import LinkError
from edgeloop.core.names import INFERENCE_COMPONENT, shadow_topic
from edgeloop.core.overrides import DESIRED_CHANGE_OPERATION
from edgeloop.core.recipes import inference_recipe_values
from edgeloop.device.uplink import Uplink

log = logging.getLogger(__name__)

StreamEvent = Callable[[Any], Any]

UNDEPLOYED_VERSION = "0.0.0"
"""The component version a simulated device holds before its first deployment (the recipe's values want one)."""


@functools.cache
def _recipe_defaults() -> str:
    return inference_recipe_values(UNDEPLOYED_VERSION, "")["DEFAULT_CONFIGURATION"]


def component_defaults() -> dict[str, Any]:
    """The inference recipe's DefaultConfiguration as edgeloop.core.recipes renders it (accessControl included):
    what a simulated device's component reads before any deployment."""
    defaults: dict[str, Any] = json.loads(_recipe_defaults())
    return defaults


@dataclass
class _Stream:
    """One subscription: its handler and, for topics, its filter."""

    on_event: StreamEvent
    topic: str = ""
    closed: bool = False


@dataclass
class _Shadow:
    """The local copy of one named shadow, as ShadowManager keeps it."""

    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def document(self) -> dict[str, Any]:
        """The GetThingShadow document: state.desired (when set), state.reported, version."""
        state: dict[str, Any] = {"reported": self.reported}
        if self.desired:
            state["desired"] = self.desired
        return {"state": state, "version": self.version}


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching, as local pub/sub applies it: '+' is one level, a trailing '#' the rest."""
    if topic_filter == topic:
        return True
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


def _done(value: Any = None, error: BaseException | None = None) -> Future[Any]:
    future: Future[Any] = Future()
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)
    return future


class LocalIpc:
    """Simulation stand-in for GreengrassCoreIPCClientV2, one per simulated core device (see the module doc).

    The component-facing methods take the client's keyword arguments; the nucleus-facing ones
    (validate_configuration, update_configuration, publish, update_desired, report_connection) are what the
    local nucleus and the simulation call.
    """

    def __init__(self, thing_name: str, configuration: Mapping[str, Any], *, cloud: Uplink | None = None) -> None:
        """configuration: what the component reads before any deployment; cloud: the nucleus's IoT Core link."""
        self.thing_name = thing_name
        self._configuration: dict[str, Any] = copy.deepcopy(dict(configuration))
        self._cloud = cloud
        self._lock = threading.Lock()
        self._validators: list[_Stream] = []
        self._updates: list[_Stream] = []
        self._topics: list[_Stream] = []
        self._routes: dict[str, list[_Stream]] = {}
        """Topic -> the open streams whose filter matches it; cleared whenever a subscription changes."""
        self._status: list[_Stream] = []
        self._reports: dict[str, list[ConfigurationValidityReport]] = {}
        self._shadows: dict[str, _Shadow] = {}
        self.closed = False

    # --- the component's side: GreengrassCoreIPCClientV2's operations ---------------------------------

    def get_configuration(
        self, *, component_name: str | None = None, key_path: list[str] | None = None
    ) -> GetConfigurationResponse:
        """GetConfiguration of this component (another component's is not simulated)."""
        self._own(component_name)
        with self._lock:
            value: Any = self._configuration
            for key in key_path or []:
                if not isinstance(value, Mapping) or key not in value:
                    raise ResourceNotFoundError(message=f"configuration key path {key_path} not found")
                value = value[key]
            return GetConfigurationResponse(component_name=INFERENCE_COMPONENT, value=copy.deepcopy(value))

    def subscribe_to_validate_configuration_updates(
        self, *, on_stream_event: StreamEvent, **_handlers: Any
    ) -> tuple[SubscribeToValidateConfigurationUpdatesResponse, None]:
        """Receive each deployment's configuration before it lands."""
        with self._lock:
            self._validators.append(_Stream(on_event=on_stream_event))
        return SubscribeToValidateConfigurationUpdatesResponse(), None

    def send_configuration_validity_report(
        self, *, configuration_validity_report: ConfigurationValidityReport
    ) -> SendConfigurationValidityReportResponse:
        """Answer a validation event; the nucleus reads the answers for that deployment."""
        report = configuration_validity_report
        if report.status not in (ConfigurationValidityStatus.ACCEPTED, ConfigurationValidityStatus.REJECTED):
            raise InvalidArgumentsError(message=f"validity status must be ACCEPTED or REJECTED, got {report.status!r}")
        with self._lock:
            self._reports.setdefault(report.deployment_id or "", []).append(report)
        return SendConfigurationValidityReportResponse()

    def subscribe_to_configuration_update(
        self,
        *,
        on_stream_event: StreamEvent,
        component_name: str | None = None,
        key_path: list[str] | None = None,
        **_handlers: Any,
    ) -> tuple[SubscribeToConfigurationUpdateResponse, None]:
        """Be told when this component's configuration changed (the stand-in watches the whole of it)."""
        self._own(component_name)
        if key_path:
            raise InvalidArgumentsError(message="the stand-in follows the whole configuration only (key_path=[])")
        with self._lock:
            self._updates.append(_Stream(on_event=on_stream_event))
        return SubscribeToConfigurationUpdateResponse(), None

    def subscribe_to_topic(
        self, *, topic: str, on_stream_event: StreamEvent, **_handlers: Any
    ) -> tuple[SubscribeToTopicResponse, None]:
        """Follow a local pub/sub topic filter."""
        if not topic:
            raise InvalidArgumentsError(message="subscribe_to_topic needs a topic")
        with self._lock:
            self._topics.append(_Stream(on_event=on_stream_event, topic=topic))
            self._routes.clear()
        return SubscribeToTopicResponse(topic_name=topic), None

    def get_thing_shadow(self, *, thing_name: str, shadow_name: str) -> GetThingShadowResponse:
        """The local copy of a named shadow; ResourceNotFoundError when ShadowManager has none."""
        with self._lock:
            shadow = self._shadows.get(self._shadow_key(thing_name, shadow_name))
            if shadow is None:
                raise ResourceNotFoundError(message=f"no shadow {shadow_name!r} for {thing_name}")
            return GetThingShadowResponse(payload=json.dumps(shadow.document()).encode())

    def update_thing_shadow_async(self, *, thing_name: str, shadow_name: str, payload: bytes) -> Future[Any]:
        """Merge a reported update into the local shadow and sync it to IoT Core (failed when the link is)."""
        try:
            document = json.loads(payload)
            reported = document["state"]["reported"]
            if not isinstance(reported, Mapping):
                raise TypeError("state.reported is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            return _done(error=InvalidArgumentsError(message=f"shadow update is not a reported document: {exc}"))
        try:
            self._require_cloud().update_shadow(thing_name, shadow_name, document)
        except LinkError as exc:
            return _done(error=ServiceError(message=str(exc)))
        with self._lock:
            shadow = self._shadows.setdefault(self._shadow_key(thing_name, shadow_name), _Shadow())
            shadow.reported.update(reported)
            shadow.version += 1
        return _done(UpdateThingShadowResponse(payload=payload))

    def publish_to_iot_core_async(self, *, topic_name: str, payload: bytes, **_options: Any) -> Future[Any]:
        """Hand the message to IoT Core through the nucleus's connection; the future fails when it is refused."""
        try:
            self._require_cloud().publish(topic_name, bytes(payload))
        except LinkError as exc:
            return _done(error=ServiceError(message=str(exc)))
        return _done(PublishToIoTCoreResponse())

    def subscribe_to_iot_core_connection_status_async(
        self, *, on_stream_event: StreamEvent, **_handlers: Any
    ) -> tuple[Future[Any], None]:
        """Follow the nucleus's IoT Core connection (events come from report_connection)."""
        with self._lock:
            self._status.append(_Stream(on_event=on_stream_event))
        return _done(None), None

    def close(self, **_options: Any) -> Future[Any]:
        """Close every stream; the component is done with IPC."""
        with self._lock:
            self.closed = True
            for stream in (*self._validators, *self._updates, *self._topics, *self._status):
                stream.closed = True
            self._routes.clear()
        return _done(None)

    # --- the nucleus's side ------------------------------------------------------------------------

    def validate_configuration(
        self, configuration: Mapping[str, Any], deployment_id: str
    ) -> ConfigurationValidityReport:
        """Ask every validation stream about a deployment's configuration; the first REJECTED answer wins.

        With no stream, or none answering, the configuration counts as accepted, as the nucleus proceeds once
        its validation timeout passes.
        """
        event = ValidateConfigurationUpdateEvents(
            validate_configuration_update_event=ValidateConfigurationUpdateEvent(
                configuration=copy.deepcopy(dict(configuration)), deployment_id=deployment_id
            )
        )
        for stream in self._open(self._validators):
            stream.on_event(event)
        with self._lock:
            reports = self._reports.pop(deployment_id, [])
        rejected = [r for r in reports if r.status == ConfigurationValidityStatus.REJECTED]
        if rejected:
            return rejected[0]
        if not reports:
            log.info("%s: deployment %s: no validity report, proceeding", self.thing_name, deployment_id)
        message = reports[0].message if reports else "no validity report"
        return ConfigurationValidityReport(
            status=ConfigurationValidityStatus.ACCEPTED, deployment_id=deployment_id, message=message
        )

    def update_configuration(self, configuration: Mapping[str, Any]) -> None:
        """Store the component's new configuration and tell every configuration-update stream."""
        with self._lock:
            self._configuration = copy.deepcopy(dict(configuration))
        event = ConfigurationUpdateEvents(
            configuration_update_event=ConfigurationUpdateEvent(component_name=INFERENCE_COMPONENT, key_path=[])
        )
        for stream in self._open(self._updates):
            stream.on_event(event)

    def publish(self, topic: str, message: Mapping[str, Any] | bytes) -> int:
        """PublishToTopic on local pub/sub: a mapping goes as a JSON message, bytes as a binary one.

        Returns how many streams received it.
        """
        context = MessageContext(topic=topic)
        if isinstance(message, bytes | bytearray):
            event = SubscriptionResponseMessage(binary_message=BinaryMessage(message=bytes(message), context=context))
        else:
            event = SubscriptionResponseMessage(json_message=JsonMessage(message=message, context=context))
        streams = self._route(topic)
        for stream in streams:
            stream.on_event(event)
        return len(streams)

    def update_desired(self, shadow_name: str, desired: Mapping[str, Any]) -> None:
        """A desired-section change synced from the cloud: merge it (None deletes a key) and publish the delta."""
        key = self._shadow_key(self.thing_name, shadow_name)
        with self._lock:
            shadow = self._shadows.setdefault(key, _Shadow())
            for name, value in desired.items():
                if value is None:
                    shadow.desired.pop(name, None)
                else:
                    shadow.desired[name] = copy.deepcopy(value)
            shadow.version += 1
            delta = {"state": copy.deepcopy(dict(desired)), "version": shadow.version}
        self.publish(shadow_topic(self.thing_name, DESIRED_CHANGE_OPERATION, shadow_name), delta)

    def report_connection(self, connected: bool) -> None:
        """The nucleus's IoT Core connection went up or down: tell every connection-status stream."""
        status = ConnectionStatus.CONNECTED if connected else ConnectionStatus.DISCONNECTED
        event = IoTCoreConnectionStatusEvent(connection_status_event=ConnectionStatusEvent(status=status))
        for stream in self._open(self._status):
            stream.on_event(event)

    # --- helpers -------------------------------------------------------------------------------------

    def _route(self, topic: str) -> list[_Stream]:
        """The open streams a message on `topic` reaches, worked out once per topic (a fleet publishes a lot)."""
        with self._lock:
            streams = self._routes.get(topic)
            if streams is None:
                streams = [s for s in self._topics if not s.closed and topic_matches(s.topic, topic)]
                self._routes[topic] = streams
            return streams

    def _open(self, streams: list[_Stream]) -> list[_Stream]:
        with self._lock:
            return [s for s in streams if not s.closed]

    def _own(self, component_name: str | None) -> None:
        if component_name not in (None, INFERENCE_COMPONENT):
            raise InvalidArgumentsError(message=f"the stand-in serves {INFERENCE_COMPONENT} only, not {component_name}")

    def _shadow_key(self, thing_name: str, shadow_name: str) -> str:
        if thing_name != self.thing_name:
            raise InvalidArgumentsError(message=f"{self.thing_name} may not reach the shadow of {thing_name}")
        return shadow_name

    def _require_cloud(self) -> Uplink:
        if self._cloud is None:
            raise LinkError(f"{self.thing_name}: this nucleus has no IoT Core connection")
        return self._cloud
