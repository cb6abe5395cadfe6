"""Wiring of the inference component to the nucleus: configuration, local inputs, durable buffer, uplink, shadow.

Configuration reaches the runtime in two steps: a deployment's configuration is validated through IPC
before it lands (SubscribeToValidateConfigurationUpdates: REJECTED with the reason, so the deployment
fails instead of the device), then applied when it lands (SubscribeToConfigurationUpdate). Tuning
overrides come from the health shadow's desired section (ShadowManager's local update/delta topic) and
go through DeviceRuntime.apply_overrides, which reports what it refused in the shadow.

`start` is the one way the component comes up: main.py calls it with the Greengrass IPC client, and every
simulated device of the local stack with the IPC stand-in (edgeloop.local.ipc), so a demo runs this module.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    ConfigurationUpdateEvents,
    ConfigurationValidityReport,
    ConfigurationValidityStatus,
    GreengrassCoreIPCError,
    ResourceNotFoundError,
    SubscriptionResponseMessage,
    ValidateConfigurationUpdateEvents,
)

from edgeloop.core import wire
from edgeloop.core.errors import ConfigError, EdgeloopError, ValidationError
from edgeloop.core.names import HEALTH_SHADOW, INPUTS_LOCAL_TOPIC, shadow_topic, validate_thing_name
from edgeloop.core.overrides import DESIRED_CHANGE_OPERATION, OverrideResult
from edgeloop.core.records import MAX_REQUEST_ID_CHARS
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.model_manager import STORE_FOLDER
from edgeloop.device.onnx_model import read_manifest
from edgeloop.device.onnx_session import SessionPool
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.runtime import FORWARD_INTERVAL_S, DeviceRuntime, InferenceRequest
from edgeloop.device.signing import load_public_key
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.uplink import IpcUplink, Uplink

log = logging.getLogger(__name__)

THING_NAME_ENV = "AWS_IOT_THING_NAME"
IPC_TIMEOUT_S = 10.0
INPUT_QUEUE_SIZE = 10_000
"""Requests waiting for the loop; beyond this they are refused and counted rather than piling up."""
BUFFER_FILE = "buffer.sqlite3"


def thing_name_from_env(env: Mapping[str, str]) -> str:
    """The nucleus tells each component its thing name through the environment."""
    name = env.get(THING_NAME_ENV, "")
    if not name:
        raise ConfigError(THING_NAME_ENV, "environment variable is required (the nucleus sets it)")
    return validate_thing_name(name)


def model_root(greengrass_root: Path) -> Path:
    """Where the nucleus unpacks component artifacts: <root>/packages/artifacts/<component>/<version>/."""
    return greengrass_root / "packages" / "artifacts"


def read_config(ipc: GreengrassCoreIPCClientV2, artifacts: Path | None = None) -> DeviceConfig:
    """The component's whole configuration, validated (the nucleus's own keys set aside)."""
    return validate_config(ipc.get_configuration(key_path=[]).value, artifacts)


def validate_config(value: object, artifacts: Path | None = None) -> DeviceConfig:
    """A configuration document checked as far as the device can before using it.

    The public key is parsed; and when the configured model's manifest is already unpacked under
    `artifacts` (the model root), the privacy policy must name only features of its input.
    """
    if not isinstance(value, Mapping):
        raise ConfigError("configuration", f"expected an object, got {type(value).__name__}")
    config = DeviceConfig.from_config(value)
    if config.modelPublicKey:
        load_public_key(config.modelPublicKey)
    if artifacts is not None and config.modelComponent and config.privacy.named:
        check_privacy_schema(config, artifacts)
    return config


def check_privacy_schema(config: DeviceConfig, artifacts: Path) -> None:
    """Refuse a privacy policy naming a feature the configured model lacks (a typo must not let a field out).

    A manifest that is not there yet, or unreadable, is left to the model manager; the runtime checks the
    policy again against the model it activates and takes no samples when it does not fit.
    """
    folder = artifacts / config.modelComponent / config.modelComponentVersion
    try:
        manifest = read_manifest(folder)
    except (EdgeloopError, OSError) as exc:
        log.info("privacy policy not checked against %s yet: %s", folder, exc)
        return
    config.privacy.check_schema(manifest.input.features)


def apply_log_level(level: str) -> None:
    """Put the process's log level where the configuration (or a desired-state override) says."""
    root = logging.getLogger()
    if root.level != logging.getLevelName(level):
        root.setLevel(level)
        log.info("log level is now %s", level)


def parse_request(message: bytes | str | Mapping[str, Any] | None) -> InferenceRequest:
    """One local pub/sub message, {"request_id": ..., "features": [...]}, as a runtime request."""
    if isinstance(message, bytes | str):
        try:
            message = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError("request", f"is not JSON ({exc})") from exc
    data = wire.mapping(message, "request")
    wire.only_keys(data, {"request_id", "features"}, "request")
    request_id = wire.text(data, "request_id", "request")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise ValidationError("request.request_id", f"is {len(request_id)} characters; at most {MAX_REQUEST_ID_CHARS}")
    features = wire.sequence(data, "features", "request")
    if not _all_numbers(features):
        raise ValidationError("request.features", f"request {request_id}: must be a list of numbers")
    return request_id, np.array(features, dtype=np.float64)


