"""The component wiring against an autospec'd IPC client: configuration, validation, inputs, desired-state overrides."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from unittest.mock import create_autospec

import numpy as np
import pytest
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    ConfigurationUpdateEvent,
    ConfigurationUpdateEvents,
    ConfigurationValidityReport,
    ConfigurationValidityStatus,
    GetConfigurationResponse,
    GetThingShadowResponse,
    JsonMessage,
    ResourceNotFoundError,
    ServiceError,
    SubscriptionResponseMessage,
    ValidateConfigurationUpdateEvent,
    ValidateConfigurationUpdateEvents,
)

from edgeloop.core import errors
from edgeloop.core.errors import ConfigError, EdgeloopError, ValidationError
from edgeloop.core.health import HealthReport, ModelState
from edgeloop.core.names import (
    HEALTH_SHADOW,
    INFERENCE_COMPONENT,
    INPUTS_LOCAL_TOPIC,
    model_component_name,
    shadow_topic,
)
from edgeloop.core.overrides import DESIRED_CHANGE_OPERATION, NOT_OVERRIDABLE
from edgeloop.core.recipes import inference_recipe_values, render_recipe
from edgeloop.core.records import InferenceBatch, decode_batch
from edgeloop.core.settings import DeviceConfig
from edgeloop.device import component
from edgeloop.device.component import (
    BUFFER_FILE,
    Component,
    parse_request,
    start,
    thing_name_from_env,
)
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.runtime import DeviceRuntime

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory

THING = "dev-1"
MAIN = Path(__file__).parents[2] / "greengrass_components" / INFERENCE_COMPONENT / "main.py"
TEMPLATE = MAIN.parent / "recipe.template.json"
DELTA_TOPIC = shadow_topic(THING, DESIRED_CHANGE_OPERATION)
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
    client.subscribe_to_iot_core_connection_status_async.return_value = (done, None)
    client.get_thing_shadow.side_effect = ResourceNotFoundError(message="no shadow yet")
    return client


@pytest.fixture(autouse=True)
def root_log_level() -> Iterator[None]:
    """The component sets the process's log level; put pytest's back afterwards."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture
def greengrass_root(model_root: Path) -> Path:
    return model_root.parents[1]


def started(ipc: Any, *args: Any, **kwargs: Any) -> tuple[DeviceRuntime, RequestQueue]:
    """component.start, as the tests mostly want it: the runtime and its input queue."""
    running = start(ipc, *args, **kwargs)
    assert isinstance(running, Component)
    return running.runtime, running.inputs


def handler(mock: Any, topic: str | None = None) -> Callable[[Any], Any]:
    """The stream handler given to a subscription (to subscribe_to_topic: the one for that topic)."""
    calls = [c for c in mock.call_args_list if topic is None or c.kwargs.get("topic") == topic]
    assert len(calls) == 1, f"expected one subscription, got {calls}"
    on_event: Callable[[Any], Any] = calls[0].kwargs["on_stream_event"]
    return on_event


def on_input_of(ipc: Any) -> Callable[[Any], Any]:
    return handler(ipc.subscribe_to_topic, INPUTS_LOCAL_TOPIC)


def shadow(desired: dict[str, Any] | None) -> GetThingShadowResponse:
    state: dict[str, Any] = {"reported": {"thing_name": THING}}
    if desired is not None:
        state["desired"] = desired
    return GetThingShadowResponse(payload=json.dumps({"state": state, "version": 3}).encode())


def validation_event(configuration: Any, deployment_id: str = "dep-1") -> ValidateConfigurationUpdateEvents:
    event = ValidateConfigurationUpdateEvent(configuration=configuration, deployment_id=deployment_id)
    return ValidateConfigurationUpdateEvents(validate_configuration_update_event=event)


def validity_reports(ipc: Any) -> list[ConfigurationValidityReport]:
    return [c.kwargs["configuration_validity_report"] for c in ipc.send_configuration_validity_report.call_args_list]


def last_shadow_update(ipc: Any) -> dict[str, Any]:
    call = ipc.update_thing_shadow_async.call_args.kwargs
    assert (call["thing_name"], call["shadow_name"]) == (THING, HEALTH_SHADOW)
    document: dict[str, Any] = json.loads(call["payload"])
    return document


def message(body: bytes) -> SubscriptionResponseMessage:
    return SubscriptionResponseMessage(binary_message=BinaryMessage(message=body))


