"""The rollout controller's use cases: start a rollout, take one step, apply an operator's command, ingest health.

Each step reads the state, asks edgeloop.core.rollout.decide, makes the decision's side effects happen
(idempotent deployments, registry and last-known-good updates), and only then writes the next state
conditionally on the state_version it read. A controller that crashes after the side effects and before
the write repeats the same decision on its next run, finds the deployments in place, and writes the state.
Two controllers running at once both try; one write wins, the other sees ConflictError and stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from edgeloop.cloud.fleet import FleetControl, distinct_causes
from edgeloop.cloud.registry import ModelRegistry
from edgeloop.cloud.rollout_stores import FleetHealthStore, RolloutStore
from edgeloop.core.deployments import DeploymentSpec, model_deployment, modelless_deployment
from edgeloop.core.errors import ConflictError, InvalidTransitionError, NotFoundError, ValidationError
from edgeloop.core.fleet_health import DeviceSnapshot, contribution
from edgeloop.core.health import HealthReport
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.registry import ApprovalStatus, RegistryRecord
from edgeloop.core.rollout import (
    JOB_FAILURE_GATE,
    Action,
    Command,
    Decision,
    DecisionEntry,
    Rollout,
    RolloutPolicy,
    RolloutState,
    VersionHealth,
    apply_command,
    decide,
    transition,
)
from edgeloop.core.settings import CloudSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutContext:
    """The ports one controller run works through, and what it needs to know about the stack."""

    rollouts: RolloutStore
    health: FleetHealthStore
    registry: ModelRegistry
    fleet: FleetControl
    settings: CloudSettings
    clock: Callable[[], float]
    public_key_pem: str | None = None
    """The manifest-signing key's public half: when set, every deployment carries it as modelPublicKey."""


@dataclass(frozen=True)
class StepResult:
    """What one controller step did: the decision, and the rollout as stored afterwards."""

    rollout: Rollout
    decision: Decision
    applied: bool
    """False when another controller moved the rollout first (this step's write lost the race)."""


def start_rollout(ctx: RolloutContext, model_name: str, version: int, policy: RolloutPolicy | None = None) -> Rollout:
    """Open a rollout for an Approved, gate-passing version; the model may have only one active rollout."""
    record = ctx.registry.get(model_name, version)  # NotFoundError for an unknown version
    if not record.deployable:
        raise ValidationError("version", f"{model_name} v{version} failed its accuracy gate ({record.gate})")
    if record.approval is not ApprovalStatus.APPROVED:
        raise InvalidTransitionError(f"{model_name} v{version} is {record.approval}; only Approved versions roll out")
    now = ctx.clock()
    policy = policy or ctx.settings.rollout_policy
    lkg = ctx.rollouts.last_known_good(model_name)
    if lkg == version:
        raise ConflictError(f"{model_name} v{version} is already the fleet's last-known-good version")
    baseline = _lifetime(ctx, model_name, lkg)
    rollout = Rollout(
        model_name, version, RolloutState.PENDING, 0, len(policy.rings), started_at=now, last_known_good=lkg,
        baseline_at_start=baseline, evidence=record.evidence,
    )  # fmt: skip
    ctx.rollouts.start(rollout, policy)
    reason = _start_reason(lkg, policy) + ("" if record.evidence is None else f"; {record.evidence.describe()}")
    ctx.rollouts.add_decision(model_name, version, DecisionEntry(now, 0, "start", reason), 0)
    log.info("rollout of %s v%d started (last-known-good %s)", model_name, version, lkg)
    return rollout


def _start_reason(lkg: int | None, policy: RolloutPolicy) -> str:
    rings = " -> ".join(f"{r.name} {r.share:.0%}" for r in policy.rings)
    return f"rings {rings}; last-known-good {'v' + str(lkg) if lkg else 'none'}"


def step(ctx: RolloutContext, model_name: str) -> StepResult | None:
    """One decision for the model's active rollout (None when it has none), with its side effects."""
    rollout = ctx.rollouts.active(model_name)
    if rollout is None:
        return None
    _, policy = ctx.rollouts.get(model_name, rollout.model_version)
    now = ctx.clock()
    causes: dict[int, tuple[str, ...]] = {}
    rings = _candidate_health(ctx, rollout, policy, causes)
    baseline = _baseline(ctx, rollout)
    reached = distinct_causes(cause for ring in range(rollout.ring + 1) for cause in causes.get(ring, ()))
    decision = _with_device_causes(decide(rollout, policy, rings, baseline, now), reached)
    if decision.target is None:
        _log_wait(ctx, rollout, decision, now)
        return StepResult(rollout, decision, applied=True)
    after = transition(rollout, decision.target, decision.reason, now)
    _side_effects(ctx, rollout, after, policy, decision.reason)
    return _write(ctx, rollout, after, decision, now)


