"""The rollout state machine: every (state, target) pair, checked against a table written here."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from edgeloop.core.errors import InvalidTransitionError, ValidationError
from edgeloop.core.rollout import LEGAL_TRANSITIONS, Rollout, RolloutState, transition

S = RolloutState
MakeRollout = Callable[..., Rollout]
RINGS = 3
LAST = RINGS - 1

EXPECTED_LEGAL = {
    (S.PENDING, S.IN_RING),
    (S.PENDING, S.HALTED),
    (S.IN_RING, S.IN_RING),
    (S.IN_RING, S.COMPLETED),
    (S.IN_RING, S.HALTED),
    (S.IN_RING, S.ROLLING_BACK),
    (S.HALTED, S.IN_RING),
    (S.HALTED, S.ROLLING_BACK),
    (S.ROLLING_BACK, S.ROLLED_BACK),
}
EXPECTED_FINAL = {S.COMPLETED, S.ROLLED_BACK}
ALL_PAIRS = list(itertools.product(RolloutState, RolloutState))
LEGAL = [pytest.param(s, t, id=f"{s.value}->{t.value}") for s, t in ALL_PAIRS if (s, t) in EXPECTED_LEGAL]
ILLEGAL = [pytest.param(s, t, id=f"{s.value}->{t.value}") for s, t in ALL_PAIRS if (s, t) not in EXPECTED_LEGAL]


def test_the_tables_cover_every_pair() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(RolloutState) ** 2 == 36
    assert len(LEGAL) == len(EXPECTED_LEGAL)


@pytest.mark.parametrize(("state", "target"), LEGAL)
def test_legal_transition(state: RolloutState, target: RolloutState) -> None:
    ring = LAST if target is S.COMPLETED else 1
    before = Rollout("iris-classifier", 3, state, ring, RINGS, state_version=4, reason="earlier")
    after = transition(before, target, "health gate passed")
    promoted = state is S.IN_RING and target is S.IN_RING
    assert after == Rollout(
        "iris-classifier",
        3,
        target,
        ring + 1 if promoted else ring,
        RINGS,
        state_version=5,
        reason="health gate passed",
    )
    assert before.state is state
    assert before.state_version == 4


@pytest.mark.parametrize(("state", "target"), ILLEGAL)
def test_illegal_transition(make_rollout: MakeRollout, state: RolloutState, target: RolloutState) -> None:
    before = make_rollout(state=state, ring=LAST)
    with pytest.raises(InvalidTransitionError) as info:
        transition(before, target, "operator")
    assert f"{state.value} -> {target.value}" in str(info.value)
    assert "iris-classifier v3" in str(info.value)


@pytest.mark.parametrize("state", list(RolloutState), ids=lambda s: s.value)
def test_final_states(make_rollout: MakeRollout, state: RolloutState) -> None:
    assert make_rollout(state=state).is_final is (state in EXPECTED_FINAL)


def test_legal_transitions_mapping_matches_the_table() -> None:
    assert {(s, t) for s, targets in LEGAL_TRANSITIONS.items() for t in targets} == EXPECTED_LEGAL


@pytest.mark.parametrize("ring_count", [1, 2, 5])
def test_promotion_refused_past_the_last_ring(make_rollout: MakeRollout, ring_count: int) -> None:
    last = make_rollout(state=S.IN_RING, ring=ring_count - 1, ring_count=ring_count)
    with pytest.raises(InvalidTransitionError, match="last ring"):
        transition(last, S.IN_RING, "promote")


@pytest.mark.parametrize("ring", range(LAST))
def test_completion_only_from_the_last_ring(make_rollout: MakeRollout, ring: int) -> None:
    with pytest.raises(InvalidTransitionError, match=f"cannot complete in ring {ring}"):
        transition(make_rollout(state=S.IN_RING, ring=ring), S.COMPLETED, "done")


def test_full_rollout_walks_every_ring(make_rollout: MakeRollout) -> None:
    rollout = transition(make_rollout(), S.IN_RING, "start")
    rings = [rollout.ring]
    while rollout.ring < LAST:
        rollout = transition(rollout, S.IN_RING, "promote")
        rings.append(rollout.ring)
    rollout = transition(rollout, S.COMPLETED, "done")
    assert rings == [0, 1, 2]
    assert (rollout.state, rollout.state_version, rollout.is_final) == (S.COMPLETED, 4, True)


def test_halt_resume_and_roll_back_keep_the_ring(make_rollout: MakeRollout) -> None:
    rollout = make_rollout(state=S.IN_RING, ring=1)
    halted = transition(rollout, S.HALTED, "p99 latency over budget")
    resumed = transition(halted, S.IN_RING, "operator resumed")
    rolled = transition(transition(resumed, S.ROLLING_BACK, "errors"), S.ROLLED_BACK, "reverted")
    assert [r.ring for r in (halted, resumed, rolled)] == [1, 1, 1]
    assert rolled.state_version == 4
    assert rolled.reason == "reverted"


@pytest.mark.parametrize(
    ("ring", "ring_count", "field"),
    [(0, 0, "ring_count"), (3, 3, "ring"), (-1, 3, "ring"), (1, 1, "ring")],
    ids=["no-rings", "ring-past-end", "ring-negative", "ring-of-one"],
)
def test_rollout_validation(ring: int, ring_count: int, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Rollout("iris-classifier", 3, S.PENDING, ring, ring_count)
    assert info.value.field == field


def test_rollout_refuses_bad_model_name() -> None:
    with pytest.raises(ValidationError) as info:
        Rollout("Iris", 3, S.PENDING, 0, 1)
    assert info.value.field == "model_name"