def test_start_loads_the_configured_model_and_subscribes(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path
) -> None:
    make_model_dir(1)
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(1))

    runtime, inputs = started(ipc, THING, greengrass_root, tmp_path / "work")

    health = runtime.health()
    assert (health.model_name, health.model_version, health.model_state) == ("digits", 1, ModelState.ACTIVE)
    assert (tmp_path / "work" / BUFFER_FILE).exists()
    assert {c.kwargs["topic"] for c in ipc.subscribe_to_topic.call_args_list} == {INPUTS_LOCAL_TOPIC, DELTA_TOPIC}
    assert ipc.subscribe_to_configuration_update.call_args.kwargs["key_path"] == []
    ipc.subscribe_to_validate_configuration_updates.assert_called_once()
    ipc.subscribe_to_iot_core_connection_status_async.assert_called_once()  # offline: records stay buffered
    assert inputs.empty()


def test_input_messages_are_queued_and_bad_ones_counted(
    ipc: Any, greengrass_root: Path, tmp_path: Path, digits_model: DigitsModel
) -> None:
    runtime, inputs = started(ipc, THING, greengrass_root, tmp_path / "work")
    on_input = on_input_of(ipc)
    features = digits_model.rows[0].tolist()

    assert on_input(message(json.dumps({"request_id": "a", "features": features}).encode())) is True
    assert on_input(SubscriptionResponseMessage(json_message=JsonMessage(message={"request_id": "b", "features": [1]})))
    assert on_input(message(b"{not json")) is False
    assert on_input(message(b'{"request_id": "c", "features": ["x"]}')) is False
    assert on_input(SubscriptionResponseMessage()) is False

    (first, first_row), (second, second_row) = inputs.get_nowait(), inputs.get_nowait()
    assert (first, second) == ("a", "b")
    assert first_row.tolist() == features  # decoded straight into a float64 row for the batch matrix
    assert second_row.dtype == np.float64
    assert second_row.tolist() == [1.0]
    assert inputs.empty()
    assert runtime.health().rejected_inputs == 3


def test_a_full_input_queue_refuses_and_counts(
    ipc: Any, greengrass_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edgeloop.device.component.INPUT_QUEUE_SIZE", 1)
    runtime, inputs = started(ipc, THING, greengrass_root, tmp_path / "work")
    on_input = on_input_of(ipc)
    body = json.dumps({"request_id": "a", "features": [1.0]}).encode()

    assert on_input(message(body)) is True
    assert on_input(message(body)) is False
    assert runtime.health().rejected_inputs == 1
    assert inputs.qsize() == 1


def test_a_configuration_update_is_re_read_and_applied(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path
) -> None:
    make_model_dir(2)
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    assert runtime.health().model_state == ModelState.NONE
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(2))
    event = ConfigurationUpdateEvents(
        configuration_update_event=ConfigurationUpdateEvent(component_name=INFERENCE_COMPONENT, key_path=[])
    )

    assert handler(ipc.subscribe_to_configuration_update)(event) is True

    assert (runtime.health().model_version, runtime.health().model_state) == (2, ModelState.ACTIVE)


def test_an_invalid_configuration_update_keeps_the_current_one(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(batchMax="many"))

    assert handler(ipc.subscribe_to_configuration_update)(ConfigurationUpdateEvents()) is False
    assert runtime.config == DeviceConfig()


def test_an_invalid_initial_configuration_is_a_config_error(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(batchMx=3))

    with pytest.raises(ConfigError, match="batchMx"):
        started(ipc, THING, greengrass_root, tmp_path / "work")


def test_the_wired_runtime_publishes_through_ipc(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(1))
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    runtime.infer([("a", digits_model.rows[0].tolist())])

    assert runtime.forward() == 1

    payload = ipc.publish_to_iot_core_async.call_args.kwargs["payload"]
    (record,) = decode_batch(payload)
    assert InferenceBatch.from_payload(record.payload).request_ids == ("a",)


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


def test_parse_request_takes_any_real_number_but_a_bool_in_an_in_process_message() -> None:
    request_id, features = parse_request({"request_id": "r-1", "features": [1, 2.5, np.float64(3.0)]})
    assert (request_id, features.tolist()) == ("r-1", [1.0, 2.5, 3.0])
    with pytest.raises(ValidationError, match="list of numbers"):
        parse_request({"request_id": "r-1", "features": [1.0, np.bool_(True)]})
    with pytest.raises(ValidationError, match="list of numbers"):
        parse_request({"request_id": "r-1", "features": [1.0, False]})


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

    code = main.main(
        ["--greengrass-root", str(tmp_path), "--work-dir", str(tmp_path / "work"), "--component-version", "1.0.0"]
    )

    assert code == ConfigError.exit_code
    ipc.close.assert_called_once()


