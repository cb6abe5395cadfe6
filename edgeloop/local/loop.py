"""`edgeloop demo --scenario`: the closed loop on the local stack, drift to recovery, on a virtual clock.

Steps, all through the real code: the first model is trained on the scenario's first rows and rolled out
through the rings; the rest of the data streams to the devices (changed by the scenario's drift events,
edgeloop.local.world); devices score drift and sample hard examples through their privacy filter; samples
reach the sample ingest through the samples topic rule; the oracle labeller (a simulation stand-in that
reads the scenario's true labels) labels them; the retraining trigger watches labels and the fleet's drift
score; a retrained version (parent: last-known-good) goes through the gate, approval and the rings; the
summary's "loop" section measures accuracy per phase against an oracle model trained on every post-drift
label (cross-fitted, so no row is scored by a model that saw it).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.cloud.samples import OracleLabeller, SampleRef
from edgeloop.core.errors import EdgeloopError
from edgeloop.core.retraining import RetrainingState, observe_drift, observe_labels, retraining_decision, triggered
from edgeloop.core.rollout import VersionHealth
from edgeloop.core.scenario import Scenario
from edgeloop.local import demo as base
from edgeloop.local.report import with_cost, write_report
from edgeloop.local.stack import LocalStack
from edgeloop.local.world import FeatureScale, apply_drift
from edgeloop.training.data import BUILTIN_PREFIX, NPZ_FEATURE_NAMES, NPZ_FEATURES, load_dataset

Progress = Callable[[str], None]
TICK_SIM_S = base.TICK_SIM_S
RAW_ENVELOPE_BYTES = 96
"""What a naive device adds around each reading it streams raw (thing, request id, timestamp, JSON keys)."""
FLEET_SALT = "edgeloop-local-scenario-salt"
ORACLE_FOLDS = 5
RETRAIN_MAX_ITER = 500
"""The retrained model's MLP iterations: a few hundred new rows need a model that converges on them."""


@dataclass
class Sent:
    """One request as the world made it: when, to whom, what it looked like, and its true label."""

    thing: str
    at_s: float
    features: np.ndarray
    truth: int


@dataclass
class World:
    """The scenario's stream: rows in file order (cycled), changed per device by the drift events so far."""

    scenario: Scenario
    stack: LocalStack
    things: list[str]
    rows: np.ndarray
    labels: np.ndarray
    scale: FeatureScale
    classes: int
    clock: base.DemoClock
    started_at: float
    rng: np.random.Generator
    sent: dict[str, Sent] = field(default_factory=dict)
    truth: dict[str, int] = field(default_factory=dict)
    raw_bytes: int = 0
    _next: int = 0
    _carry: float = 0.0

    @property
    def now_s(self) -> float:
        """Simulated seconds since the stream began."""
        return self.clock.now - self.started_at

    def tick(self) -> None:
        """One tick's worth of requests to every device (requests_per_s x TICK_SIM_S each)."""
        self._carry += self.scenario.requests_per_s * TICK_SIM_S
        count, self._carry = int(self._carry), self._carry - int(self._carry)
        for index, thing in enumerate(self.things):
            picks = (self._next + np.arange(count)) % len(self.rows)
            self._next += count
            rows, truth = apply_drift(
                self.rows[picks], self.labels[picks], self.scenario.drift, now_s=self.now_s, device_index=index,
                devices=len(self.things), scale=self.scale, classes=self.classes, rng=self.rng,
            )  # fmt: skip
            for row, label in zip(rows, truth, strict=True):
                request_id = f"{thing}-s{len(self.sent):07d}"
                self.sent[request_id] = Sent(thing, self.now_s, row, int(label))
                self.truth[request_id] = int(label)
                self.raw_bytes += len(json.dumps([round(float(v), 4) for v in row])) + RAW_ENVELOPE_BYTES
                self.stack.devices[thing].submit(request_id, row.tolist())


