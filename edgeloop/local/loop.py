"""`edgeloop demo --scenario`: the closed loop on the local stack, drift to recovery, on a virtual clock.

Steps, all through the real code: the first model is trained on the scenario's first rows and rolled out
through the rings; the rest of the data streams to a stepped fleet (edgeloop.local.fleet: every device runs
the real runtime, buffer and forwarder, advanced together one virtual-clock step at a time), changed by the
scenario's drift events (edgeloop.local.world) and cut off by its outages (edgeloop.local.sim.outages); devices
score drift and sample hard examples through their privacy filter; samples reach the sample ingest through
the samples topic rule; the oracle labeller (a simulation stand-in that reads the scenario's true labels)
labels them; the retraining trigger watches labels and the fleet's drift score; a retrained version (parent:
last-known-good) goes through the gate, approval and the rings, and so do the scenario's bad candidates,
which must be stopped. The summary measures accuracy per phase against an oracle model trained on the
post-drift labels (cross-fitted, so no row is scored by a model that saw it), delivery and duplicates
through the outages, and a timeline for report.html.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.cloud.sample_ingest import SampleRef
from edgeloop.core.errors import EdgeloopError, ValidationError
from edgeloop.core.records import InferenceBatch
from edgeloop.core.retraining import RetrainingState, observe_drift, observe_labels, retraining_decision, triggered
from edgeloop.core.rollout import VersionHealth
from edgeloop.core.sample_budget import DEFAULT_BUDGET_SHARE, DEFAULT_SAMPLERS
from edgeloop.device.onnx_session import SessionPool
from edgeloop.local import demo as base
from edgeloop.local.demo_options import MAX_DEVICES, DemoOptions
from edgeloop.local.fleet import FleetDownloads, SteppedDevice
from edgeloop.local.ledger import Ledger, request_index
from edgeloop.local.link import LinkStats, Network
from edgeloop.local.report import with_cost, write_report
from edgeloop.local.sim.cost import Metered, UplinkUsage, estimate
from edgeloop.local.sim.oracle import OracleLabeller
from edgeloop.local.sim.outages import outage_seconds, outages_mapping
from edgeloop.local.sim.scenario import BadKind, Scenario
from edgeloop.local.stack import LocalStack
from edgeloop.local.world import FeatureScale, World, load_stream
from edgeloop.training.data import NPZ_FEATURE_NAMES, NPZ_FEATURES

Progress = Callable[[str], None]
PROVISION_REPORTS = 10
"""Progress lines while a large fleet is provisioned (a thousand devices take a minute): about one per tenth."""
FLEET_SALT = "edgeloop-local-scenario-salt"
ORACLE_FOLDS = 5
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
            scale = FeatureScale(np.asarray(initial_x.std(axis=0)), first.trained.manifest.input.minimum,
                                 first.trained.manifest.input.maximum)  # fmt: skip
            world = World(scenario, fleet, stream_x, stream_y, scale, len(data.labels), clock,
                          np.random.default_rng(seed), cycle=data.cycle, file_rows=data.file_rows)  # fmt: skip
            network_start[0] = world.started_at
            stack.results.set_sink(world_sink(world.ledger))
            loop = _ScenarioRun(scenario, stack, demo, world, Path(work), initial_x, initial_y,
                                data.feature_names, progress, pool)  # fmt: skip
            loop.roll_out(first.record, "initial")
            loop.run(first.record.version)
            loop.drain()
            summary = loop.summary()
        finally:
            for device in fleet.values():
                device.close()
        _check_loop(scenario, summary)
        summary["run"] = {"wall_s": round(time.monotonic() - started, 2), "scenario": scenario.name,
                          "devices": len(things), "simulated_s": scenario.run_duration_s, "step_s": scenario.step_s,
                          "sessions_shared": len(pool), "steps": world.steps, "artifact_downloads": downloads.fetched,
                          "step_wall_s": round(world.step_wall_s, 2)}  # fmt: skip
    summary = with_cost(summary)
    base.write_summary(out, summary)
    write_report(out, summary)
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
    """The scenario after provisioning: stream, label, watch drift, retrain when the trigger says so, roll out
    the scenario's bad candidates, and keep the timeline."""

    def __init__(
        self, scenario: Scenario, stack: LocalStack, demo: base.DemoSession, world: World, work: Path,
        initial_x: np.ndarray, initial_y: np.ndarray, features: tuple[str, ...], progress: Progress,
        pool: SessionPool,
    ) -> None:  # fmt: skip
        self.scenario, self.stack, self.demo, self.world, self.work = scenario, stack, demo, world, work
        self.initial_x, self.initial_y, self.features, self.progress = initial_x, initial_y, features, progress
        self.pool = pool
        self.labeller = OracleLabeller(world.truth)
        self.labelled: list[tuple[SampleRef, int]] = []
        self.samples: list[SampleRef] = []
        self.drift_detected_at_s: float | None = None
        self.retrain_at_s: float | None = None
        self.new_version: int | None = None
        self.live_version = 0
        self.bad_versions: dict[int, str] = {}
        self.state = RetrainingState(demo.options.model_name, parent_version=0)
        self.events: list[dict[str, Any]] = [
            {"t_s": e.at_s, "kind": "drift", "text": f"{e.kind} drift x{e.magnitude:g} on {e.share:.0%} of devices",
             "version": None}
            for e in scenario.drift
        ]  # fmt: skip
        for outage in scenario.outages:
            what = "IoT Core stand-in restart" if outage.kind == "restart" else f"{outage.scope} partition"
            flap = f", flapping every {outage.flap_s:g} s" if outage.flap_s else ""
            self.events.append({"t_s": outage.from_s, "kind": "outage_start" if outage.kind == "partition"
                                else "restart", "text": f"{what}{flap}", "version": None})  # fmt: skip
            self.events.append({"t_s": outage.to_s, "kind": "outage_end", "text": f"{what} ends", "version": None})
        self.points: list[dict[str, Any]] = []
        self._every = max(1, round(scenario.run_duration_s / scenario.step_s / TIMELINE_POINTS))
        self._steps = 0
        self.connected_minutes = 0.0
        self._progress_every = max(1, round(scenario.run_duration_s / scenario.step_s / 24))
        world.on_step.append(self._after_step)

    # --- stepping --------------------------------------------------------------------------------

    def run(self, first_version: int) -> None:
        """Step until the scenario's time is up; roll out bad candidates and retrain as the scenario says."""
        self.live_version = first_version
        self.state = RetrainingState(self.demo.options.model_name, parent_version=first_version)
        bad = sorted(self.scenario.bad_candidates, key=lambda b: b.at_s)
        while self.world.now_s < self.scenario.run_duration_s:
            if bad and self.world.now_s >= bad[0].at_s:
                self._roll_out_bad(bad.pop(0).kind)
                continue
            self.demo.step(self.world)
            decision = retraining_decision(self.state, self.scenario.retraining, self.world.now_s)
            if decision.retrain and self.new_version is None:
                self.retrain_at_s = round(self.world.now_s, 1)
                self.progress(f"[{self._when()}] retraining: {decision.reason}")
                self.events.append({"t_s": self.world.now_s, "kind": "retrain", "text": decision.reason,
                                    "version": None})  # fmt: skip
                self.state = triggered(self.state, self.world.now_s)
                self.new_version = self._retrain(first_version)
                self.live_version = self.new_version

    def roll_out(self, record: Any, label: str) -> dict[str, Any]:
        """One rollout through the rings while the world keeps streaming; its decisions go on the timeline."""
        self.events.append({"t_s": self.world.now_s, "kind": "rollout_start", "text": f"v{record.version} ({label})",
                            "version": record.version})  # fmt: skip
        entry = self.demo.roll_out(record, self.world)
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
        """After every step: label what arrived, watch the fleet's drift, sample the timeline, show progress."""
        self._steps += 1
        self.state = observe_labels(self.state, self._label_new())
        drift = self._fleet_drift()
        self.state = observe_drift(self.state, drift, self.scenario.retraining, self.world.now_s)
        if drift is not None and drift > self.scenario.retraining.drift_bound and self.drift_detected_at_s is None:
            self.drift_detected_at_s = round(self.world.now_s, 1)
            self.progress(f"[{self._when()}] fleet drift score {drift:.3f}: drift detected")
            self.events.append({"t_s": self.world.now_s, "kind": "drift_detected",
                                "text": f"fleet drift score {drift:.3f}", "version": None})  # fmt: skip
        depths = [d.buffer_depth() for d in self.world.fleet.values()]
        online = sum(1 for d in self.world.fleet.values() if d.link.connected)
        self.connected_minutes += online * self.scenario.step_s / 60
        self.world.max_buffer_depth = max(self.world.max_buffer_depth, max(depths, default=0))
        if self._steps % self._every == 0 and self._within_scenario_time():
            self.points.append(self._point(sum(depths)))
        if self._steps % self._progress_every == 0:
            self.progress(
                f"[{self._when()}] {online}/{len(depths)} devices online, {sum(depths):,} records buffered, "
                f"{self.stack.results.received:,} delivered, {self.world.ledger.size:,} requests"
            )

    def _within_scenario_time(self) -> bool:
        """A point is the step starting at t_s (it covers t_s to t_s + step_s): only steps inside the scenario's
        time go on the timeline, not the drain after it nor a rollout still running when the time is up."""
        return self.world.streaming and self.world.now_s < self.scenario.run_duration_s

    def _when(self) -> str:
        """Simulated time as h:mm:ss since the stream began."""
        seconds = int(self.world.now_s)
        return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def _point(self, buffered: int) -> dict[str, Any]:
        """One timeline point: devices online and per version, buffer, delivery, all sent so far (shadow included)."""
        devices = list(self.world.fleet.values())
        versions: dict[str, int] = {}
        for device in devices:
            version = device.runtime.model_status().version
            key = str(version) if version is not None else "none"
            versions[key] = versions.get(key, 0) + 1
        links = [d.link.stats for d in devices]
        return {
            "t_s": round(self.world.now_s, 1),
            "online": sum(1 for d in devices if d.link.connected),
            "buffered": buffered,
            "produced": sum(d.records_produced() for d in devices),
            "delivered": self.stack.results.received + self.stack.sample_catalogue.count(),
            "sent_bytes_incl_shadow": sum(s.bytes + s.shadow_bytes for s in links),
            "sent_messages_incl_shadow": sum(s.messages + s.shadow_updates for s in links),
            "raw_bytes": self.world.raw_bytes,
            "raw_messages": self.world.ledger.size,
            "devices_by_version": versions,
        }

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

    def _label_new(self) -> int:
        """Label what the ingest queued since the last look (the oracle stand-in answers at once)."""
        fresh = self.stack.labelling_queue.sent[len(self.samples) :]
        if not fresh:
            return 0
        self.samples.extend(fresh)
        labels = self.labeller.label(fresh)
        known = [(ref, label) for ref, label in zip(fresh, labels, strict=True) if label is not None]
        self.labelled.extend(known)
        return len(known)

    def _fleet_drift(self) -> float | None:
        """The fleet's drift score for the version it runs: the mean of its devices' current scores."""
        ctx = self.stack.rollout_context()
        sums = sum(ctx.health.aggregates(self.demo.options.model_name, self.live_version).values(), VersionHealth())
        return sums.mean_drift

    def _retrain(self, parent: int) -> int:
        """The initial rows, moved by the shift the samples show, plus every labelled sample: a new version."""
        x, y = self._training_set()
        config = _channel(self.work, "retrain", x, y, self.features)
        config.update(parent_version=parent, max_iter=RETRAIN_MAX_ITER)
        candidate = self.demo.train_and_publish("v-retrained", self.demo.options.seed + 1, config=config)
        self.progress(f"retrained on {len(self.labelled)} labelled samples + {len(self.initial_x)} initial rows")
        self.roll_out(candidate.record, "retrained")
        return candidate.record.version

    def _training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Covariate shift estimated from the drifted samples' released features, then the labelled samples added.

        Samples taken while the device saw drift describe the new world (labelled or not); moving the initial
        rows by their mean shift keeps what the first model learned and places it where the inputs now are.
        """
        drifted = [ref for ref in self.samples if ref.sample.drifted] or self.samples
        released = np.array([[float(ref.sample.features[name]) for name in self.features] for ref in drifted])
        shift = released.mean(axis=0) - self.initial_x.mean(axis=0) if len(released) else 0.0
        moved = np.clip(self.initial_x + shift, self.world.scale.minimum, self.world.scale.maximum)
        labelled_x = np.array([[float(ref.sample.features[n]) for n in self.features] for ref, _ in self.labelled])
        labelled_y = np.array([label for _, label in self.labelled], dtype=np.int64)
        return np.vstack([moved, labelled_x.reshape(-1, len(self.features))]), np.concatenate(
            [self.initial_y, labelled_y]
        )

    # --- the summary -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """summary.json: the loop, reliability, uplink usage, the timeline and the rollouts."""
        ledger, size = self.world.ledger, self.world.ledger.size
        drift_at = self.scenario.drift_starts_at_s
        at, version = ledger.at_s[:size], ledger.version[:size]
        is_new = (version == self.new_version) if self.new_version is not None else np.zeros(size, dtype=bool)
        is_bad = np.isin(version, list(self.bad_versions)) if self.bad_versions else np.zeros(size, dtype=bool)
        pre = (at < drift_at) if drift_at is not None else np.ones(size, dtype=bool)
        post = (at >= drift_at) & ~is_new & ~is_bad if drift_at is not None else np.zeros(size, dtype=bool)
        devices = list(self.world.fleet.values())
        links = [d.link.stats for d in devices]
        samples = self.stack.samples
        return {
            "loop": {
                "pre_drift_accuracy": ledger.accuracy(pre & ~is_bad),
                "post_drift_accuracy": ledger.accuracy(post),
                "recovered_accuracy": ledger.accuracy(is_new),
                "recovered_accuracy_unseen": ledger.accuracy(is_new & ~self._rows_labelled(size)),
                "oracle_accuracy": self._oracle(is_new),
                "drift_detected_at_s": self.drift_detected_at_s,
                "retrain_triggered_at_s": self.retrain_at_s,
                "new_version": self.new_version,
                "samples_uploaded": self.stack.sample_catalogue.count(),
                "sample_bytes_uploaded": samples.bytes,
                "raw_equivalent_bytes": self.world.raw_bytes,
                "sample_messages_uploaded": samples.messages,
                "raw_equivalent_messages": size,
                "labelled": len(self.labelled),
                "answered": len(ledger.answered()),
            },
            "reliability": self._reliability(devices),
            "cost": estimate(self._usage(links)).to_dict(),
            "uplink": {
                "devices": len(devices),
                "simulated_s": self.scenario.run_duration_s,
                "messages": sum(s.messages for s in links),
                "bytes": sum(s.bytes for s in links),
                "billed_units": sum(s.billed_units for s in links),
                "shadow_updates": sum(s.shadow_updates for s in links),
                "shadow_bytes": sum(s.shadow_bytes for s in links),
                "publishes_refused_offline": sum(s.refused for s in links),
                "acks_lost": sum(s.acks_lost for s in links),
                "raw_messages": size,
                "raw_bytes": self.world.raw_bytes,
            },
            "timeline": {
                "step_s": self.scenario.step_s * self._every,
                "points": self._with_accuracy(self.points),
                "events": sorted(self.events, key=lambda e: e["t_s"]),
                "outages": outages_mapping(self.scenario.outages),
            },
            "rollouts": [{**r, "bad_kind": self.bad_versions.get(r["version"])} for r in self.demo.rollouts],
        }

    def _rows_labelled(self, size: int) -> np.ndarray:
        """Requests made from a dataset row some labelled sample came from: the stream cycles its rows, so the
        retrained model has seen those very inputs; recovered_accuracy_unseen leaves them out."""
        ledger = self.world.ledger
        indices = [request_index(ref.sample.request_id) for ref, _ in self.labelled]
        rows = ledger.row[[i for i in indices if i is not None and 0 <= i < ledger.size]]
        return np.isin(ledger.row[:size], rows)

    def _usage(self, links: list[LinkStats]) -> UplinkUsage:
        """What the fleet sent, in the units AWS bills: every results and samples message has a rule and an S3 put."""
        messages = Metered(sum(s.messages for s in links), sum(s.billed_units for s in links))
        return UplinkUsage(
            devices=len(links),
            duration_s=self.scenario.run_duration_s,
            readings=self.world.ledger.size,
            messages=messages,
            shadow_updates=Metered(sum(s.shadow_updates for s in links), sum(s.shadow_units for s in links)),
            rules_triggered=messages,
            s3_puts=messages.count,
            connected_minutes=self.connected_minutes,
        )

    def _reliability(self, devices: list[SteppedDevice]) -> dict[str, Any]:
        """Produced on the devices against received by the cloud, exactly once in effect."""
        produced = sum(d.records_produced() for d in devices)
        delivered = self.stack.results.received + self.stack.sample_catalogue.count()
        return {
            "records_produced": produced,
            "records_delivered": delivered,
            "records_lost": produced - delivered,
            "duplicates_received": self.stack.results.duplicates + self.stack.samples.duplicates,
            "duplicates_ingested": self.world.ledger.counted_twice,
            "max_buffer_depth": self.world.max_buffer_depth,
            "outage_s": outage_seconds(self.scenario.outages),
            "requests": self.world.ledger.size,
            "answers_received": len(self.world.ledger.answered()),
            "requests_refused": sum(d.health().rejected_inputs for d in devices),
        }

    def _with_accuracy(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each point gains the accuracy, per answering version, of the requests sent since the previous point."""
        ledger, size = self.world.ledger, self.world.ledger.size
        at, version = ledger.at_s[:size], ledger.version[:size]
        out, since = [], -1.0
        for point in points:
            window = (at > since) & (at <= point["t_s"])
            accuracy = {}
            for v in np.unique(version[window]).tolist():
                if v:
                    accuracy[str(v)] = ledger.accuracy(window & (version == v))
            out.append({**point, "accuracy": accuracy})
            since = point["t_s"]
        return out

    def _oracle(self, scored_mask: np.ndarray) -> float | None:
        """The same family trained on post-drift labels, cross-fitted, scored on rows the new version answered."""
        from edgeloop.training.config import TrainingConfig
        from edgeloop.training.model import FAMILIES, MLP

        if self.scenario.drift_starts_at_s is None or not scored_mask.any():
            return None
        rows, index = self.world.reservoir.kept()
        truth = self.world.ledger.truth[index].astype(np.int64)
        scored = scored_mask[index] & (self.world.ledger.predicted[index] >= 0)
        if not scored.any():
            return None
        config = TrainingConfig(model_dir=self.work / "oracle", model_name=self.demo.options.model_name)
        folds = np.array([zlib.crc32(_row_key(row)) % ORACLE_FOLDS for row in rows])  # stable across runs
        correct = 0
        for fold in range(ORACLE_FOLDS):
            test = scored & (folds == fold)
            if not test.any():
                continue
            train = folds != fold
            x = np.vstack([self.initial_x, rows[train]])
            y = np.concatenate([self.initial_y, truth[train]])
            model = FAMILIES[MLP].fit(x, y, config)
            correct += int((model.predict(rows[test]) == truth[test]).sum())
        return round(correct / int(scored.sum()), 4)


