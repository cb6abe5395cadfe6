"""`edgeloop demo`: the whole loop on one machine, from training through ring-by-ring rollouts to health read back.

With inject_bad_model the demo also rolls out simulated bad candidates (edgeloop.local.candidates), one per
kind: each must be stopped where it should be (device verification, or the canary's gates), the canary must
return to last-known-good, and a second honest version then completes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeloop.cloud.fleet import DeploymentInfo
from edgeloop.cloud.rollout_control import RolloutContext
from edgeloop.core.errors import EdgeloopError, UsageError
from edgeloop.core.events import SAGEMAKER_SOURCE, SCHEDULED_EVENT, SCHEDULER_SOURCE, TRAINING_JOB_STATE_CHANGE
from edgeloop.core.evidence import EVIDENCE_TAG, GateEvidence
from edgeloop.core.health import HealthReport
from edgeloop.core.names import (
    HEALTH_SHADOW,
    INFERENCE_COMPONENT,
    TRAINING_OUTPUT_PREFIX,
)
from edgeloop.core.registry import ApprovalStatus, RegistryRecord
from edgeloop.core.rollout import HARD_GATES, DecisionEntry, Gates, Ring, Rollout, RolloutPolicy, RolloutState
from edgeloop.local import candidates
from edgeloop.local.candidates import EXPECTED_STOPS
from edgeloop.local.demo_options import MAX_DEVICES, SUMMARY_FILE, DemoOptions
from edgeloop.local.greengrass import ExecutionStatus
from edgeloop.local.report import with_cost, write_report
from edgeloop.local.sim.scenario import BadKind
from edgeloop.local.stack import ACCOUNT, REGION, LocalStack, eventbridge_event
from edgeloop.training import TrainingConfig, TrainingResult, train

SETTLE_TIMEOUT_S = 120.0
Progress = Callable[[str], None]


def run_demo(options: DemoOptions, progress: Progress) -> dict[str, Any]:
    """Run the loop end to end and write DIR/summary.json; any broken promise raises instead."""
    started = time.monotonic()
    clock = DemoClock()
    with (
        tempfile.TemporaryDirectory(prefix="edgeloop-demo-") as work,
        LocalStack(Path(work), rollout_policy=DEMO_POLICY, clock=clock) as stack,
    ):
        progress(f"local stack up: moto server at {stack.endpoint}, IoT Core stand-in at port {stack.iot_core.port}")
        stack.provision(options.model_name)
        things = [f"edgeloop-device-{i:03d}" for i in range(1, options.devices + 1)]
        for index, thing in enumerate(things):
            stack.add_device(thing, ring=CANARY if index < CANARY_DEVICES else BROAD)
        progress(
            f"provisioned buckets, model package group, rollout tables, fleet and ring groups, {len(things)} "
            f"simulated core devices ({CANARY_DEVICES} pinned to {CANARY}, the rest in {BROAD})"
        )
        demo = DemoSession(stack, options, Path(work), clock, progress, things)
        first = demo.train_and_publish("v-first", options.seed)
        traffic = Traffic(stack, things, first.trained)
        demo.roll_out(first.record, traffic)
        bad_versions = []
        for kind in options.inject_bad_model:
            bad = demo.train_and_publish(f"v-bad-{kind}", options.seed, bad=kind)
            bad_versions.append(bad.record.version)
            demo.roll_out(bad.record, traffic)
        if options.inject_bad_model:
            good = demo.train_and_publish("v-good", options.seed + 1)
            demo.roll_out(good.record, traffic)
        final = stack.registry.get(options.model_name, demo.completed[-1])
        truth = traffic.truth
        truth.update(_stream(stack, things, first.trained))
        progress(f"streamed {len(first.trained.y_holdout)} held-out samples through the devices")
        _wait_until_settled(stack, progress)
        reports = {thing: _stop_device(stack, thing) for thing in things}
        _wait_for_final_shadows(stack, reports)
        summary = _summary(stack, final, things, truth)
        summary["rollouts"] = demo.rollouts
        summary["run"] = {
            "wall_s": round(time.monotonic() - started, 2),
            "injected_bad_versions": bad_versions,
            "health_documents_counted": stack.health_rule.counted,
            "health_documents_refused": stack.health_rule.refused,
        }
    _check_promises(summary, options.devices)
    summary = with_cost(summary)
    write_summary(options.out, summary)
    write_report(options.out, summary)
    return summary


CANARY, BROAD = "canary", "broad"
CANARY_DEVICES = 1
"""Devices pinned to the canary ring by their edgeloopRing attribute, so the canary is never empty."""
DEMO_P99_RATIO = 5.0
"""The relative latency gate, generous: the simulated devices share this machine's CPUs, so their p99s (batch
latencies, in LATENCY_BUCKETS_MS buckets 1, 2, 5, 10 ms...) partly measure the host. Honest candidates measured
0.2-1x last-known-good; 5 lets the canary sit two buckets above the slowest device on last-known-good, while
the simulated slow candidate (candidates.heavy_subgraph: 100 ms or more per run) lands at 20x or more."""
TICK_SIM_S = 30.0
"""How far the demo's clock moves per controller tick: bake times and IoT job rates pass in seconds."""
TICK_REAL_S = 0.25
ROWS_PER_TICK = 3
"""Held-out rows each device answers per tick, so every ring has traffic to judge."""
ROLLOUT_TIMEOUT_S = 120.0
"""Wall-clock seconds one rollout may take before the demo gives up on it."""
DEMO_POLICY = RolloutPolicy(
    rings=(
        Ring(CANARY, 0.2, bake_s=60, min_devices=1),
        Ring(BROAD, 0.8, bake_s=60, min_devices=MAX_DEVICES),
    ),
    gates=Gates(max_p99_latency_ratio=DEMO_P99_RATIO, min_inferences=20),
    ring_timeout_s=3600,
)
"""The demo's rollout policy, on the demo's clock: a pinned canary, then everyone else, one simulated minute each.

Membership comes from the devices' edgeloopRing pins, so the shares only matter for unpinned devices."""