# --- configuration validated before it lands ------------------------------------------------------


def test_a_valid_deployment_configuration_is_accepted(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    on_validate = handler(ipc.subscribe_to_validate_configuration_updates)

    assert on_validate(validation_event(component_config(batchMax=64), "dep-7")) is True

    [report] = validity_reports(ipc)
    assert (report.status, report.deployment_id) == (ConfigurationValidityStatus.ACCEPTED, "dep-7")
    assert runtime.config == DeviceConfig()  # validating does not apply; the update event does


@pytest.mark.parametrize(
    ("configuration", "named"),
    [
        pytest.param(component_config(batchMax="many"), "batchMax", id="wrong-type"),
        pytest.param(component_config(batchMax=0), "batchMax", id="out-of-range"),
        pytest.param(component_config(batchMx=3), "batchMx", id="unknown-key"),
        pytest.param(component_config(logLevel="TRACE"), "logLevel", id="log-level"),
        pytest.param(
            component_config(modelPublicKey="-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"),
            "modelPublicKey",
            id="unparseable-public-key",
        ),
        pytest.param(["not", "an", "object"], "configuration", id="not-an-object"),
    ],
)
def test_an_invalid_deployment_configuration_is_rejected_with_its_reason(
    ipc: Any, greengrass_root: Path, tmp_path: Path, configuration: Any, named: str
) -> None:
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")

    assert handler(ipc.subscribe_to_validate_configuration_updates)(validation_event(configuration)) is False

    [report] = validity_reports(ipc)
    assert (report.status, report.deployment_id) == (ConfigurationValidityStatus.REJECTED, "dep-1")
    assert named in report.message
    assert runtime.config == DeviceConfig()


def test_a_validation_event_without_a_configuration_gets_no_answer(
    ipc: Any, greengrass_root: Path, tmp_path: Path
) -> None:
    started(ipc, THING, greengrass_root, tmp_path / "work")
    assert handler(ipc.subscribe_to_validate_configuration_updates)(ValidateConfigurationUpdateEvents()) is False
    assert validity_reports(ipc) == []


def test_a_configuration_update_moves_the_buffer_bound(
    ipc: Any, greengrass_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []
    real = component.SqliteBuffer
    monkeypatch.setattr(component, "SqliteBuffer", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(bufferMaxBytes=2 * 1024**2))
    started(ipc, THING, greengrass_root, tmp_path / "work")
    assert made[0].stats().max_bytes == 2 * 1024**2

    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(bufferMaxBytes=3 * 1024**2))
    assert handler(ipc.subscribe_to_configuration_update)(ConfigurationUpdateEvents()) is True

    assert made[0].stats().max_bytes == 3 * 1024**2


# --- privacy checked against the model's schema (issue 7) --------------------------------------------


def test_a_privacy_policy_naming_a_missing_feature_is_rejected_before_it_lands(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path
) -> None:
    make_model_dir(1)
    ipc.get_configuration.return_value = GetConfigurationResponse(value=with_model(1))
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    on_validate = handler(ipc.subscribe_to_validate_configuration_updates)
    typo = {**with_model(1), "samplers": {"random": 0.1}, "privacy": {"drop": ["pixel_99"]}}
    fine = {**with_model(1), "samplers": {"random": 0.1}, "privacy": {"drop": ["pixel_9"]}}

    assert on_validate(validation_event(typo, "dep-typo")) is False
    assert on_validate(validation_event(fine, "dep-fine")) is True

    refused, accepted = validity_reports(ipc)
    assert (refused.status, refused.deployment_id) == (ConfigurationValidityStatus.REJECTED, "dep-typo")
    assert "privacy.drop" in refused.message
    assert "'pixel_99'" in refused.message
    assert accepted.status == ConfigurationValidityStatus.ACCEPTED
    assert runtime.config.privacy.drop == ()


def test_a_configuration_update_with_a_bad_policy_or_sampler_keeps_the_old_config(
    ipc: Any, make_model_dir: ModelDirFactory, greengrass_root: Path, tmp_path: Path
) -> None:
    make_model_dir(1)
    ipc.get_configuration.return_value = GetConfigurationResponse(value={**with_model(1), "samplers": ["random"]})
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    before = runtime.config
    on_update = handler(ipc.subscribe_to_configuration_update)

    for bad in ({"privacy": {"hash": ["serial"]}, "fleetSalt": "s" * 32}, {"samplers": ["entropyy"]}):
        ipc.get_configuration.return_value = GetConfigurationResponse(value={**with_model(1), **bad})
        assert on_update(ConfigurationUpdateEvents()) is False
        assert runtime.config == before


def test_a_policy_is_not_checked_against_a_model_not_unpacked_yet(
    ipc: Any, greengrass_root: Path, tmp_path: Path
) -> None:
    started(ipc, THING, greengrass_root, tmp_path / "work")
    proposed = {**with_model(7), "privacy": {"drop": ["anything"]}}
    assert handler(ipc.subscribe_to_validate_configuration_updates)(validation_event(proposed)) is True


# --- log level ------------------------------------------------------------------------------------


def test_the_configured_log_level_is_applied_and_follows_updates(
    ipc: Any, greengrass_root: Path, tmp_path: Path
) -> None:
    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(logLevel="DEBUG"))
    started(ipc, THING, greengrass_root, tmp_path / "work")
    assert logging.getLogger().level == logging.DEBUG

    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(logLevel="ERROR"))
    handler(ipc.subscribe_to_configuration_update)(ConfigurationUpdateEvents())

    assert logging.getLogger().level == logging.ERROR