def _check_loop(scenario: Scenario, summary: dict[str, Any]) -> None:
    """The promises a scenario makes; a broken one fails the run instead of writing a happy summary."""
    loop, reliability = summary["loop"], summary["reliability"]
    problems = []
    drift_at = scenario.drift_starts_at_s
    if drift_at is not None:
        detected = loop["drift_detected_at_s"]
        if detected is None or detected < drift_at:
            problems.append(f"drift detected at {detected} s, but it began at {drift_at} s")
        if loop["new_version"] is None:
            problems.append("no retrained version reached the fleet")
        elif loop["recovered_accuracy"] is None or loop["post_drift_accuracy"] is None:
            problems.append("no results to measure recovery by")
        elif loop["recovered_accuracy"] <= loop["post_drift_accuracy"]:
            problems.append(
                f"recovered accuracy {loop['recovered_accuracy']} is not above {loop['post_drift_accuracy']}"
            )
    if reliability["records_lost"]:
        problems.append(f"{reliability['records_lost']} records lost")
    if reliability["duplicates_ingested"]:
        problems.append(f"{reliability['duplicates_ingested']} records counted twice")
    for rollout in summary["rollouts"]:
        if rollout["bad_kind"] and rollout["outcome"] != "reverted":
            problems.append(f"bad candidate v{rollout['version']} ({rollout['bad_kind']}) was not stopped")
        if not rollout["bad_kind"] and rollout["outcome"] != "completed":
            problems.append(f"v{rollout['version']} did not complete its rollout ({rollout['outcome']})")
    if problems:
        raise EdgeloopError(f"scenario {scenario.name}: " + "; ".join(problems))


def _row_key(row: np.ndarray) -> bytes:
    return np.round(row, 3).tobytes()


def _channel(work: Path, label: str, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """An NPZ train channel (edgeloop.training's NPZ convention) and the TrainingConfig fields that read it."""
    folder = work / "channels" / f"{label}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    arrays: dict[str, Any] = {NPZ_FEATURES: x.astype(np.float32), "label": y, NPZ_FEATURE_NAMES: np.array(names)}
    np.savez(folder / "data.npz", **arrays)
    return {"dataset": "npz", "train_dir": folder}