_PLAIN_NUMBERS = frozenset({int, float})


def _all_numbers(values: Sequence[object]) -> bool:
    """Every value an int or a float, never a bool: the exact-type test answers JSON's lists at once, per request."""
    if _PLAIN_NUMBERS.issuperset(map(type, values)):
        return True
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def handle_input_message(event: SubscriptionResponseMessage, *, runtime: DeviceRuntime, inputs: RequestQueue) -> bool:
    """Queue one request; a bad message or a full queue is refused and counted, never raised."""
    try:
        request = parse_request(_message_body(event))
    except ValidationError as exc:
        runtime.reject_input(f"bad message on {INPUTS_LOCAL_TOPIC}: {exc}")
        return False
    try:
        inputs.put_nowait(request)
    except queue.Full:
        runtime.reject_input(f"request {request[0]}: input queue full ({inputs.maxsize})")
        return False
    return True


def _message_body(event: SubscriptionResponseMessage) -> bytes | str | Mapping[str, Any] | None:
    """Local pub/sub delivers either a binary or a JSON message."""
    body: bytes | str | Mapping[str, Any] | None = None
    if event.binary_message is not None:
        body = event.binary_message.message
    elif event.json_message is not None:
        body = event.json_message.message
    return body


def handle_validate_config(
    event: ValidateConfigurationUpdateEvents, *, ipc: GreengrassCoreIPCClientV2, artifacts: Path | None = None
) -> bool:
    """Answer the nucleus before a deployment's configuration lands: ACCEPTED, or REJECTED with the reason."""
    proposed = event.validate_configuration_update_event
    if proposed is None:
        log.error("configuration validation event without a configuration; nothing to answer")
        return False
    try:
        validate_config(proposed.configuration, artifacts)
    except ConfigError as exc:
        log.error("deployment %s: configuration refused: %s", proposed.deployment_id, exc)
        _send_validity(ipc, ConfigurationValidityStatus.REJECTED, proposed.deployment_id, str(exc))
        return False
    _send_validity(ipc, ConfigurationValidityStatus.ACCEPTED, proposed.deployment_id, "configuration is valid")
    return True


def _send_validity(ipc: GreengrassCoreIPCClientV2, status: str, deployment_id: str | None, message: str) -> None:
    report = ConfigurationValidityReport(status=status, deployment_id=deployment_id, message=message)
    ipc.send_configuration_validity_report(configuration_validity_report=report)


def handle_config_update(
    event: ConfigurationUpdateEvents,
    *,
    ipc: GreengrassCoreIPCClientV2,
    runtime: DeviceRuntime,
    artifacts: Path | None = None,
    set_log_level: Callable[[str], None] = apply_log_level,
) -> bool:
    """Re-read and apply the configuration (desired-state overrides stay on top); an invalid one is kept out."""
    try:
        config = read_config(ipc, artifacts)
    except ConfigError as exc:
        log.error("configuration update refused, keeping the current one: %s", exc)
        return False
    runtime.reconfigure(config)  # the runtime also applies the buffer bound
    set_log_level(runtime.config.logLevel)
    return True