# --- desired-state overrides ----------------------------------------------------------------------


def test_desired_state_at_start_is_applied(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    ipc.get_thing_shadow.side_effect = None
    ipc.get_thing_shadow.return_value = shadow({"batchMax": 8, "logLevel": "WARNING"})

    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")

    assert (runtime.config.batchMax, runtime.config.logLevel) == (8, "WARNING")
    assert logging.getLogger().level == logging.WARNING
    ipc.get_thing_shadow.assert_called_with(thing_name=THING, shadow_name=HEALTH_SHADOW)


def test_a_delta_re_reads_desired_and_applies_it(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    ipc.get_thing_shadow.side_effect = None
    ipc.get_thing_shadow.return_value = shadow({"healthIntervalSeconds": 60, "probationMaxErrorRate": 0.2})
    delta = message(json.dumps({"state": {"healthIntervalSeconds": 60}, "version": 4}).encode())

    assert handler(ipc.subscribe_to_topic, DELTA_TOPIC)(delta) is True

    assert (runtime.config.healthIntervalSeconds, runtime.config.probationMaxErrorRate) == (60.0, 0.2)
    assert runtime.overrides.applied == {"healthIntervalSeconds": 60.0, "probationMaxErrorRate": 0.2}


def test_a_bad_override_is_reported_with_its_reason_and_the_config_stays(
    ipc: Any, greengrass_root: Path, tmp_path: Path
) -> None:
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    ipc.get_thing_shadow.side_effect = None
    ipc.get_thing_shadow.return_value = shadow(
        {"batchMax": 0, "modelComponent": "com.edgeloop.model.evil", "batchWaitMs": 2}
    )

    handler(ipc.subscribe_to_topic, DELTA_TOPIC)(message(b"{}"))
    assert runtime.report_health() is True

    assert runtime.config == DeviceConfig(batchWaitMs=2)
    reported = last_shadow_update(ipc)["state"]["reported"]
    assert reported["overrides"]["applied"] == [{"key": "batchWaitMs", "value": 2}]
    rejected = {item["key"]: item["reason"] for item in reported["overrides"]["rejected"]}
    assert rejected["modelComponent"] == NOT_OVERRIDABLE
    assert "outside [1, 4096]" in rejected["batchMax"]
    assert HealthReport.from_reported(reported).overrides.rejected == rejected


def test_overrides_stay_on_top_of_a_new_deployment_configuration(
    ipc: Any, greengrass_root: Path, tmp_path: Path
) -> None:
    ipc.get_thing_shadow.side_effect = None
    ipc.get_thing_shadow.return_value = shadow({"batchMax": 8})
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")

    ipc.get_configuration.return_value = GetConfigurationResponse(value=component_config(batchMax=64, batchWaitMs=5))
    handler(ipc.subscribe_to_configuration_update)(ConfigurationUpdateEvents())
    assert (runtime.config.batchMax, runtime.config.batchWaitMs) == (8, 5)

    ipc.get_thing_shadow.return_value = shadow(None)  # the override was removed from desired
    handler(ipc.subscribe_to_topic, DELTA_TOPIC)(message(b"{}"))
    assert (runtime.config.batchMax, runtime.config.batchWaitMs) == (64, 5)
    assert runtime.overrides.applied == {}


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(ServiceError(message="shadow manager down"), id="ipc-error"),
        pytest.param(GetThingShadowResponse(payload=b"{not json"), id="not-json"),
        pytest.param(GetThingShadowResponse(payload=b'{"state": {"desired": [1]}}'), id="desired-not-object"),
    ],
)
def test_unreadable_desired_state_keeps_the_overrides_in_force(
    ipc: Any, greengrass_root: Path, tmp_path: Path, failure: Any
) -> None:
    ipc.get_thing_shadow.side_effect = None
    ipc.get_thing_shadow.return_value = shadow({"batchMax": 8})
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work")
    if isinstance(failure, Exception):
        ipc.get_thing_shadow.side_effect = failure
    else:
        ipc.get_thing_shadow.return_value = failure

    assert handler(ipc.subscribe_to_topic, DELTA_TOPIC)(message(b"{}")) is False

    assert runtime.config.batchMax == 8
    assert runtime.overrides.applied == {"batchMax": 8}


