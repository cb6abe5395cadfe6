"""The simulated world of a scenario: which rows a device sees at a moment, after the drift events so far.

Simulation stand-in, not data: the local runner streams a dataset's rows to the devices in file order and
this module changes them as the scenario's drift events say (edgeloop.local.sim.scenario), so the true labels
stay known for the oracle labeller and for measuring accuracy per phase.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeloop.local.sim.scenario import DriftEvent


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