def run_scenario(scenario: Scenario, out: Path, progress: Progress, *, seed: int | None = None) -> dict[str, Any]:
    """The whole loop for one scenario; writes DIR/summary.json and returns it."""
    started = time.monotonic()
    seed = scenario.seed if seed is None else seed
    dataset = load_dataset(scenario.dataset, None, scenario.label_column)
    rows, labels = dataset.features.astype(np.float64), dataset.targets
    if scenario.dataset.startswith(BUILTIN_PREFIX):  # bundled sets are sorted (digits: by writer): shuffle once
        order = np.random.default_rng(seed).permutation(len(rows))
        rows, labels = rows[order], labels[order]
    initial_x, initial_y = rows[: scenario.initial_rows], labels[: scenario.initial_rows]
    stream_x, stream_y = rows[scenario.initial_rows :], labels[scenario.initial_rows :]
    if len(stream_x) == 0:
        raise EdgeloopError(f"{scenario.dataset} has no rows left after initial_rows={scenario.initial_rows}")
    clock = base.DemoClock()
    options = base.DemoOptions(devices=scenario.devices, out=out, seed=seed)
    fleet_config = {
        "samplers": scenario.samplers,
        "privacy": scenario.privacy or {"allowRaw": True},
        "fleetSalt": FLEET_SALT,
        "sampleBytesPerDay": SAMPLE_BYTES_PER_DEVICE,
        **SCENARIO_DEVICE_CONFIG,
    }
    with (
        tempfile.TemporaryDirectory(prefix="edgeloop-scenario-") as work,
        LocalStack(Path(work), rollout_policy=base.DEMO_POLICY, clock=clock) as stack,
    ):
        stack.provision(options.model_name, fleet_config=fleet_config)
        things = [f"edgeloop-device-{i:03d}" for i in range(1, scenario.devices + 1)]
        for index, thing in enumerate(things):
            stack.add_device(thing, ring=base.CANARY if index < base.CANARY_DEVICES else base.BROAD)
        progress(f"scenario {scenario.name}: {len(things)} devices, {scenario.duration_s:.0f} s simulated, "
                 f"{len(initial_x)} rows to train on, {len(stream_x)} to stream")  # fmt: skip
        demo = base.DemoSession(stack, options, Path(work), clock, progress, things)
        demo.approve_by_hand = True
        first = demo.train_and_publish(
            "v-initial", seed, config=_channel(Path(work), "initial", initial_x, initial_y, dataset.feature_names)
        )
        scale = FeatureScale(np.asarray(initial_x.std(axis=0)), first.trained.manifest.input.minimum,
                             first.trained.manifest.input.maximum)  # fmt: skip
        world = World(scenario, stack, things, stream_x, stream_y, scale, len(dataset.labels), clock, clock.now,
                      np.random.default_rng(seed))  # fmt: skip
        demo.roll_out(first.record, world)
        loop = _Loop(scenario, stack, demo, world, Path(work), initial_x, initial_y, dataset.feature_names, progress)
        loop.run(first.record.version)
        base._wait_until_settled(stack, progress)
        summary = loop.summary()
        _check_loop(scenario, summary["loop"])
        summary["rollouts"] = demo.rollouts
        summary["run"] = {"wall_s": round(time.monotonic() - started, 2), "scenario": scenario.name}
    summary = with_cost(summary)
    base.write_summary(out, summary)
    write_report(out, summary)
    return summary


SAMPLE_BYTES_PER_DEVICE = 50 * 1024
"""The scenario fleet's daily sample budget per device: the loop must learn from a trickle, not a stream."""
SCENARIO_DEVICE_CONFIG = {"healthIntervalSeconds": 1.0, "healthMinIntervalSeconds": 0.5, "driftWindow": 400,
                          "driftMinRows": 200}  # fmt: skip
"""Reports and drift windows sized to a simulated hour streamed in under a minute of wall time."""


