"""What a model deployment contains, and Greengrass's configuration merge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgeloop.core.deployments import (
    SHADOW_MANAGER_COMPONENT,
    ComponentDeployment,
    merge_configuration,
    model_deployment,
)
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import HEALTH_SHADOW, INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"


def test_model_deployment_points_the_inference_component_at_the_model(make_registry_record: Any) -> None:
    record = make_registry_record(version=3)
    spec = model_deployment(record, target_arn=GROUP_ARN, inference_version="0.1.0")
    assert spec.target_arn == GROUP_ARN
    assert spec.components[record.component_name] == ComponentDeployment("3.0.0")
    inference = spec.components[INFERENCE_COMPONENT]
    assert inference.version == "0.1.0"
    config = DeviceConfig.from_config(merge_configuration(DeviceConfig().to_config(), inference.merge))
    assert (config.modelComponent, config.modelComponentVersion) == (record.component_name, "3.0.0")
    shadow_sync = spec.components[SHADOW_MANAGER_COMPONENT].merge["synchronize"]
    assert shadow_sync["coreThing"]["namedShadows"] == [HEALTH_SHADOW]


def test_a_public_key_reaches_the_inference_component_as_model_public_key(make_registry_record: Any) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    spec = model_deployment(
        make_registry_record(signed=True), target_arn=GROUP_ARN, inference_version="0.1.0", public_key_pem=pem
    )
    merged = merge_configuration(DeviceConfig().to_config(), spec.components[INFERENCE_COMPONENT].merge)
    assert DeviceConfig.from_config(merged).modelPublicKey == pem


def test_an_unsigned_version_is_not_deployed_to_devices_that_require_signatures(make_registry_record: Any) -> None:
    with pytest.raises(ValidationError, match="unsigned"):
        model_deployment(make_registry_record(), target_arn=GROUP_ARN, inference_version="0.1.0", public_key_pem="k")


def test_component_deployment_api_shape_carries_merge_as_json() -> None:
    assert ComponentDeployment("1.0.0").to_api() == {"componentVersion": "1.0.0"}
    api = ComponentDeployment("1.0.0", {"b": 1, "a": {"c": 2}}).to_api()
    assert json.loads(api["configurationUpdate"]["merge"]) == {"a": {"c": 2}, "b": 1}


@pytest.mark.parametrize(
    ("base", "merge", "expected"),
    [
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1}, {"a": 2, "b": 3}, {"a": 2, "b": 3}),
        ({"o": {"x": 1, "y": 2}}, {"o": {"y": 3}}, {"o": {"x": 1, "y": 3}}),
        ({"o": {"x": 1}}, {"o": 5}, {"o": 5}),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
    ],
    ids=["empty", "replace-and-add", "objects-merge", "object-replaced-by-scalar", "lists-replace"],
)
def test_merge_configuration(base: dict[str, Any], merge: dict[str, Any], expected: dict[str, Any]) -> None:
    before = json.dumps(base)
    assert merge_configuration(base, merge) == expected
    assert json.dumps(base) == before
