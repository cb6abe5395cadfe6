"""`edgeloop rollout start|status|pause|resume|promote|abort`: a model's staged rollout from a workstation.

The commands run the rollout controller's own use cases (edgeloop.cloud.rollout_control) in this process,
against the configured AWS: `--endpoint-url`, else `AWS_ENDPOINT_URL`, else real AWS with the usual
credential chain. Against real AWS the fleet adapter is GreengrassFleetControl. Against an endpoint
(moto, a local stack) there is no Greengrass to reach: moto has no greengrassv2, and the local stack's
Greengrass stand-in lives inside the `edgeloop demo` process. There the fleet is UnreachableFleet, so
`start`, `status` and `pause` work (they touch only the tables and the registry) while `resume`,
`promote` and `abort`, which must deploy, fail with a clear error before anything is written.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edgeloop import __version__
from edgeloop.cli.target import version_number, with_target
from edgeloop.core.deployments import DeploymentSpec
from edgeloop.core.errors import FleetControlError, NotFoundError, UsageError, ValidationError
from edgeloop.core.names import (
    FLEET_HEALTH_TABLE,
    FLEET_THING_GROUP,
    ROLLOUTS_TABLE,
    ring_group,
    validate_model_name,
)
from edgeloop.core.rollout import Command, Rollout, RolloutPolicy, VersionHealth, decide, gate_values
from edgeloop.core.settings import (
    ENV_FLEET_HEALTH_TABLE,
    ENV_FLEET_THING_GROUP_ARN,
    ENV_INFERENCE_COMPONENT_VERSION,
    ENV_ROLLOUTS_TABLE,
    CloudSettings,
    rollout_policy_from_env,
)

if TYPE_CHECKING:  # the cloud adapters bring botocore: imported in the commands, so `--help` answers without it
    from edgeloop.cloud.fleet import ComponentRef, DeploymentInfo, DeploymentProgress
    from edgeloop.cloud.rings import IotRingDirectory
    from edgeloop.cloud.rollout_control import RolloutContext

ENV_ENDPOINT = "AWS_ENDPOINT_URL"


def register(commands: Any) -> None:
    """Add `rollout` and its subcommands."""
    parser = commands.add_parser("rollout", help="start, inspect and steer a model version's staged rollout")
    sub = parser.add_subparsers(dest="rollout_command", required=True, parser_class=type(parser))
    start = with_target(sub.add_parser("start", help="open the rollout of an Approved version (ring 0 first)"))
    start.add_argument("version", type=version_number)
    start.set_defaults(run=run, execute=execute_start)
    status = with_target(sub.add_parser("status", help="rings, devices, gate values and what the controller would do"))
    status.add_argument("version", type=version_number, nargs="?", help="default: the active rollout")
    status.set_defaults(run=run, execute=execute_status)
    for order in (Command.PAUSE, Command.RESUME, Command.PROMOTE, Command.ABORT):
        steer = with_target(sub.add_parser(order.value, help=f"{order.value} the model's active rollout"))
        steer.add_argument("--reason", default="", help="recorded in the decision log")
        steer.set_defaults(run=run, execute=execute_command, order=order)


def run(args: argparse.Namespace) -> int:
    """Build the controller's ports for the configured AWS, then run the subcommand with them."""
    validate_model_name(args.model)
    result: int = args.execute(args, build_ports(args))
    return result


# --- the subcommands, on a RolloutContext (tests inject one with the in-memory fleet) --------------------


@dataclass(frozen=True)
class CliPorts:
    """What the rollout commands work through: the controller's ports, and the ring groups for `status`."""

    ctx: RolloutContext
    rings: IotRingDirectory


def execute_start(args: argparse.Namespace, ports: CliPorts) -> int:
    """Open the rollout; the controller's next scheduled run deploys ring 0."""
    from edgeloop.cloud.rollout_control import start_rollout

    ctx = ports.ctx
    rollout = start_rollout(ctx, args.model, args.version)
    first = ctx.settings.rollout_policy.rings[0].name
    label = f"{rollout.model_name} v{rollout.model_version}"
    print(f"{label}: rollout {rollout.state}; the controller deploys ring {first} on its next run")
    return 0


def execute_command(args: argparse.Namespace, ports: CliPorts) -> int:
    """Pause, resume, promote or abort the active rollout, applied like one of the controller's decisions."""
    from edgeloop.cloud.rollout_control import command

    ctx = ports.ctx
    before = ctx.rollouts.active(args.model)
    result = command(ctx, args.model, args.order, args.reason)
    state = before.state.value if before else "-"
    print(f"{args.model} v{result.rollout.model_version}: {state} -> {result.rollout.state} ({result.decision.reason})")
    return 0