class _Loop:
    """The scenario after the first rollout: stream, label, watch drift, retrain once the trigger says so."""

    def __init__(
        self, scenario: Scenario, stack: LocalStack, demo: base.DemoSession, world: World, work: Path,
        initial_x: np.ndarray, initial_y: np.ndarray, features: tuple[str, ...], progress: Progress,
    ) -> None:  # fmt: skip
        self.scenario, self.stack, self.demo, self.world, self.work = scenario, stack, demo, world, work
        self.initial_x, self.initial_y, self.features, self.progress = initial_x, initial_y, features, progress
        self.labeller = OracleLabeller(world.truth)
        self.labelled: list[tuple[SampleRef, int]] = []
        self.samples: list[SampleRef] = []
        self.drift_detected_at_s: float | None = None
        self.retrain_at_s: float | None = None
        self.new_version: int | None = None
        self.live_version = 0

    def run(self, first_version: int) -> None:
        """Tick until the scenario's time is up; retrain (once per cooldown) when the trigger says so."""
        self.live_version = first_version
        state = RetrainingState(self.demo.options.model_name, parent_version=first_version)
        while self.world.now_s < self.scenario.duration_s:
            self._tick()
            state = observe_labels(state, self._label_new())
            drift = self._fleet_drift()
            state = observe_drift(state, drift, self.scenario.retraining, self.world.now_s)
            if drift is not None and drift > self.scenario.retraining.drift_bound and self.drift_detected_at_s is None:
                self.drift_detected_at_s = round(self.world.now_s, 1)
                self.progress(f"[{self.world.now_s:7.0f} s] fleet drift score {drift:.3f}: drift detected")
            decision = retraining_decision(state, self.scenario.retraining, self.world.now_s)
            if decision.retrain and self.new_version is None:
                self.retrain_at_s = round(self.world.now_s, 1)
                self.progress(f"[{self.world.now_s:7.0f} s] retraining: {decision.reason}")
                state = triggered(state, self.world.now_s)
                self.new_version = self._retrain(first_version)
                self.live_version = self.new_version

    def _tick(self) -> None:
        self.world.tick()
        time.sleep(base.TICK_REAL_S)
        self.world.clock.advance(TICK_SIM_S)
        self.stack.greengrass.advance()
        self.demo.bus.invoke("rollout_controller", base.schedule_event())

    def _label_new(self) -> int:
        """Label what the ingest queued since the last look (the oracle stand-in answers at once)."""
        fresh = self.stack.labelling_queue.sent[len(self.samples) :]
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
        self.demo.roll_out(candidate.record, self.world)
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
        """summary.json's loop section, from what the cloud received joined with the world's truth."""
        answered = self._answered()
        drift_at = self.scenario.drift_starts_at_s
        pre = [a for a in answered if drift_at is None or a[0].at_s < drift_at]
        post = [a for a in answered if drift_at is not None and a[0].at_s >= drift_at and a[2] != self.new_version]
        recovered = [a for a in answered if self.new_version is not None and a[2] == self.new_version]
        return {
            "loop": {
                "pre_drift_accuracy": _accuracy(pre),
                "post_drift_accuracy": _accuracy(post),
                "recovered_accuracy": _accuracy(recovered),
                "oracle_accuracy": self._oracle([a[0] for a in recovered]),
                "drift_detected_at_s": self.drift_detected_at_s,
                "retrain_triggered_at_s": self.retrain_at_s,
                "new_version": self.new_version,
                "samples_uploaded": self.stack.sample_catalogue.count(),
                "bytes_uploaded": self.stack.samples.bytes,
                "raw_equivalent_bytes": self.world.raw_bytes,
                "messages_uploaded": self.stack.samples.messages,
                "raw_equivalent_messages": len(self.world.sent),
                "labelled": len(self.labelled),
                "answered": len(answered),
            }
        }

    def _answered(self) -> list[tuple[Sent, int, int]]:
        """(request, predicted label, model version) of every result the cloud received."""
        out = []
        for thing in self.world.things:
            for delivered in self.stack.results.results(thing):
                sent = self.world.sent.get(delivered.result.request_id)
                if sent is not None:
                    out.append((sent, delivered.result.label_index, delivered.result.model_version))
        return out

    def _oracle(self, scored: list[Sent]) -> float | None:
        """The same family trained with every post-drift label but the rows it is scored on (cross-fitted)."""
        from edgeloop.training.config import TrainingConfig
        from edgeloop.training.model import FAMILIES, MLP

        config = TrainingConfig(model_dir=self.work / "oracle", model_name=self.demo.options.model_name)

        drift_at = self.scenario.drift_starts_at_s
        if not scored or drift_at is None:
            return None
        post = [s for s in self.world.sent.values() if s.at_s >= drift_at]
        keys = {id(s): _row_key(s.features) for s in post}
        folds = {k: zlib.crc32(k) % ORACLE_FOLDS for k in set(keys.values())}  # stable across runs
        correct = 0
        for fold in range(ORACLE_FOLDS):
            test = [s for s in scored if folds.get(_row_key(s.features), -1) == fold]
            if not test:
                continue
            train = [s for s in post if folds[keys[id(s)]] != fold]
            x = np.vstack([self.initial_x, np.array([s.features for s in train])])
            y = np.concatenate([self.initial_y, np.array([s.truth for s in train])])
            model = FAMILIES[MLP].fit(x, y, config)
            correct += int(
                (model.predict(np.array([s.features for s in test])) == np.array([s.truth for s in test])).sum()
            )
        return round(correct / len(scored), 4)


def _check_loop(scenario: Scenario, loop: dict[str, Any]) -> None:
    """The promises a drift scenario makes; a broken one fails the run instead of writing a happy summary."""
    drift_at = scenario.drift_starts_at_s
    if drift_at is None:
        return
    problems = []
    detected = loop["drift_detected_at_s"]
    if detected is None or detected < drift_at:
        problems.append(f"drift detected at {detected} s, but it began at {drift_at} s")
    if loop["new_version"] is None:
        problems.append("no retrained version reached the fleet")
    elif loop["recovered_accuracy"] is None or loop["post_drift_accuracy"] is None:
        problems.append("no results to measure recovery by")
    elif loop["recovered_accuracy"] <= loop["post_drift_accuracy"]:
        problems.append(f"recovered accuracy {loop['recovered_accuracy']} is not above {loop['post_drift_accuracy']}")
    if problems:
        raise EdgeloopError(f"scenario {scenario.name}: " + "; ".join(problems))


def _row_key(row: np.ndarray) -> bytes:
    return np.round(row, 3).tobytes()


def _accuracy(answers: list[tuple[Sent, int, int]]) -> float | None:
    if not answers:
        return None
    return round(sum(1 for sent, predicted, _ in answers if predicted == sent.truth) / len(answers), 4)


def _channel(work: Path, label: str, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """An NPZ train channel (edgeloop.training's NPZ convention) and the TrainingConfig fields that read it."""
    folder = work / "channels" / f"{label}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    arrays: dict[str, Any] = {NPZ_FEATURES: x.astype(np.float32), "label": y, NPZ_FEATURE_NAMES: np.array(names)}
    np.savez(folder / "data.npz", **arrays)
    return {"dataset": "npz", "train_dir": folder}
