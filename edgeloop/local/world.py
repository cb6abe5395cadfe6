"""The simulated world of a scenario: which rows a device sees at a moment, after the drift events so far.

Simulation stand-in, not data: the local runner streams a dataset's rows to the devices in file order and
this module changes them as the scenario's drift events say (edgeloop.local.sim.scenario), so the true labels
stay known for the oracle labeller and for measuring accuracy per phase. A file without a duration streams
every row once (World.exhausted); with a duration longer than the file, and for built-in sets, it cycles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeloop.core.errors import ValidationError
from edgeloop.core.sample_budget import RAW_DECIMALS, RAW_ENVELOPE_BYTES
from edgeloop.local.fleet import SteppedDevice
from edgeloop.local.ledger import Ledger, Reservoir, TruthTable, request_id
from edgeloop.local.sim.scenario import MAX_DURATION_S, DriftEvent, Scenario
from edgeloop.training.data import load_dataset, load_file

if TYPE_CHECKING:
    from edgeloop.local.demo import DemoClock

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


@dataclass(frozen=True, eq=False)
class StreamData:
    """A scenario's data split for the run: the first model's rows, the stream, and each stream row's file row."""

    scenario: Scenario
    """The scenario with its duration fixed: a file without duration_s lasts until every row streamed once."""
    initial_x: np.ndarray
    initial_y: np.ndarray
    stream_x: np.ndarray
    stream_y: np.ndarray
    file_rows: np.ndarray
    feature_names: tuple[str, ...]
    labels: tuple[str, ...]
    cycle: bool
    """Whether the stream starts over at its end (built-in sets, or a file with a duration)."""


def load_stream(scenario: Scenario, seed: int) -> StreamData:
    """Load the scenario's data (a file in file order, a built-in set shuffled once) and split it; bad input is a
    ValidationError (exit 2) before anything runs or is written."""
    if scenario.is_file:
        dataset = load_file(Path(scenario.dataset), scenario.label_column, scenario.exclude_columns)
        order = np.arange(len(dataset.targets))
    else:  # bundled sets are sorted (digits: by writer): shuffle once
        dataset = load_dataset(scenario.dataset, None, scenario.label_column)
        order = np.random.default_rng(seed).permutation(len(dataset.targets))
    rows, labels, total = dataset.features.astype(np.float64)[order], dataset.targets[order], len(order)
    if total <= scenario.initial_rows:
        raise ValidationError(  # bad input, like every other scenario mistake: exit 2
            "scenario.initial_rows",
            f"{scenario.initial_rows} leaves no rows to stream: {scenario.dataset} has {total} rows in all",
        )
    late = [p for p in scenario.drift_at_rows if p >= total - 1]
    if late:
        raise ValidationError(
            "scenario.drift_at_rows", f"{late[0]} is not before the last row ({total - 1}) of {scenario.dataset}"
        )
    first = scenario.initial_rows
    return StreamData(
        scenario=_with_duration(scenario, total - first),
        initial_x=rows[:first], initial_y=labels[:first], stream_x=rows[first:], stream_y=labels[first:],
        file_rows=order[first:], feature_names=dataset.feature_names, labels=dataset.labels,
        cycle=scenario.duration_s is not None,
    )  # fmt: skip


def _with_duration(scenario: Scenario, stream_rows: int) -> Scenario:
    """A file scenario without duration_s lasts until its stream rows have been streamed once (whole steps)."""
    if scenario.duration_s is not None:
        return scenario
    per_s = scenario.requests_per_s * scenario.devices
    duration = stream_once_s(stream_rows, scenario.devices, scenario.requests_per_s, scenario.step_s, MAX_DURATION_S)
    if duration is None:
        raise ValidationError(
            "scenario.duration_s",
            f"streaming {stream_rows} rows once at {per_s:g} rows/s takes over {MAX_DURATION_S:.0f} s simulated; "
            "raise requests_per_s or devices, or set duration_s",
        )
    return dataclasses.replace(scenario, duration_s=duration)


