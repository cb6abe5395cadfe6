"""`edgeloop demo --scenario`: the closed loop on the local stack, drift to recovery, on a virtual clock.

Steps, all through the real code: the first model is trained on the scenario's first rows and rolled out
through the rings; the rest of the data streams to a stepped fleet (edgeloop.local.fleet: every device runs
the real runtime, buffer and forwarder, advanced together one virtual-clock step at a time), changed by the
scenario's drift events (edgeloop.local.world) and cut off by its outages (edgeloop.local.sim.outages); devices
score drift and sample hard examples through their privacy filter; samples reach the sample ingest through
the samples topic rule; the oracle labeller (a simulation stand-in that reads the scenario's true labels)
labels them label_delay_s later; a change is detected when the live version's labelled errors alarm
(edgeloop.core.detectors) or the fleet's drift score stays high (edgeloop.local.recovery); a retrain then
learns the new concept from recent labels, with old rows only where cross-validation on those labels says
they help (edgeloop.local.retrain), and again each time the concept's labels double; a candidate is
registered only if it beats the deployed version on recent labels (the new-world gate,
edgeloop.core.retraining.new_world_gate), then goes through approval and the rings (parent: last-known-good),
and so do the scenario's bad candidates, which must be stopped. The summary scores each known change
(edgeloop.local.scoring: detection delay, false alarms, recovery against a cross-fitted oracle), delivery and
duplicates through the outages, and a timeline for report.html.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.cloud.sample_ingest import SampleRef
from edgeloop.core.detectors import observation_of, reference_from_manifest
from edgeloop.core.errors import EdgeloopError, ValidationError
from edgeloop.core.manifest import Reliability
from edgeloop.core.records import InferenceBatch
from edgeloop.core.retraining import new_world_gate
from edgeloop.core.rollout import VersionHealth
from edgeloop.core.sample_budget import DEFAULT_BUDGET_SHARE, DEFAULT_SAMPLERS
from edgeloop.device.onnx_session import SessionPool
from edgeloop.local import demo as base
from edgeloop.local import scoring
from edgeloop.local.demo_options import MAX_DEVICES, DemoOptions
from edgeloop.local.fleet import FleetDownloads, SteppedDevice
from edgeloop.local.ledger import Ledger, request_index
from edgeloop.local.link import Network
from edgeloop.local.recovery import Moment, Recovery, old_rows
from edgeloop.local.report import with_cost, write_report
from edgeloop.local.retrain import FAMILY_CHOICES as RETRAIN_FAMILIES
from edgeloop.local.retrain import Labelled, choose_recipe, cross_fitted_errors, gate_evidence, gate_pairs
from edgeloop.local.run_summary import reliability, scenario_events, timeline_point, uplink, usage, with_accuracy
from edgeloop.local.scoring import Retrain, Scoring, change_points, score
from edgeloop.local.sim.cost import estimate
from edgeloop.local.sim.oracle import OracleLabeller
from edgeloop.local.sim.outages import outages_mapping
from edgeloop.local.sim.scenario import BadKind, Scenario
from edgeloop.local.stack import LocalStack
from edgeloop.local.world import ORACLE_MAX_ROWS, FeatureScale, World, load_stream
from edgeloop.training.config import TrainingConfig
from edgeloop.training.data import NPZ_FEATURE_NAMES, NPZ_FEATURES
from edgeloop.training.model import FAMILIES, MLP, predict_onnx, session

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
PROVISION_REPORTS = 10
"""Progress lines while a large fleet is provisioned (a thousand devices take a minute): about one per tenth."""
FLEET_SALT = "edgeloop-local-scenario-salt"
RETRAIN_MAX_ITER = 500
"""The retrained model's MLP iterations: a few hundred new rows need a model that converges on them."""
TIMELINE_POINTS = 240
"""About this many timeline points per run, whatever its length."""
DRAIN_MAX_STEPS = 500
"""Steps after the scenario's time to deliver what is still buffered, before the run gives up."""
ROLLOUT_WALL_S_PER_DEVICE = 1.0
"""Wall seconds a rollout may take per device before the run gives up on it (a fleet steps slower than five)."""
SAMPLE_BYTES_PER_DEVICE = 150 * 1024
"""The scenario fleet's daily sample budget per device (bytes of sample JSON, before compression): the loop
must learn from a trickle, not a stream; a scenario's device_config may set sampleBytesPerDay instead."""
SCENARIO_DEVICE_CONFIG = {"healthIntervalSeconds": 1.0, "healthMinIntervalSeconds": 0.5, "driftWindow": 400,
                          "driftMinRows": 200}  # fmt: skip
