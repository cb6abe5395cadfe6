"""The Greengrass stand-in: deployments reach group members, artifacts land in the Greengrass layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from edgeloop.cloud.artifacts import MemoryArtifactStore
from edgeloop.core.deployments import ComponentDeployment, DeploymentSpec
from edgeloop.core.errors import ModelFormatError
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