def execute_status(args: argparse.Namespace, ports: CliPorts) -> int:
    """Print the rollout's rings, devices, gate values against thresholds, the decision now and the log."""
    rollout, policy = _chosen(ports.ctx, args.model, args.version)
    print("\n".join(status_lines(ports, rollout, policy)))
    return 0


def _chosen(ctx: RolloutContext, model: str, version: int | None) -> tuple[Rollout, RolloutPolicy]:
    if version is not None:
        return ctx.rollouts.get(model, version)
    active = ctx.rollouts.active(model)
    if active is None:
        raise NotFoundError(f"{model} has no active rollout; name a version to see a finished one")
    return ctx.rollouts.get(model, active.model_version)


def status_lines(ports: CliPorts, rollout: Rollout, policy: RolloutPolicy) -> list[str]:
    """The status report: read-only, decide() shows what the controller would do now without doing it."""
    ctx = ports.ctx
    rings = ctx.health.aggregates(rollout.model_name, rollout.model_version)
    baseline = _baseline(ctx, rollout)
    lkg = f"v{rollout.last_known_good}" if rollout.last_known_good else "none"
    lines = [
        f"{rollout.model_name} v{rollout.model_version}: {rollout.state}, ring {rollout.ring} "
        f"({policy.rings[rollout.ring].name}) of {rollout.ring_count}; last-known-good {lkg}; "
        f"started {_when(rollout.started_at)}",
        "",
        f"{'RING':<10}{'SHARE':>7}{'BAKE S':>8}{'TARGETED':>10}{'ON VERSION':>12}{'JOB FAILS':>11}"
        f"{'INFERENCES':>12}{'ERRORS':>8}{'CONFIDENCE':>12}  DEVICES (version)",
    ]
    for index, ring in enumerate(policy.rings):
        health = rings.get(index, VersionHealth())
        confidence = "-" if health.mean_confidence is None else f"{health.mean_confidence:.3f}"
        lines.append(
            f"{ring.name:<10}{ring.share:>7.0%}{ring.bake_s:>8.0f}{health.devices_targeted:>10}"
            f"{health.devices_on_version:>12}{health.job_failures:>11}{health.inferences:>12}{health.errors:>8}"
            f"{confidence:>12}  {_devices(ports, ring.name)}"
        )
    reached = sum((rings.get(i, VersionHealth()) for i in range(rollout.ring + 1)), VersionHealth())
    lines += ["", f"gates (rings 0..{rollout.ring} against last-known-good {lkg}):"]
    lines += [f"  {g.describe()}" for g in gate_values(reached, baseline, policy.gates, rollout)] or ["  (no data yet)"]
    decision = decide(rollout, policy, rings, baseline, ctx.clock())
    lines += ["", f"decision now: {decision.action} - {decision.reason}", "", "decision log:"]
    for entry in ctx.rollouts.decisions(rollout.model_name, rollout.model_version):
        lines.append(f"  {_when(entry.at)} [{policy.rings[entry.ring].name}] {entry.decision}: {entry.reason}")
    return lines


def _baseline(ctx: RolloutContext, rollout: Rollout) -> VersionHealth | None:
    if rollout.last_known_good is None:
        return None
    sums = ctx.health.aggregates(rollout.model_name, rollout.last_known_good).values()
    return sum(sums, VersionHealth()) if sums else None


def _devices(ports: CliPorts, ring: str) -> str:
    """The ring group's members with the version each last reported (from the fleet-health snapshots)."""
    try:
        members = ports.rings.members(ring)
    except NotFoundError:
        return f"(no thing group {ring_group(ring)})"
    shown = []
    for thing in members:
        snapshot = ports.ctx.health.device(thing)
        version = "-" if snapshot is None or snapshot.model_version is None else f"v{snapshot.model_version}"
        shown.append(f"{thing} ({version}{'' if snapshot is None or snapshot.active else ', inactive'})")
    return ", ".join(shown) or "-"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the ports for the configured AWS ------------------------------------------------------------------------


