"""The Greengrass stand-in: deployments reach group members as paced, abortable IoT jobs; artifacts land in place;
each nucleus validates, then updates, its component's configuration over the IPC stand-in."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from awsiot.greengrasscoreipc.model import ConfigurationValidityReport, ConfigurationValidityStatus
from support import FakeClock

from edgeloop.cloud.artifacts import MemoryArtifactStore
from edgeloop.cloud.fleet import DeploymentProgress
from edgeloop.core.deployments import ComponentDeployment, DeploymentSpec
from edgeloop.core.errors import ModelFormatError, NotFoundError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig
from edgeloop.local.greengrass import ExecutionStatus, LocalGreengrass, LocalNucleus
from edgeloop.packaging import inference_recipe

GROUP = "edgeloop-fleet"
GROUP_ARN = f"arn:aws:iot:us-east-1:123456789012:thinggroup/{GROUP}"
MODEL = "com.edgeloop.model.digits"


@pytest.fixture
def iot(aws: None) -> Any:
    client = boto3.client("iot", region_name="us-east-1")
    client.create_thing_group(thingGroupName=GROUP)
    return client


def _model_recipe(uri: str) -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": MODEL,
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {}, "Artifacts": [{"Uri": uri}]}],
    }


def _store() -> MemoryArtifactStore:
    store = MemoryArtifactStore()
    store.put("s3://artifacts/models/digits/abc/model.onnx", b"\x08model")
    store.put("s3://artifacts/components/inference.zip", b"PKzip")
    return store


def _setup(iot: Any, tmp_path: Path, things: list[str], members: list[str]) -> tuple[LocalGreengrass, dict]:
    store = _store()
    greengrass = LocalGreengrass(iot, region="us-east-1", account="123456789012")
    greengrass.create_component_version(_model_recipe("s3://artifacts/models/digits/abc/model.onnx"))
    greengrass.create_component_version(inference_recipe("0.1.0", "s3://artifacts/components/inference.zip"))
    configs: dict[str, list[DeviceConfig]] = {}
    for thing in things:
        iot.create_thing(thingName=thing)
        if thing in members:
            iot.add_thing_to_thing_group(thingGroupName=GROUP, thingName=thing)
        configs[thing] = []
        greengrass.register_nucleus(
            LocalNucleus(thing, tmp_path / thing, artifacts=store, on_configuration=configs[thing].append)
        )
    return greengrass, configs


SPEC = DeploymentSpec(
    target_arn=GROUP_ARN,
    name="edgeloop-digits-v1",
    components={
        MODEL: ComponentDeployment("1.0.0"),
        INFERENCE_COMPONENT: ComponentDeployment(
            "0.1.0", {"modelComponent": MODEL, "modelComponentVersion": "1.0.0", "batchMax": 8}
        ),
        "aws.greengrass.ShadowManager": ComponentDeployment("2.3.9"),
    },
)


def test_members_receive_artifacts_and_merged_configuration(iot: Any, tmp_path: Path) -> None:
    greengrass, configs = _setup(iot, tmp_path, ["dev-1", "dev-2", "outsider"], members=["dev-1", "dev-2"])
    deployment_id = greengrass.create_deployment(SPEC)
    outcomes = greengrass.outcomes(deployment_id)
    assert sorted((o.thing_name, o.status) for o in outcomes) == [
        ("dev-1", ExecutionStatus.SUCCEEDED),
        ("dev-2", ExecutionStatus.SUCCEEDED),
    ]
    installed = tmp_path / "dev-1" / "packages" / "artifacts" / MODEL / "1.0.0" / "model.onnx"
    assert installed.read_bytes() == b"\x08model"
    expected = DeviceConfig(modelComponent=MODEL, modelComponentVersion="1.0.0", batchMax=8)
    assert configs["dev-1"] == [expected]
    assert configs["outsider"] == []
    assert not (tmp_path / "outsider").exists()


def test_a_device_whose_artifact_is_missing_fails_alone(iot: Any, tmp_path: Path) -> None:
    greengrass, configs = _setup(iot, tmp_path, ["dev-1"], members=["dev-1"])
    greengrass.create_component_version(
        {**_model_recipe("s3://artifacts/models/digits/gone/model.onnx"), "ComponentVersion": "2.0.0"}
    )
    spec = DeploymentSpec(GROUP_ARN, "v2", {MODEL: ComponentDeployment("2.0.0")})
    [outcome] = greengrass.outcomes(greengrass.create_deployment(spec))
    assert outcome.status is ExecutionStatus.FAILED
    assert "does not exist" in outcome.detail
    assert configs["dev-1"] == []


def test_a_bad_configuration_fails_the_device_with_the_key_named(iot: Any, tmp_path: Path) -> None:
    greengrass, configs = _setup(iot, tmp_path, ["dev-1"], members=["dev-1"])
    spec = DeploymentSpec(
        GROUP_ARN,
        "bad",
        {MODEL: ComponentDeployment("1.0.0"), INFERENCE_COMPONENT: ComponentDeployment("0.1.0", {"batchMax": 0})},
    )
    [outcome] = greengrass.outcomes(greengrass.create_deployment(spec))
    assert outcome.status is ExecutionStatus.FAILED
    assert "batchMax" in outcome.detail
    assert configs["dev-1"] == []


def test_a_component_that_refuses_its_configuration_fails_the_device(iot: Any, tmp_path: Path) -> None:
    greengrass, _ = _setup(iot, tmp_path, [], members=[])
    iot.create_thing(thingName="dev-9")
    iot.add_thing_to_thing_group(thingGroupName=GROUP, thingName="dev-9")

    def refuse(config: DeviceConfig) -> None:
        raise ModelFormatError("self-test failed: golden row 0 answered 3, expected 1")

    greengrass.register_nucleus(LocalNucleus("dev-9", tmp_path / "dev-9", artifacts=_store(), on_configuration=refuse))
    [outcome] = greengrass.outcomes(greengrass.create_deployment(SPEC))
    assert outcome.status is ExecutionStatus.FAILED
    assert "self-test failed" in outcome.detail


# --- IoT Jobs semantics: rollout rate, abort, rollback, replacement ------------------------------------


def _fleet(iot: Any, tmp_path: Path, count: int, refuse: set[str] | None = None) -> tuple[LocalGreengrass, Any]:
    """`count` members whose component refuses any configuration of a thing in `refuse`."""
    clock = FakeClock(0.0)
    greengrass = LocalGreengrass(iot, region="us-east-1", account="123456789012", clock=clock)
    store = _store()
    greengrass.create_component_version(_model_recipe("s3://artifacts/models/digits/abc/model.onnx"))
    greengrass.create_component_version(inference_recipe("0.1.0", "s3://artifacts/components/inference.zip"))
    configs: dict[str, list[DeviceConfig]] = {}
    for index in range(count):
        thing = f"dev-{index:02d}"
        iot.create_thing(thingName=thing)
        iot.add_thing_to_thing_group(thingGroupName=GROUP, thingName=thing)
        configs[thing] = []

        def configure(config: DeviceConfig, thing: str = thing) -> None:
            if thing in (refuse or set()) and config.batchMax == 8:
                raise ModelFormatError("self-test failed")
            configs[thing].append(config)

        greengrass.register_nucleus(LocalNucleus(thing, tmp_path / thing, artifacts=store, on_configuration=configure))
    greengrass.configs = configs  # type: ignore[attr-defined]
    return greengrass, clock


def test_a_ring_deployment_starts_at_the_base_rate_and_speeds_up_as_devices_succeed(iot: Any, tmp_path: Path) -> None:
    greengrass, clock = _fleet(iot, tmp_path, 35)
    deployment_id = greengrass.create_deployment(SPEC)
    seen = [len(greengrass.outcomes(deployment_id))]
    for _ in range(3):
        clock.now += 60
        greengrass.advance()
        seen.append(len(greengrass.outcomes(deployment_id)))
    assert seen == [10, 30, 35, 35], "10 in the first minute, then 20 (x2 after 10 successes), then the rest"
    assert greengrass.job_status(deployment_id) == "COMPLETED"
    assert greengrass.deployment_progress(deployment_id) == DeploymentProgress(35, 35, 0)


def test_nothing_more_starts_before_the_next_minute(iot: Any, tmp_path: Path) -> None:
    greengrass, clock = _fleet(iot, tmp_path, 12)
    deployment_id = greengrass.create_deployment(SPEC)
    clock.now += 59
    greengrass.advance()
    assert len(greengrass.outcomes(deployment_id)) == 10
    assert greengrass.deployment_progress(deployment_id) == DeploymentProgress(12, 10, 0)


def test_a_revert_reaches_every_device_at_once(iot: Any, tmp_path: Path) -> None:
    greengrass, _ = _fleet(iot, tmp_path, 35)
    deployment_id = greengrass.create_deployment(replace(SPEC, fast=True))
    assert len(greengrass.outcomes(deployment_id)) == 35


def test_failures_past_the_abort_threshold_cancel_the_queued_executions(iot: Any, tmp_path: Path) -> None:
    greengrass, clock = _fleet(iot, tmp_path, 20, refuse={"dev-00", "dev-01"})
    deployment_id = greengrass.create_deployment(SPEC)
    clock.now += 600
    greengrass.advance()
    outcomes = greengrass.outcomes(deployment_id)
    assert greengrass.job_status(deployment_id) == "CANCELED"
    assert len(outcomes) == 5, "abort judged once minNumberOfExecutedThings (5) ran: 2 of 5 failed >= 10%"
    progress = greengrass.deployment_progress(deployment_id)
    assert (progress.targeted, progress.succeeded, progress.failed) == (20, 3, 2)
    failed = {o.thing_name: o.detail for o in outcomes if o.status is ExecutionStatus.FAILED}
    assert progress.failure_causes == tuple(f"{thing}: {' '.join(detail.split())}" for thing, detail in failed.items())
    assert greengrass.configs["dev-10"] == []  # type: ignore[attr-defined]


def test_a_device_whose_deployment_fails_rolls_back_to_its_previous_configuration(iot: Any, tmp_path: Path) -> None:
    greengrass, _ = _fleet(iot, tmp_path, 1, refuse={"dev-00"})
    good = replace(SPEC, components={**SPEC.components, INFERENCE_COMPONENT: ComponentDeployment("0.1.0", {})})
    greengrass.create_deployment(good)
    [outcome] = greengrass.outcomes(greengrass.create_deployment(SPEC))
    assert outcome.status is ExecutionStatus.FAILED
    assert "rolled back to" in outcome.detail
    assert greengrass.configs["dev-00"] == [DeviceConfig(), DeviceConfig()]  # type: ignore[attr-defined]


def test_a_newer_deployment_to_the_target_cancels_the_older_ones_queue(iot: Any, tmp_path: Path) -> None:
    greengrass, _ = _fleet(iot, tmp_path, 12)
    first = greengrass.create_deployment(SPEC)
    second = greengrass.create_deployment(replace(SPEC, name="again", fast=True))
    assert greengrass.job_status(first) == "CANCELED"
    assert greengrass.deployment_progress(first) == DeploymentProgress(12, 10, 0)
    assert greengrass.deployment_progress(second) == DeploymentProgress(12, 12, 0)


def test_a_target_that_is_not_a_thing_group_records_no_deployment(iot: Any, tmp_path: Path) -> None:
    greengrass, _ = _fleet(iot, tmp_path, 1)
    target = "arn:aws:iot:us-east-1:123456789012:thing/dev-00"
    with pytest.raises(NotFoundError, match="is not a thing group"):
        greengrass.create_deployment(replace(SPEC, target_arn=target))
    assert greengrass.latest_deployment(target) is None


def test_an_offline_device_keeps_its_execution_queued_and_catches_up_when_it_reconnects(
    iot: Any, tmp_path: Path
) -> None:
    greengrass, clock = _fleet(iot, tmp_path, 3)
    online = {"dev-01": False}
    for thing, nucleus in greengrass._nuclei.items():
        nucleus.online = lambda thing=thing: online.get(thing, True)
    deployment_id = greengrass.create_deployment(replace(SPEC, fast=True))
    assert sorted(o.thing_name for o in greengrass.outcomes(deployment_id)) == ["dev-00", "dev-02"]
    assert greengrass.job_status(deployment_id) == "IN_PROGRESS", "IoT Jobs waits for the offline device"
    clock.now += 600
    greengrass.advance()
    assert greengrass.configs["dev-01"] == []  # type: ignore[attr-defined]
    online["dev-01"] = True
    clock.now += 60
    greengrass.advance()
    assert len(greengrass.configs["dev-01"]) == 1, "the deployment reached it on reconnect"  # type: ignore[attr-defined]
    assert greengrass.job_status(deployment_id) == "COMPLETED"


# --- the nucleus's side of IPC: validate, then update -------------------------------------------------


def _answering(nucleus: LocalNucleus, status: str, seen: list[str]) -> None:
    """Subscribe to the nucleus's IPC stand-in as the component does: answer validations with `status`, note updates."""
    ipc = nucleus.ipc

    def validate(event: Any) -> None:
        proposed = event.validate_configuration_update_event
        seen.append(f"validate {proposed.configuration['batchMax']}")
        report = ConfigurationValidityReport(status=status, deployment_id=proposed.deployment_id, message="no thanks")
        ipc.send_configuration_validity_report(configuration_validity_report=report)

    ipc.subscribe_to_validate_configuration_updates(on_stream_event=validate)
    ipc.subscribe_to_configuration_update(
        key_path=[],
        on_stream_event=lambda _: seen.append(f"update {ipc.get_configuration(key_path=['batchMax']).value}"),
    )


