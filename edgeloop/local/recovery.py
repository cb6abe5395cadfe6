"""The loop's recovery bookkeeping: labelled samples as they arrive, detections, the current concept, and when the
next retrain is due.

An alarm is the deployed version's labelled-error detector firing (edgeloop.local.detection) or the fleet's
label-free drift score held above the policy's drift_bound for drift_for_s. Each alarm opens a change: the new
concept starts where the errors most likely stepped up (edgeloop.core.retraining.change_point) or, for a fleet
alarm, where the drift score went high; retrains follow edgeloop.core.retraining.retrain_due. Nothing here
reads the stream's known change points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeloop.core.manifest import Reliability
from edgeloop.core.retraining import RecoveryPolicy, RetrainingDecision, RetrainingPolicy, change_point, retrain_due
from edgeloop.local.detection import ChangeWatch, Detection
from edgeloop.local.retrain import Labelled

CHANGE_MIN_SIDE = 10
"""The change-point estimate leaves at least this many labelled errors on each side of the split."""


@dataclass(frozen=True)
class Moment:
    """Where the stream is: simulated seconds, the last request's position (ledger index) and its file row."""

    t_s: float
    index: int
    row: int


class Recovery:
    """What the cloud knows about the live version's world, step by step."""

    def __init__(
        self, retraining: RetrainingPolicy, policy: RecoveryPolicy | None = None, sustain_s: float | None = None
    ) -> None:
        self.retraining, self.policy = retraining, policy or RecoveryPolicy()
        self.sustain_s = retraining.drift_for_s if sustain_s is None else min(sustain_s, retraining.drift_for_s)
        """How long the fleet drift score must stay high: drift_for_s, or less when the caller says a full drift
        window of fresh rows takes less (a score that stayed high over a whole new window is no blip)."""
        self.watch = ChangeWatch()
        self.labelled: list[Labelled] = []
        self.detections: list[Detection] = []
        self.concept_start: int | None = None
        """Stream position where the current change's concept begins (None: no change open or handled)."""
        self.trained_on: int | None = None
        """The concept's label count at the last retrain attempt (None: none since the detection)."""
        self._tried_at = 0
        self.cuts: dict[int, int] = {}
        """Per retrained version: how many labelled samples (in arrival order) had arrived when it was trained."""
        self.concept_of: dict[int, int | None] = {}
        """Per retrained version: the concept (its start) it was trained on."""
        self.live_version = 0
        self._high_since: float | None = None
        self._high_index = 0
        self._floor: float | None = None
        """The live version's lowest fleet drift score: a version trained across a change starts high, and only a
        rise above where it started is a new change."""

    def went_live(
        self, version: int, reference: tuple[int, int] = (0, 0), reliability: Reliability | None = None
    ) -> None:
        """A version reached the fleet: the detectors (against reference: errors, trials; and its reliability table)
        and the drift clock restart."""
        self.live_version = version
        self.watch.restart(version, reference, reliability)
        self._high_since, self._floor = None, None

    def observe(self, new: Sequence[Labelled], drift: float | None, now: Moment) -> Detection | None:
        """Take in the step's new labels and the fleet drift score; a Detection when either alarms."""
        self.labelled.extend(new)
        errors = [(s.index, s.version, s.answer != s.y, s.unbiased, s.judged) for s in new]
        if self.watch.labelled(errors):
            ordered = [e for _, e in sorted(self.watch.errors)]
            start = change_point(ordered, CHANGE_MIN_SIDE)
            begins = sorted(self.watch.errors)[start][0] if ordered else now.index
            rate = sum(ordered) / max(1, len(ordered))
            text = f"v{self.live_version} error rate {rate:.3f} on {len(ordered)} labelled samples alarmed"
            return self._open(now, "labelled_errors", text, begins)
        if drift is not None:
            self._floor = drift if self._floor is None else min(self._floor, drift)
        high = drift is not None and drift > self._bound()
        if not high:
            self._high_since = None
        elif self._high_since is None:
            self._high_since, self._high_index = now.t_s, now.index
        lasted = now.t_s - self._high_since if self._high_since is not None else -1.0
        if lasted >= self.sustain_s and not self.watch.open:
            text = f"fleet drift score {drift:.3f} > {self._bound():.3f} for {lasted:.0f} s"
            return self._open(now, "fleet_drift", text, self._high_index)
        return None

    def _bound(self) -> float:
        """drift_bound above the live version's lowest score, in proportion once that is past 1 (a PSI of 14 moves
        by more than 0.2 from one window to the next)."""
        floor = self._floor or 0.0
        return floor + self.retraining.drift_bound * max(1.0, floor)

    def _open(self, now: Moment, source: str, text: str, begins: int) -> Detection:
        """A detection: the change is open until a retrained version goes live; its concept starts at begins."""
        detection = Detection(now.t_s, now.index, now.row, source, text)
        self.detections.append(detection)
        self.watch.open = True
        self.concept_start, self.trained_on = begins, None
        return detection

    def recent(self) -> list[Labelled]:
        """Labelled samples of the current concept, in stream order."""
        if self.concept_start is None:
            return []
        return sorted((s for s in self.labelled if s.index >= self.concept_start), key=lambda s: s.index)

    def old(self) -> list[Labelled]:
        """Labelled samples from before the current concept began."""
        start = self.concept_start if self.concept_start is not None else 0
        return [s for s in self.labelled if s.index < start]

    def due(self) -> RetrainingDecision:
        """Whether to retrain now: labels of the concept per retrain_due, and enough deployed answers to gate on
        (samples the live version answered on a device, or arrived after it was trained: the cloud answers those
        with the live model itself, so a fresh version need not wait a label delay for its own samples)."""
        if self.concept_start is None:
            return RetrainingDecision(False, "no change detected")
        recent = self.recent()
        decision = retrain_due(len(recent), self.trained_on, self.policy)
        if not decision.retrain:
            return decision
        unseen = self.unseen_by_live()
        answered = sum(1 for s in recent if s.version == self.live_version or id(s) in unseen)
        if answered < self.policy.gate_min_samples:
            return RetrainingDecision(False, f"{answered} of {self.policy.gate_min_samples} samples to gate on")
        return decision

    def tried(self) -> None:
        """A retrain was attempted on the concept's labels so far (registered or refused)."""
        self.trained_on = len(self.recent())
        self._tried_at = len(self.labelled)

    def trained(self, version: int) -> None:
        """version was trained on the labels that had arrived at the last attempt (later ones it never saw), of the
        concept open now."""
        self.cuts[version] = self._tried_at
        self.concept_of[version] = self.concept_start

    @property
    def live_is_successor(self) -> bool:
        """Whether the live version was itself retrained on the concept open now (a new detection starts another)."""
        return self.concept_start is not None and self.concept_of.get(self.live_version, -1) == self.concept_start

    def unseen_by_live(self) -> set[int]:
        """ids of the labelled samples the live version did not train on (arrived after its retrain; every one for
        a version trained before any label): its answers to them, computed in the cloud, are fair gate evidence."""
        return {id(s) for s in self.labelled[self.cuts.get(self.live_version, 0) :]}


def old_rows(initial_x: np.ndarray, initial_y: np.ndarray, old: Sequence[Labelled]) -> tuple[np.ndarray, np.ndarray]:
    """The old world: the initial rows and the labelled samples from before the current concept."""
    if not old:
        return initial_x, initial_y
    return (
        np.vstack([initial_x, np.array([s.x for s in old])]),
        np.concatenate([initial_y, np.array([s.y for s in old], dtype=initial_y.dtype)]),
    )
