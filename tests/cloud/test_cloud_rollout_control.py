"""The rollout controller end to end on the in-memory ports: rings, gates, revert, crash and race safety."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from support import FAKE_ONNX, FakeClock, manifest_for

from edgeloop.cloud import rollout_control as control
from edgeloop.cloud.fleet import DeploymentProgress, MemoryFleetControl
from edgeloop.cloud.registry import MemoryRegistry
from edgeloop.cloud.rollout_stores import MemoryFleetHealthStore, MemoryRolloutStore
from edgeloop.core.errors import ConflictError, InvalidTransitionError, NotFoundError, ValidationError
from edgeloop.core.evidence import GateEvidence
from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.names import INFERENCE_COMPONENT, model_component_name, ring_group
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.rollout import Command, Gates, Ring, RolloutPolicy, RolloutState
from edgeloop.core.settings import CloudSettings

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
POLICY = RolloutPolicy(
    rings=(Ring("canary", 0.2, bake_s=60, min_devices=1), Ring("broad", 0.8, bake_s=60, min_devices=2)),
    gates=Gates(min_inferences=10, max_confidence_drop=0.1),
    ring_timeout_s=600,
)
RINGS = {"dev-0": 0, "dev-1": 1, "dev-2": 1}


@dataclass
class Fleet:
    """Simulated devices: each reports its version and how well it does, shadow versions counting up."""

    ctx: control.RolloutContext
    fleet: MemoryFleetControl
    registry: MemoryRegistry
    clock: FakeClock
    shadow: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def report(
        self, thing: str, version: int, *, confidence: float = 0.9, errors: int = 0, state: str = "active"
    ) -> Any:
        self.shadow[thing] = self.shadow.get(thing, 0) + 1
        self.counters[thing] = self.counters.get(thing, 0) + 50
        health = HealthReport(
            thing_name=thing,
            model_name="digits",
            model_version=version,
            model_state=ModelState(state),
            model_detail="",
            inferences=self.counters[thing],
            rejected_inputs=0,
            errors=errors,
            latency=LatencySummary(1.0, 2.0, 3.0, 4.0, 50),
            buffer_depth=0,
            records_produced=1,
            records_delivered=1,
            connected=True,
            reported_at=self.clock.now,
            mean_confidence=confidence,
        )
        return control.ingest_health(self.ctx, thing, health.to_reported(), self.shadow[thing], RINGS.__getitem__)

    def ring_deployment(self, ring: str) -> Any:
        return self.fleet.latest_deployment(GROUP_ARN.rsplit("/", 1)[0] + "/" + ring_group(ring))

    def jobs_done(self, ring: str, targeted: int, failed: int = 0, causes: tuple[str, ...] = ()) -> None:
        latest = self.ring_deployment(ring)
        progress = DeploymentProgress(targeted, targeted - failed, failed, causes)
        self.fleet.record_progress(latest.deployment_id, progress)


def register(
    registry: MemoryRegistry, fleet: MemoryFleetControl, job: str, evidence: GateEvidence | None = None
) -> int:
    record = registry.register(
        manifest_for(FAKE_ONNX),
        training_job=job,
        artifact_uri=f"s3://a/{job}/model.onnx",
        manifest_uri=f"s3://a/{job}/manifest.json",
        approval=ApprovalStatus.APPROVED,
        evidence=evidence,
    )
    fleet.create_component_version(
        {"ComponentName": record.component_name, "ComponentVersion": record.component_version}
    )
    return record.version


@pytest.fixture
def sim() -> Fleet:
    clock = FakeClock(1_000.0)
    fleet, registry = MemoryFleetControl(), MemoryRegistry()
    registry.ensure_group("digits")
    fleet.create_component_version({"ComponentName": INFERENCE_COMPONENT, "ComponentVersion": "0.1.0"})
    settings = replace(
        CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", None, "s3://d/out/"), rollout_policy=POLICY
    )
    ctx = control.RolloutContext(
        rollouts=MemoryRolloutStore(),
        health=MemoryFleetHealthStore(),
        registry=registry,
        fleet=fleet,
        settings=settings,
        clock=clock,
    )
    return Fleet(ctx, fleet, registry, clock)


def complete_first_version(sim: Fleet) -> int:
    """v1 through both rings on healthy reports: the last-known-good the later tests compare with."""
    v1 = register(sim.registry, sim.fleet, "job-1")
    control.start_rollout(sim.ctx, "digits", v1)
    assert control.step(sim.ctx, "digits").rollout.state is RolloutState.IN_RING
    sim.jobs_done("canary", 1)
    sim.report("dev-0", v1)
    sim.clock.now += 61
    assert control.step(sim.ctx, "digits").rollout.ring == 1
    sim.jobs_done("broad", 2)
    for thing in ("dev-0", "dev-1", "dev-2"):
        sim.report(thing, v1)
    sim.clock.now += 61
    assert control.step(sim.ctx, "digits").rollout.state is RolloutState.COMPLETED
    return v1


def test_a_good_version_goes_ring_by_ring_and_becomes_last_known_good(sim: Fleet) -> None:
    v1 = complete_first_version(sim)
    assert sim.ctx.rollouts.last_known_good("digits") == v1
    assert sim.ctx.rollouts.active("digits") is None
    for ring in ("canary", "broad"):
        deployment = sim.ring_deployment(ring)
        assert deployment.components[model_component_name("digits")].version == "1.0.0"
        assert not deployment.name.endswith("fast")
    log = [(d.decision, d.ring) for d in sim.ctx.rollouts.decisions("digits", v1)]
    assert log == [("start", 0), ("promote", 0), ("promote", 1), ("promote", 1)]


def test_a_candidate_whose_confidence_collapses_is_reverted_in_the_canary(sim: Fleet) -> None:
    v1 = complete_first_version(sim)
    v2 = register(sim.registry, sim.fleet, "job-2")
    control.start_rollout(sim.ctx, "digits", v2)
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 1)
    sim.report("dev-0", v2, confidence=0.4)

    reverting = control.step(sim.ctx, "digits")

    assert reverting.rollout.state is RolloutState.ROLLING_BACK
    assert "confidence_drop 0.5 > 0.1" in reverting.decision.reason
    canary = sim.ring_deployment("canary")
    assert canary.components[model_component_name("digits")].version == "1.0.0", "canary back on v1"
    assert sim.ring_deployment("broad").components[model_component_name("digits")].version == "1.0.0"
    assert control.step(sim.ctx, "digits").rollout.state is RolloutState.ROLLING_BACK, "dev-0 still on v2"

    sim.report("dev-0", v1)
    done = control.step(sim.ctx, "digits")

    assert done.rollout.state is RolloutState.ROLLED_BACK
    record = sim.registry.get("digits", v2)
    assert record.approval is ApprovalStatus.REJECTED
    assert "confidence_drop" in record.approval_description
    assert sim.ctx.rollouts.last_known_good("digits") == v1
    assert sim.ctx.rollouts.active("digits") is None


def test_relative_gates_compare_with_last_known_good_since_the_rollout_began_not_its_whole_life(
    sim: Fleet,
) -> None:
    v1 = complete_first_version(sim)  # v1 reported at 0.9 before the world drifted
    v2 = register(sim.registry, sim.fleet, "job-2")
    control.start_rollout(sim.ctx, "digits", v2)
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 1)
    sim.report("dev-1", v1, confidence=0.6)  # beside the candidate, the drifted world costs v1 confidence too
    sim.report("dev-2", v1, confidence=0.6)
    sim.report("dev-0", v2, confidence=0.62)
    sim.clock.now += 61

    promoted = control.step(sim.ctx, "digits")

    assert promoted.rollout.ring == 1, promoted.decision.reason
    assert "confidence_drop -0.02" in promoted.decision.reason, "v2 against v1's 0.6 since the start"
    # v1's whole life averages (4 x 50 x 0.9 + 2 x 50 x 0.6) / 300 = 0.8: a drop of 0.18 would have reverted v2


def test_the_lifetime_baseline_stands_in_until_last_known_good_reported_enough_since_the_start(sim: Fleet) -> None:
    complete_first_version(sim)
    v2 = register(sim.registry, sim.fleet, "job-2")
    control.start_rollout(sim.ctx, "digits", v2)
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 1)
    sim.report("dev-0", v2, confidence=0.62)

    reverting = control.step(sim.ctx, "digits")

    assert reverting.rollout.state is RolloutState.ROLLING_BACK
    assert "confidence_drop 0.28 > 0.1" in reverting.decision.reason, "v1's lifetime 0.9: no window yet"


def test_a_retrain_backed_by_the_new_world_gate_is_judged_against_the_confidence_drop_it_predicted(sim: Fleet) -> None:
    v1 = complete_first_version(sim)
    evidence = GateEvidence(100, 60, v1, candidate_accuracy=0.8, deployed_accuracy=0.55, candidate_confidence=0.6,
                            deployed_confidence=0.9)  # fmt: skip
    v2 = register(sim.registry, sim.fleet, "job-2", evidence)
    assert control.start_rollout(sim.ctx, "digits", v2).evidence == evidence, "from the registry record"
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 1)
    sim.report("dev-0", v2, confidence=0.62)  # the same 0.28 drop that reverts a candidate without evidence
    sim.clock.now += 61

    promoted = control.step(sim.ctx, "digits")

    assert promoted.rollout.ring == 1, promoted.decision.reason
    assert "confidence_drop 0.28 <= 0.4" in promoted.decision.reason
    assert sim.ctx.rollouts.get("digits", v2)[0].evidence == evidence
    start = sim.ctx.rollouts.decisions("digits", v2)[0]
    assert start.reason.endswith(f"; {evidence.describe()}"), "the decision log says why the gate is wider"


def test_a_device_that_rejects_the_candidate_reverts_at_once(sim: Fleet) -> None:
    v1 = complete_first_version(sim)
    v2 = register(sim.registry, sim.fleet, "job-2")
    control.start_rollout(sim.ctx, "digits", v2)
    control.step(sim.ctx, "digits")
    sim.report("dev-0", v1, state="rejected")  # signature or self-test failed: still serving v1

    decision = control.step(sim.ctx, "digits").decision

    assert decision.target is RolloutState.ROLLING_BACK
    assert "activation_failure_rate" in decision.reason


def test_a_failed_deployment_reverts_with_the_devices_own_causes_in_the_decision_and_the_registry(sim: Fleet) -> None:
    complete_first_version(sim)
    v2 = register(sim.registry, sim.fleet, "job-2")
    control.start_rollout(sim.ctx, "digits", v2)
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 1, failed=1, causes=("dev-0: sha256 mismatch for model.onnx",))

    decision = control.step(sim.ctx, "digits").decision

    assert decision.target is RolloutState.ROLLING_BACK
    assert "job_failure_rate 1 > 0.1" in decision.reason
    assert decision.reason.endswith("; devices report: dev-0: sha256 mismatch for model.onnx")
    assert control.step(sim.ctx, "digits").rollout.state is RolloutState.ROLLED_BACK  # no device ever ran v2
    rejected = sim.registry.get("digits", v2)
    assert rejected.approval is ApprovalStatus.REJECTED
    assert "sha256 mismatch" in rejected.approval_description


def test_causes_explain_only_a_failed_job_gate(sim: Fleet) -> None:
    v1 = complete_first_version(sim)
    v2 = register(sim.registry, sim.fleet, "job-2")
    control.start_rollout(sim.ctx, "digits", v2)
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 20, failed=1, causes=("dev-9: disk full",))  # 0.05 <= 0.1: the gate passes
    sim.report("dev-0", v1, state="rejected")

    decision = control.step(sim.ctx, "digits").decision

    assert "activation_failure_rate" in decision.reason
    assert "disk full" not in decision.reason


def test_a_bad_first_version_is_reverted_to_serving_no_model(sim: Fleet) -> None:
    v1 = register(sim.registry, sim.fleet, "job-1")
    control.start_rollout(sim.ctx, "digits", v1)
    control.step(sim.ctx, "digits")
    sim.jobs_done("canary", 1)
    sim.report("dev-0", v1, errors=40)

    assert control.step(sim.ctx, "digits").rollout.state is RolloutState.ROLLING_BACK
    canary = sim.ring_deployment("canary")
    assert model_component_name("digits") not in canary.components
    assert canary.components[INFERENCE_COMPONENT].merge["modelComponent"] == ""


def test_starting_needs_an_approved_gate_passing_version_and_no_other_active_rollout(sim: Fleet) -> None:
    with pytest.raises(NotFoundError):
        control.start_rollout(sim.ctx, "digits", 9)
    v1 = register(sim.registry, sim.fleet, "job-1")
    v2 = register(sim.registry, sim.fleet, "job-2")
    sim.registry.set_approval("digits", v2, ApprovalStatus.PENDING)
    with pytest.raises(InvalidTransitionError, match="PendingManualApproval"):
        control.start_rollout(sim.ctx, "digits", v2)
    control.start_rollout(sim.ctx, "digits", v1)
    sim.registry.set_approval("digits", v2, ApprovalStatus.APPROVED)
    with pytest.raises(ConflictError, match="already has an active rollout"):
        control.start_rollout(sim.ctx, "digits", v2)


def test_a_version_that_failed_its_gate_never_starts(sim: Fleet) -> None:
    manifest = manifest_for(FAKE_ONNX)
    failed = replace(manifest, gate=replace(manifest.gate, passed=False))
    record = sim.registry.register(
        failed, training_job="job-x", artifact_uri="s3://a/x", manifest_uri="s3://a/m", approval=ApprovalStatus.APPROVED
    )
    with pytest.raises(ValidationError, match="failed its accuracy gate"):
        control.start_rollout(sim.ctx, "digits", record.version)
    assert sim.ctx.rollouts.active("digits") is None


def test_a_controller_that_crashed_after_deploying_finishes_the_step_on_its_next_run(
    sim: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = register(sim.registry, sim.fleet, "job-1")
    control.start_rollout(sim.ctx, "digits", v1)
    real_save = sim.ctx.rollouts.save

    def crash(rollout: Any) -> None:
        raise RuntimeError("Lambda timed out")

    monkeypatch.setattr(sim.ctx.rollouts, "save", crash)
    with pytest.raises(RuntimeError):
        control.step(sim.ctx, "digits")
    first = sim.ring_deployment("canary").deployment_id
    monkeypatch.setattr(sim.ctx.rollouts, "save", real_save)

    result = control.step(sim.ctx, "digits")

    assert result.rollout.state is RolloutState.IN_RING
    assert sim.ring_deployment("canary").deployment_id == first, "the deployment was not made twice"


def test_a_controller_that_loses_the_race_changes_nothing(sim: Fleet) -> None:
    v1 = register(sim.registry, sim.fleet, "job-1")
    control.start_rollout(sim.ctx, "digits", v1)
    stale = sim.ctx.rollouts.active("digits")
    control.step(sim.ctx, "digits")  # the first controller moves the rollout into the canary
    moved = sim.ctx.rollouts.active("digits")

    class ReadBeforeTheMove:
        """The second controller's view: it read the rollout before the first one wrote."""

        def __init__(self, inner: MemoryRolloutStore) -> None:
            self.inner = inner

        def active(self, model_name: str) -> Any:
            return stale

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    result = control.step(replace(sim.ctx, rollouts=ReadBeforeTheMove(sim.ctx.rollouts)), "digits")

    assert not result.applied
    assert sim.ctx.rollouts.active("digits") == moved
    assert [d.decision for d in sim.ctx.rollouts.decisions("digits", v1)] == ["start", "promote"]


