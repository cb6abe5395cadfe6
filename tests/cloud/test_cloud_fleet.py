"""The greengrassv2 adapter's request shapes against botocore's Stubber (moto has no greengrassv2), and the memory
fake's listener; what every FleetControl promises is checked once, in test_cloud_fleet_contract.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from fake_greengrassv2 import FakeGreengrassV2

from edgeloop.cloud.fleet import (
    DEPLOYMENT_POLICIES,
    FAILURE_CAUSE_CHARS,
    DeploymentProgress,
    GreengrassFleetControl,
    MemoryFleetControl,
    component_arn,
    distinct_causes,
)
from edgeloop.core.deployments import ComponentDeployment, DeploymentSpec
from edgeloop.core.errors import FleetControlError, NotFoundError

ACCOUNT = "123456789012"
GROUP_ARN = f"arn:aws:iot:us-east-1:{ACCOUNT}:thinggroup/edgeloop-fleet"
RECIPE = {
    "RecipeFormatVersion": "2020-01-25",
    "ComponentName": "com.edgeloop.model.digits",
    "ComponentVersion": "1.0.0",
    "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {}}],
}
SPEC = DeploymentSpec(
    target_arn=GROUP_ARN,
    name="edgeloop-digits-v1",
    components={
        "com.edgeloop.model.digits": ComponentDeployment("1.0.0"),
        "com.edgeloop.Inference": ComponentDeployment("0.1.0", {"modelComponentVersion": "1.0.0"}),
    },
)
ARN = component_arn("us-east-1", ACCOUNT, "com.edgeloop.model.digits", "1.0.0")


@pytest.fixture
def stubbed() -> Iterator[tuple[GreengrassFleetControl, Stubber]]:
    client = boto3.client("greengrassv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield GreengrassFleetControl(client, account=ACCOUNT), stubber
        stubber.assert_no_pending_responses()


def _created() -> dict[str, Any]:
    return {
        "arn": ARN,
        "componentName": "com.edgeloop.model.digits",
        "componentVersion": "1.0.0",
        "creationTimestamp": datetime(2026, 11, 24, tzinfo=UTC),
        "status": {"componentState": "DEPLOYABLE", "message": "NONE", "errors": {}},
    }


def test_create_component_version_sends_the_recipe_as_json(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_response(
        "create_component_version",
        _created(),
        {"inlineRecipe": json.dumps(RECIPE, sort_keys=True).encode()},
    )
    ref = fleet.create_component_version(RECIPE)
    assert (ref.name, ref.version, ref.arn) == ("com.edgeloop.model.digits", "1.0.0", ARN)


def test_existing_version_with_the_same_recipe_is_accepted(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_client_error("create_component_version", "ConflictException", http_status_code=409)
    stubber.add_response(
        "get_component",
        {"recipeOutputFormat": "JSON", "recipe": json.dumps(RECIPE).encode()},
        {"arn": ARN, "recipeOutputFormat": "JSON"},
    )
    assert fleet.create_component_version(RECIPE).arn == ARN


def test_existing_version_with_another_recipe_is_refused(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_client_error("create_component_version", "ConflictException", http_status_code=409)
    other = {**RECIPE, "ComponentDescription": "changed"}
    stubber.add_response(
        "get_component",
        {"recipeOutputFormat": "JSON", "recipe": json.dumps(other).encode()},
        {"arn": ARN, "recipeOutputFormat": "JSON"},
    )
    with pytest.raises(FleetControlError, match="immutable"):
        fleet.create_component_version(RECIPE)


def test_other_service_errors_become_fleet_control_errors(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_client_error("create_component_version", "ValidationException", "bad recipe", 400)
    with pytest.raises(FleetControlError, match=r"com\.edgeloop\.model\.digits 1\.0\.0: .*bad recipe"):
        fleet.create_component_version(RECIPE)


def test_create_deployment_sends_rollback_policy_and_paced_job(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_response(
        "create_deployment",
        {"deploymentId": "d-1", "iotJobId": "j-1", "iotJobArn": "arn:aws:iot:us-east-1:1:job/j-1"},
        {
            "targetArn": GROUP_ARN,
            "deploymentName": "edgeloop-digits-v1",
            "components": {
                "com.edgeloop.model.digits": {"componentVersion": "1.0.0"},
                "com.edgeloop.Inference": {
                    "componentVersion": "0.1.0",
                    "configurationUpdate": {"merge": '{"modelComponentVersion": "1.0.0"}'},
                },
            },
            "deploymentPolicies": dict(DEPLOYMENT_POLICIES),
            "iotJobConfiguration": ANY,
        },
    )
    assert fleet.create_deployment(SPEC) == "d-1"


def test_get_deployment_parses_components_and_merge(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_response(
        "get_deployment",
        {
            "targetArn": GROUP_ARN,
            "deploymentId": "d-1",
            "deploymentName": "edgeloop-digits-v1",
            "deploymentStatus": "ACTIVE",
            "components": {
                "com.edgeloop.Inference": {
                    "componentVersion": "0.1.0",
                    "configurationUpdate": {"merge": '{"modelComponentVersion": "1.0.0"}'},
                }
            },
        },
        {"deploymentId": "d-1"},
    )
    info = fleet.get_deployment("d-1")
    assert info.status == "ACTIVE"
    assert info.components["com.edgeloop.Inference"].merge == {"modelComponentVersion": "1.0.0"}


def test_unknown_deployment_is_not_found(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_client_error("get_deployment", "ResourceNotFoundException", http_status_code=404)
    with pytest.raises(NotFoundError, match="d-404"):
        fleet.get_deployment("d-404")


def test_latest_deployment_lists_then_describes(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_response(
        "list_deployments",
        {"deployments": [{"deploymentId": "d-9", "targetArn": GROUP_ARN, "isLatestForTarget": True}]},
        {"targetArn": GROUP_ARN, "historyFilter": "LATEST_ONLY"},
    )
    stubber.add_response(
        "get_deployment",
        {"targetArn": GROUP_ARN, "deploymentId": "d-9", "deploymentStatus": "ACTIVE", "components": {}},
        {"deploymentId": "d-9"},
    )
    latest = fleet.latest_deployment(GROUP_ARN)
    assert latest is not None
    assert latest.deployment_id == "d-9"


def test_no_deployment_yet_is_none(stubbed: Any) -> None:
    fleet, stubber = stubbed
    stubber.add_response(
        "list_deployments", {"deployments": []}, {"targetArn": GROUP_ARN, "historyFilter": "LATEST_ONLY"}
    )
    assert fleet.latest_deployment(GROUP_ARN) is None


def test_memory_fake_refuses_to_deploy_a_component_version_that_does_not_exist() -> None:
    fleet = MemoryFleetControl(account=ACCOUNT)
    with pytest.raises(NotFoundError, match=r"com\.edgeloop\.model\.digits 1\.0\.0 does not exist"):
        fleet.create_deployment(SPEC)
    assert fleet.latest_deployment(GROUP_ARN) is None


def test_memory_fake_tells_its_listeners_of_every_deployment_in_order() -> None:
    """What the port promises is in test_cloud_fleet_contract.py; the listener is the memory fake's own."""
    fleet = MemoryFleetControl(account=ACCOUNT)
    seen: list[str] = []
    fleet.on_deployment(lambda info: seen.append(info.deployment_id))
    fleet.create_component_version(RECIPE)
    fleet.create_component_version({**RECIPE, "ComponentName": "com.edgeloop.Inference", "ComponentVersion": "0.1.0"})
    first = fleet.create_deployment(SPEC)
    second = fleet.create_deployment(SPEC)
    assert seen == [first, second]