def test_a_deployment_is_validated_then_lands_in_the_components_ipc_configuration(iot: Any, tmp_path: Path) -> None:
    greengrass, _ = _setup(iot, tmp_path, ["dev-1"], members=["dev-1"])
    nucleus, seen = greengrass._nuclei["dev-1"], []
    _answering(nucleus, ConfigurationValidityStatus.ACCEPTED, seen)
    [outcome] = greengrass.outcomes(greengrass.create_deployment(SPEC))
    assert outcome.status is ExecutionStatus.SUCCEEDED
    assert seen == ["validate 8", "update 8"]
    value = nucleus.ipc.get_configuration(key_path=[]).value
    recipe = inference_recipe("0.1.0", "s3://artifacts/components/inference.zip")
    assert value["accessControl"] == recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    assert (value["modelComponent"], value["batchMax"]) == (MODEL, 8)


def test_a_rejected_validity_report_fails_the_device_and_keeps_its_configuration(iot: Any, tmp_path: Path) -> None:
    greengrass, configs = _setup(iot, tmp_path, ["dev-1"], members=["dev-1"])
    nucleus, seen = greengrass._nuclei["dev-1"], []
    _answering(nucleus, ConfigurationValidityStatus.REJECTED, seen)
    [outcome] = greengrass.outcomes(greengrass.create_deployment(SPEC))
    assert outcome.status is ExecutionStatus.FAILED
    assert f"{INFERENCE_COMPONENT} rejected it: no thanks" in outcome.detail
    assert seen == ["validate 8"], "a rejected configuration never lands"
    assert nucleus.ipc.get_configuration(key_path=["batchMax"]).value == DeviceConfig().batchMax
    assert configs["dev-1"] == []
