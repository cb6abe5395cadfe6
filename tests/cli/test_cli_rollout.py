"""`edgeloop rollout ...` under moto (DynamoDB, SageMaker, IoT) with the in-memory fleet injected."""

from __future__ import annotations

import argparse
from dataclasses import replace

import boto3
import pytest
from support import FAKE_ONNX, FakeClock, manifest_for

from edgeloop.cli.main import build_parser, main
from edgeloop.cli.rollout import CliPorts, UnreachableFleet, cli_settings
from edgeloop.cloud import rollout_control as control
from edgeloop.cloud.fleet import DeploymentProgress, MemoryFleetControl
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.rings import IotRingDirectory
from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore, table_definition
from edgeloop.core.errors import (
    ConflictError,
    FleetControlError,
    InvalidTransitionError,
    NotFoundError,
    UsageError,
    ValidationError,
)
from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.manifest import Gate
from edgeloop.core.names import FLEET_HEALTH_TABLE, INFERENCE_COMPONENT, ROLLOUTS_TABLE, ring_group
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.rings import RING_ATTRIBUTE
from edgeloop.core.rollout import Gates, Ring, RolloutPolicy, RolloutState
from edgeloop.core.settings import ENV_ROLLOUT_POLICY

POLICY = RolloutPolicy(
    rings=(Ring("canary", 0.2, bake_s=60, min_devices=1), Ring("broad", 0.8, bake_s=60, min_devices=2)),
    gates=Gates(min_inferences=10),
    ring_timeout_s=600,
)
DEVICES = {"dev-0": "canary", "dev-1": "broad", "dev-2": "broad"}


@pytest.fixture
def ports(aws: None) -> CliPorts:
    """Tables and ring groups on moto, v1 Approved, v2 whose gate failed, v3 Approved; the fleet in memory."""
    dynamodb, iot = boto3.client("dynamodb"), boto3.client("iot")
    for table in (ROLLOUTS_TABLE, FLEET_HEALTH_TABLE):
        dynamodb.create_table(**table_definition(table))
    rings = IotRingDirectory(iot, POLICY)
    rings.ensure_groups()
    for thing, ring in DEVICES.items():
        iot.create_thing(thingName=thing, attributePayload={"attributes": {RING_ATTRIBUTE: ring}})
        rings.assign(thing)
    registry = SageMakerRegistry(boto3.client("sagemaker"))
    registry.ensure_group("digits")
    fleet = MemoryFleetControl()
    fleet.create_component_version({"ComponentName": INFERENCE_COMPONENT, "ComponentVersion": "0.1.0"})
    failed = replace(manifest_for(FAKE_ONNX), gate=Gate("accuracy", 0.01, 0.0, False, minimum=0.99))
    for job, manifest, approval in (
        ("job-1", manifest_for(FAKE_ONNX), ApprovalStatus.APPROVED),
        ("job-2", failed, ApprovalStatus.REJECTED),
        ("job-3", manifest_for(FAKE_ONNX), ApprovalStatus.APPROVED),
    ):
        record = registry.register(
            manifest,
            training_job=job,
            artifact_uri=f"s3://edgeloop-artifacts/models/digits/{job}/model.onnx",
            manifest_uri=f"s3://edgeloop-artifacts/models/digits/{job}/manifest.json",
            approval=approval,
        )
        fleet.create_component_version(
            {"ComponentName": record.component_name, "ComponentVersion": record.component_version}
        )
    settings = cli_settings({}, region="us-east-1", account=lambda: "123456789012")
    ctx = control.RolloutContext(
        rollouts=DynamoRolloutStore(dynamodb, ROLLOUTS_TABLE),
        health=DynamoFleetHealthStore(dynamodb, FLEET_HEALTH_TABLE),
        registry=registry,
        fleet=fleet,
        settings=replace(settings, inference_component_version="0.1.0", rollout_policy=POLICY),
        clock=FakeClock(1_000.0),
    )
    return CliPorts(ctx, rings)


def run(ports: CliPorts, *argv: str) -> int:
    args: argparse.Namespace = build_parser().parse_args(["rollout", *argv])
    code: int = args.execute(args, ports)
    return code


def report(ports: CliPorts, thing: str, version: int, shadow: int, *, inferences: int = 50) -> None:
    health = HealthReport(
        thing_name=thing,
        model_name="digits",
        model_version=version,
        model_state=ModelState.ACTIVE,
        model_detail="",
        inferences=inferences,
        rejected_inputs=0,
        errors=0,
        latency=LatencySummary(1.0, 2.0, 3.0, 4.0, 50),
        buffer_depth=0,
        records_produced=1,
        records_delivered=1,
        connected=True,
        reported_at=1_000.0,
        mean_confidence=0.9,
    )
    control.ingest_health(ports.ctx, thing, health.to_reported(), shadow, ports.rings.ring_of)


