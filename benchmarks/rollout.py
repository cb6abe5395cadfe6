"""The rollout controller's cost: how long one decision takes, and how many port calls one rollout makes.

Setup, per (devices, rings): a policy of that many rings, each device placed by edgeloop.core.rings.ring_for.
The fleet's aggregates are built the way health ingest builds them: each device's report goes through
edgeloop.core.fleet_health.contribution into the in-memory MemoryFleetHealthStore (record), one report per
device once its ring targets the candidate. Then:

- decide_ms: median over repeats of edgeloop.core.rollout.decide on the last ring's aggregates (every device
  reporting); step_ms: median of a full edgeloop.cloud.rollout_control.step on the in-memory ports while
  the last ring bakes (a wait: the same reads as any step, no state change).
- api_calls_per_rollout: every call the controller (start_rollout + each step until COMPLETED) makes on
  its ports (rollout store, fleet-health store, registry, fleet control), counted by wrapping them.
  Health ingest's writes are not counted: they are per report, not per rollout.

    python benchmarks/rollout.py [--quick]

Prints one line per (devices, rings) run, then, as its last line, one JSON object with the keys devices,
rings, decide_ms, api_calls_per_rollout (the 10,000-device, 4-ring run).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from _common import emit, parse_args

from edgeloop.cloud import rollout_control as control
from edgeloop.cloud.fleet import DeploymentProgress, MemoryFleetControl
from edgeloop.cloud.registry import MemoryRegistry
from edgeloop.cloud.rollout_stores import MemoryFleetHealthStore, MemoryRolloutStore
from edgeloop.core.fleet_health import DeviceSnapshot, contribution
from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.manifest import (
    Artifact,
    Baseline,
    FeatureBaseline,
    Gate,
    Golden,
    InputSchema,
    Lineage,
    ModelManifest,
    OutputSchema,
)
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.rings import ring_for
from edgeloop.core.rollout import Ring, RolloutPolicy, RolloutState, decide
from edgeloop.core.settings import CloudSettings

KEYS = ("devices", "rings", "decide_ms", "api_calls_per_rollout")
MODEL = "digits"
GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
BAKE_S = 600.0
SHARES = {2: (0.1, 0.9), 4: (0.05, 0.15, 0.3, 0.5)}
"""Ring shares per ring count; the first ring is small, as a canary is."""
SIZES = ((100, 2), (10_000, 2), (100, 4), (10_000, 4))


class Counted:
    """A port whose every method call is counted under '<port>.<method>'."""

    def __init__(self, target: Any, port: str, counts: Counter[str]) -> None:
        self._target, self._port, self._counts = target, port, counts

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counts[f"{self._port}.{name}"] += 1
            return attribute(*args, **kwargs)

        return call


class Clock:
    """The controller's clock, moved by hand past each ring's bake time."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def policy_of(rings: int) -> RolloutPolicy:
    """rings rings of SHARES, each baking BAKE_S, at least one device each."""
    specs = tuple(Ring(f"ring{i}", share, bake_s=BAKE_S, min_devices=1) for i, share in enumerate(SHARES[rings]))
    return RolloutPolicy(rings=specs, ring_timeout_s=4 * BAKE_S)


def manifest() -> ModelManifest:
    """A valid manifest; the controller never opens the artifact it names."""
    artifact = b"not run by the controller"
    return ModelManifest(
        model_name=MODEL,
        created_at="2026-11-24T12:00:00Z",
        artifacts=(Artifact("model.onnx", hashlib.sha256(artifact).hexdigest(), len(artifact), "fp32"),),
        selected="model.onnx",
        input=InputSchema("input", "float32", ("a", "b"), 0.0, 16.0),
        output=OutputSchema("probabilities"),
        labels=("0", "1"),
        metrics={"fp32": {"accuracy": 0.97}},
        golden=Golden(inputs=((1.0, 2.0),), labels=(1,)),
        lineage=Lineage("builtin:bench", "0" * 64, "job-1", "0.1.0", {"seed": "0"}),
        gate=Gate(metric="accuracy", bound=0.01, drop=0.0, passed=True),
        baseline=Baseline(
            rows=100,
            features=tuple(FeatureBaseline(n, 8.0, 8.0, 0.0, 16.0, (4.0, 8.0, 12.0), (0.25,) * 4) for n in ("a", "b")),
            confidence_mean=0.9,
            confidence_edges=(0.5, 0.9),
            confidence_fractions=(0.1, 0.3, 0.6),
        ),
    )


def report(thing: str, version: int, at: float) -> HealthReport:
    """A healthy device on the candidate: 50 inferences, no errors, good confidence."""
    return HealthReport(
        thing_name=thing,
        model_name=MODEL,
        model_version=version,
        model_state=ModelState.ACTIVE,
        model_detail="",
        inferences=50,
        rejected_inputs=0,
        errors=0,
        latency=LatencySummary(1.0, 2.0, 3.0, 4.0, 50),
        buffer_depth=0,
        records_produced=1,
        records_delivered=1,
        connected=True,
        reported_at=at,
        mean_confidence=0.9,
    )


