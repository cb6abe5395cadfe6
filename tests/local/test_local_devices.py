"""The threaded simulated device (the plain demo's): the real component on the IPC stand-in, health out over MQTT."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeloop.cloud.artifacts import MemoryArtifactStore
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import HEALTH_SHADOW
from edgeloop.device import component
from edgeloop.local.broker import LocalIotCore
from edgeloop.local.devices import SimulatedDevice, request_message

THING = "edgeloop-device-001"
BROKEN = "broken on purpose"


@pytest.fixture
def device(tmp_path: Path) -> Iterator[SimulatedDevice]:
    with LocalIotCore() as core:
        made = SimulatedDevice(THING, tmp_path, broker=(core.host, core.port), artifacts=MemoryArtifactStore())
        made.start()
        try:
            yield made
        finally:
            made.stop()


def _settle(device: SimulatedDevice, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not device.settled():
        assert time.monotonic() < deadline, f"not settled: {device.health()}"
        time.sleep(0.02)


def test_a_request_is_a_local_message_the_component_parses() -> None:
    assert request_message("r-1", [1, 2.5]) == {"request_id": "r-1", "features": [1.0, 2.5]}
    assert component.parse_request(request_message("r-1", [1, 2.5]))[0] == "r-1"


def test_breaking_request_parsing_refuses_the_threaded_devices_requests(
    device: SimulatedDevice, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: Any) -> Any:
        raise ValidationError("request", BROKEN)

    monkeypatch.setattr(component, "parse_request", broken)
    with caplog.at_level(logging.WARNING, logger="edgeloop.device.runtime"):
        device.submit("r-1", [0.0] * 64)
        _settle(device)
    assert device.health().rejected_inputs == 1
    assert BROKEN in caplog.text


def test_a_desired_change_reaches_the_threaded_device_and_its_health_leaves_through_ipc(
    device: SimulatedDevice,
) -> None:
    device.set_desired({"batchMax": 16})
    assert device.runtime.config.batchMax == 16
    device.stop()
    document = json.loads(device.ipc.get_thing_shadow(thing_name=THING, shadow_name=HEALTH_SHADOW).payload)
    assert document["state"]["desired"] == {"batchMax": 16}
    assert document["state"]["reported"]["thing_name"] == THING, "the last report went out through the stand-in"
    assert device.final_health is not None