def test_progress_of_a_job_with_failed_devices_carries_what_their_nuclei_said() -> None:
    fake = FakeGreengrassV2()
    greengrass, iot = fake.clients()
    fleet = GreengrassFleetControl(greengrass, account=fake.account, iot=iot)
    deployment_id = greengrass.create_deployment(targetArn=GROUP_ARN, components={})["deploymentId"]
    fake.record_execution(deployment_id, "dev-1", "SUCCEEDED")
    fake.record_execution(deployment_id, "dev-2", "FAILED", "sha256 mismatch: the artifact\nis not the signed one")
    fake.record_execution(deployment_id, "dev-3", "FAILED")

    progress = fleet.deployment_progress(deployment_id)

    assert (progress.targeted, progress.succeeded, progress.failed) == (3, 1, 2)
    assert progress.failure_causes == (
        "dev-2: sha256 mismatch: the artifact is not the signed one",
        "dev-3: no cause given",
    )


def test_progress_without_failures_reads_no_execution() -> None:
    fake = FakeGreengrassV2()
    greengrass, iot = fake.clients()
    deployment_id = greengrass.create_deployment(targetArn=GROUP_ARN, components={})["deploymentId"]
    fake.record_execution(deployment_id, "dev-1", "SUCCEEDED")
    calls: list[str] = []
    iot.meta.events.register("before-parameter-build.iot.*", lambda model, **_: calls.append(model.name))

    progress = GreengrassFleetControl(greengrass, account=fake.account, iot=iot).deployment_progress(deployment_id)

    assert progress == DeploymentProgress(1, 1, 0)
    assert calls == ["DescribeJob"]


def test_failure_causes_are_distinct_one_line_clipped_and_few() -> None:
    causes = ["a: x", "a:  x", "", "b: " + "y" * 500, "c: z", "d: w"]

    assert distinct_causes(causes) == ("a: x", ("b: " + "y" * 500)[:FAILURE_CAUSE_CHARS], "c: z")