def _carried(carry: float, per_step: float) -> tuple[int, float]:
    """Rows each device gets this step, and the fraction carried to the next (the World's and stream_once_s's rule)."""
    carry += per_step
    return int(carry), carry - int(carry)


def stream_once_s(rows: int, devices: int, requests_per_s: float, step_s: float, max_s: float) -> float | None:
    """Simulated seconds until `rows` rows have been streamed once (whole steps); None when that is past max_s."""
    carry, streamed, steps = 0.0, 0, 0
    while streamed < rows:
        if (steps + 1) * step_s > max_s:
            return None
        count, carry = _carried(carry, requests_per_s * step_s)
        streamed += count * devices
        steps += 1
    return steps * step_s


class World:
    """The scenario's stream and fleet: rows in file order, changed per device by the drift events so far,
    handed to the stepped devices one virtual-clock step at a time.

    Each step hands every device, in fleet order, the next requests_per_s x step_s rows of the stream. With
    cycle (built-in sets, or a file with a duration) the stream starts over at its end; without, each row is
    streamed exactly once and then the devices get no more requests (exhausted).
    """

    def __init__(
        self, scenario: Scenario, fleet: dict[str, SteppedDevice], rows: np.ndarray, labels: np.ndarray,
        scale: FeatureScale, classes: int, clock: DemoClock, rng: np.random.Generator, *, cycle: bool = True,
        file_rows: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        self.scenario, self.fleet, self.rows, self.labels = scenario, fleet, rows, labels
        self.cycle = cycle
        self.file_rows = (
            np.arange(scenario.initial_rows, scenario.initial_rows + len(rows)) if file_rows is None else file_rows
        )
        """The file row (0-based data row) of each stream row: what file_row() maps through."""
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
    def exhausted(self) -> bool:
        """Whether every stream row has been streamed once and no more will come (never, when cycling)."""
        return not self.cycle and self._next >= len(self.rows)

    def file_row(self, stream_index: int) -> int:
        """The file's 0-based data row a stream row came from (the ledger's `row` holds stream indices).

        Not cycling, a file's stream row i is file row initial_rows + i; a built-in set maps through its shuffle.
        """
        if not 0 <= stream_index < len(self.rows):
            raise IndexError(f"stream row {stream_index} is outside [0, {len(self.rows)})")
        return int(self.file_rows[stream_index])

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
            count, self._carry = _carried(self._carry, self.scenario.requests_per_s * self.scenario.step_s)
        drift_at = self.scenario.drift_starts_at_s
        for index, thing in enumerate(self.things):
            device = self.fleet[thing]
            picks = self._picks(count)
            if not len(picks):
                device.step(())
                continue
            rows, truth = apply_drift(
                self.rows[picks], self.labels[picks], self.scenario.drift, now_s=self.now_s, device_index=index,
                devices=len(self.things), scale=self.scale, classes=self.classes, rng=self.rng,
            )  # fmt: skip
            first = self.ledger.add(self.now_s, index, truth, picks)
            if drift_at is not None and self.now_s >= drift_at:
                self.reservoir.add(rows, first)
            rounded, sent = np.round(rows, RAW_DECIMALS).tolist(), len(picks)  # raw_reading_bytes, for a whole step
            self.raw_bytes += len(json.dumps(rounded)) - 2 - 2 * (sent - 1) + RAW_ENVELOPE_BYTES * sent
            device.step([(request_id(thing, first + i), row) for i, row in enumerate(rows)])
        for hook in self.on_step:
            hook()

    def _picks(self, count: int) -> np.ndarray:
        """The next count stream rows (fewer, or none, at the end of a stream that does not cycle)."""
        stop = self._next + count if self.cycle else min(self._next + count, len(self.rows))
        picks = np.arange(self._next, stop) % len(self.rows)
        self._next = max(self._next, stop)
        return picks