class Simulation:
    """One fleet and one controller on the in-memory ports; the controller's ports count their calls."""

    def __init__(self, devices: int, rings: int) -> None:
        self.policy = policy_of(rings)
        self.clock = Clock()
        self.counts: Counter[str] = Counter()
        self.health = MemoryFleetHealthStore()
        self.fleet = MemoryFleetControl()
        registry = MemoryRegistry()
        registry.ensure_group(MODEL)
        self.fleet.create_component_version({"ComponentName": INFERENCE_COMPONENT, "ComponentVersion": "0.1.0"})
        record = registry.register(
            manifest(),
            training_job="job-1",
            artifact_uri="s3://a/m",
            manifest_uri="s3://a/j",
            approval=ApprovalStatus.APPROVED,
        )
        self.fleet.create_component_version(
            {"ComponentName": record.component_name, "ComponentVersion": record.component_version}
        )
        self.version = record.version
        settings = replace(
            CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", None, "s3://d/out/"), rollout_policy=self.policy
        )
        self.ctx = control.RolloutContext(
            rollouts=Counted(MemoryRolloutStore(), "rollouts", self.counts),
            health=Counted(self.health, "health", self.counts),
            registry=Counted(registry, "registry", self.counts),
            fleet=Counted(self.fleet, "fleet", self.counts),
            settings=settings,
            clock=self.clock,
        )
        names, shares = self.policy.ring_names, self.policy.shares
        self.members: list[list[str]] = [[] for _ in names]
        for index in range(devices):
            thing = f"bench-{index:06d}"
            self.members[ring_for(thing, names, shares)].append(thing)
        self.shadow = 0

    def ring_reports(self, ring: int) -> None:
        """Every device of the ring reports the candidate once, counted as health ingest counts it."""
        self.shadow += 1
        for thing in self.members[ring]:
            previous = self.health.device(thing) or DeviceSnapshot(thing, ring)
            health = report(thing, self.version, self.clock.now)
            done = contribution(previous, health, self.shadow, self.version)
            assert done is not None
            self.health.record(MODEL, done, previous, health.to_reported())

    def jobs_done(self, ring: int) -> None:
        """The ring's deployment job succeeded on every member."""
        target = self.ctx.settings.ring_group_arn(self.policy.rings[ring].name)
        latest = self.fleet.latest_deployment(target)
        assert latest is not None
        size = len(self.members[ring])
        self.fleet.record_progress(latest.deployment_id, DeploymentProgress(size, size, 0))

    def rollout(self) -> int:
        """Start and step through every ring until COMPLETED; the port calls that took."""
        control.start_rollout(self.ctx, MODEL, self.version)
        result = control.step(self.ctx, MODEL)  # PENDING -> ring 0
        while result is not None and result.rollout.state is RolloutState.IN_RING:
            ring = result.rollout.ring
            self.jobs_done(ring)
            self.ring_reports(ring)
            self.clock.now += BAKE_S + 1
            result = control.step(self.ctx, MODEL)
        if result is None or result.rollout.state is not RolloutState.COMPLETED:
            raise SystemExit(f"benchmark bug: the rollout did not complete ({result})")
        return sum(self.counts.values())


def median_ms(call: Any, repeats: int) -> float:
    """Median wall time of call() in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def timings(devices: int, rings: int, repeats: int) -> tuple[float, float]:
    """decide_ms on the last ring with every device reporting, and step_ms while that ring bakes."""
    sim = Simulation(devices, rings)
    control.start_rollout(sim.ctx, MODEL, sim.version)
    result = control.step(sim.ctx, MODEL)
    while result is not None and result.rollout.ring < rings - 1:
        sim.jobs_done(result.rollout.ring)
        sim.ring_reports(result.rollout.ring)
        sim.clock.now += BAKE_S + 1
        result = control.step(sim.ctx, MODEL)
    assert result is not None
    last = rings - 1
    sim.jobs_done(last)
    sim.ring_reports(last)
    rollout = result.rollout
    aggregates = sim.health.aggregates(MODEL, sim.version)
    assert sum(h.devices_on_version for h in aggregates.values()) == devices
    decide_ms = median_ms(lambda: decide(rollout, sim.policy, aggregates, None, sim.clock.now), repeats)
    step_ms = median_ms(lambda: control.step(sim.ctx, MODEL), repeats)  # baking: a wait
    return decide_ms, step_ms


def main() -> None:
    args = parse_args(__doc__.split("\n", 1)[0])
    repeats = 20 if args.quick else 200
    headline: dict[str, object] = {}
    for devices, rings in SIZES:
        sim = Simulation(devices, rings)
        calls = sim.rollout()
        decide_ms, step_ms = timings(devices, rings, repeats)
        per_port = ", ".join(f"{k} {v}" for k, v in sorted(sim.counts.items()))
        print(
            f"devices {devices:>6}  rings {rings}  decide_ms {decide_ms:.3f}  step_ms {step_ms:.3f}  "
            f"api_calls_per_rollout {calls}  ({per_port})",
            flush=True,
        )
        headline = {
            "devices": devices,
            "rings": rings,
            "decide_ms": round(decide_ms, 4),
            "api_calls_per_rollout": calls,
        }
    emit(headline, KEYS)


if __name__ == "__main__":
    main()