class DemoClock:
    """The demo's clock: simulated seconds that move on per controller tick (it starts at the wall clock)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on (the controller and the Greengrass stand-in read it)."""
        self.now += seconds


class Ticking(Protocol):
    """Whatever feeds the devices while the rollout controller ticks (the demo's held-out rows, a scenario)."""

    def tick(self) -> None: ...


class Traffic:
    """The devices' sensors: held-out rows, a few per device per tick, with the truth kept for accuracy.

    A device gets rows once it has a model: before its ring's deployment reaches it, it would refuse every one
    (no active model), and the summary showed dozens of rejected_inputs on each broad device with no word why.
    """

    def __init__(self, stack: LocalStack, things: list[str], trained: TrainingResult) -> None:
        self._stack, self._things, self._trained = stack, things, trained
        self._sent = 0
        self.truth: dict[str, int] = {}

    def tick(self) -> None:
        """Send ROWS_PER_TICK rows to every device."""
        x, y = self._trained.x_holdout, self._trained.y_holdout
        for thing in self._things:
            if self._stack.devices[thing].health().model_version is None:
                continue
            for _ in range(ROWS_PER_TICK):
                row = self._sent % len(x)
                request_id = f"{thing}-t{self._sent:06d}"
                self.truth[request_id] = int(y[row])
                self._stack.devices[thing].submit(request_id, np.asarray(x[row], dtype=np.float64).tolist())
                self._sent += 1


@dataclass(frozen=True)
class Candidate:
    """A trained and published version."""

    trained: TrainingResult
    record: RegistryRecord