def command(ctx: RolloutContext, model_name: str, order: Command, reason: str = "") -> StepResult:
    """An operator's pause / resume / promote / abort on the model's active rollout, applied like a decision."""
    rollout = ctx.rollouts.active(model_name)
    if rollout is None:
        raise NotFoundError(f"{model_name} has no active rollout")
    _, policy = ctx.rollouts.get(model_name, rollout.model_version)
    now = ctx.clock()
    moved = apply_command(rollout, order, reason, now)  # InvalidTransitionError before any side effect
    action = {
        RolloutState.HALTED: Action.HALT,
        RolloutState.ROLLING_BACK: Action.REVERT,
    }.get(moved.state, Action.PROMOTE)
    decision = Decision(action, moved.state, moved.reason)
    _side_effects(ctx, rollout, moved, policy, moved.reason)
    return _write(ctx, rollout, moved, decision, now)


def _write(ctx: RolloutContext, before: Rollout, after: Rollout, decision: Decision, now: float) -> StepResult:
    try:
        ctx.rollouts.save(after)
    except ConflictError as exc:
        log.info("%s v%d: another controller moved first (%s)", before.model_name, before.model_version, exc)
        return StepResult(before, decision, applied=False)
    entry = DecisionEntry(now, after.ring, decision.action.value, decision.reason)
    ctx.rollouts.add_decision(after.model_name, after.model_version, entry, after.state_version)
    log.info("%s v%d: %s -> %s (%s)", after.model_name, after.model_version, before.state, after.state, decision.reason)
    return StepResult(after, decision, applied=True)


def _log_wait(ctx: RolloutContext, rollout: Rollout, decision: Decision, now: float) -> None:
    """Only the first wait after a move goes into the log, so a controller on a schedule does not flood it."""
    history = ctx.rollouts.decisions(rollout.model_name, rollout.model_version)
    if not history or history[-1].decision != Action.WAIT.value:
        entry = DecisionEntry(now, rollout.ring, decision.action.value, decision.reason)
        ctx.rollouts.add_decision(rollout.model_name, rollout.model_version, entry, rollout.state_version)


# --- reading the fleet -------------------------------------------------------------------------------


def _with_device_causes(decision: Decision, causes: tuple[str, ...]) -> Decision:
    """A decision the job-failure gate made says why in the failed devices' own words, which the registry keeps."""
    if not causes or not any(g.name == JOB_FAILURE_GATE and not g.passed for g in decision.gates):
        return decision
    return replace(decision, reason=f"{decision.reason}; devices report: {'; '.join(causes)}")


def _candidate_health(
    ctx: RolloutContext, rollout: Rollout, policy: RolloutPolicy, causes: dict[int, tuple[str, ...]]
) -> dict[int, VersionHealth]:
    """The candidate's sums in each ring it reached, with the controller's own facts (targeted, job failures);
    the failed devices' causes go into `causes` by ring."""
    sums = ctx.health.aggregates(rollout.model_name, rollout.model_version)
    if rollout.state not in (RolloutState.IN_RING, RolloutState.HALTED):
        return sums
    out = dict(sums)
    for ring in range(rollout.ring + 1):
        latest = ctx.fleet.latest_deployment(ctx.settings.ring_group_arn(policy.rings[ring].name))
        if latest is None:
            continue
        progress = ctx.fleet.deployment_progress(latest.deployment_id)
        causes[ring] = progress.failure_causes
        current = out.get(ring, VersionHealth())
        if (current.devices_targeted, current.job_failures) != (progress.targeted, progress.failed):
            ctx.health.set_ring_facts(
                rollout.model_name,
                rollout.model_version,
                ring,
                targeted=progress.targeted,
                job_failures=progress.failed,
            )
        out[ring] = replace(current, devices_targeted=progress.targeted, job_failures=progress.failed)
    return out


BASELINE_MIN_CONFIDENCES = 100
"""Confidences last-known-good must have reported since the rollout began before the gates use that window."""


def _baseline(ctx: RolloutContext, rollout: Rollout) -> VersionHealth | None:
    """What relative gates compare with (None: no baseline): last-known-good across the fleet since the rollout
    began, while it served beside the candidate in the same world; its whole life only until that window holds
    BASELINE_MIN_CONFIDENCES. A world that drifted since last-known-good shipped lowers both alike."""
    lifetime = _lifetime(ctx, rollout.model_name, rollout.last_known_good)
    if lifetime is None or rollout.baseline_at_start is None:
        return lifetime
    window = lifetime.since(rollout.baseline_at_start)
    return window if window.confidence_count >= BASELINE_MIN_CONFIDENCES else lifetime


def _lifetime(ctx: RolloutContext, model_name: str, version: int | None) -> VersionHealth | None:
    """A version's sums across the fleet over its whole life (None: no version, or nothing reported)."""
    if version is None:
        return None
    sums = ctx.health.aggregates(model_name, version).values()
    return sum(sums, VersionHealth()) if sums else None


# --- side effects ----------------------------------------------------------------------------------------


