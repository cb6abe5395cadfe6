"""The IPC stand-in: the client operations the component calls, the nucleus's side of them, and the component on it."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    QOS,
    ConfigurationValidityReport,
    ConfigurationValidityStatus,
    ConnectionStatus,
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
)

from edgeloop.core.errors import LinkError
from edgeloop.core.names import HEALTH_SHADOW, INFERENCE_COMPONENT, INPUTS_LOCAL_TOPIC, shadow_topic
from edgeloop.core.overrides import DESIRED_CHANGE_OPERATION
from edgeloop.core.settings import DeviceConfig
from edgeloop.device import component
from edgeloop.device.uplink import IpcUplink, MemoryUplink
from edgeloop.local.ipc import LocalIpc, component_defaults, topic_matches
from edgeloop.packaging import inference_recipe

THING = "dev-1"
DELTA = shadow_topic(THING, DESIRED_CHANGE_OPERATION)
COMPONENT_SIDE = (
    "get_configuration",
    "subscribe_to_validate_configuration_updates",
    "send_configuration_validity_report",
    "subscribe_to_configuration_update",
    "subscribe_to_topic",
    "get_thing_shadow",
    "update_thing_shadow_async",
    "publish_to_iot_core_async",
    "subscribe_to_iot_core_connection_status_async",
    "close",
)


@contextmanager
def refused(words: str) -> Iterator[None]:
    """An InvalidArgumentsError whose message (IPC errors keep it there, not in str()) says `words`."""
    with pytest.raises(InvalidArgumentsError) as caught:
        yield
    assert words in caught.value.message


def _ipc(cloud: MemoryUplink | None = None) -> LocalIpc:
    return LocalIpc(THING, component_defaults(), cloud=cloud)


def _recorder(into: list[Any]) -> Any:
    return into.append


def _reply(status: str, message: str, ipc: LocalIpc) -> Any:
    """A validation stream that answers every event with `status`."""

    def on_event(event: Any) -> None:
        proposed = event.validate_configuration_update_event
        report = ConfigurationValidityReport(status=status, deployment_id=proposed.deployment_id, message=message)
        ipc.send_configuration_validity_report(configuration_validity_report=report)

    return on_event


# --- the client's shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPONENT_SIDE)
def test_each_operation_takes_the_real_clients_keyword_arguments(name: str) -> None:
    ours = inspect.signature(getattr(LocalIpc, name)).parameters
    theirs = inspect.signature(getattr(GreengrassCoreIPCClientV2, name)).parameters
    named = {p for p, v in ours.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
    assert named <= set(theirs), f"{name} takes keywords the real client lacks: {named - set(theirs)}"
    takes_rest = any(v.kind is inspect.Parameter.VAR_KEYWORD for v in ours.values())
    real_keywords = {p for p, v in theirs.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
    assert takes_rest or real_keywords <= named, f"{name} refuses keywords the real client takes"


def test_the_component_calls_nothing_the_stand_in_lacks() -> None:
    """Every IPC operation component.py and IpcUplink name is one the stand-in serves."""
    sources = inspect.getsource(component) + inspect.getsource(IpcUplink)
    called = {name for name in dir(GreengrassCoreIPCClientV2) if not name.startswith("_") and f".{name}(" in sources}
    assert called, "found no IPC calls: the scan is broken"
    assert called <= set(COMPONENT_SIDE), f"not simulated: {called - set(COMPONENT_SIDE)}"


# --- configuration ----------------------------------------------------------------------------------


def test_the_configuration_before_any_deployment_is_the_rendered_recipe_default() -> None:
    recipe = inference_recipe("1.0.0", "s3://bucket/inference.zip")
    value = _ipc().get_configuration(key_path=[]).value
    assert value == recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert "accessControl" in value
    assert DeviceConfig.from_config(value) == DeviceConfig()


def test_a_key_path_reads_below_the_root_and_a_missing_one_is_not_found() -> None:
    ipc = _ipc()
    assert ipc.get_configuration(key_path=["batchMax"]).value == DeviceConfig().batchMax
    with pytest.raises(ResourceNotFoundError):
        ipc.get_configuration(key_path=["noSuchKey"])
    with refused("serves"):
        ipc.get_configuration(component_name="aws.greengrass.Nucleus", key_path=[])


def test_what_a_caller_does_to_the_returned_configuration_does_not_change_it() -> None:
    ipc = _ipc()
    ipc.get_configuration(key_path=[]).value["batchMax"] = 1
    assert ipc.get_configuration(key_path=["batchMax"]).value == DeviceConfig().batchMax


def test_a_rejected_report_wins_over_an_accepted_one() -> None:
    ipc = _ipc()
    ipc.subscribe_to_validate_configuration_updates(on_stream_event=_reply("ACCEPTED", "fine", ipc))
    ipc.subscribe_to_validate_configuration_updates(on_stream_event=_reply("REJECTED", "batchMax: too big", ipc))
    report = ipc.validate_configuration({"batchMax": 10**6}, "dep-1")
    assert (report.status, report.deployment_id, report.message) == ("REJECTED", "dep-1", "batchMax: too big")


def test_validation_hands_over_the_proposed_configuration_and_does_not_apply_it() -> None:
    ipc, seen = _ipc(), []
    ipc.subscribe_to_validate_configuration_updates(on_stream_event=_recorder(seen))
    report = ipc.validate_configuration({**component_defaults(), "batchMax": 8}, "dep-2")
    assert report.status == ConfigurationValidityStatus.ACCEPTED, "no answer: the nucleus proceeds after its timeout"
    [event] = seen
    assert event.validate_configuration_update_event.configuration["batchMax"] == 8
    assert event.validate_configuration_update_event.deployment_id == "dep-2"
    assert ipc.get_configuration(key_path=["batchMax"]).value == DeviceConfig().batchMax


def test_a_validity_report_with_an_unknown_status_is_refused() -> None:
    report = ConfigurationValidityReport(status="MAYBE", deployment_id="dep-1", message="?")
    with refused("ACCEPTED or REJECTED"):
        _ipc().send_configuration_validity_report(configuration_validity_report=report)


def test_an_update_lands_then_tells_every_update_stream() -> None:
    ipc, seen = _ipc(), []
    ipc.subscribe_to_configuration_update(key_path=[], on_stream_event=lambda event: seen.append(
        (event.configuration_update_event.component_name, ipc.get_configuration(key_path=["batchMax"]).value)
    ))  # fmt: skip
    ipc.update_configuration({**component_defaults(), "batchMax": 8})
    assert seen == [(INFERENCE_COMPONENT, 8)], "the stream reads the new configuration when told"


def test_a_partial_key_path_subscription_is_refused_not_silently_widened() -> None:
    with refused("key_path"):
        _ipc().subscribe_to_configuration_update(key_path=["batchMax"], on_stream_event=print)


# --- local pub/sub ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a/b/c", True),
        ("#", "a", True),
        ("a/b", "a/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_topic_filters_match_as_mqtt_filters_do(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_a_json_message_reaches_its_subscribers_only() -> None:
    ipc, inputs, others = _ipc(), [], []
    ipc.subscribe_to_topic(topic=INPUTS_LOCAL_TOPIC, on_stream_event=_recorder(inputs))
    ipc.subscribe_to_topic(topic="elsewhere/+", on_stream_event=_recorder(others))
    assert ipc.publish(INPUTS_LOCAL_TOPIC, {"request_id": "r-1", "features": [1.0]}) == 1
    [event] = inputs
    assert event.json_message.message == {"request_id": "r-1", "features": [1.0]}
    assert event.json_message.context.topic == INPUTS_LOCAL_TOPIC
    assert event.binary_message is None
    assert others == []


def test_bytes_go_as_a_binary_message_and_a_later_subscriber_is_reached_too() -> None:
    ipc, first, second = _ipc(), [], []
    ipc.subscribe_to_topic(topic="sensors/#", on_stream_event=_recorder(first))
    ipc.publish("sensors/a", b"x")
    ipc.subscribe_to_topic(topic="sensors/a", on_stream_event=_recorder(second))
    assert ipc.publish("sensors/a", b"y") == 2
    assert [e.binary_message.message for e in first] == [b"x", b"y"]
    assert [e.binary_message.message for e in second] == [b"y"]


def test_a_closed_client_hears_nothing_more() -> None:
    ipc, seen = _ipc(), []
    ipc.subscribe_to_topic(topic=INPUTS_LOCAL_TOPIC, on_stream_event=_recorder(seen))
    ipc.close()
    assert ipc.publish(INPUTS_LOCAL_TOPIC, b"late") == 0
    assert seen == []


# --- ShadowManager --------------------------------------------------------------------------------------


def test_no_shadow_is_not_found_until_desired_state_arrives() -> None:
    ipc, deltas = _ipc(), []
    ipc.subscribe_to_topic(topic=DELTA, on_stream_event=_recorder(deltas))
    with pytest.raises(ResourceNotFoundError):
        ipc.get_thing_shadow(thing_name=THING, shadow_name=HEALTH_SHADOW)

    ipc.update_desired(HEALTH_SHADOW, {"batchMax": 16, "logLevel": "DEBUG"})
    ipc.update_desired(HEALTH_SHADOW, {"logLevel": None})

    document = json.loads(ipc.get_thing_shadow(thing_name=THING, shadow_name=HEALTH_SHADOW).payload)
    assert document["state"]["desired"] == {"batchMax": 16}, "None deletes a desired key, as in a shadow"
    assert [e.json_message.message["state"] for e in deltas] == [
        {"batchMax": 16, "logLevel": "DEBUG"},
        {"logLevel": None},
    ]


def test_a_reported_update_is_synced_to_iot_core_and_kept_locally() -> None:
    cloud = MemoryUplink()
    ipc = _ipc(cloud)
    payload = json.dumps({"state": {"reported": {"model_version": 3}}}).encode()
    ipc.update_thing_shadow_async(thing_name=THING, shadow_name=HEALTH_SHADOW, payload=payload).result(timeout=1)
    assert cloud.shadows == [(THING, HEALTH_SHADOW, {"state": {"reported": {"model_version": 3}}})]
    document = json.loads(ipc.get_thing_shadow(thing_name=THING, shadow_name=HEALTH_SHADOW).payload)
    assert document["state"] == {"reported": {"model_version": 3}}


def test_another_things_shadow_and_a_malformed_update_are_refused() -> None:
    ipc = _ipc(MemoryUplink())
    with refused("may not reach"):
        ipc.get_thing_shadow(thing_name="dev-2", shadow_name=HEALTH_SHADOW)
    future = ipc.update_thing_shadow_async(thing_name=THING, shadow_name=HEALTH_SHADOW, payload=b'{"state": 1}')
    with refused("reported"):
        future.result(timeout=1)


# --- IoT Core through the nucleus ------------------------------------------------------------------------


def test_a_publish_goes_out_through_the_nucleus_connection() -> None:
    cloud = MemoryUplink()
    ipc = _ipc(cloud)
    ipc.publish_to_iot_core_async(topic_name="edgeloop/x", qos=QOS.AT_LEAST_ONCE, payload=b"1").result(timeout=1)
    assert cloud.published == [("edgeloop/x", b"1")]


@pytest.mark.parametrize("cloud", [MemoryUplink(online=False), None], ids=["offline", "no-connection"])
def test_a_publish_the_connection_refuses_fails_its_future_with_an_ipc_error(cloud: MemoryUplink | None) -> None:
    future = _ipc(cloud).publish_to_iot_core_async(topic_name="edgeloop/x", qos=QOS.AT_LEAST_ONCE, payload=b"1")
    with pytest.raises(ServiceError):
        future.result(timeout=1)


def test_the_ipc_uplink_on_the_stand_in_keeps_the_uplink_contract() -> None:
    """IpcUplink over the stand-in: confirmed sends arrive; a refused one is LinkError; status events hold it back."""
    cloud = MemoryUplink()
    ipc = _ipc(cloud)
    uplink = IpcUplink(ipc, timeout_s=1.0)  # type: ignore[arg-type]  # the stand-in serves the subset it calls
    assert uplink.watch_connection_status()
    uplink.publish("edgeloop/a", b"1")
    uplink.update_shadow(THING, HEALTH_SHADOW, {"state": {"reported": {"ok": True}}})
    assert cloud.published == [("edgeloop/a", b"1")]
    assert cloud.shadows == [(THING, HEALTH_SHADOW, {"state": {"reported": {"ok": True}}})]

    cloud.online = False
    with pytest.raises(LinkError, match="ServiceError"):
        uplink.publish("edgeloop/a", b"2")
    assert not uplink.connected

    cloud.online = True
    ipc.report_connection(False)
    with pytest.raises(LinkError, match="held back"):
        uplink.publish("edgeloop/a", b"3")
    ipc.report_connection(True)
    uplink.publish("edgeloop/a", b"4")
    assert [p for _, p in cloud.published] == [b"1", b"4"]
    assert uplink.connected


def test_connection_events_carry_the_status() -> None:
    ipc, seen = _ipc(), []
    future, _ = ipc.subscribe_to_iot_core_connection_status_async(on_stream_event=_recorder(seen))
    future.result(timeout=1)
    ipc.report_connection(False)
    assert [e.connection_status_event.status for e in seen] == [ConnectionStatus.DISCONNECTED]


# --- the component started on the stand-in -------------------------------------------------------------


def test_the_component_started_on_the_stand_in_validates_updates_parses_and_follows_deltas(tmp_path: Path) -> None:
    ipc = _ipc(MemoryUplink())
    running = component.start(ipc, THING, tmp_path, tmp_path / "work", host=component.HostOptions(
        set_log_level=lambda level: None
    ))  # fmt: skip
    try:
        refused = ipc.validate_configuration({**component_defaults(), "batchMax": 0}, "dep-1")
        assert refused.status == ConfigurationValidityStatus.REJECTED
        assert "batchMax" in refused.message

        ipc.update_configuration({**component_defaults(), "batchMax": 8})
        assert running.runtime.config.batchMax == 8

        ipc.update_desired(HEALTH_SHADOW, {"batchMax": 16, "modelComponent": "x"})
        assert running.runtime.config.batchMax == 16
        assert "modelComponent" in running.runtime.overrides.rejected

        ipc.publish(INPUTS_LOCAL_TOPIC, {"request_id": "r-1", "features": [0.0, 1.0]})
        ipc.publish(INPUTS_LOCAL_TOPIC, b"not json")
        assert [request_id for request_id, _ in running.take_inputs()] == ["r-1"]
        assert running.runtime.health().rejected_inputs == 1
    finally:
        ipc.close()
        running.close()