class UnreachableFleet:
    """The fleet port when the CLI talks to an endpoint (moto, a local stack): there is no Greengrass to reach.

    Every call fails with FleetControlError before the controller writes anything, so a command that must
    deploy (resume, promote, abort) is refused whole. Commands that only read or write the tables never call it.
    """

    def __init__(self, endpoint: str) -> None:
        self._why = (
            f"{endpoint} has no Greengrass v2 (moto has none; a local stack's Greengrass stand-in lives inside "
            "its `edgeloop demo` process): run commands that deploy (resume, promote, abort) against AWS"
        )

    def create_component_version(self, recipe: Mapping[str, Any]) -> ComponentRef:
        """Refuse: see the class docstring."""
        raise FleetControlError(self._why)

    def get_component_recipe(self, name: str, version: str) -> dict[str, Any]:
        """Refuse: see the class docstring."""
        raise FleetControlError(self._why)

    def create_deployment(self, spec: DeploymentSpec) -> str:
        """Refuse: see the class docstring."""
        raise FleetControlError(self._why)

    def get_deployment(self, deployment_id: str) -> DeploymentInfo:
        """Refuse: see the class docstring."""
        raise FleetControlError(self._why)

    def latest_deployment(self, target_arn: str) -> DeploymentInfo | None:
        """Refuse: see the class docstring."""
        raise FleetControlError(self._why)

    def deployment_progress(self, deployment_id: str) -> DeploymentProgress:
        """Refuse: see the class docstring."""
        raise FleetControlError(self._why)


def build_ports(args: argparse.Namespace) -> CliPorts:
    """DynamoDB stores, the SageMaker registry, IoT ring groups and the fleet adapter for the endpoint."""
    import boto3
    from botocore.exceptions import NoRegionError

    from edgeloop.cloud.fleet import GreengrassFleetControl
    from edgeloop.cloud.registry import SageMakerRegistry
    from edgeloop.cloud.rings import IotRingDirectory
    from edgeloop.cloud.rollout_control import RolloutContext
    from edgeloop.cloud.rollout_stores import DynamoFleetHealthStore, DynamoRolloutStore

    endpoint = args.endpoint_url or os.environ.get(ENV_ENDPOINT) or None
    try:
        session = boto3.session.Session(region_name=args.region)
        client = functools.partial(session.client, endpoint_url=args.endpoint_url)
        iot, dynamodb = client("iot"), client("dynamodb")
    except NoRegionError as exc:
        raise UsageError("--region", "no AWS region is configured; pass --region or set AWS_DEFAULT_REGION") from exc
    settings = cli_settings(os.environ, region=str(iot.meta.region_name), account=lambda: _account(client("sts")))
    fleet = (
        UnreachableFleet(endpoint)
        if endpoint
        else GreengrassFleetControl(client("greengrassv2"), account=settings.account, iot=iot)
    )
    ctx = RolloutContext(
        rollouts=DynamoRolloutStore(dynamodb, settings.rollouts_table),
        health=DynamoFleetHealthStore(dynamodb, settings.fleet_health_table),
        registry=SageMakerRegistry(client("sagemaker")),
        fleet=fleet,
        settings=settings,
        clock=time.time,
    )
    return CliPorts(ctx, IotRingDirectory(iot, settings.rollout_policy))


def cli_settings(env: Mapping[str, str], *, region: str, account: Callable[[], str]) -> CloudSettings:
    """What the controller needs, from the stack's variables where set, else this account's defaults.

    The fleet group ARN defaults to edgeloop-fleet in this account and region, the inference component to
    this checkout's version; the artifacts and training settings are not used by rollouts and stay empty.
    """
    arn = env.get(ENV_FLEET_THING_GROUP_ARN) or f"arn:aws:iot:{region}:{account()}:thinggroup/{FLEET_THING_GROUP}"
    try:
        policy = rollout_policy_from_env(env)
    except ValidationError as exc:
        raise UsageError(exc.field, exc.message) from exc
    return CloudSettings(
        artifacts_bucket="",
        fleet_thing_group_arn=arn,
        inference_component_version=env.get(ENV_INFERENCE_COMPONENT_VERSION) or __version__,
        auto_approve_min_accuracy=None,
        training_output_uri="",
        rollout_policy=policy,
        rollouts_table=env.get(ENV_ROLLOUTS_TABLE) or ROLLOUTS_TABLE,
        fleet_health_table=env.get(ENV_FLEET_HEALTH_TABLE) or FLEET_HEALTH_TABLE,
    )


def _account(sts: Any) -> str:
    from edgeloop.cloud.errors import AWS_ERRORS

    try:
        return str(sts.get_caller_identity()["Account"])
    except AWS_ERRORS as exc:
        raise UsageError("credentials", f"cannot tell which AWS account this is: {exc}") from exc
