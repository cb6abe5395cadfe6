"""The simulated world of a scenario: which rows a device sees at a moment, after the drift events so far.

Simulation stand-in, not data: the local runner streams a dataset's rows to the devices in file order and
this module changes them as the scenario's drift events say (edgeloop.local.sim.scenario), so the true labels
stay known for the oracle labeller and for measuring accuracy per phase.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgeloop.local.fleet import SteppedDevice
from edgeloop.local.ledger import Ledger, Reservoir, TruthTable, request_id
from edgeloop.local.sim.scenario import DriftEvent, Scenario

if TYPE_CHECKING:
    from edgeloop.local.demo import DemoClock

RAW_ENVELOPE_BYTES = 96
"""What a naive device adds around each reading it streams raw (thing, request id, timestamp, JSON keys)."""
ORACLE_MAX_ROWS = 30_000
"""The oracle learns from every post-drift row up to this many, then from a uniform sample of this many."""


@dataclass(frozen=True)
class FeatureScale:
    """Per-feature training statistics the drift magnitudes are measured in, and the range inputs stay in."""

    std: np.ndarray
    minimum: float
    maximum: float


def affected(event: DriftEvent, device_index: int, devices: int) -> bool:
    """Whether a device is in the event's share: the first ceil(share * devices) devices, a stable choice."""
    return device_index < math.ceil(event.share * devices)


def apply_drift(
    rows: np.ndarray,
    labels: np.ndarray,
    events: Sequence[DriftEvent],
    *,
    now_s: float,
    device_index: int,
    devices: int,
    scale: FeatureScale,
    classes: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows and true labels one device sees at now_s: every event that began and covers it, in order."""
    out, truth = rows.astype(np.float64, copy=True), labels.copy()
    for event in events:
        if event.at_s > now_s or not affected(event, device_index, devices):
            continue
        if event.kind == "concept":
            truth = (truth + int(event.magnitude)) % classes
            continue
        out = _move(out, event, scale, rng)
    return np.clip(out, scale.minimum, scale.maximum), truth


def _move(rows: np.ndarray, event: DriftEvent, scale: FeatureScale, rng: np.random.Generator) -> np.ndarray:
    """Inputs after one drift event (shift, noise or rotation), in units of each feature's training std."""
    std = np.where(scale.std > 0, scale.std, 1.0)
    if event.kind == "shift":
        return rows + event.magnitude * std
    if event.kind == "noise":
        return rows + rng.normal(0.0, event.magnitude, rows.shape) * std
    angle = event.magnitude  # rotation: each feature mixed with its right-hand neighbour
    neighbour = np.roll(rows, -1, axis=1)
    return math.cos(angle) * rows + math.sin(angle) * neighbour


class World:
    """The scenario's stream and fleet: rows in file order (cycled), changed per device by the drift events so
    far, handed to the stepped devices one virtual-clock step at a time."""

    def __init__(
        self, scenario: Scenario, fleet: dict[str, SteppedDevice], rows: np.ndarray, labels: np.ndarray,
        scale: FeatureScale, classes: int, clock: DemoClock, rng: np.random.Generator,
    ) -> None:  # fmt: skip
        self.scenario, self.fleet, self.rows, self.labels = scenario, fleet, rows, labels
        self.things = list(fleet)
        self.scale, self.classes, self.clock, self.rng = scale, classes, clock, rng
        self.started_at = clock.now
        self.ledger = Ledger()
        self.truth = TruthTable(self.ledger)
        self.reservoir = Reservoir(ORACLE_MAX_ROWS, rows.shape[1], np.random.default_rng(rng.integers(1 << 31)))
        self.raw_bytes = 0
        self.max_buffer_depth = 0
        self.steps = 0
        self.step_wall_s = 0.0
        """Wall time spent stepping the fleet (and the loop's per-step work), for the summary."""
        self._next = 0
        self._carry = 0.0
        self.on_step: list[Callable[[], None]] = []
        """Run after every step (the loop's labelling, drift watch and timeline)."""
        self.streaming = True
        """False once the scenario's time is up: steps then only forward and report (draining)."""

    @property
    def now_s(self) -> float:
        """Simulated seconds since the stream began."""
        return self.clock.now - self.started_at

    def tick(self) -> None:
        """One step: every device gets requests_per_s x step_s rows (carried over fractions) and is stepped."""
        started = time.perf_counter()
        try:
            self._tick()
        finally:
            self.steps += 1
            self.step_wall_s += time.perf_counter() - started

    def _tick(self) -> None:
        count = 0
        if self.streaming:
            self._carry += self.scenario.requests_per_s * self.scenario.step_s
            count, self._carry = int(self._carry), self._carry - int(self._carry)
        drift_at = self.scenario.drift_starts_at_s
        for index, thing in enumerate(self.things):
            device = self.fleet[thing]
            if not count:
                device.step(())
                continue
            picks = (self._next + np.arange(count)) % len(self.rows)
            self._next += count
            rows, truth = apply_drift(
                self.rows[picks], self.labels[picks], self.scenario.drift, now_s=self.now_s, device_index=index,
                devices=len(self.things), scale=self.scale, classes=self.classes, rng=self.rng,
            )  # fmt: skip
            first = self.ledger.add(self.now_s, index, truth, picks)
            if drift_at is not None and self.now_s >= drift_at:
                self.reservoir.add(rows, first)
            rounded = np.round(rows, 4).tolist()
            self.raw_bytes += len(json.dumps(rounded)) - 2 - 2 * (count - 1) + RAW_ENVELOPE_BYTES * count
            device.step([(request_id(thing, first + i), row) for i, row in enumerate(rows)])
        for hook in self.on_step:
            hook()
