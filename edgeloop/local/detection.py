"""Change detection in the scenario loop: the deployed version's errors on labelled samples (the sequential
detector of edgeloop.core.detectors), or the fleet's label-free drift score held above its bound (recovery).

The detector watches the random share (use="unbiased", edgeloop.core.detectors' default) against a reference
error count: the first version's holdout (its manifest), a retrained version's cross-fitted errors on the
recent random samples it was chosen on, else its own first WARMUP_SAMPLES random samples. Beside it, where the
live version's manifest holds a reliability table, the calibrated detector (edgeloop.core.calibrated) weighs every
labelled sample, hard examples too, against the version's own holdout error rate at that confidence: the pair the
cloud's label ingest runs (edgeloop.core.error_watch.observe_both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from edgeloop.core.calibrated import CalibratedDetector, CalibratedState, initial_calibrated
from edgeloop.core.detectors import ErrorDetector, Observation, initial_state
from edgeloop.core.error_watch import CALIBRATED_DETECTOR, observe_both
from edgeloop.core.manifest import Reliability

WARMUP_SAMPLES = 30
"""A version with no reference error counts watches after this many of its own unbiased samples form one."""


@dataclass(frozen=True)
class Detection:
    """One alarm: when (simulated s), the stream position (ledger index) and file row then, and what fired."""

    t_s: float
    index: int
    row: int
    source: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """As summary.json lists it."""
        return {"t_s": round(self.t_s, 1), "row": self.row, "source": self.source, "text": self.text}


class ChangeWatch:
    """The labelled-error detector on the live version; one alarm per open change.

    A change is open from its detection until a retrained version goes live (`restart`): while open, no
    second alarm is raised (one change, one detection); the detector then restarts on the new version's errors,
    against the reference its caller gives (holdout or cross-fitted error counts), else its own first samples.
    """

    def __init__(self, policy: ErrorDetector | None = None, calibrated: CalibratedDetector | None = None) -> None:
        self.policy = policy or ErrorDetector()
        self.calibrated_policy = calibrated or CALIBRATED_DETECTOR
        self._active = replace(self.policy, warmup=WARMUP_SAMPLES)
        self.state = initial_state(self._active)
        self.calibrated: CalibratedState | None = None
        """The calibrated detector on every labelled sample, where the live version's reliability table is known."""
        self.live_version = 0
        self.open = False
        self.errors: list[tuple[int, bool]] = []
        """(stream index, error) of the live version's labelled samples since it went live, in label order."""

    def restart(
        self, version: int, reference: tuple[int, int] = (0, 0), reliability: Reliability | None = None
    ) -> None:
        """A new version is live: its errors start fresh detectors (the calibrated one where its reliability table is
        known), and any open change is closed."""
        errors, trials = reference
        policy = self.policy if trials else replace(self.policy, warmup=WARMUP_SAMPLES)
        self.live_version, self.open, self.errors = version, False, []
        self._active = policy
        self.state = initial_state(policy, errors, trials)
        self.calibrated = None if reliability is None else initial_calibrated(self.calibrated_policy, reliability)

    def labelled(self, answered: Sequence[tuple[int, int, bool, bool, float | None]]) -> bool:
        """(stream index, answering version, error, unbiased, confidence to judge by or None) of new labels: True
        when either detector on the live version alarms."""
        mine = [
            Observation(error, unbiased, float(index), confidence)
            for index, version, error, unbiased, confidence in answered
            if version == self.live_version
        ]
        self.errors.extend((int(o.served_at), o.error) for o in mine)
        if self.open or not mine:
            return False
        self.state, self.calibrated, alarm = observe_both(
            self.state, self.calibrated, mine, self._active, self.calibrated_policy
        )
        return alarm is not None