@pytest.mark.parametrize(
    ("order", "state"),
    [
        (Command.PAUSE, RolloutState.HALTED),
        (Command.ABORT, RolloutState.ROLLING_BACK),
        (Command.PROMOTE, RolloutState.IN_RING),
    ],
)
def test_operator_commands(sim: Fleet, order: Command, state: RolloutState) -> None:
    v1 = register(sim.registry, sim.fleet, "job-1")
    control.start_rollout(sim.ctx, "digits", v1)
    control.step(sim.ctx, "digits")
    result = control.command(sim.ctx, "digits", order, "INC-7")
    assert result.rollout.state is state
    assert result.rollout.reason == f"{order} by operator: INC-7"
    if order is Command.PROMOTE:
        assert sim.ring_deployment("broad") is not None, "a forced promotion deploys the next ring"
    if order is Command.PAUSE:
        assert control.step(sim.ctx, "digits").rollout.state is RolloutState.HALTED, "a halted rollout waits"
        assert control.command(sim.ctx, "digits", Command.RESUME).rollout.state is RolloutState.IN_RING


def test_a_command_that_does_not_apply_changes_nothing(sim: Fleet) -> None:
    v1 = register(sim.registry, sim.fleet, "job-1")
    control.start_rollout(sim.ctx, "digits", v1)
    control.step(sim.ctx, "digits")
    with pytest.raises(InvalidTransitionError, match="resume applies only"):
        control.command(sim.ctx, "digits", Command.RESUME)
    with pytest.raises(NotFoundError, match="no active rollout"):
        control.command(sim.ctx, "other", Command.PAUSE)


def test_health_documents_count_once_and_refuse_a_report_from_another_thing(sim: Fleet) -> None:
    v1 = register(sim.registry, sim.fleet, "job-1")
    assert sim.report("dev-0", v1).counted
    report = HealthReport.from_reported(sim.ctx.health.reports["dev-0"])
    again = control.ingest_health(sim.ctx, "dev-0", report.to_reported(), sim.shadow["dev-0"], RINGS.__getitem__)
    assert not again.counted
    with pytest.raises(ValidationError, match=r"health\.thing_name"):
        control.ingest_health(sim.ctx, "dev-1", report.to_reported(), 99, RINGS.__getitem__)
    with pytest.raises(ValidationError, match="health"):
        control.ingest_health(sim.ctx, "dev-0", {"schema_version": 2}, 100, RINGS.__getitem__)
