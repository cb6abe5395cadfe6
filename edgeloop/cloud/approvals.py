"""Cloud use case: a model package's approval changed; an Approved, deployable version opens its staged rollout.

Apart from publish.py so the model_approved Lambda stages none of the archive, signing and recipe code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgeloop.cloud.rollout_control import RolloutContext, start_rollout, step
from edgeloop.core.errors import NotFoundError
from edgeloop.core.events import ModelPackageStateChange
from edgeloop.core.names import model_from_package_group
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.rollout import Rollout, RolloutState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalOutcome:
    """What an approval change led to: a rollout, a recorded rejection, or nothing."""

    status: str
    reason: str
    deployment_id: str | None = None
    """The first ring's deployment when the approval started a rollout."""


def handle_approval_change(change: ModelPackageStateChange, *, ctx: RolloutContext) -> ApprovalOutcome:
    """Approved: open the version's rollout and take its first step (ring 0); Rejected: record; Pending: nothing.

    A redelivered approval finds its rollout and changes nothing; an approval while another version of the
    model is rolling out starts nothing and says so (the operator starts it later with `edgeloop rollout start`).
    """
    label = f"{change.group_name} v{change.version}"
    if change.approval is ApprovalStatus.PENDING:
        return ApprovalOutcome("ignored", f"{label} awaits manual approval")
    model_name = model_from_package_group(change.group_name)
    record = ctx.registry.get(model_name, change.version)
    if change.approval is ApprovalStatus.REJECTED:
        why = record.approval_description or record.decision or "no reason given"
        log.info("%s was rejected (%s); nothing is deployed", label, why)
        return ApprovalOutcome("rejected", f"{label} was rejected: {why}")
    if not record.deployable:
        log.error("%s was approved although its accuracy gate failed (%s); refusing to deploy", label, record.gate)
        return ApprovalOutcome("refused", f"{label} did not pass its accuracy gate ({record.gate}); not deployed")
    if record.approval is not ApprovalStatus.APPROVED:
        raise NotFoundError(f"{record.model_name} v{record.version} is {record.approval} in the registry now")
    return _roll_out(ctx, model_name, change.version, label)


def _roll_out(ctx: RolloutContext, model_name: str, version: int, label: str) -> ApprovalOutcome:
    """Open the rollout unless it exists or another one is active, then step a pending one into ring 0.

    A deployment that fails (throttled, say) raises with the rollout left pending: the redelivered event, or
    the controller's schedule, steps it again; nothing else was written.
    """
    existing = _existing_rollout(ctx, model_name, version)
    if existing is not None and existing.state is not RolloutState.PENDING:
        return ApprovalOutcome("rolling-out", f"{label} already has a rollout ({existing.state}, ring {existing.ring})")
    if existing is None:
        active = ctx.rollouts.active(model_name)
        if active is not None:
            return ApprovalOutcome(
                "not-started",
                f"{label} is approved but v{active.model_version} is still rolling out ({active.state}); "
                f"start it afterwards with `edgeloop rollout start {version}`",
            )
        start_rollout(ctx, model_name, version)
    result = step(ctx, model_name)
    reason = result.decision.reason if result is not None else "started"
    latest = ctx.fleet.latest_deployment(ctx.settings.ring_group_arn(ctx.settings.rollout_policy.rings[0].name))
    return ApprovalOutcome("rolling-out", f"{label}: {reason}", latest.deployment_id if latest else None)


def _existing_rollout(ctx: RolloutContext, model_name: str, version: int) -> Rollout | None:
    """The version's rollout if one was opened already (a redelivered approval event)."""
    try:
        rollout, _ = ctx.rollouts.get(model_name, version)
    except NotFoundError:
        return None
    return rollout
