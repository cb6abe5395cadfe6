"""Recovery after a change: where the errors stepped up, when to retrain again, and the new-world gate."""

from __future__ import annotations

import random

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.retraining import RecoveryPolicy, change_point, new_world_gate, retrain_due

POLICY = RecoveryPolicy(min_labels=50, growth=2.0, gate_min_samples=20, gate_z=1.0)


def test_the_change_point_is_where_the_error_rate_stepped_up() -> None:
    rng = random.Random(3)
    errors = [rng.random() < 0.1 for _ in range(200)] + [rng.random() < 0.6 for _ in range(100)]
    assert 185 <= change_point(errors) <= 215


def test_a_steady_or_falling_error_rate_has_no_change_point() -> None:
    assert change_point([False] * 100) == 0
    assert change_point([True] * 50 + [False] * 50) == 0, "errors falling is no new concept"
    assert change_point([True, False] * 5, min_side=10) == 0, "too short to split"


@pytest.mark.parametrize("seed", range(40))
def test_a_change_point_leaves_min_side_on_each_side(seed: int) -> None:
    rng = random.Random(seed)
    errors = [rng.random() < rng.random() for _ in range(rng.randrange(81))]
    min_side = rng.randrange(1, 21)
    at = change_point(errors, min_side)
    assert at == 0 or min_side <= at <= len(errors) - min_side


@pytest.mark.parametrize(
    ("labels", "trained_on", "retrain", "reason"),
    [
        (49, None, False, "49 of 50 labels of the new concept"),
        (50, None, True, "change detected, 50 labels"),
        (99, 50, False, "99 of 100 labels for the next retrain"),
        (100, 50, True, "grew from 50 to 100"),
        (250, 100, True, "grew from 100 to 250"),
    ],
)
def test_retrains_come_at_min_labels_then_each_time_the_labels_double(
    labels: int, trained_on: int | None, retrain: bool, reason: str
) -> None:
    decision = retrain_due(labels, trained_on, POLICY)
    assert decision.retrain is retrain
    assert reason in decision.reason


def test_the_gate_passes_a_candidate_that_wins_clearly_on_the_disagreements() -> None:
    deployed = [True] * 20 + [False] * 10
    candidate = [True] * 18 + [False] * 2 + [True] * 10  # won 10, lost 2
    decision = new_world_gate(candidate, deployed, POLICY)
    assert decision.retrain
    assert "candidate 0.933 vs deployed 0.667 on 30 recent samples (10 won, 2 lost)" in decision.reason


@pytest.mark.parametrize(
    ("candidate", "deployed", "why"),
    [
        ([True] * 30, [True] * 30, "not better"),
        ([True] * 10, [False] * 10, "only 10 of 20"),
        ([True] * 21 + [False] * 9, [True] * 20 + [False] * 10, "not better"),  # 1 won, 0 lost: within noise
        ([False] * 30, [True] * 30, "not better"),
    ],
    ids=["equal", "too-few", "within-noise", "worse"],
)
def test_the_gate_refuses_a_candidate_that_does_not_clearly_beat_the_deployed_version(
    candidate: list[bool], deployed: list[bool], why: str
) -> None:
    decision = new_world_gate(candidate, deployed, POLICY)
    assert not decision.retrain
    assert why in decision.reason


def test_the_gate_needs_one_answer_each_per_sample() -> None:
    with pytest.raises(ValidationError, match="new_world_gate"):
        new_world_gate([True], [True, False], POLICY)


@pytest.mark.parametrize(
    ("values", "field"),
    [({"min_labels": 0}, "recovery.min_labels"), ({"growth": 1.0}, "recovery.growth"),
     ({"gate_min_samples": 0}, "recovery.gate_min_samples"), ({"gate_z": -1.0}, "recovery.gate_z")],
)  # fmt: skip
def test_a_bad_recovery_policy_names_its_field(values: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RecoveryPolicy(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("candidate", "deployed", "retrain"),
    [
        ([True] * 22 + [False] * 17 + [True] * 10, [False] * 22 + [True] * 17 + [True] * 10, True),  # 22 won, 17 lost
        ([True] * 30, [True] * 30, True),  # no disagreement: as good, on more labels
        ([True] * 17 + [False] * 22 + [True] * 10, [False] * 17 + [True] * 22 + [True] * 10, False),  # it lost more
        ([True] * 10, [True] * 10, False),  # too few samples, successor or not
    ],
    ids=["wins-within-noise", "equal", "loses", "too-few"],
)
def test_a_successor_on_the_same_concept_need_only_not_lose(
    candidate: list[bool], deployed: list[bool], retrain: bool
) -> None:
    decision = new_world_gate(candidate, deployed, POLICY, successor=True)
    assert decision.retrain is retrain
    if retrain and "beats" not in decision.reason:
        assert "no worse than its predecessor" in decision.reason
    if candidate != deployed and retrain:
        assert not new_world_gate(candidate, deployed, POLICY).retrain, "a first retrain must clearly win"