"""Reports and drift windows sized to a simulated hour; a scenario's device_config overrides them."""


def run_scenario(scenario: Scenario, out: Path, progress: Progress, *, seed: int | None = None) -> dict[str, Any]:
    """The whole loop for one scenario; writes DIR/summary.json and returns it."""
    started = time.monotonic()
    seed = scenario.seed if seed is None else seed
    progress(f"scenario {scenario.name}: loading {scenario.dataset}")
    data = load_stream(scenario, seed)
    scenario = data.scenario  # a file streamed once: its duration is now fixed
    initial_x, initial_y, stream_x, stream_y = data.initial_x, data.initial_y, data.stream_x, data.stream_y
    unknown = sorted({o.ring for o in scenario.outages if o.ring is not None} - set(base.DEMO_POLICY.ring_names))
    if unknown:  # a partition of a ring nobody is in would cut off no one, silently
        raise ValidationError(
            "scenario.outages[].ring", f"{unknown}; the rings are {list(base.DEMO_POLICY.ring_names)}"
        )
    clock = base.DemoClock()
    options = DemoOptions(devices=min(scenario.devices, MAX_DEVICES), out=out, seed=seed)
    default_sampling = {"sampleBudgetShare": DEFAULT_BUDGET_SHARE} if not scenario.samplers else {}
    fleet_config = {  # no samplers in the scenario: the default policy under the default share budget
        "samplers": scenario.samplers or dict(DEFAULT_SAMPLERS),
        "privacy": scenario.privacy or {"allowRaw": True},
        "fleetSalt": FLEET_SALT,
        "sampleBytesPerDay": SAMPLE_BYTES_PER_DEVICE,
        **default_sampling,
        **SCENARIO_DEVICE_CONFIG,
        **scenario.device_config,
    }
    with (
        tempfile.TemporaryDirectory(prefix="edgeloop-scenario-") as work,
        LocalStack(Path(work), rollout_policy=base.DEMO_POLICY, clock=clock, in_process=True) as stack,
        _devices_quiet(),
    ):
        progress("local stack up (in process): provisioning buckets, registry, rollout tables and ring groups")
        stack.provision(options.model_name, fleet_config=fleet_config)
        things = [f"edgeloop-device-{i:03d}" for i in range(1, scenario.devices + 1)]
        network_start = [clock.now]  # moved to the stream's start once the world exists
        network = Network(scenario.outages, len(things), scenario.step_s, lambda: clock.now - network_start[0])
        pool, downloads = SessionPool(), FleetDownloads(stack.store)
        fleet: dict[str, SteppedDevice] = {}
        report_every = max(1, len(things) // PROVISION_REPORTS)
        progress(f"provisioning {len(things)} simulated devices (thing, ring group, buffer, nucleus each)")
        try:
            for index, thing in enumerate(things):
                if index and index % report_every == 0:
                    progress(f"provisioned {index}/{len(things)} devices")
                ring = base.CANARY if index < scenario.canary_devices else base.BROAD
                network.rings[index] = ring
                stack.register_thing(thing, ring=ring)
                device = SteppedDevice(
                    thing, index, Path(work) / "devices" / thing, network=network, deliver=stack.iot_core.deliver,
                    artifacts=downloads, clock=clock, pool=pool, seed=seed * 100_003 + index,
                    forward_interval_s=scenario.forward_interval_s,
                    forward_phase_s=scenario.forward_interval_s * index / len(things),
                )  # fmt: skip
                fleet[thing] = device
                stack.greengrass.register_nucleus(device.nucleus)
            progress(
                f"scenario {scenario.name}: {len(things)} devices, {scenario.run_duration_s:.0f} s simulated in "
                f"{scenario.step_s:.0f} s steps, {len(initial_x)} rows to train on, {len(stream_x)} to stream"
            )
            demo = base.DemoSession(stack, options, Path(work), clock, progress, things)
            demo.approve_by_hand = True
            demo.tick_s, demo.pause_s = scenario.step_s, 0.0
            demo.device_health = lambda thing: fleet[thing].health()
            demo.rollout_timeout_s = max(base.ROLLOUT_TIMEOUT_S, ROLLOUT_WALL_S_PER_DEVICE * len(things))
            progress(f"training the first model on {len(initial_x)} rows")
            first = demo.train_and_publish(
                "v-initial", seed, config={**_channel(Path(work), "initial", initial_x, initial_y, data.feature_names),
                                           "family": scenario.family},
            )  # fmt: skip
            if (chosen := first.trained.family_selection) is not None:
                progress(f"family auto kept {chosen.selected} (validation accuracy {dict(chosen.validation_accuracy)})")
            scale = FeatureScale(np.asarray(initial_x.std(axis=0)), first.trained.manifest.input.minimum,
                                 first.trained.manifest.input.maximum)  # fmt: skip
            world = World(scenario, fleet, stream_x, stream_y, scale, len(data.labels), clock,
                          np.random.default_rng(seed), cycle=data.cycle, file_rows=data.file_rows)  # fmt: skip
            network_start[0] = world.started_at
            stack.results.set_sink(world_sink(world.ledger))
            loop = _ScenarioRun(scenario, stack, demo, world, Path(work), initial_x, initial_y,
                                data.feature_names, progress, pool, classes=len(data.labels),
                                family=_family(scenario.family, first.trained.family_selection))  # fmt: skip
            with contextlib.suppress(ValidationError):  # a manifest without holdout_rows: the detector warms up
                loop._first_reference = reference_from_manifest(first.trained.manifest)
            loop.reliabilities[first.record.version] = first.trained.manifest.baseline.reliability
            loop.model_paths[first.record.version] = first.trained.model_path
            loop.roll_out(first.record, "initial")
            loop.run(first.record.version)
            loop.drain()
            summary = loop.summary()
        finally:
            for device in fleet.values():
                device.close()
        summary["run"] = {"wall_s": round(time.monotonic() - started, 2), "scenario": scenario.name,
                          "devices": len(things), "simulated_s": scenario.run_duration_s, "step_s": scenario.step_s,
                          "sessions_shared": len(pool), "steps": world.steps, "artifact_downloads": downloads.fetched,
                          "step_wall_s": round(world.step_wall_s, 2)}  # fmt: skip
    summary = with_cost(summary)
    base.write_summary(out, summary)
    write_report(out, summary)
    scoring.check_loop(scenario, summary)  # after writing: a run that fails its own check leaves its figures to read
    return summary


@contextlib.contextmanager
def _devices_quiet() -> Iterator[None]:
    """Device warnings at ERROR only while the fleet runs: a thousand devices in an outage would drown the
    progress lines in their own (expected) retry warnings; what they say is counted in health and the summary."""
    logger = logging.getLogger("edgeloop.device")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def world_sink(ledger: Ledger) -> Callable[[str, InferenceBatch], None]:
    """The results ingest's destination for the scenario: each answer joined to its request in the ledger."""

    def sink(thing: str, batch: InferenceBatch) -> None:
        for request, label in zip(batch.request_ids, batch.label_indices, strict=True):
            index = request_index(request)
            if index is not None:
                ledger.answer(index, label, batch.model_version)

    return sink


class _ScenarioRun:
    """The scenario after provisioning: stream, label, detect changes, retrain and gate as recovery says, roll
    out the scenario's bad candidates, and keep the timeline."""

    def __init__(
        self, scenario: Scenario, stack: LocalStack, demo: base.DemoSession, world: World, work: Path,
        initial_x: np.ndarray, initial_y: np.ndarray, features: tuple[str, ...], progress: Progress,
        pool: SessionPool, *, classes: int, family: str = MLP,
    ) -> None:  # fmt: skip
        self.scenario, self.stack, self.demo, self.world, self.work = scenario, stack, demo, world, work
        self.initial_x, self.initial_y, self.features, self.progress = initial_x, initial_y, features, progress
        self.pool, self.classes, self.family = pool, classes, family
        self._first_reference: tuple[int, int] = (0, 0)
        """The first version's reference error counts (its holdout), set by the runner when its manifest says."""
        self.model_paths: dict[int, Path] = {}
        """Each version's model file: the cloud answers, with the live one, the labelled samples it never saw."""
        self._live_session: tuple[int, Any] | None = None
        self.reliabilities: dict[int, Reliability | None] = {}
        """Each version's holdout reliability table (its manifest's): what the calibrated detector judges it by."""
        self.labeller = OracleLabeller(world.truth, float(getattr(scenario, "label_delay_s", 0.0) or 0.0))
        self.samples: list[SampleRef] = []
        window = float(scenario.device_config.get("driftWindow", SCENARIO_DEVICE_CONFIG["driftWindow"]))
        self.recovery = Recovery(scenario.retraining, sustain_s=window / scenario.requests_per_s)
        self.retrains: list[Retrain] = []
        self.refused: list[dict[str, Any]] = []
        self.live_version = 0
        self.bad_versions: dict[int, str] = {}
        self.events: list[dict[str, Any]] = scenario_events(scenario)
        self.points: list[dict[str, Any]] = []
        self._every = max(1, round(scenario.run_duration_s / scenario.step_s / TIMELINE_POINTS))
        self._steps = 0
        self.connected_minutes = 0.0
        self._progress_every = max(1, round(scenario.run_duration_s / scenario.step_s / 24))
        world.on_step.append(self._after_step)

    # --- stepping --------------------------------------------------------------------------------

    def run(self, first_version: int) -> None:
        """Step until the scenario's time is up; roll out bad candidates and retrain as recovery says."""
        self._went_live(first_version, self._first_reference)
        bad = sorted(self.scenario.bad_candidates, key=lambda b: b.at_s)
        while self.world.now_s < self.scenario.run_duration_s:
            if bad and self.world.now_s >= bad[0].at_s:
                self._roll_out_bad(bad.pop(0).kind)
                continue
            self.demo.step(self.world)
            if self.world.now_s >= self.scenario.run_duration_s:
                break  # the step that reached the end: a retrain decided now would roll out after the run
            decision = self.recovery.due()
            if decision.retrain:
                self._retrain(decision.reason)

    def _went_live(self, version: int, reference: tuple[int, int] = (0, 0)) -> None:
        """The fleet runs version now; its error detectors start from reference (errors, trials) and its table."""
        self.live_version = version
        self.recovery.went_live(version, reference, self.reliabilities.get(version))

    def roll_out(self, record: Any, label: str) -> dict[str, Any]:
        """One rollout through the rings while the world keeps streaming; its decisions go on the timeline."""
        self.events.append({"t_s": self.world.now_s, "kind": "rollout_start", "text": f"v{record.version} ({label})",
                            "version": record.version})  # fmt: skip
        entry = self.demo.roll_out(record, self.world, until=lambda: self.world.exhausted)
        for decision in entry["decisions"]:
            self.events.append({"t_s": round(decision["at"] - self.world.started_at, 1), "kind": "decision",
                                "text": f"{decision['decision']}: {decision['reason']}",
                                "version": record.version})  # fmt: skip
        self.events.append({"t_s": self.world.now_s, "kind": "rollout_end",
                            "text": f"v{record.version} {entry['outcome']}", "version": record.version})  # fmt: skip
        return entry

    def _roll_out_bad(self, kind: str) -> None:
        """A simulated bad candidate, approved by a (simulated) operator: the rings must stop it."""
        self.progress(f"[{self._when()}] rolling out a simulated bad candidate ({kind})")
        candidate = self.demo.train_and_publish(f"v-bad-{kind}", self.demo.options.seed, bad=BadKind(kind))
        self.bad_versions[candidate.record.version] = kind
        self.roll_out(candidate.record, f"bad: {kind}")

    def _after_step(self) -> None:
        """After every step: label what is due, watch for a change, sample the timeline, show progress."""
        self._steps += 1
        detection = self.recovery.observe(self._label_new(), self._fleet_drift(), self._moment())
        if detection is not None:
            self.progress(f"[{self._when()}] change detected at row {detection.row}: {detection.text}")
            self.events.append({"t_s": self.world.now_s, "kind": "drift_detected",
                                "text": f"row {detection.row}: {detection.text}", "version": None})  # fmt: skip
        depths = [d.buffer_depth() for d in self.world.fleet.values()]
        online = sum(1 for d in self.world.fleet.values() if d.link.connected)
        self.connected_minutes += online * self.scenario.step_s / 60
        self.world.max_buffer_depth = max(self.world.max_buffer_depth, max(depths, default=0))
        if self._steps % self._every == 0 and self._within_scenario_time():
            self.points.append(timeline_point(self.stack, self.world, sum(depths)))
        if self._steps % self._progress_every == 0:
            self.progress(
                f"[{self._when()}] {online}/{len(depths)} devices online, {sum(depths):,} records buffered, "
                f"{self.stack.results.received:,} delivered, {self.world.ledger.size:,} requests"
            )

    def _moment(self) -> Moment:
        """Now, as the recovery bookkeeping records a detection: time, last request and its file row."""
        index = max(0, self.world.ledger.size - 1)
        return Moment(self.world.now_s, index, int(self._rows_of(np.array([index]))[0]))

    def _file_rows(self) -> np.ndarray:
        """Each request's file row (what drift_at_rows and detections are counted in)."""
        return self._rows_of(np.arange(self.world.ledger.size))

    def _rows_of(self, indices: np.ndarray) -> np.ndarray:
        """The file row of requests: World.file_row for a file streamed once; a cycling stream (built-in sets) has no
        one file row per request, so its place in the stream after the initial rows stands for it."""
        if self.world.cycle or not len(indices):
            return np.asarray(indices, dtype=np.int64) + len(self.initial_x)
        return np.asarray(self.world.file_rows[self.world.ledger.row[indices]], dtype=np.int64)

    def _within_scenario_time(self) -> bool:
        """A point is the step starting at t_s (it covers t_s to t_s + step_s): only steps inside the scenario's
        time go on the timeline, not the drain after it nor a rollout still running when the time is up."""
        return self.world.streaming and self.world.now_s < self.scenario.run_duration_s

    def _when(self) -> str:
        """Simulated time as h:mm:ss since the stream began."""
        seconds = int(self.world.now_s)
        return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def drain(self) -> None:
        """After the scenario's time: no new requests; step until every buffer is empty, then report a last time."""
        self.world.streaming = False
        for _ in range(DRAIN_MAX_STEPS):
            if all(d.settled() for d in self.world.fleet.values()):
                break
            self.demo.step(self.world)
        else:
            left = sum(d.buffer_depth() for d in self.world.fleet.values())
            raise EdgeloopError(f"{left} records still buffered {DRAIN_MAX_STEPS} steps after the scenario ended")
        for device in self.world.fleet.values():
            device.runtime.report_health()
        self._label_new()

    def _label_new(self) -> list[Labelled]:
        """Offer what the ingest queued since the last look to the labeller; take the labels that are due."""
        fresh = self.stack.labelling_queue.sent[len(self.samples) :]
        self.samples.extend(fresh)
        self.labeller.offer(fresh, self.world.now_s)
        out = []
        for ref, label in self.labeller.due(self.world.now_s):
            index = request_index(ref.sample.request_id)
            x = np.array([float(ref.sample.features[name]) for name in self.features], dtype=np.float64)
            observed = observation_of(ref.sample, int(label))
            out.append(Labelled(x, int(label), ref.sample.model_version, ref.sample.label_index,
                                -1 if index is None else index, observed.unbiased, ref.sample.confidence,
                                observed.confidence))  # fmt: skip
        return out

    def _fleet_drift(self) -> float | None:
        """The fleet's drift score for the version it runs: the mean of its devices' current scores."""
        ctx = self.stack.rollout_context()
        sums = sum(ctx.health.aggregates(self.demo.options.model_name, self.live_version).values(), VersionHealth())
        return sums.mean_drift

    # --- recovery ----------------------------------------------------------------------------------

    def _retrain(self, reason: str) -> None:
        """Choose a recipe on the concept's labels, gate it against the deployed version, then register and roll out."""
        self.progress(f"[{self._when()}] retraining: {reason}")
        started, recent = time.monotonic(), self.recovery.recent()
        old_x, old_y = old_rows(self.initial_x, self.initial_y, self.recovery.old())
        config = TrainingConfig(model_dir=self.work / "recipes", model_name=self.demo.options.model_name,
                                max_iter=RETRAIN_MAX_ITER, seed=self.demo.options.seed + 1)  # fmt: skip
        recipe = choose_recipe(
            recent,
            old_x,
            old_y,
            self.classes,
            config,
            self.demo.options.seed + len(self.retrains),
            new_inputs=self._inputs_since(self.recovery.concept_start or 0),
            families=(self.family, *(f for f in RETRAIN_FAMILIES if f != self.family)),  # a tie keeps the deployed one
        )
        gated = self._answered_by_live(recent)
        candidate_right, deployed_right = gate_pairs(gated, recipe, self.live_version)
        gate = new_world_gate(
            candidate_right, deployed_right, self.recovery.policy, successor=self.recovery.live_is_successor
        )
        self.recovery.tried()
        log.info("recipe chosen in %.1f s: %s", time.monotonic() - started, recipe.scores)
        what = f"{recipe.family} on {len(recent)} recent labels + old rows: {recipe.mix}"
        if not gate.retrain:
            self.refused.append({"t_s": round(self.world.now_s, 1), "recipe": what, "reason": gate.reason})
            self.progress(f"[{self._when()}] candidate refused by the new-world gate: {gate.reason}")
            self.events.append({"t_s": self.world.now_s, "kind": "retrain_refused", "text": f"{what}: {gate.reason}",
                                "version": None})  # fmt: skip
            return
        self.events.append({"t_s": self.world.now_s, "kind": "retrain", "text": f"{reason}; {what}; {gate.reason}",
                            "version": None})  # fmt: skip
        channel = _channel(self.work, "retrain", recipe.x, recipe.y, self.features)
        channel.update(parent_version=self.live_version, max_iter=RETRAIN_MAX_ITER, family=recipe.family)
        trigger = Retrain(0, round(self.world.now_s, 1), max(0, self.world.ledger.size - 1), recipe.family)
        evidence = gate_evidence(gated, recipe, self.live_version)  # the canary judges its confidence against it
        candidate = self.demo.train_and_publish("v-retrained", self.demo.options.seed + 1, config=channel,
                                                evidence=evidence)  # fmt: skip
        self.progress(f"retrained {what} (cross-validated {recipe.cv_accuracy:.3f}); {gate.reason}")
        version = candidate.record.version
        self.recovery.trained(version)
        self.model_paths[version] = candidate.trained.model_path
        self.reliabilities[version] = candidate.trained.manifest.baseline.reliability
        self.retrains.append(replace(trigger, version=version))
        if self.roll_out(candidate.record, "retrained")["outcome"] == "completed":
            self._went_live(version, cross_fitted_errors(recent, recipe))

    def _answered_by_live(self, recent: list[Labelled]) -> list[Labelled]:
        """recent, with the live version's own answer (and confidence) on each sample it never trained on that an
        older version answered on a device: the live model run in the cloud on the sample's released features."""
        unseen = self.recovery.unseen_by_live()
        todo = [i for i, s in enumerate(recent) if s.version != self.live_version and id(s) in unseen]
        path = self.model_paths.get(self.live_version)
        if not todo or path is None:
            return list(recent)
        if self._live_session is None or self._live_session[0] != self.live_version:
            self._live_session = (self.live_version, session(path.read_bytes()))
        labels, probabilities = predict_onnx(self._live_session[1], np.array([recent[i].x for i in todo]))
        out = list(recent)
        for i, label, row in zip(todo, labels.tolist(), probabilities, strict=True):
            out[i] = replace(recent[i], version=self.live_version, answer=int(label), confidence=float(row[label]))
        return out

    def _inputs_since(self, start: int) -> np.ndarray:
        """Features of every sample since the stream position start, labelled or still waiting for its label."""
        rows = [[float(ref.sample.features[name]) for name in self.features] for ref in self.samples
                if (request_index(ref.sample.request_id) or -1) >= start]  # fmt: skip
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(self.features))

    # --- the summary -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """summary.json: the loop, reliability, uplink usage, the timeline and the rollouts."""
        ledger, size = self.world.ledger, self.world.ledger.size
        file_rows = self._file_rows()
        scored = score(Scoring(
            ledger=ledger, changes=change_points(self.scenario, ledger, file_rows), detections=self.recovery.detections,
            retrains=self.retrains, bad_versions=set(self.bad_versions), initial_family=self.family,
            rows_for=self._oracle_rows, known=bool(self.scenario.drift_at_rows) or not self.scenario.is_file,
            config=TrainingConfig(model_dir=self.work / "oracle", model_name=self.demo.options.model_name),
            completed=frozenset(self.demo.completed),
        ))  # fmt: skip
        retrained = np.isin(ledger.version[:size], [r.version for r in self.retrains])
        devices = list(self.world.fleet.values())
        links = [d.link.stats for d in devices]
        samples = self.stack.samples
        first = self.recovery.detections[0] if self.recovery.detections else None
        return {
            "loop": {
                **scored,
                "recovered_accuracy_unseen": ledger.accuracy(retrained & ~self._rows_labelled(size)),
                "drift_detected_at_s": round(first.t_s, 1) if first else None,
                "retrain_triggered_at_s": self.retrains[0].t_s if self.retrains else None,
                "new_version": self.retrains[-1].version if self.retrains else None,
                "retrains": len(self.retrains),
                "retrains_refused": len(self.refused),
                "refused": self.refused,
                "samples_uploaded": self.stack.sample_catalogue.count(),
                "sample_bytes_uploaded": samples.bytes,
                "raw_equivalent_bytes": self.world.raw_bytes,
                "sample_messages_uploaded": samples.messages,
                "raw_equivalent_messages": size,
                "labelled": len(self.recovery.labelled),
                "answered": len(ledger.answered()),
            },
            "reliability": reliability(self.stack, self.world, self.scenario, devices),
            "cost": estimate(usage(self.world, self.scenario, links, self.connected_minutes)).to_dict(),
            "uplink": uplink(self.world, self.scenario, links),
            "timeline": {
                "step_s": self.scenario.step_s * self._every,
                "points": with_accuracy(ledger, self.points),
                "events": sorted(self.events, key=lambda e: e["t_s"]),
                "outages": outages_mapping(self.scenario.outages),
            },
            "rollouts": [{**r, "bad_kind": self.bad_versions.get(r["version"])} for r in self.demo.rollouts],
        }

    def _rows_labelled(self, size: int) -> np.ndarray:
        """Requests made from a dataset row some labelled sample came from: the stream cycles its rows, so the
        retrained model has seen those very inputs; recovered_accuracy_unseen leaves them out."""
        ledger = self.world.ledger
        indices = [s.index for s in self.recovery.labelled if 0 <= s.index < ledger.size]
        return np.isin(ledger.row[:size], ledger.row[indices])

    def _oracle_rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The features of the requests at indices the oracle may learn from: the world's reservoir of drifted rows
        where drift events moved them, else the stream's own rows (a file streams them unchanged)."""
        if self.scenario.drift:
            rows, kept = self.world.reservoir.kept()
            keep = np.isin(kept, indices)
            return rows[keep], kept[keep]
        if len(indices) > ORACLE_MAX_ROWS:
            indices = np.sort(np.random.default_rng(0).choice(indices, ORACLE_MAX_ROWS, replace=False))
        return self.world.rows[self.world.ledger.row[indices]], indices


def _family(asked: str | None, selection: Any) -> str:
    """The first model's family: the one family auto kept, else the one the scenario named."""
    if selection is not None:
        return str(selection.selected)
    return asked if asked is not None and asked in FAMILIES else MLP


def _channel(work: Path, label: str, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """An NPZ train channel (edgeloop.training's NPZ convention) and the TrainingConfig fields that read it."""
    folder = work / "channels" / f"{label}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    arrays: dict[str, Any] = {NPZ_FEATURES: x.astype(np.float32), "label": y, NPZ_FEATURE_NAMES: np.array(names)}
    np.savez(folder / "data.npz", **arrays)
    return {"dataset": "npz", "train_dir": folder}