def read_desired(ipc: GreengrassCoreIPCClientV2, thing_name: str) -> Mapping[str, Any]:
    """The health shadow's desired section ({} when the shadow or the section does not exist yet)."""
    try:
        payload = ipc.get_thing_shadow(thing_name=thing_name, shadow_name=HEALTH_SHADOW).payload
    except ResourceNotFoundError:
        return {}
    try:
        document = json.loads(payload or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("shadow", f"{HEALTH_SHADOW} is not JSON ({exc})") from exc
    state = wire.mapping(document, "shadow").get("state") or {}
    return wire.mapping(wire.mapping(state, "shadow.state").get("desired") or {}, "shadow.state.desired")


def sync_overrides(
    ipc: GreengrassCoreIPCClientV2,
    runtime: DeviceRuntime,
    thing_name: str,
    set_log_level: Callable[[str], None] = apply_log_level,
) -> OverrideResult | None:
    """Apply the desired section as it is now; if it cannot be read, the overrides in force stay (None)."""
    try:
        desired = read_desired(ipc, thing_name)
    except (GreengrassCoreIPCError, ValidationError) as exc:
        log.error("desired state of %s not read, overrides unchanged: %s", HEALTH_SHADOW, exc)
        return None
    result = runtime.apply_overrides(desired)
    set_log_level(runtime.config.logLevel)
    return result


def handle_shadow_delta(
    event: SubscriptionResponseMessage,
    *,
    ipc: GreengrassCoreIPCClientV2,
    runtime: DeviceRuntime,
    thing_name: str,
    set_log_level: Callable[[str], None] = apply_log_level,
) -> bool:
    """A desired-state change: re-read the whole desired section (a delta omits what did not change) and apply it."""
    return sync_overrides(ipc, runtime, thing_name, set_log_level) is not None


def _stream_error(what: str, error: Exception) -> bool:
    """Log an IPC stream error and keep the subscription open (returning True would close it)."""
    log.error("%s subscription error: %s", what, error)
    return False


@dataclass(frozen=True)
class HostOptions:
    """What a host running many components in one process tunes (the fleet simulation); a device keeps the defaults."""

    buffer_synchronous: str = "FULL"
    forward_interval_s: float = FORWARD_INTERVAL_S
    rng: np.random.Generator | None = None
    session_pool: SessionPool | None = None
    set_log_level: Callable[[str], None] = apply_log_level
    """A device process owns its log level; a host of many components keeps its own (and passes a no-op)."""


@dataclass
class Component:
    """The running inference component: its runtime, the queue its input stream fills, and the buffer it owns."""

    runtime: DeviceRuntime
    inputs: RequestQueue
    buffer: SqliteBuffer

    def run(self, stop: threading.Event) -> None:
        """Serve until stop is set, then answer what is queued, forward and report one last time."""
        self.runtime.run(self.inputs, stop)

    def take_inputs(self) -> list[InferenceRequest]:
        """Every request queued so far, oldest first: a stepped host serves them in one call instead of run()."""
        return self.inputs.drain()

    def close(self) -> None:
        """Release the durable buffer (after run returned)."""
        self.buffer.close()


def start(
    ipc: GreengrassCoreIPCClientV2,
    thing_name: str,
    greengrass_root: Path,
    work_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    component_version: str | None = None,
    uplink: Uplink | None = None,
    host: HostOptions = HostOptions(),
) -> Component:
    """Build the runtime from the component configuration and subscribe it to config, inputs and desired state.

    The one start of the component, for main.py on a core device and for every simulated device. uplink: where
    records and health go; None (a device) means through the nucleus (IpcUplink, following its connection).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    artifacts = model_root(greengrass_root)
    config = read_config(ipc, artifacts)
    host.set_log_level(config.logLevel)
    buffer = SqliteBuffer(
        work_dir / BUFFER_FILE, thing_name, max_bytes=config.bufferMaxBytes, synchronous=host.buffer_synchronous
    )
    if uplink is None:
        uplink = ipc_uplink = IpcUplink(ipc, IPC_TIMEOUT_S)
        ipc_uplink.watch_connection_status()  # hold records in our buffer, not the nucleus's spooler, while offline
    runtime = DeviceRuntime(
        thing_name=thing_name,
        buffer=buffer,
        uplink=uplink,
        clock=clock,
        model_root=artifacts,
        config=config,
        store_dir=work_dir / STORE_FOLDER,
        component_version=component_version,
        rng=host.rng,
        session_pool=host.session_pool,
        forward_interval_s=host.forward_interval_s,
    )
    inputs = RequestQueue(maxsize=INPUT_QUEUE_SIZE)
    _subscribe(ipc, runtime, inputs, thing_name, artifacts, host.set_log_level)
    handle_config_update(  # changed since it was read?
        ConfigurationUpdateEvents(), ipc=ipc, runtime=runtime, artifacts=artifacts, set_log_level=host.set_log_level
    )
    sync_overrides(ipc, runtime, thing_name, host.set_log_level)
    return Component(runtime, inputs, buffer)


def _subscribe(
    ipc: GreengrassCoreIPCClientV2,
    runtime: DeviceRuntime,
    inputs: RequestQueue,
    thing_name: str,
    artifacts: Path,
    set_log_level: Callable[[str], None],
) -> None:
    """Every IPC stream the component follows, each with its handler."""
    ipc.subscribe_to_validate_configuration_updates(
        on_stream_event=partial(handle_validate_config, ipc=ipc, artifacts=artifacts),
        on_stream_error=partial(_stream_error, "configuration validation"),
    )
    ipc.subscribe_to_configuration_update(
        key_path=[],
        on_stream_event=partial(
            handle_config_update, ipc=ipc, runtime=runtime, artifacts=artifacts, set_log_level=set_log_level
        ),
        on_stream_error=partial(_stream_error, "configuration"),
    )
    ipc.subscribe_to_topic(
        topic=INPUTS_LOCAL_TOPIC,
        on_stream_event=partial(handle_input_message, runtime=runtime, inputs=inputs),
        on_stream_error=partial(_stream_error, INPUTS_LOCAL_TOPIC),
    )
    delta = shadow_topic(thing_name, DESIRED_CHANGE_OPERATION)
    ipc.subscribe_to_topic(
        topic=delta,
        on_stream_event=partial(
            handle_shadow_delta, ipc=ipc, runtime=runtime, thing_name=thing_name, set_log_level=set_log_level
        ),
        on_stream_error=partial(_stream_error, delta),
    )
