"""Rollout states and the only transitions between them; the controller and registry share these."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from edgeloop.core.errors import InvalidTransitionError, ValidationError
from edgeloop.core.names import validate_model_name


class RolloutState(StrEnum):
    """Where a model version's rollout stands."""

    PENDING = "pending"
    IN_RING = "in_ring"
    HALTED = "halted"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


LEGAL_TRANSITIONS: MappingProxyType[RolloutState, frozenset[RolloutState]] = MappingProxyType(
    {
        RolloutState.PENDING: frozenset({RolloutState.IN_RING, RolloutState.HALTED}),
        RolloutState.IN_RING: frozenset(
            {RolloutState.IN_RING, RolloutState.COMPLETED, RolloutState.HALTED, RolloutState.ROLLING_BACK}
        ),
        RolloutState.HALTED: frozenset({RolloutState.IN_RING, RolloutState.ROLLING_BACK}),
        RolloutState.ROLLING_BACK: frozenset({RolloutState.ROLLED_BACK}),
        RolloutState.COMPLETED: frozenset(),
        RolloutState.ROLLED_BACK: frozenset(),
    }
)
"""IN_RING -> IN_RING is a promotion to the next ring; COMPLETED and ROLLED_BACK are final."""


@dataclass(frozen=True)
class Rollout:
    """One model version's way through the rings; state_version guards concurrent writers."""

    model_name: str
    model_version: int
    state: RolloutState
    ring: int
    ring_count: int
    state_version: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if self.ring_count < 1:
            raise ValidationError("ring_count", f"must be >= 1, got {self.ring_count}")
        if not 0 <= self.ring < self.ring_count:
            raise ValidationError("ring", f"{self.ring} is outside 0..{self.ring_count - 1}")

    @property
    def is_final(self) -> bool:
        """No transition leaves a final state."""
        return not LEGAL_TRANSITIONS[self.state]


def transition(rollout: Rollout, target: RolloutState, reason: str) -> Rollout:
    """Move to target if the state machine allows it; a promotion advances the ring by one."""
    if target not in LEGAL_TRANSITIONS[rollout.state]:
        raise InvalidTransitionError(
            f"rollout of {rollout.model_name} v{rollout.model_version}: {rollout.state} -> {target} "
            f"is not allowed; from {rollout.state} the allowed targets are "
            f"{sorted(LEGAL_TRANSITIONS[rollout.state]) or 'none (final)'}"
        )
    ring = rollout.ring
    if rollout.state is RolloutState.IN_RING and target is RolloutState.IN_RING:
        if ring + 1 >= rollout.ring_count:
            raise InvalidTransitionError(f"ring {ring} is the last ring; complete the rollout instead")
        ring += 1
    if target is RolloutState.COMPLETED and ring != rollout.ring_count - 1:
        raise InvalidTransitionError(f"cannot complete in ring {ring} of {rollout.ring_count}")
    return replace(rollout, state=target, ring=ring, state_version=rollout.state_version + 1, reason=reason)