def _side_effects(ctx: RolloutContext, before: Rollout, after: Rollout, policy: RolloutPolicy, reason: str) -> None:
    """Make the fleet and the registry match the state the rollout is about to enter; each is safe to repeat."""
    if after.state is RolloutState.IN_RING:
        _deploy(ctx, _candidate_spec(ctx, after, policy.rings[after.ring].name))
    elif after.state is RolloutState.ROLLING_BACK:
        for ring in range(before.ring + 1):
            _deploy(ctx, _revert_spec(ctx, after, policy.rings[ring].name))
    elif after.state is RolloutState.COMPLETED:
        ctx.rollouts.set_last_known_good(after.model_name, after.model_version)
    elif after.state is RolloutState.ROLLED_BACK:
        _reject(ctx, after, before.reason)  # why the revert began, not that it is over


def _candidate_spec(ctx: RolloutContext, rollout: Rollout, ring: str) -> DeploymentSpec:
    record = _approved(ctx, rollout.model_name, rollout.model_version)
    return _spec(ctx, record, ring, fast=False)


def _revert_spec(ctx: RolloutContext, rollout: Rollout, ring: str) -> DeploymentSpec:
    if rollout.last_known_good is None:
        arn = ctx.settings.ring_group_arn(ring)
        version = ctx.settings.inference_component_version
        return modelless_deployment(rollout.model_name, target_arn=arn, inference_version=version, ring=ring)
    record = ctx.registry.get(rollout.model_name, rollout.last_known_good)
    return _spec(ctx, record, ring, fast=True)


def _spec(ctx: RolloutContext, record: RegistryRecord, ring: str, *, fast: bool) -> DeploymentSpec:
    ctx.fleet.get_component_recipe(record.component_name, record.component_version)  # NotFoundError: retry later
    ctx.fleet.get_component_recipe(INFERENCE_COMPONENT, ctx.settings.inference_component_version)
    return model_deployment(
        record,
        target_arn=ctx.settings.ring_group_arn(ring),
        inference_version=ctx.settings.inference_component_version,
        public_key_pem=ctx.public_key_pem,
        ring=ring,
        fast=fast,
    )


def _approved(ctx: RolloutContext, model_name: str, version: int) -> RegistryRecord:
    record = ctx.registry.get(model_name, version)
    if record.approval is not ApprovalStatus.APPROVED:
        raise InvalidTransitionError(f"{model_name} v{version} is {record.approval} now; it is not deployed further")
    return record


def _deploy(ctx: RolloutContext, spec: DeploymentSpec) -> str:
    """Create the ring's deployment unless its latest one already carries the same components."""
    latest = ctx.fleet.latest_deployment(spec.target_arn)
    if latest is not None and dict(latest.components) == dict(spec.components):
        return latest.deployment_id
    return ctx.fleet.create_deployment(spec)


def _reject(ctx: RolloutContext, rollout: Rollout, reason: str) -> None:
    """The registry follows the rollout: a reverted version is Rejected, with why in its description."""
    record = ctx.registry.get(rollout.model_name, rollout.model_version)
    if record.approval is ApprovalStatus.REJECTED:
        return
    why = f"reverted by rollout: {reason}"
    ctx.registry.set_approval(rollout.model_name, rollout.model_version, ApprovalStatus.REJECTED, why)


# --- health ingest -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    """What one shadow document did to the aggregates."""

    thing_name: str
    counted: bool
    reason: str


def ingest_health(
    ctx: RolloutContext,
    thing_name: str,
    reported: Mapping[str, Any],
    shadow_version: int,
    ring_of: Callable[[str], int],
) -> IngestResult:
    """Count one health-shadow document once: the device's increments go into its ring's sums.

    ring_of names the device's ring for a device seen the first time (from its ring thing group).
    """
    report = HealthReport.from_reported(reported)  # ValidationError names the field
    if report.thing_name != thing_name:
        raise ValidationError("health.thing_name", f"{report.thing_name!r} reported in the shadow of {thing_name!r}")
    if report.model_name is None:
        return IngestResult(thing_name, False, "no model on the device yet")
    previous = ctx.health.device(thing_name) or DeviceSnapshot(thing_name, ring_of(thing_name))
    targeted = _targeted_version(ctx, report.model_name, previous.ring)
    done = contribution(previous, report, shadow_version, targeted)
    if done is None:
        return IngestResult(thing_name, False, f"shadow version {shadow_version} was counted already")
    if not ctx.health.record(report.model_name, done, previous, reported):
        return IngestResult(thing_name, False, f"a report as new as version {shadow_version} was counted first")
    return IngestResult(thing_name, True, f"counted v{report.model_version} in ring {previous.ring}")


def _targeted_version(ctx: RolloutContext, model_name: str, ring: int) -> int | None:
    """The version the device's ring is meant to run now: the candidate once its rollout reached the ring."""
    rollout = ctx.rollouts.active(model_name)
    if rollout is not None and rollout.state in (RolloutState.IN_RING, RolloutState.HALTED) and ring <= rollout.ring:
        return rollout.model_version
    return ctx.rollouts.last_known_good(model_name)