def test_start_opens_a_pending_rollout_for_the_controller(ports: CliPorts, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(ports, "start", "1") == 0
    assert "digits v1: rollout pending; the controller deploys ring canary on its next run" in capsys.readouterr().out
    assert ports.ctx.rollouts.active("digits").state is RolloutState.PENDING


@pytest.mark.parametrize(
    ("version", "error", "match"),
    [
        ("9", NotFoundError, "9"),
        ("2", ValidationError, "failed its accuracy gate"),
    ],
    ids=["unknown-version", "gate-failed"],
)
def test_start_refuses_bad_versions_and_writes_nothing(
    ports: CliPorts, version: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        run(ports, "start", version)
    assert ports.ctx.rollouts.active("digits") is None


def test_a_second_concurrent_rollout_is_refused(ports: CliPorts) -> None:
    run(ports, "start", "1")
    with pytest.raises(ConflictError):
        run(ports, "start", "3")
    assert ports.ctx.rollouts.active("digits").model_version == 1
    with pytest.raises(NotFoundError):
        ports.ctx.rollouts.get("digits", 3)


def test_status_shows_rings_devices_gates_and_the_decision_now(
    ports: CliPorts, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ports, "start", "1")
    control.step(ports.ctx, "digits")
    canary = ports.ctx.fleet.latest_deployment(ports.ctx.settings.ring_group_arn("canary"))
    ports.ctx.fleet.record_progress(canary.deployment_id, DeploymentProgress(1, 1, 0))  # type: ignore[attr-defined]
    control.step(ports.ctx, "digits")  # waits for data, records the ring's facts
    report(ports, "dev-0", 1, shadow=1)
    capsys.readouterr()

    assert run(ports, "status") == 0

    out = capsys.readouterr().out
    assert out.startswith("digits v1: in_ring, ring 0 (canary) of 2; last-known-good none")
    canary_row = next(line for line in out.splitlines() if line.startswith("canary"))
    assert canary_row.split()[:8] == ["canary", "20%", "60", "1", "1", "0", "50", "0"]
    assert canary_row.endswith("dev-0 (v1)")
    assert "broad" in out
    assert "dev-1 (-), dev-2 (-)" in out
    assert "  error_rate 0 <= 0.02" in out
    assert "decision now: wait - ring canary: gates pass, baking 0 of 60 s" in out
    assert "[canary] start: rings canary 20% -> broad 80%" in out
    assert "[canary] promote: start in ring 0 (canary)" in out


def test_status_without_an_active_rollout_asks_for_a_version(ports: CliPorts) -> None:
    with pytest.raises(NotFoundError, match="no active rollout; name a version"):
        run(ports, "status")


def test_pause_resume_promote_and_abort_steer_the_rollout(ports: CliPorts, capsys: pytest.CaptureFixture[str]) -> None:
    run(ports, "start", "1")
    control.step(ports.ctx, "digits")
    assert run(ports, "pause", "--reason", "lab maintenance") == 0
    assert "in_ring -> halted (pause by operator: lab maintenance)" in capsys.readouterr().out
    assert run(ports, "resume") == 0
    assert run(ports, "promote") == 0
    broad = ports.ctx.fleet.latest_deployment(ports.ctx.settings.ring_group_arn("broad"))
    assert broad is not None
    assert broad.name == "edgeloop-digits-v1-broad"
    assert run(ports, "abort", "--reason", "operator saw errors") == 0
    assert ports.ctx.rollouts.active("digits").state is RolloutState.ROLLING_BACK
    actions = [d.decision for d in ports.ctx.rollouts.decisions("digits", 1)]
    assert actions == ["start", "promote", "halt", "promote", "promote", "revert"]


def test_a_command_the_state_does_not_allow_is_refused_with_the_state_named(ports: CliPorts) -> None:
    run(ports, "start", "1")
    with pytest.raises(InvalidTransitionError, match="is pending; resume applies only when it is halted"):
        run(ports, "resume")
    assert ports.ctx.rollouts.active("digits").state is RolloutState.PENDING


def test_without_greengrass_a_command_that_deploys_fails_whole(ports: CliPorts) -> None:
    run(ports, "start", "1")
    control.step(ports.ctx, "digits")
    local = CliPorts(replace(ports.ctx, fleet=UnreachableFleet("http://127.0.0.1:5000")), ports.rings)
    with pytest.raises(FleetControlError, match="run commands that deploy"):
        run(local, "promote")
    assert run(local, "pause") == 0, "pause only writes the table"
    with pytest.raises(FleetControlError):
        run(local, "abort")
    rollout = ports.ctx.rollouts.active("digits")
    assert (rollout.state, rollout.ring) == (RolloutState.HALTED, 0)
    assert ports.ctx.fleet.latest_deployment(ports.ctx.settings.ring_group_arn("broad")) is None


def test_main_runs_against_the_configured_aws(ports: CliPorts, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollout", "start", "1"]) == 0
    assert main(["rollout", "status"]) == 0
    out = capsys.readouterr().out
    assert "digits v1: pending, ring 0 (canary) of 3" in out, "the default policy: no EDGELOOP_ROLLOUT_POLICY"
    assert "dev-0 (-)" in out
    assert "(no thing group edgeloop-fleet-early)" in out


def test_main_maps_a_greengrass_failure_to_its_exit_code_and_applies_nothing(
    ports: CliPorts, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto has no greengrassv2: the real adapter's call fails, so abort is refused and the state stays."""
    main(["rollout", "start", "1"])
    main(["rollout", "pause"])
    capsys.readouterr()
    assert main(["rollout", "abort"]) == FleetControlError.exit_code
    assert "error: could not" in capsys.readouterr().err
    assert ports.ctx.rollouts.active("digits").state is RolloutState.HALTED


def test_a_bad_policy_variable_is_a_usage_error_naming_the_field() -> None:
    with pytest.raises(UsageError, match="rings"):
        cli_settings({ENV_ROLLOUT_POLICY: '{"rings": []}'}, region="us-east-1", account=lambda: "1")


def test_a_bad_version_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rollout", "start", "zero"])
    assert exit_info.value.code == 2
    assert "'zero' is not a version number" in capsys.readouterr().err


def test_ring_members_of_a_missing_ring_group_are_not_found(aws: None) -> None:
    with pytest.raises(NotFoundError, match=ring_group("canary")):
        IotRingDirectory(boto3.client("iot"), POLICY).members("canary")
