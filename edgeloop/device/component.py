"""Wiring of the inference component to the nucleus: configuration, local inputs, durable buffer, uplink."""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ConfigurationUpdateEvents, SubscriptionResponseMessage

from edgeloop.core import wire
from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.names import INPUTS_LOCAL_TOPIC, validate_thing_name
from edgeloop.core.records import MAX_REQUEST_ID_CHARS
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import SqliteBuffer
from edgeloop.device.runtime import DeviceRuntime, InferenceRequest
from edgeloop.device.uplink import IpcUplink

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


def read_config(ipc: GreengrassCoreIPCClientV2) -> DeviceConfig:
    """The component's whole configuration, validated (the nucleus's own keys set aside)."""
    value = ipc.get_configuration(key_path=[]).value
    if not isinstance(value, Mapping):
        raise ConfigError("configuration", f"expected an object from GetConfiguration, got {value!r}")
    return DeviceConfig.from_config(value)


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
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in features):
        raise ValidationError("request.features", f"request {request_id}: must be a list of numbers")
    return request_id, [float(v) for v in features]


def handle_input_message(
    event: SubscriptionResponseMessage, *, runtime: DeviceRuntime, inputs: queue.Queue[InferenceRequest]
) -> bool:
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


def handle_config_update(
    event: ConfigurationUpdateEvents, *, ipc: GreengrassCoreIPCClientV2, runtime: DeviceRuntime
) -> bool:
    """Re-read and apply the configuration; an invalid one is logged and the current one kept."""
    try:
        config = read_config(ipc)
    except ConfigError as exc:
        log.error("configuration update refused, keeping the current one: %s", exc)
        return False
    runtime.apply_config(config)
    return True


def _stream_error(what: str, error: Exception) -> bool:
    """Log an IPC stream error and keep the subscription open (returning True would close it)."""
    log.error("%s subscription error: %s", what, error)
    return False


def build_runtime(
    ipc: GreengrassCoreIPCClientV2,
    thing_name: str,
    greengrass_root: Path,
    work_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
) -> tuple[DeviceRuntime, queue.Queue[InferenceRequest]]:
    """Build the runtime from the component configuration and subscribe it to config and inputs."""
    work_dir.mkdir(parents=True, exist_ok=True)
    runtime = DeviceRuntime(
        thing_name=thing_name,
        buffer=SqliteBuffer(work_dir / BUFFER_FILE, thing_name),
        uplink=IpcUplink(ipc, IPC_TIMEOUT_S),
        clock=clock,
        model_root=model_root(greengrass_root),
        config=read_config(ipc),
    )
    inputs: queue.Queue[InferenceRequest] = queue.Queue(maxsize=INPUT_QUEUE_SIZE)
    ipc.subscribe_to_configuration_update(
        key_path=[],
        on_stream_event=partial(handle_config_update, ipc=ipc, runtime=runtime),
        on_stream_error=partial(_stream_error, "configuration"),
    )
    ipc.subscribe_to_topic(
        topic=INPUTS_LOCAL_TOPIC,
        on_stream_event=partial(handle_input_message, runtime=runtime, inputs=inputs),
        on_stream_error=partial(_stream_error, INPUTS_LOCAL_TOPIC),
    )
    runtime.apply_config(read_config(ipc))  # a change between the first read and the subscription
    return runtime, inputs
