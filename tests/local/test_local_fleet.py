"""The stepped fleet: each device runs the real component (shown by breaking it), and the fleet through bad days:
partitions (one flapping), a ring cut off through a rollout, an IoT Core restart that loses acknowledgements, and a
bad candidate. Nothing is lost, nothing is counted twice, the offline ring catches up, and the bad candidate is
reverted in the canary."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from awsiot.greengrasscoreipc.model import ConfigurationValidityReport, ConfigurationValidityStatus
from support import FakeClock

from edgeloop.cloud.artifacts import MemoryArtifactStore
from edgeloop.core.deployments import ComponentDeployment, DeploymentSpec
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig
from edgeloop.device import component
from edgeloop.device.onnx_session import SessionPool
from edgeloop.local.fleet import SteppedDevice
from edgeloop.local.greengrass import ExecutionStatus, LocalGreengrass
from edgeloop.local.link import Network
from edgeloop.local.loop import run_scenario
from edgeloop.local.sim.scenario import Scenario
from edgeloop.packaging import inference_recipe

THING = "edgeloop-device-001"
GROUP = "edgeloop-fleet"
GROUP_ARN = f"arn:aws:iot:us-east-1:123456789012:thinggroup/{GROUP}"
ARCHIVE = "s3://artifacts/components/inference.zip"
BROKEN = "broken on purpose"


def _tune(**merge: Any) -> DeploymentSpec:
    return DeploymentSpec(GROUP_ARN, "tune", {INFERENCE_COMPONENT: ComponentDeployment("0.1.0", merge)})


@pytest.fixture
def fleet(aws: None, tmp_path: Path) -> Any:
    """One stepped device, member of a group the Greengrass stand-in deploys to; closed afterwards."""
    iot = boto3.client("iot", region_name="us-east-1")
    iot.create_thing_group(thingGroupName=GROUP)
    iot.create_thing(thingName=THING)
    iot.add_thing_to_thing_group(thingGroupName=GROUP, thingName=THING)
    store = MemoryArtifactStore()
    store.put(ARCHIVE, b"PKzip")
    greengrass = LocalGreengrass(iot, region="us-east-1", account="123456789012")
    greengrass.create_component_version(inference_recipe("0.1.0", ARCHIVE))
    made: list[SteppedDevice] = []

    def device() -> SteppedDevice:
        network = Network([], devices=1, step_s=60.0, now_s=lambda: 0.0)
        stepped = SteppedDevice(
            THING, 0, tmp_path / THING, network=network, deliver=lambda topic, payload: None, artifacts=store,
            clock=FakeClock(), pool=SessionPool(), seed=1, forward_interval_s=60.0,
        )  # fmt: skip
        greengrass.register_nucleus(stepped.nucleus)
        made.append(stepped)
        return stepped

    yield greengrass, device
    for stepped in made:
        stepped.close()


def _refuse_every_configuration(event: Any, *, ipc: Any, artifacts: Path | None = None) -> bool:
    proposed = event.validate_configuration_update_event
    report = ConfigurationValidityReport(
        status=ConfigurationValidityStatus.REJECTED, deployment_id=proposed.deployment_id, message=BROKEN
    )
    ipc.send_configuration_validity_report(configuration_validity_report=report)
    return False


def test_a_deployment_reaches_the_stepped_device_through_its_component(fleet: Any) -> None:
    greengrass, device = fleet
    stepped = device()
    [outcome] = greengrass.outcomes(greengrass.create_deployment(_tune(batchMax=8)))
    assert outcome.status is ExecutionStatus.SUCCEEDED
    assert stepped.runtime.config.batchMax == 8


def test_breaking_the_components_validation_fails_the_stepped_devices_deployment(
    fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    greengrass, device = fleet
    monkeypatch.setattr(component, "handle_validate_config", _refuse_every_configuration)
    stepped = device()
    [outcome] = greengrass.outcomes(greengrass.create_deployment(_tune(batchMax=8)))
    assert outcome.status is ExecutionStatus.FAILED
    assert BROKEN in outcome.detail
    assert stepped.runtime.config == DeviceConfig(), "a rejected configuration never lands"


def test_the_components_own_checks_refuse_what_the_schema_lets_through(fleet: Any) -> None:
    greengrass, device = fleet
    stepped = device()
    unreadable = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    [outcome] = greengrass.outcomes(greengrass.create_deployment(_tune(modelPublicKey=unreadable)))
    assert outcome.status is ExecutionStatus.FAILED
    assert "modelPublicKey" in outcome.detail
    assert "rejected it" in outcome.detail
    assert stepped.runtime.config.modelPublicKey == ""


def test_breaking_request_parsing_refuses_the_stepped_devices_requests(
    fleet: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, device = fleet
    stepped = device()

    def broken(message: Any) -> Any:
        raise ValidationError("request", BROKEN)

    monkeypatch.setattr(component, "parse_request", broken)
    with caplog.at_level(logging.WARNING, logger="edgeloop.device.runtime"):
        stepped.step([("r-1", np.zeros(64)), ("r-2", np.zeros(64))])
    assert stepped.health().rejected_inputs == 2
    assert caplog.text.count(BROKEN) == 2, "each request was refused by the (broken) parser, not by the runtime"


def test_a_desired_change_reaches_the_stepped_device_as_a_shadow_delta(fleet: Any) -> None:
    _, device = fleet
    stepped = device()
    stepped.set_desired({"batchMax": 32, "fleetSalt": "x"})
    assert stepped.runtime.config.batchMax == 32
    assert set(stepped.runtime.overrides.rejected) == {"fleetSalt"}


BAD_DAY: dict[str, Any] = {
    "name": "bad-day",
    "dataset": "builtin:digits",
    "initial_rows": 900,
    "devices": 4,
    "duration_s": 5400.0,
    "requests_per_s": 0.1,
    "step_s": 60.0,
    "forward_interval_s": 120.0,
    "outages": [
        {"kind": "partition", "scope": "ring", "ring": "broad", "from_s": 0.0, "to_s": 900.0},
        {"kind": "partition", "scope": "share", "share": 0.5, "from_s": 1800.0, "to_s": 2700.0, "flap_s": 180.0},
        {"kind": "restart", "from_s": 3900.0, "to_s": 4020.0},
    ],
    "bad_candidates": [{"kind": "inaccurate", "at_s": 3000.0}, {"kind": "selftest", "at_s": 3300.0}],
    "device_config": {"healthIntervalSeconds": 120.0, "healthMinIntervalSeconds": 60.0},
}


@pytest.mark.slow
def test_a_bad_day_loses_nothing_counts_nothing_twice_and_ends_on_last_known_good(tmp_path: Path) -> None:
    summary = run_scenario(Scenario.from_dict(BAD_DAY), tmp_path, lambda message: None)
    reliability, uplink = summary["reliability"], summary["uplink"]
    assert reliability["records_lost"] == 0
    assert reliability["records_produced"] == reliability["records_delivered"] > 0
    assert reliability["duplicates_ingested"] == 0
    assert uplink["acks_lost"] > 0, "the restart and the flapping cut links mid-publish"
    assert reliability["duplicates_received"] >= uplink["acks_lost"], "each message whose ack was lost came again"
    assert uplink["publishes_refused_offline"] > 0
    assert reliability["max_buffer_depth"] > 0
    assert reliability["outage_s"] == 900.0 + 900.0 + 120.0
    refused = reliability["requests_refused"]
    assert refused == 3 * 90, "only the broad ring's requests before its first model arrived (900 s at 0.1/s)"
    assert reliability["answers_received"] + refused == reliability["requests"], "every other one answered"

    outcomes = [(r["version"], r["outcome"], r["bad_kind"]) for r in summary["rollouts"]]
    assert outcomes == [(1, "completed", None), (2, "reverted", "inaccurate"), (3, "reverted", "selftest")]
    assert [r["rings_reached"] for r in summary["rollouts"][1:]] == [["canary"], ["canary"]]
    assert summary["rollouts"][2]["stopped_by"] == "device verification: self-test failed"
    last = summary["timeline"]["points"][-1]
    assert last["devices_by_version"] == {"1": 4}, "the broad ring, offline through v1's rollout, caught up"
    kinds = {e["kind"] for e in summary["timeline"]["events"]}
    assert {"outage_start", "outage_end", "restart", "rollout_start", "rollout_end", "decision"} <= kinds
    assert summary["cost"]["edge_usd_per_device_month"] < summary["cost"]["raw_usd_per_device_month"]
    assert json.loads((tmp_path / "summary.json").read_text())["reliability"] == reliability
    assert (tmp_path / "report.html").is_file()
