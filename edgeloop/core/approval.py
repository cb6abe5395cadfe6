"""The registry's approval policy and schema compatibility: pure decisions over manifests, table-tested.

A new version is registered PendingManualApproval unless the policy approves it at once. The policy
approves only when auto-approval is on (a minimum accuracy is configured), the accuracy gate passed,
the input schema and labels are compatible with the current Approved version, and the holdout accuracy
is not worse than that version's by more than `max_drop`. A manifest whose gate did not pass is
registered Rejected: it is never deployable, and no human approval can change that.

Compatibility is about what a client may send and what it gets back: a different input name, dtype,
feature list or order, or label set is breaking. A widened input range is compatible; a narrowed one is
breaking too, because the device refuses values outside the range and requests the running model
accepts would start to be rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeloop.core.errors import ConfigError
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.registry import ApprovalStatus

DESCRIPTION_LIMIT = 256
"""SageMaker's limit on CustomerMetadataProperties values and ModelPackage approval descriptions."""


@dataclass(frozen=True)
class ApprovalPolicy:
    """When the registry may approve a version without a human."""

    auto_approve_min_accuracy: float | None = None
    """None: auto-approval is off; otherwise the holdout accuracy a version needs at least."""
    max_drop: float = 0.0
    """How much lower than the current Approved version's holdout accuracy a version may score."""

    def __post_init__(self) -> None:
        low = self.auto_approve_min_accuracy
        if low is not None and not 0.0 <= low <= 1.0:
            raise ConfigError("auto_approve_min_accuracy", f"{low} is outside [0, 1]")
        if not 0.0 <= self.max_drop <= 1.0:
            raise ConfigError("max_drop", f"{self.max_drop} is outside [0, 1]")

    @property
    def automatic(self) -> bool:
        """Whether the policy may approve at all."""
        return self.auto_approve_min_accuracy is not None


@dataclass(frozen=True)
class ApprovedVersion:
    """The version a candidate is compared with: the newest Approved one and its manifest."""

    version: int
    holdout_accuracy: float
    manifest: ModelManifest


@dataclass(frozen=True)
class ApprovalDecision:
    """What the registry records for a new version, and why."""

    status: ApprovalStatus
    reasons: tuple[str, ...]
    breaking: tuple[str, ...]

    @property
    def description(self) -> str:
        """One line for the model package's ApprovalDescription (clipped to SageMaker's limit)."""
        return clip("; ".join(self.reasons))


def breaking_changes(current: ModelManifest, candidate: ModelManifest) -> tuple[str, ...]:
    """Every change from the current manifest's interface that would break a client or a device."""
    old, new = current.input, candidate.input
    changes = [
        f"input.{name} changed from {before!r} to {after!r}"
        for name, before, after in (("name", old.name, new.name), ("dtype", old.dtype, new.dtype))
        if before != after
    ]
    if old.features != new.features:
        changes.append(_feature_change(old.features, new.features))
    if new.minimum > old.minimum:
        changes.append(f"input.minimum narrowed from {old.minimum} to {new.minimum}")
    if new.maximum < old.maximum:
        changes.append(f"input.maximum narrowed from {old.maximum} to {new.maximum}")
    if current.labels != candidate.labels:
        changes.append(f"labels changed from {list(current.labels)} to {list(candidate.labels)}")
    return tuple(changes)


def _feature_change(old: tuple[str, ...], new: tuple[str, ...]) -> str:
    """Say how the feature list differs: a reorder is as breaking as a different set, but reads differently."""
    if sorted(old) == sorted(new):
        return "input.features were reordered"
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    return f"input.features changed (added {added}, removed {removed}, {len(old)} -> {len(new)})"


def decide_approval(
    candidate: ModelManifest, approved: ApprovedVersion | None, policy: ApprovalPolicy
) -> ApprovalDecision:
    """The approval a new version is registered with; reasons say what kept it from auto-approval."""
    breaking = breaking_changes(approved.manifest, candidate) if approved else ()
    if not candidate.deployable:
        gate = candidate.gate
        if gate.drop > gate.bound:
            reason = f"accuracy gate failed: {gate.metric} drop {gate.drop:.4f} > bound {gate.bound:.4f}"
        else:
            reason = f"accuracy gate failed: {gate.reference} {gate.metric} is below the minimum {gate.minimum}"
        return ApprovalDecision(ApprovalStatus.REJECTED, (reason, *_rejected(candidate)), breaking)
    reasons = [f"breaking change vs v{approved.version}: {c}" for c in breaking] if approved else []
    reasons += _policy_reasons(candidate, approved, policy)
    if reasons:
        return ApprovalDecision(ApprovalStatus.PENDING, tuple(reasons), breaking)
    against = f"not worse than v{approved.version} by more than {policy.max_drop}" if approved else "first version"
    accepted = f"auto-approved: gate passed, holdout accuracy {candidate.holdout_accuracy:.4f}, {against}"
    return ApprovalDecision(ApprovalStatus.APPROVED, (accepted,), breaking)


def _rejected(candidate: ModelManifest) -> list[str]:
    return [f"{variant} rejected: {why}" for variant, why in sorted(candidate.gate.rejected.items())]


def _policy_reasons(candidate: ModelManifest, approved: ApprovedVersion | None, policy: ApprovalPolicy) -> list[str]:
    """Why the policy will not approve on its own (empty: it will)."""
    if not policy.automatic:
        return ["awaiting manual approval (auto-approval is off)"]
    reasons = []
    accuracy, floor = candidate.holdout_accuracy, policy.auto_approve_min_accuracy
    if floor is not None and accuracy < floor:
        reasons.append(f"holdout accuracy {accuracy:.4f} is below the auto-approval minimum {floor:.4f}")
    if approved is not None and accuracy < approved.holdout_accuracy - policy.max_drop:
        reasons.append(
            f"holdout accuracy {accuracy:.4f} is worse than v{approved.version}'s "
            f"{approved.holdout_accuracy:.4f} by more than {policy.max_drop}"
        )
    return reasons


def clip(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """Shorten text to a SageMaker string limit, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
