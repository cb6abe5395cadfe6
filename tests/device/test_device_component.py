"""The component wiring against an autospec'd IPC client: configuration, local inputs, config updates."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from unittest.mock import create_autospec

import pytest
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    ConfigurationUpdateEvent,
    ConfigurationUpdateEvents,
    GetConfigurationResponse,
    JsonMessage,
    SubscriptionResponseMessage,
)

from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.health import ModelState
from edgeloop.core.names import INFERENCE_COMPONENT, INPUTS_LOCAL_TOPIC, model_component_name
from edgeloop.core.records import decode_batch
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import (
    BUFFER_FILE,
    build_runtime,
    parse_request,
    thing_name_from_env,
)

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory

THING = "dev-1"
MAIN = Path(__file__).parents[2] / "greengrass_components" / INFERENCE_COMPONENT / "main.py"
ACCESS_CONTROL = {"aws.greengrass.ipc.pubsub": {"x": {"operations": ["aws.greengrass#SubscribeToTopic"]}}}


def component_config(**values: Any) -> dict[str, Any]:
    """What GetConfiguration returns for key_path=[]: our keys plus the nucleus's accessControl."""
    return {**DeviceConfig().to_config(), **values, "accessControl": ACCESS_CONTROL}


def with_model(version: int) -> dict[str, Any]:
    return component_config(modelComponent=model_component_name("digits"), modelComponentVersion=f"{version}.0.0")


@pytest.fixture
def ipc() -> Any:
    client = create_autospec(GreengrassCoreIPCClientV2, instance=True)
    client.get_configuration.return_value = GetConfigurationResponse(value=component_config())
    done: Future[None] = Future()
    done.set_result(None)
    client.publish_to_iot_core_async.return_value = done
    client.update_thing_shadow_async.return_value = done
    return client


@pytest.fixture
def greengrass_root(model_root: Path) -> Path:
    return model_root.parents[1]


def handler(mock: Any) -> Callable[[Any], Any]:
    on_event: Callable[[Any], Any] = mock.call_args.kwargs["on_stream_event"]
    return on_event


def message(body: bytes) -> SubscriptionResponseMessage:
    return SubscriptionResponseMessage(binary_message=BinaryMessage(message=body))


def test_build_runtime_loads_the_configured_model_and_subscribes(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path
) -> None:
    make_model_dir(1)
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(1))

    runtime, inputs = build_runtime(ipc, THING, greengrass_root, tmp_path / "work")

    health = runtime.health()
    assert (health.model_name, health.model_version, health.model_state) == ("digits", 1, ModelState.ACTIVE)
    assert (tmp_path / "work" / BUFFER_FILE).exists()
    assert ipc.subscribe_to_topic.call_args.kwargs["topic"] == INPUTS_LOCAL_TOPIC
    assert ipc.subscribe_to_configuration_update.call_args.kwargs["key_path"] == []
    assert inputs.empty()


def test_input_messages_are_queued_and_bad_ones_counted(
    ipc: Any, greengrass_root: Path, tmp_path: Path, digits_model: DigitsModel
) -> None:
    runtime, inputs = build_runtime(ipc, THING, greengrass_root, tmp_path / "work")
    on_input = handler(ipc.subscribe_to_topic)
    features = digits_model.rows[0].tolist()

    assert on_input(message(json.dumps({"request_id": "a", "features": features}).encode())) is True
    assert on_input(SubscriptionResponseMessage(json_message=JsonMessage(message={"request_id": "b", "features": [1]})))
    assert on_input(message(b"{not json")) is False
    assert on_input(message(b'{"request_id": "c", "features": ["x"]}')) is False
    assert on_input(SubscriptionResponseMessage()) is False

    assert inputs.get_nowait() == ("a", features)
    assert inputs.get_nowait() == ("b", [1.0])
    assert inputs.empty()
    assert runtime.health().rejected_inputs == 3


def test_a_full_input_queue_refuses_and_counts(
    ipc: Any, greengrass_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edgeloop.device.component.INPUT_QUEUE_SIZE", 1)
    runtime, inputs = build_runtime(ipc, THING, greengrass_root, tmp_path / "work")
    on_input = handler(ipc.subscribe_to_topic)
    body = json.dumps({"request_id": "a", "features": [1.0]}).encode()

    assert on_input(message(body)) is True
    assert on_input(message(body)) is False
    assert runtime.health().rejected_inputs == 1
    assert inputs.qsize() == 1


def test_a_configuration_update_is_re_read_and_applied(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path
) -> None:
    make_model_dir(2)
    runtime, _ = build_runtime(ipc, THING, greengrass_root, tmp_path / "work")
    assert runtime.health().model_state == ModelState.NONE
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(2))
    event = ConfigurationUpdateEvents(
        configuration_update_event=ConfigurationUpdateEvent(component_name=INFERENCE_COMPONENT, key_path=[])
    )

    assert handler(ipc.subscribe_to_configuration_update)(event) is True

    assert (runtime.health().model_version, runtime.health().model_state) == (2, ModelState.ACTIVE)


def test_an_invalid_configuration_update_keeps_the_current_one(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    runtime, _ = build_runtime(ipc, THING, greengrass_root, tmp_path / "work")
    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(batchMax="many"))

    assert handler(ipc.subscribe_to_configuration_update)(ConfigurationUpdateEvents()) is False
    assert runtime.config == DeviceConfig()


def test_an_invalid_initial_configuration_is_a_config_error(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(batchMx=3))

    with pytest.raises(ConfigError, match="batchMx"):
        build_runtime(ipc, THING, greengrass_root, tmp_path / "work")


def test_the_wired_runtime_publishes_through_ipc(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(1))
    runtime, _ = build_runtime(ipc, THING, greengrass_root, tmp_path / "work")
    runtime.infer([("a", digits_model.rows[0].tolist())])

    assert runtime.forward() == 1

    payload = ipc.publish_to_iot_core_async.call_args.kwargs["payload"]
    assert [r.payload["request_id"] for r in decode_batch(payload)] == ["a"]


def test_thing_name_comes_from_the_nucleus_environment() -> None:
    assert thing_name_from_env({"AWS_IOT_THING_NAME": THING}) == THING
    with pytest.raises(ConfigError, match="AWS_IOT_THING_NAME"):
        thing_name_from_env({})
    with pytest.raises(ValidationError, match="thing_name"):
        thing_name_from_env({"AWS_IOT_THING_NAME": "a/b"})


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"request_id": "", "features": [1]}',
        b'{"request_id": "a", "features": [true]}',
        b'{"request_id": "a", "features": 3}',
        b'{"request_id": "a", "features": [1], "extra": 1}',
    ],
)
def test_parse_request_refuses_malformed_messages(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_request(body)


def _load_main() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edgeloop_inference_main", MAIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_exits_with_the_error_code_and_closes_ipc(
    ipc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = _load_main()
    monkeypatch.setattr(main, "GreengrassCoreIPCClientV2", lambda: ipc)
    monkeypatch.setattr(main.signal, "signal", lambda *_: None)  # leave pytest's own handlers alone
    monkeypatch.delenv("AWS_IOT_THING_NAME", raising=False)

    code = main.main(["--greengrass-root", str(tmp_path), "--work-dir", str(tmp_path / "work")])

    assert code == ConfigError.exit_code
    ipc.close.assert_called_once()