def test_the_health_report_carries_the_component_version(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    runtime, _ = started(ipc, THING, greengrass_root, tmp_path / "work", component_version="1.4.2")

    assert runtime.report_health() is True

    reported = last_shadow_update(ipc)["state"]["reported"]
    assert reported["component_version"] == "1.4.2"
    assert HealthReport.from_reported(reported).uplink_state == "connected"


# --- recipe and entry point -----------------------------------------------------------------------


def rendered_recipe(version: str = "1.4.2") -> dict[str, Any]:
    return render_recipe(TEMPLATE.read_text(), inference_recipe_values(version, "s3://bucket/inference.zip"))


def test_the_recipe_passes_the_component_version_and_runs_unbuffered() -> None:
    script = rendered_recipe("1.4.2")["Manifests"][0]["Lifecycle"]["Run"]["Script"]
    assert " -u " in script
    assert script.endswith("--component-version 1.4.2")


def test_every_topic_the_component_subscribes_to_is_authorized(ipc: Any, greengrass_root: Path, tmp_path: Path) -> None:
    started(ipc, THING, greengrass_root, tmp_path / "work")
    acl = rendered_recipe()["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    allowed = {
        resource.replace("{iot:thingName}", THING)
        for policy in acl["aws.greengrass.ipc.pubsub"].values()
        if "aws.greengrass#SubscribeToTopic" in policy["operations"]
        for resource in policy["resources"]
    }
    assert {c.kwargs["topic"] for c in ipc.subscribe_to_topic.call_args_list} <= allowed


def _exit_code_table() -> dict[int, str]:
    rows = re.findall(r"^\| (\d+)\s+\| (.+?)\s*\|$", _load_main().__doc__ or "", flags=re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def _error_classes(root: type[EdgeloopError] = EdgeloopError) -> list[type[EdgeloopError]]:
    return [root, *(c for sub in root.__subclasses__() for c in _error_classes(sub))]


def test_the_exit_code_table_matches_the_error_hierarchy() -> None:
    table = _exit_code_table()
    codes = {cls.exit_code for cls in _error_classes() if cls.__module__ == errors.__name__}
    assert set(table) == codes | {0}
    for cls in _error_classes():
        lineage = [base.__name__ for base in cls.__mro__ if issubclass(base, EdgeloopError)]
        assert any(name in table[cls.exit_code] for name in lineage), f"{cls.__name__} not in row {cls.exit_code}"


def test_main_hands_the_component_version_to_the_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = _load_main()
    ipc = create_autospec(GreengrassCoreIPCClientV2, instance=True)
    seen: dict[str, Any] = {}

    class Running:
        def run(self, stop: Any) -> None:
            seen["ran"] = True

    def fake_start(*args: Any, **kwargs: Any) -> Running:
        seen.update(kwargs)
        return Running()

    monkeypatch.setattr(main, "GreengrassCoreIPCClientV2", lambda: ipc)
    monkeypatch.setattr(main, "start", fake_start)
    monkeypatch.setattr(main.signal, "signal", lambda *_: None)
    monkeypatch.setenv("AWS_IOT_THING_NAME", THING)

    code = main.main(["--greengrass-root", str(tmp_path), "--work-dir", str(tmp_path), "--component-version", "2.0.1"])

    assert (code, seen["component_version"], seen["ran"]) == (0, "2.0.1", True)
    ipc.close.assert_called_once()
