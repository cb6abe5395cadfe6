"""decide(): every action from every state, table-driven, with the gate values it reports."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from edgeloop.core.errors import InvalidTransitionError, ValidationError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.rollout import (
    LATENCY_BUCKETS_MS,
    Action,
    Command,
    Gates,
    Ring,
    Rollout,
    RolloutPolicy,
    RolloutState,
    VersionHealth,
    apply_command,
    decide,
    gate_values,
    latency_bucket,
    transition,
)

S = RolloutState
POLICY = RolloutPolicy(
    rings=(Ring("canary", 0.1, bake_s=600, min_devices=2), Ring("early", 0.3, 1200, 3), Ring("broad", 0.6, 1800, 5)),
    gates=Gates(max_error_rate=0.02, max_p99_latency_ratio=1.5, max_confidence_drop=0.05, min_inferences=100),
    ring_timeout_s=3600,
)
T0 = 10_000.0


def histogram(p99_ms: float, devices: int) -> tuple[int, ...]:
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    counts[latency_bucket(p99_ms)] = devices
    return tuple(counts)


def healthy(devices: int = 3, **changes: Any) -> VersionHealth:
    """A ring whose devices all run the candidate well: 1% errors, 10 ms p99, 0.92 mean confidence."""
    base = VersionHealth(
        devices_targeted=devices,
        devices_on_version=devices,
        inferences=990 * devices,
        errors=10 * devices,
        confidence_sum=0.92 * 990 * devices,
        confidence_count=990 * devices,
        p99_histogram=histogram(10, devices),
    )
    return replace(base, **changes)


BASELINE = healthy(20)


def rollout(state: S = S.IN_RING, ring: int = 0, started: float | None = T0) -> Rollout:
    return Rollout("digits", 7, state, ring, len(POLICY.rings), ring_started_at=started, last_known_good=6)


CASES = [
    # (id, rollout, rings health, now, expected action, expected target, reason fragment)
    ("pending-starts", rollout(S.PENDING, started=None), {}, T0, Action.PROMOTE, S.IN_RING, "start in ring 0"),
    ("baking", rollout(), {0: healthy()}, T0 + 60, Action.WAIT, None, "baking 60 of 600"),
    ("baked-promotes", rollout(), {0: healthy()}, T0 + 600, Action.PROMOTE, S.IN_RING, "to early"),
    (
        "last-ring-completes",
        rollout(ring=2),
        {0: healthy(), 1: healthy(), 2: healthy(5)},
        T0 + 1800,
        Action.PROMOTE,
        S.COMPLETED,
        "complete",
    ),
    (
        "too-few-devices-waits",
        rollout(),
        {0: healthy(devices=3, devices_on_version=1)},
        T0 + 900,
        Action.WAIT,
        None,
        "1 of 2 required devices",
    ),
    (
        "too-few-devices-at-timeout-halts",
        rollout(),
        {0: healthy(devices=3, devices_on_version=1)},
        T0 + 3600,
        Action.HALT,
        S.HALTED,
        "after 3600 s",
    ),
    (
        "too-few-inferences-waits",
        rollout(),
        {0: healthy(inferences=40, errors=0)},
        T0 + 900,
        Action.WAIT,
        None,
        "40 of 100 inferences",
    ),
    (
        "error-rate-reverts",
        rollout(),
        {0: healthy(errors=300)},
        T0 + 60,
        Action.REVERT,
        S.ROLLING_BACK,
        "error_rate",
    ),
    (
        "slow-reverts",
        rollout(),
        {0: healthy(p99_histogram=histogram(40, 3))},
        T0 + 60,
        Action.REVERT,
        S.ROLLING_BACK,
        "p99_latency_ratio 5 > 1.5",
    ),
    (
        "unsure-reverts",
        rollout(),
        {0: healthy(confidence_sum=0.6 * 2970)},
        T0 + 60,
        Action.REVERT,
        S.ROLLING_BACK,
        "confidence_drop",
    ),
    (
        "activation-failure-reverts-before-any-data",
        rollout(),
        {0: VersionHealth(devices_targeted=3, activation_failures=1)},
        T0 + 1,
        Action.REVERT,
        S.ROLLING_BACK,
        "activation_failure_rate 0.3333 > 0",
    ),
    (
        "job-failures-revert",
        rollout(),
        {0: healthy(devices=10, job_failures=2, devices_on_version=8)},
        T0 + 1,
        Action.REVERT,
        S.ROLLING_BACK,
        "job_failure_rate 0.2 > 0.1",
    ),
    (
        "an-earlier-ring-going-bad-reverts-later",
        rollout(ring=1),
        {0: healthy(errors=600), 1: healthy()},
        T0 + 60,
        Action.REVERT,
        S.ROLLING_BACK,
        "ring early failed: error_rate",
    ),
    ("halted-waits", replace(rollout(S.HALTED), reason="paused"), {}, T0, Action.WAIT, None, "halted (paused)"),
    (
        "reverting-waits-for-devices",
        rollout(S.ROLLING_BACK, ring=1),
        {0: VersionHealth(devices_on_version=1), 1: VersionHealth(devices_on_version=2)},
        T0,
        Action.WAIT,
        None,
        "3 device(s) still on v7",
    ),
    (
        "reverted-when-no-device-runs-it",
        rollout(S.ROLLING_BACK, ring=1),
        {0: VersionHealth(), 1: VersionHealth()},
        T0,
        Action.REVERT,
        S.ROLLED_BACK,
        "left v7",
    ),
    ("completed-does-nothing", rollout(S.COMPLETED, ring=2), {}, T0, Action.WAIT, None, "nothing to do"),
    ("rolled-back-does-nothing", rollout(S.ROLLED_BACK), {}, T0, Action.WAIT, None, "nothing to do"),
]


@pytest.mark.parametrize(
    ("case", "current", "rings", "now", "action", "target", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_decide(
    case: str,
    current: Rollout,
    rings: dict[int, VersionHealth],
    now: float,
    action: Action,
    target: S | None,
    reason: str,
) -> None:
    decision = decide(current, POLICY, rings, BASELINE, now)
    assert (decision.action, decision.target) == (action, target), decision.reason
    assert reason in decision.reason
    if decision.target is not None:
        transition(current, decision.target, decision.reason, now)  # every decision is a legal transition


def test_every_action_is_reachable() -> None:
    seen = {decide(c[1], POLICY, c[2], BASELINE, c[3]).action for c in CASES}
    assert seen == set(Action)


def test_without_last_known_good_only_absolute_gates_apply() -> None:
    slow = healthy(p99_histogram=histogram(400, 3))
    names = {g.name for g in gate_values(slow, None, POLICY.gates)}
    assert names == {"activation_failure_rate", "job_failure_rate", "error_rate"}
    assert decide(rollout(), POLICY, {0: slow}, None, T0 + 600).action is Action.PROMOTE


def test_an_absolute_latency_ceiling_applies_without_a_baseline() -> None:
    policy = replace(POLICY, gates=replace(POLICY.gates, max_p99_latency_ms=50))
    decision = decide(rollout(), policy, {0: healthy(p99_histogram=histogram(400, 3))}, None, T0 + 600)
    assert decision.action is Action.REVERT
    assert "p99_latency_ms 500 > 50" in decision.reason


def test_an_empty_ring_is_promoted_once_baked() -> None:
    decision = decide(rollout(ring=1), POLICY, {0: healthy(), 1: VersionHealth()}, BASELINE, T0 + 1200)
    assert decision.action is Action.PROMOTE


def test_the_decision_reports_every_gate_value_against_its_threshold() -> None:
    decision = decide(rollout(), POLICY, {0: healthy()}, BASELINE, T0 + 60)
    by_name = {g.name: g for g in decision.gates}
    assert by_name["error_rate"].value == pytest.approx(0.01)
    assert by_name["error_rate"].threshold == 0.02
    assert by_name["p99_latency_ratio"].value == pytest.approx(1.0)
    assert all(g.passed for g in decision.gates)


def test_ring_p99_is_a_high_quantile_of_device_p99s_not_the_worst_device() -> None:
    mixed = list(histogram(10, 19))
    mixed[latency_bucket(1900)] = 1
    assert VersionHealth(p99_histogram=tuple(mixed)).p99_ms == 10
    assert VersionHealth().p99_ms is None
    assert VersionHealth(p99_histogram=histogram(99_999, 1)).p99_ms == math.inf


def test_health_adds_across_rings() -> None:
    total = healthy(2) + healthy(3)
    assert (total.devices_targeted, total.inferences, sum(total.p99_histogram)) == (5, 4950, 5)
    assert VersionHealth.from_dict(total.to_dict()) == total


# --- operator commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "state", "ring", "target", "target_ring"),
    [
        (Command.PAUSE, S.IN_RING, 1, S.HALTED, 1),
        (Command.PAUSE, S.PENDING, 0, S.HALTED, 0),
        (Command.RESUME, S.HALTED, 1, S.IN_RING, 1),
        (Command.PROMOTE, S.IN_RING, 0, S.IN_RING, 1),
        (Command.PROMOTE, S.IN_RING, 2, S.COMPLETED, 2),
        (Command.ABORT, S.IN_RING, 1, S.ROLLING_BACK, 1),
        (Command.ABORT, S.HALTED, 0, S.ROLLING_BACK, 0),
    ],
)
def test_commands(command: Command, state: S, ring: int, target: S, target_ring: int) -> None:
    done = apply_command(rollout(state, ring), command, "ticket 42", T0 + 5)
    assert (done.state, done.ring) == (target, target_ring)
    assert done.reason == f"{command} by operator: ticket 42"
    assert done.state_version == 1


@pytest.mark.parametrize(
    ("command", "state"),
    [
        (Command.RESUME, S.IN_RING),
        (Command.PROMOTE, S.HALTED),
        (Command.ABORT, S.COMPLETED),
        (Command.PAUSE, S.ROLLED_BACK),
        (Command.ABORT, S.ROLLING_BACK),
    ],
)
def test_a_command_in_the_wrong_state_is_refused_naming_the_state(command: Command, state: S) -> None:
    with pytest.raises(InvalidTransitionError, match=f"is {state}; {command} applies only"):
        apply_command(rollout(state), command, "", T0)


def test_promotion_restarts_the_ring_clock_and_resume_keeps_it() -> None:
    promoted = transition(rollout(started=T0), S.IN_RING, "gates passed", now=T0 + 700)
    assert (promoted.ring, promoted.ring_started_at) == (1, T0 + 700)
    paused = apply_command(promoted, Command.PAUSE, "", T0 + 800)
    resumed = apply_command(paused, Command.RESUME, "", T0 + 5000)
    assert resumed.ring_started_at == T0 + 700


# --- policy ------------------------------------------------------------------------------------------


def test_policy_round_trips() -> None:
    assert RolloutPolicy.from_dict(POLICY.to_dict()) == POLICY


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"rings": [{"name": "a", "share": 0.5, "bake_s": 1}]}, "rings", "add up to 0.5"),
        ({"rings": []}, "rings", "at least one ring"),
        ({"rings": [{"name": "a", "share": 0.5, "bake_s": 1}] * 2}, "rings", "unique"),
        ({"rings": [{"name": "a", "share": 1.5, "bake_s": 1}]}, "rings[a].share", "outside"),
        ({"rings": [{"name": "a", "share": 1, "bake_s": -1}]}, "rings[a].bake_s", ">= 0"),
        ({"rings": [{"name": "a b", "share": 1, "bake_s": 1}]}, "rings[a b].name", "letters"),
        ({"rings": [{"name": "a", "share": 1, "bake": 1}]}, "rings[]", "unknown key"),
        ({"rings": [{"name": "a", "share": 1, "bake_s": 1}], "gates": {"max_eror_rate": 1}}, "gates", "unknown"),
        (
            {"rings": [{"name": "a", "share": 1, "bake_s": 1}], "gates": {"max_error_rate": 2}},
            "gates.max_error_rate",
            "",
        ),
        (
            {"rings": [{"name": "a", "share": 1, "bake_s": 1}], "gates": {"min_inferences": "5"}},
            "gates.min_inferences",
            "",
        ),
        ({"rings": [{"name": "a", "share": 1, "bake_s": 100}], "ring_timeout_s": 10}, "ring_timeout_s", "bake"),
    ],
)
def test_a_bad_policy_names_its_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RolloutPolicy.from_dict(data)
    assert info.value.field == field
    assert message in info.value.message


def test_relative_gates_can_be_switched_off_with_null() -> None:
    policy = RolloutPolicy.from_dict(
        {"rings": [{"name": "all", "share": 1, "bake_s": 0}], "gates": {"max_p99_latency_ratio": None}}
    )
    assert policy.gates.max_p99_latency_ratio is None


# --- the confidence gate against the new-world gate's evidence ----------------------------------------------

EVIDENCE = GateEvidence(
    samples=120,
    confidence_samples=80,
    deployed_version=6,  # the rollout's last-known-good
    candidate_accuracy=0.75,
    deployed_accuracy=0.55,
    candidate_confidence=0.67,
    deployed_confidence=0.92,
)
"""The deployed version confidently wrong after a change, the retrained one more accurate and less sure: 0.25."""


def unsure(confidence: float) -> dict[int, VersionHealth]:
    """The canary ring with the candidate this sure on average (the baseline is at 0.92)."""
    return {0: healthy(confidence_sum=confidence * 2970)}


def test_a_backed_candidate_as_unsure_as_its_evidence_predicts_is_not_reverted() -> None:
    decision = decide(replace(rollout(), evidence=EVIDENCE), POLICY, unsure(0.70), BASELINE, T0 + 60)
    assert (decision.action, decision.reason) == (Action.WAIT, "ring canary: gates pass, baking 60 of 600 s")
    gate = next(g for g in decision.gates if g.name == "confidence_drop")
    assert (gate.value, gate.threshold) == (pytest.approx(0.22), pytest.approx(0.30))


def test_the_same_drop_without_evidence_is_reverted() -> None:
    decision = decide(rollout(), POLICY, unsure(0.70), BASELINE, T0 + 60)
    assert decision.action is Action.REVERT
    assert "confidence_drop 0.22 > 0.05" in decision.reason


@pytest.mark.parametrize(
    "evidence",
    [
        replace(EVIDENCE, candidate_accuracy=0.5),  # the samples say the candidate is worse
        replace(EVIDENCE, deployed_version=5),  # compared with a version that is not the baseline
        replace(EVIDENCE, confidence_samples=0),  # no random sample: nothing predicts the live confidence
    ],
    ids=["worse", "other-baseline", "no-random-samples"],
)
def test_evidence_that_does_not_back_the_candidate_keeps_the_gate(evidence: GateEvidence) -> None:
    decision = decide(replace(rollout(), evidence=evidence), POLICY, unsure(0.70), BASELINE, T0 + 60)
    assert decision.action is Action.REVERT
    assert "confidence_drop 0.22 > 0.05" in decision.reason


def test_a_drop_beyond_the_allowance_still_reverts() -> None:
    decision = decide(replace(rollout(), evidence=EVIDENCE), POLICY, unsure(0.55), BASELINE, T0 + 60)
    assert decision.action is Action.REVERT
    assert "confidence_drop 0.37 > 0.3" in decision.reason


def test_evidence_widens_only_the_confidence_gate() -> None:
    backed = replace(rollout(), evidence=EVIDENCE)
    failing = {0: healthy(errors=300, confidence_sum=0.70 * 2970)}
    decision = decide(backed, POLICY, failing, BASELINE, T0 + 60)
    assert decision.action is Action.REVERT
    assert "error_rate" in decision.reason
    assert "confidence_drop" not in decision.reason


def test_a_rollout_with_evidence_round_trips_and_an_old_item_reads_without_it() -> None:
    backed = replace(rollout(), evidence=EVIDENCE)
    assert Rollout.from_dict(backed.to_dict()) == backed
    old = {k: v for k, v in rollout().to_dict().items() if k != "evidence"}
    assert Rollout.from_dict(old).evidence is None


@pytest.mark.parametrize(("text", "field"), [("{", "rollout.evidence"), ('{"samples": 1}', "rollout.evidence")])
def test_a_damaged_evidence_attribute_is_refused(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Rollout.from_dict({**rollout().to_dict(), "evidence": text})
    assert info.value.field.startswith(field)