class DemoSession:
    """The demo's steps that need the stack, its clock and the progress printer."""

    def __init__(
        self,
        stack: LocalStack,
        options: DemoOptions,
        work: Path,
        clock: DemoClock,
        progress: Progress,
        things: list[str],
    ) -> None:
        self.stack, self.options, self.work, self.clock, self.progress = stack, options, work, clock, progress
        self.things = things
        self.bus = stack.event_bus()
        self.rollouts: list[dict[str, Any]] = []
        self.completed: list[int] = []
        self.bad_kinds: dict[int, BadKind] = {}
        """Versions published as simulated bad candidates, and their kind."""
        self.deployments: list[DeploymentInfo] = []
        stack.greengrass.on_deployment(self.deployments.append)
        self.approve_by_hand = False
        """Scenarios approve what the policy leaves pending, as an operator watching the loop would."""
        self.tick_s = TICK_SIM_S
        """Simulated seconds per controller tick."""
        self.pause_s = TICK_REAL_S
        """Wall seconds per tick for threaded devices to answer; a stepped fleet answers within the tick (0)."""
        self.rollout_timeout_s = ROLLOUT_TIMEOUT_S
        self.device_health: Callable[[str], HealthReport] = lambda thing: stack.devices[thing].health()
        """A device's current health, read in-process (a stepped fleet keeps its devices apart from the stack)."""

    def train_and_publish(
        self, label: str, seed: int, *, bad: BadKind | None = None, config: Mapping[str, Any] | None = None,
        evidence: GateEvidence | None = None,
    ) -> Candidate:  # fmt: skip
        """Train (honestly, or as a simulated bad candidate of kind `bad`), publish through training_completed, approve.

        config adds TrainingConfig fields (a scenario's dataset channel, the lineage parent); evidence: the
        new-world gate's figures, tagged on the job so the version's canary sees them.
        """
        bad = None if bad is None else BadKind(bad)
        trained, event = _training_job(self.stack, self.options, self.work, label, seed, bad=bad, config=config,
                                       evidence=evidence)  # fmt: skip
        kind = f"simulated BAD candidate ({bad}: {candidates.DESCRIPTIONS[bad]})" if bad else "trained"
        self.progress(f"{kind} {trained.manifest.model_name}: holdout accuracy {trained.manifest.holdout_accuracy:.4f}")
        published = self.bus.put(event).result
        self.progress(
            f"training_completed λ: registered v{published['modelVersion']} ({published['approval']}), "
            f"component {published['componentName']} {published['componentVersion']}"
        )
        record = self.stack.registry.get(self.options.model_name, int(published["modelVersion"]))
        if bad is not None:
            self.bad_kinds[record.version] = bad
        if bad is BadKind.TAMPERED:
            candidates.tamper(self.stack.store, record.artifact_uri)
            self.progress(f"v{record.version}: {record.artifact_uri} modified after signing (simulated attacker)")
        if (bad or self.approve_by_hand) and record.approval is not ApprovalStatus.APPROVED:
            record = self.stack.registry.set_approval(
                record.model_name,
                record.version,
                ApprovalStatus.APPROVED,
                BAD_APPROVAL_REASON if bad else HAND_APPROVAL_REASON,
            )
            self.progress(f"v{record.version} approved by a (simulated) operator over the policy's verdict")
        if record.approval is not ApprovalStatus.APPROVED:
            raise EdgeloopError(f"{record.model_name} v{record.version} was not approved: {record.approval}")
        return Candidate(trained, record)

    def roll_out(
        self, record: RegistryRecord, traffic: Ticking, until: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        """Approval event -> model_approved starts the rollout; then scheduler ticks until it is final, or until
        `until` says the traffic has ended (a file streamed once: no request will ever reach the next gate, so
        the rollout is recorded as unfinished rather than waited on until the controller halts it)."""
        started = self.bus.put(self.stack.model_package_event(record)).result
        self.progress(f"model_approved λ: {started['status']}: {started['reason']}")
        if started["status"] != "rolling-out":
            raise EdgeloopError(f"v{record.version} did not start rolling out: {started['reason']}")
        ctx: RolloutContext = self.stack.rollout_context()
        shown = self._show(ctx, record.version, 0)
        deadline = time.monotonic() + self.rollout_timeout_s
        while True:
            self.step(traffic)
            shown = self._show(ctx, record.version, shown)
            rollout, _ = ctx.rollouts.get(record.model_name, record.version)
            if rollout.is_final or (until is not None and until()):
                break
            if time.monotonic() > deadline:
                raise EdgeloopError(
                    f"rollout of v{record.version} not final after {self.rollout_timeout_s:.0f} s: "
                    f"{rollout.state} in ring {rollout.ring} ({rollout.reason})"
                )
        entry = self._entry(ctx, rollout)
        self.rollouts.append(entry)
        if rollout.state is RolloutState.COMPLETED:
            self.completed.append(rollout.model_version)
        self.progress(
            f"rollout of v{rollout.model_version} {entry['outcome']}: rings {entry['rings_reached']}, "
            f"{entry['devices_on_version']} device(s) on it, reverted {_few(entry['reverted_devices'])}"
            + (f"; stopped by {entry['stopped_by']}" if entry["stopped_by"] else "")
        )
        return entry

    def step(self, traffic: Ticking) -> None:
        """One controller tick: traffic, the clock moves on, IoT jobs advance, the scheduled controller runs."""
        traffic.tick()
        if self.pause_s:
            time.sleep(self.pause_s)
        self.clock.advance(self.tick_s)
        self.stack.greengrass.advance()
        self.bus.invoke("rollout_controller", schedule_event())

    def _show(self, ctx: RolloutContext, version: int, shown: int) -> int:
        """Print the decisions logged since the last look, as they happen."""
        log = ctx.rollouts.decisions(self.options.model_name, version)
        for entry in log[shown:]:
            ring = DEMO_POLICY.rings[entry.ring].name
            self.progress(f"rollout v{version} [{ring}] {entry.decision}: {entry.reason}")
        return len(log)

    def _entry(self, ctx: RolloutContext, rollout: Rollout) -> dict[str, Any]:
        """The rollout as summary.json records it."""
        reached = list(DEMO_POLICY.ring_names[: rollout.ring + 1])
        health = ctx.health.aggregates(rollout.model_name, rollout.model_version).values()
        reverted: list[str] = []
        if rollout.state is RolloutState.ROLLED_BACK:
            for ring in reached:
                latest = self.stack.greengrass.latest_deployment(ctx.settings.ring_group_arn(ring))
                if latest is not None:
                    outcomes = self.stack.greengrass.outcomes(latest.deployment_id)
                    reverted += [o.thing_name for o in outcomes if o.status is ExecutionStatus.SUCCEEDED]
        record = self.stack.registry.get(rollout.model_name, rollout.model_version)
        decisions = ctx.rollouts.decisions(rollout.model_name, rollout.model_version)
        return {
            "version": rollout.model_version,
            "bad_kind": self.bad_kinds.get(rollout.model_version),
            "outcome": _outcome(rollout),
            "registry": {"approval": record.approval.value, "description": record.approval_description},
            "rings_reached": reached,
            "devices_on_version": sum(h.devices_on_version for h in health),
            "reverted_devices": sorted(reverted),
            **self._stop(rollout, record, decisions),
            "decisions": [d.to_dict() for d in decisions],
        }

    def _stop(self, rollout: Rollout, record: RegistryRecord, decisions: list[DecisionEntry]) -> dict[str, Any]:
        """Where a reverted version was stopped, what its deployments met, and who is not back on last-known-good."""
        reverts = [d.reason for d in decisions if d.decision == "revert" and " failed: " in d.reason]
        revert = reverts[0] if reverts and rollout.state is RolloutState.ROLLED_BACK else None
        failures = self._device_failures(record)
        good = self.completed[-1] if self.completed else None
        off_good = [t for t in self.things if self.device_health(t).model_version != good] if revert else []
        return {
            "stopped_by": candidates.stopped_by(revert, [f["detail"] for f in failures]) if revert else None,
            "reverted_by": candidates.reverted_by(revert),
            "last_known_good": good,
            "devices_off_last_known_good": off_good,
            "device_failures": failures,
        }

    def _device_failures(self, record: RegistryRecord) -> list[dict[str, str]]:
        """Devices whose deployment of this version failed, with the device's reason (its verification error)."""
        failures = []
        for deployment in self.deployments:
            component = deployment.components.get(record.component_name)
            if component is None or component.version != record.component_version:
                continue
            for outcome in self.stack.greengrass.outcomes(deployment.deployment_id):
                if outcome.status is ExecutionStatus.FAILED:
                    failures.append({"thing_name": outcome.thing_name, "detail": outcome.detail})
        return failures


def _few(things: list[str], shown: int = 5) -> str:
    """A list of things for a progress line: all of a few, the first few and a count of many."""
    if not things:
        return "none"
    more = f" and {len(things) - shown} more" if len(things) > shown else ""
    return ", ".join(things[:shown]) + more


BAD_APPROVAL_REASON = "demo --inject-bad-model: a bad candidate approved by hand (simulated operator error)"
"""Only the inaccurate kind needs it: the others look honest to the registry's policy, which approves them."""
HAND_APPROVAL_REASON = "demo --scenario: approved by the (simulated) operator running the scenario"


def schedule_event() -> dict[str, Any]:
    """The EventBridge schedule's event that ticks the rollout controller."""
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/edgeloop-local-rollout-controller"
    return eventbridge_event(SCHEDULED_EVENT, SCHEDULER_SOURCE, [rule], {})


def _training_job(
    stack: LocalStack,
    options: DemoOptions,
    work: Path,
    label: str,
    seed: int,
    *,
    bad: BadKind | None = None,
    config: Mapping[str, Any] | None = None,
    evidence: GateEvidence | None = None,
) -> tuple[TrainingResult, dict[str, Any]]:
    """Run the training entry point as a SageMaker job would, and build the job's completion event.

    bad makes the job's output a simulated bad candidate (edgeloop.local.candidates): inaccurate trains on
    shuffled labels; slow and selftest rewrite the trained model folder before it is packed (a slow graph with
    an honest manifest; golden labels that do not match). Tampering happens later, to the published artifact.
    """
    job = f"edgeloop-{options.model_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{label}"
    sagemaker = stack.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification={"TrainingImage": "edgeloop-training:local", "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/edgeloop-training",
        OutputDataConfig={"S3OutputPath": f"s3://{stack.names.data_bucket}/{TRAINING_OUTPUT_PREFIX.rstrip('/')}"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters={"model_name": options.model_name, "seed": str(seed)},
        **({} if evidence is None else {"Tags": [{"Key": EVIDENCE_TAG, "Value": evidence.to_text()}]}),
    )
    model_dir = work / "training" / label / "model"
    extra: dict[str, Any] = dict(config or {})
    if bad is BadKind.INACCURATE:
        extra = candidates.shuffled_digits(work / "training" / label / "train", seed)
    result = train(
        TrainingConfig(
            model_dir=model_dir,
            model_name=options.model_name,
            output_data_dir=work / "training" / label / "output",
            seed=seed,
            training_job=job,
            **extra,
        )
    )
    if bad is BadKind.SLOW:
        result = replace(result, manifest=candidates.slow_down(model_dir, result.x_holdout))
    elif bad is BadKind.SELFTEST:
        result = replace(result, manifest=candidates.wrong_golden(model_dir))
    described = sagemaker.describe_training_job(TrainingJobName=job)
    stack.store.put(described["ModelArtifacts"]["S3ModelArtifacts"], _tar_gz(model_dir))
    detail = {k: _jsonable(v) for k, v in described.items() if k != "ResponseMetadata"}
    if evidence is not None:  # the state change event carries the job's tags as a map
        detail["Tags"] = {EVIDENCE_TAG: evidence.to_text()}
    event = eventbridge_event(
        TRAINING_JOB_STATE_CHANGE, SAGEMAKER_SOURCE, [described["TrainingJobArn"]], detail, f"local-{job}"
    )
    return result, event


def _tar_gz(model_dir: Path) -> bytes:
    """model.tar.gz exactly as SageMaker packs SM_MODEL_DIR (entries under ./)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=f"./{path.name}")
    return buffer.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _stream(stack: LocalStack, things: list[str], trained: TrainingResult) -> dict[str, int]:
    """Send held-out rows round-robin to the devices; returns request id -> true label index."""
    truth: dict[str, int] = {}
    x, y = trained.x_holdout, trained.y_holdout
    for index in range(len(x)):
        thing = things[index % len(things)]
        request_id = f"{thing}-{index:05d}"
        truth[request_id] = int(y[index])
        stack.devices[thing].submit(request_id, np.asarray(x[index], dtype=np.float64).tolist())
    return truth


def _wait_until_settled(stack: LocalStack, progress: Progress) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = ""
    while True:
        reports = [d.health() for d in stack.devices.values()]
        produced = sum(r.records_produced for r in reports)
        delivered = sum(r.records_delivered for r in reports)
        answered = sum(r.inferences + r.rejected_inputs for r in reports)
        line = f"devices answered {answered}, records {delivered}/{produced}"
        if line != last:
            progress(line)
            last = line
        if all(d.settled() for d in stack.devices.values()):
            return
        if time.monotonic() > deadline:
            raise EdgeloopError(f"devices did not deliver everything within {SETTLE_TIMEOUT_S:.0f} s ({line})")
        time.sleep(0.2)


def _stop_device(stack: LocalStack, thing: str) -> HealthReport:
    """Stop one device (it forwards and reports a last time) and return its final in-process health."""
    device = stack.devices[thing]
    device.stop()
    if device.final_health is None:
        raise EdgeloopError(f"{thing} stopped without a final health report")
    return device.final_health


def _wait_for_final_shadows(stack: LocalStack, final: dict[str, HealthReport]) -> None:
    """The shadow service runs after the broker's PUBACK; wait until every last report has landed."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    pending = dict(final)
    while pending:
        stack.iot_core.drain()
        for thing, report in list(pending.items()):
            reported = _read_shadow(stack, thing)["state"]["reported"]
            if (
                reported.get("records_produced") == report.records_produced
                and reported.get("records_delivered") == report.records_delivered
            ):
                del pending[thing]
        if pending and time.monotonic() > deadline:
            raise EdgeloopError(f"final health reports never reached the shadows of {sorted(pending)}")
        if pending:
            time.sleep(0.1)


def _read_shadow(stack: LocalStack, thing: str) -> dict[str, Any]:
    payload = stack.client("iot-data").get_thing_shadow(thingName=thing, shadowName=HEALTH_SHADOW)["payload"]
    document: dict[str, Any] = json.loads(payload.read())
    return document


def _summary(stack: LocalStack, record: RegistryRecord, things: list[str], truth: dict[str, int]) -> dict[str, Any]:
    devices = []
    produced = delivered = 0
    for thing in things:
        shadow = _read_shadow(stack, thing)
        health = HealthReport.from_shadow(shadow)
        results = stack.results.results(thing)
        on_final = [d for d in results if d.result.model_version == record.version]
        correct = sum(1 for d in on_final if truth[d.result.request_id] == d.result.label_index)
        produced += health.records_produced
        delivered += stack.results.delivered_count(thing)
        devices.append(
            {
                "thing_name": thing,
                "ring": DEMO_POLICY.rings[stack.rings.ring_of(thing)].name,
                "model_version": health.model_version,
                "versions_answered": sorted({d.result.model_version for d in results}),
                "inferences": health.inferences,
                "results_delivered": len(results),
                "stream_accuracy": round(correct / len(on_final), 4) if on_final else None,
                "health": shadow["state"]["reported"],
                "shadow_version": shadow.get("version"),
            }
        )
    return {
        "model": {
            "name": record.model_name,
            "version": record.version,
            "sha256": record.sha256,
            "holdout_accuracy": round(record.holdout_accuracy, 4),
            "approval": record.approval.value,
            "signed": record.signed,
            "package_arn": record.package_arn,
            "component": f"{record.component_name} {record.component_version}",
            "inference_component": f"{INFERENCE_COMPONENT} {stack.inference_version}",
        },
        "devices": devices,
        "records": {
            "produced": produced,
            "delivered": delivered,
            "lost": produced - delivered,
            "duplicates_ignored": stack.results.duplicates,
        },
        "cloud": {
            "shadow_updates_accepted": stack.shadows.accepted,
            "shadow_updates_rejected": stack.shadows.rejected,
            "rule_failures": stack.iot_core.rule_failures,
        },
    }


def _check_promises(summary: dict[str, Any], devices: int) -> None:
    """The demo fails, and writes nothing, if the loop broke any promise it makes."""
    problems = []
    version = summary["model"]["version"]
    rolled_out = {r["version"] for r in summary["rollouts"]}
    if len(summary["devices"]) != devices:
        problems.append(f"{len(summary['devices'])} devices reported, expected {devices}")
    for device in summary["devices"]:
        stray = sorted(set(device["versions_answered"]) - rolled_out)
        if stray:
            problems.append(f"{device['thing_name']} answered with model version(s) {stray} never rolled out")
        if device["model_version"] != version or device["health"].get("model_version") != version:
            problems.append(f"{device['thing_name']} reports model v{device['health'].get('model_version')}")
        if device["inferences"] <= 0:
            problems.append(f"{device['thing_name']} made no inferences")
        if summary["model"]["signed"] and device["health"].get("model_signed") is not True:
            problems.append(f"{device['thing_name']} did not verify the model's signature")
    problems += _rollout_problems(summary)
    if summary["records"]["lost"] != 0:
        problems.append(f"{summary['records']['lost']} records lost")
    if problems:
        raise EdgeloopError("the loop did not close: " + "; ".join(problems))


def _rollout_problems(summary: dict[str, Any]) -> list[str]:
    """Bad candidates reverted in the canary with nobody left on them; every other rollout completed."""
    problems = []
    bad = set(summary["run"].get("injected_bad_versions", []))
    for rollout in summary["rollouts"]:
        version, outcome = rollout["version"], rollout["outcome"]
        if version in bad or rollout.get("bad_kind"):
            problems += _bad_rollout_problems(summary, rollout)
        elif outcome != "completed":
            problems.append(f"v{version} did not complete its rollout ({outcome})")
    if summary["rollouts"] and summary["rollouts"][-1]["version"] != summary["model"]["version"]:
        problems.append("the fleet does not end on the last completed version")
    return problems


def _bad_rollout_problems(summary: dict[str, Any], rollout: dict[str, Any]) -> list[str]:
    """One bad candidate: reverted in the canary, nobody left on it, stopped where its kind must be stopped."""
    problems = []
    version, outcome = rollout["version"], rollout["outcome"]
    if outcome != "reverted" or rollout["rings_reached"] != [DEMO_POLICY.ring_names[0]]:
        problems.append(f"bad v{version} was not halted in the canary ({outcome}, {rollout['rings_reached']})")
    if rollout["devices_on_version"] or any(d["model_version"] == version for d in summary["devices"]):
        problems.append(f"devices are still on bad v{version}")
    reached = sorted(d["thing_name"] for d in summary["devices"] if d["ring"] in rollout["rings_reached"])
    if rollout["reverted_devices"] != reached:
        problems.append(f"bad v{version}: {reached} got it but {rollout['reverted_devices']} were reverted")
    if rollout.get("devices_off_last_known_good"):
        off, good = rollout["devices_off_last_known_good"], rollout["last_known_good"]
        problems.append(f"after bad v{version}, {off} were not back on last-known-good v{good}")
    kind = rollout.get("bad_kind")
    if kind is None:
        return problems
    expected, stopped = EXPECTED_STOPS[BadKind(kind)], rollout.get("stopped_by") or "nothing"
    if not stopped.startswith(expected.by) or expected.what not in stopped:
        problems.append(f"{kind} v{version} was stopped by {stopped}, not by {expected.by}: {expected.what}")
    if not expected.on_device:
        return problems
    answered = sorted(d["thing_name"] for d in summary["devices"] if version in d["versions_answered"])
    if answered:
        problems.append(f"{kind} v{version} should never have run, but {answered} answered with it")
    reverted = rollout.get("reverted_by") or "nothing"
    if not any(gate in reverted for gate in HARD_GATES):
        problems.append(f"{kind} v{version} was reverted by {reverted}, not by a job or activation failure gate")
    return problems


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    """Write DIR/summary.json atomically: a reader never sees half a file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=out, prefix=f".{SUMMARY_FILE}.")
    except OSError as exc:
        raise UsageError("--out", f"cannot write {out / SUMMARY_FILE}: {exc.strerror or exc}") from exc
    target = out / SUMMARY_FILE
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


UNFINISHED = "unfinished"
"""A rollout still in its rings when a file stream ran out: neither completed nor reverted."""


def _outcome(rollout: Rollout) -> str:
    """completed, reverted (stopped or rolled back), or unfinished (the stream ended first)."""
    if rollout.state is RolloutState.COMPLETED:
        return "completed"
    return "reverted" if rollout.is_final else UNFINISHED
