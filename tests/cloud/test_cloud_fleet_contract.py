"""One contract for the FleetControl port, run against every implementation.

The Greengrass adapter runs over a stateful fake of the greengrassv2 API (tests/cloud/fake_greengrassv2.py:
botocore validates every request and answer against the service model), beside the in-memory fake and the
local stand-in (over moto IoT, which holds its target thing groups). Each test asserts on effects read back
through the port, so the fakes are held to what the adapter does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from fake_greengrassv2 import FakeGreengrassV2

from edgeloop.cloud.fleet import (
    DeploymentProgress,
    FleetControl,
    GreengrassFleetControl,
    MemoryFleetControl,
    component_arn,
)
from edgeloop.core.deployments import ComponentDeployment, DeploymentSpec
from edgeloop.core.errors import FleetControlError, NotFoundError, ValidationError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.local.greengrass import LocalGreengrass

ACCOUNT, REGION = "123456789012", "us-east-1"
GROUPS = ("edgeloop-ring-canary", "edgeloop-ring-broad")
CANARY, BROAD = (f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{group}" for group in GROUPS)
MODEL = "com.edgeloop.model.digits"


def recipe(name: str = MODEL, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    """A minimal private component recipe."""
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": {}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {}}],
        **extra,
    }


def spec(target: str = CANARY, model_version: str = "1.0.0", *, name: str = "edgeloop-digits-v1") -> DeploymentSpec:
    """A model deployment as edgeloop makes one: the model, the inference component pointed at it, a public one."""
    merge = {"modelComponent": MODEL, "modelComponentVersion": model_version}
    return DeploymentSpec(
        target_arn=target,
        name=name,
        components={
            MODEL: ComponentDeployment(model_version),
            INFERENCE_COMPONENT: ComponentDeployment("0.1.0", merge),
            "aws.greengrass.ShadowManager": ComponentDeployment("2.3.9"),
        },
    )


def _greengrass(request: pytest.FixtureRequest) -> FleetControl:
    greengrass, iot = FakeGreengrassV2(ACCOUNT, REGION).clients()
    return GreengrassFleetControl(greengrass, account=ACCOUNT, iot=iot)


def _memory(request: pytest.FixtureRequest) -> FleetControl:
    return MemoryFleetControl(region=REGION, account=ACCOUNT)


def _local(request: pytest.FixtureRequest) -> LocalGreengrass:
    request.getfixturevalue("aws")
    iot = boto3.client("iot", region_name=REGION)
    for group in GROUPS:
        iot.create_thing_group(thingGroupName=group)
    return LocalGreengrass(iot, region=REGION, account=ACCOUNT, clock=lambda: 0.0)


MAKERS: dict[str, Callable[[pytest.FixtureRequest], FleetControl]] = {
    "greengrass": _greengrass,
    "memory": _memory,
    "local": _local,
}


@pytest.fixture(params=sorted(MAKERS))
def fleet(request: pytest.FixtureRequest) -> FleetControl:
    """Each implementation, empty: no components, no deployments."""
    return MAKERS[request.param](request)


@pytest.fixture
def published(fleet: FleetControl) -> FleetControl:
    """The implementation with the components a model deployment names already created."""
    for made in (recipe(), recipe(version="2.0.0"), recipe(INFERENCE_COMPONENT, "0.1.0")):
        fleet.create_component_version(made)
    return fleet


# --- components -------------------------------------------------------------------------------------------------


def test_a_created_component_version_reads_back_as_its_recipe(fleet: FleetControl) -> None:
    ref = fleet.create_component_version(recipe())
    assert (ref.name, ref.version, ref.arn) == (MODEL, "1.0.0", component_arn(REGION, ACCOUNT, MODEL, "1.0.0"))
    assert fleet.get_component_recipe(MODEL, "1.0.0") == recipe()


def test_creating_the_same_recipe_again_is_accepted(fleet: FleetControl) -> None:
    first = fleet.create_component_version(recipe())
    assert fleet.create_component_version(json.loads(json.dumps(recipe()))) == first
    assert fleet.get_component_recipe(MODEL, "1.0.0") == recipe()


def test_a_different_recipe_under_an_existing_version_is_refused_and_the_first_kept(fleet: FleetControl) -> None:
    fleet.create_component_version(recipe())
    with pytest.raises(FleetControlError, match=r"digits 1\.0\.0 already exists with a different recipe.*immutable"):
        fleet.create_component_version(recipe(ComponentDescription="changed"))
    assert fleet.get_component_recipe(MODEL, "1.0.0") == recipe()


def test_versions_of_one_component_are_kept_apart(fleet: FleetControl) -> None:
    fleet.create_component_version(recipe())
    fleet.create_component_version(recipe(version="2.0.0", ComponentDescription="v2"))
    assert fleet.get_component_recipe(MODEL, "1.0.0") == recipe()
    assert fleet.get_component_recipe(MODEL, "2.0.0")["ComponentDescription"] == "v2"


def test_an_unknown_component_version_is_not_found(fleet: FleetControl) -> None:
    fleet.create_component_version(recipe())
    with pytest.raises(NotFoundError, match=r"com\.edgeloop\.model\.digits 2\.0\.0 does not exist"):
        fleet.get_component_recipe(MODEL, "2.0.0")
    with pytest.raises(NotFoundError, match=r"com\.edgeloop\.model\.other 1\.0\.0 does not exist"):
        fleet.get_component_recipe("com.edgeloop.model.other", "1.0.0")


@pytest.mark.parametrize("broken", [{"ComponentName": None}, {"ComponentVersion": ""}])
def test_a_recipe_without_name_and_version_is_refused_before_anything_is_sent(
    fleet: FleetControl, broken: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError, match="needs ComponentName and ComponentVersion"):
        fleet.create_component_version({**recipe(), **broken})


# --- deployments --------------------------------------------------------------------------------------------------


def test_a_deployment_reads_back_as_the_target_latest_with_its_components(published: FleetControl) -> None:
    deployment_id = published.create_deployment(spec())
    info = published.get_deployment(deployment_id)
    assert (info.deployment_id, info.target_arn, info.name, info.status) == (
        deployment_id, CANARY, "edgeloop-digits-v1", "ACTIVE",
    )  # fmt: skip
    assert dict(info.components) == dict(spec().components)
    assert published.latest_deployment(CANARY) == info


def test_no_deployment_before_the_first(published: FleetControl) -> None:
    assert published.latest_deployment(CANARY) is None
    published.create_deployment(spec(CANARY))
    assert published.latest_deployment(BROAD) is None, "a deployment to one target is not another's"


def test_a_new_deployment_replaces_the_target_previous_one(published: FleetControl) -> None:
    first = published.create_deployment(spec())
    second = published.create_deployment(spec(model_version="2.0.0", name="edgeloop-digits-v2"))
    assert first != second
    assert published.get_deployment(first).status == "INACTIVE"
    replacement = published.get_deployment(second)
    assert replacement.status == "ACTIVE"
    assert replacement.components[INFERENCE_COMPONENT].merge["modelComponentVersion"] == "2.0.0"
    assert published.latest_deployment(CANARY) == replacement


def test_redeploying_the_same_spec_is_a_new_revision_that_replaces_the_old(published: FleetControl) -> None:
    first = published.create_deployment(spec())
    again = published.create_deployment(spec())
    assert again != first, "a redelivered approval checks latest_deployment instead of relying on idempotency"
    assert published.get_deployment(first).status == "INACTIVE"
    latest = published.latest_deployment(CANARY)
    assert latest is not None
    assert (latest.deployment_id, latest.status) == (again, "ACTIVE")


def test_replacing_one_target_leaves_the_other_alone(published: FleetControl) -> None:
    canary = published.create_deployment(spec(CANARY, "2.0.0"))
    broad = published.create_deployment(spec(BROAD, "1.0.0"))
    published.create_deployment(spec(CANARY, "1.0.0", name="edgeloop-digits-revert"))
    assert published.get_deployment(broad).status == "ACTIVE"
    assert published.latest_deployment(BROAD) == published.get_deployment(broad)
    assert published.get_deployment(canary).status == "INACTIVE"
    latest = published.latest_deployment(CANARY)
    assert latest is not None
    assert latest.name == "edgeloop-digits-revert"


def test_an_unknown_deployment_is_not_found(published: FleetControl) -> None:
    published.create_deployment(spec())
    with pytest.raises(NotFoundError, match="deployment d-404"):
        published.get_deployment("d-404")
    with pytest.raises(NotFoundError, match="d-404"):
        published.deployment_progress("d-404")


def test_a_deployment_to_a_group_without_devices_has_targeted_nobody(published: FleetControl) -> None:
    deployment_id = published.create_deployment(spec())
    assert published.deployment_progress(deployment_id) == DeploymentProgress(0, 0, 0)


def test_concurrent_deployments_to_one_target_leave_exactly_one_active(published: FleetControl) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []

    def deploy(version: str) -> None:
        try:
            ids.append(published.create_deployment(spec(model_version=version, name=f"v{version}")))
        except BaseException as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(v,)) for v in ("1.0.0", "2.0.0") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 6
    statuses = [published.get_deployment(i).status for i in ids]
    assert statuses.count("ACTIVE") == 1
    latest = published.latest_deployment(CANARY)
    assert latest is not None
    assert latest.status == "ACTIVE"


@pytest.mark.parametrize("target", ["edgeloop-ring-canary", f"arn:aws:iot:{REGION}:{ACCOUNT}:rolealias/x", ""])
def test_a_target_that_is_no_thing_or_thing_group_arn_is_refused_and_nothing_recorded(
    published: FleetControl, target: str
) -> None:
    with pytest.raises(ValidationError, match=r"target_arn: .* is not an IoT thing or thing group ARN"):
        published.create_deployment(spec(target))
    with pytest.raises(ValidationError, match="target_arn"):
        published.latest_deployment(target)


# --- what only the stand-in can know: which thing groups exist ------------------------------------------------------


def test_the_stand_in_refuses_a_thing_group_that_does_not_exist_by_name(request: pytest.FixtureRequest) -> None:
    fleet = _local(request)
    for made in (recipe(), recipe(INFERENCE_COMPONENT, "0.1.0")):
        fleet.create_component_version(made)
    ghost = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/ghost"
    with pytest.raises(NotFoundError, match=r"deployment target .*thinggroup/ghost does not exist"):
        fleet.create_deployment(spec(ghost))
    assert fleet.latest_deployment(ghost) is None
