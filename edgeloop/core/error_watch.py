"""The labelled-error detector (core.detectors) as the cloud runs it: one per model, on its live version.

The label ingest folds each newly labelled sample of the model's live (last-known-good) version into an
ErrorWatch and stores it; a new live version starts a fresh watch. The retraining trigger reads the watch
and, while its latest alarm is one it has not handled, treats it as a reason to retrain (core.retraining);
a triggered retrain records the alarm's key as handled, so one alarm triggers at most one retrain.

The reference rate comes from the version's holdout when the caller can read its manifest
(`reference_from_manifest`), and from the version's own first `warmup` usable samples either way.

Where the caller has the version's reliability table (its manifest's baseline), a second detector runs beside
that one: the calibrated detector (core.calibrated), which weighs every labelled sample by the confidence it
was answered with. Either alarming is the watch's alarm, so P(a false alarm within `horizon` samples) is at
most the sum of the two policies' false_alarm (CLOUD_DETECTOR's and CALIBRATED_DETECTOR's: 0.02).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from edgeloop.core import wire
from edgeloop.core.calibrated import CalibratedDetector, CalibratedState, initial_calibrated, observe_calibrated
from edgeloop.core.detector_state import DetectorState, finite_number
from edgeloop.core.detectors import Alarm, ErrorDetector, Observation, initial_state, observe
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import Reliability
from edgeloop.core.names import validate_model_name
from edgeloop.core.retraining import RaisedAlarm

CLOUD_DETECTOR = ErrorDetector(warmup=100)
"""The cloud's policy: the stated defaults, plus a warm-up so a version without a readable holdout is watched too."""
CALIBRATED_DETECTOR = CalibratedDetector()
"""The calibrated detector's policy, for versions whose reliability table the caller could read."""

_ALARM_INTS = ("at_sample", "since_sample", "run_samples", "run_errors")
_ALARM_FLOATS = ("reference_rate", "alternative", "statistic", "threshold")
_WATCH_KEYS = {"model_name", "version", "state", "alarm", "revision"}
_OPTIONAL_KEYS = {"calibrated"}
"""Absent from watches stored before the calibrated detector (and from those of versions without a table)."""


@dataclass(frozen=True)
class ErrorWatch:
    """The detector of one model's live version, its latest alarm, and the revision guarding its conditional write."""

    model_name: str
    version: int
    state: DetectorState
    alarm: Alarm | None = None
    """The latest alarm on this version (kept after the trigger handled it: the key says which one it was)."""
    revision: int = 0
    calibrated: CalibratedState | None = None
    """The calibrated detector, where the version's reliability table was known when the watch started."""

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if self.version < 1:
            raise ValidationError("error_watch.version", f"must be >= 1, got {self.version}")
        if self.revision < 0:
            raise ValidationError("error_watch.revision", f"must be >= 0, got {self.revision}")

    def raised(self) -> RaisedAlarm | None:
        """The latest alarm as the trigger sees it (None: none on this version)."""
        if self.alarm is None:
            return None
        a = self.alarm
        reason = (
            f"labelled error rate of version {self.version} rose: {a.run_errors} wrong of the last {a.run_samples} "
            f"samples ({a.run_error_rate:.3f}) against a reference of {a.reference_rate:.3f}"
        )
        return RaisedAlarm(f"v{self.version}#{self.alarms}", reason)

    @property
    def alarms(self) -> int:
        """Alarms on this version so far, of both detectors: the latest alarm's number."""
        return self.state.alarms + (0 if self.calibrated is None else self.calibrated.alarms)

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON)."""
        alarm = None if self.alarm is None else {k: getattr(self.alarm, k) for k in (*_ALARM_INTS, *_ALARM_FLOATS)}
        data = {
            "model_name": self.model_name,
            "version": self.version,
            "state": self.state.to_dict(),
            "alarm": alarm,
            "revision": self.revision,
        }
        if self.calibrated is not None:
            data["calibrated"] = self.calibrated.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: object) -> ErrorWatch:
        """Parse the stored form; a damaged item is an error (ValidationError naming the field), never a restart."""
        where = "error_watch"
        d = wire.mapping(data, where)
        wire.only_keys(d, _WATCH_KEYS | _OPTIONAL_KEYS, where)
        missing = sorted(_WATCH_KEYS - set(d))
        if missing:
            raise ValidationError(where, f"missing key(s) {missing}")
        return cls(
            model_name=wire.text(d, "model_name", where),
            version=wire.integer(d, "version", where, minimum=1),
            state=DetectorState.from_dict(d["state"]),
            alarm=None if d["alarm"] is None else _alarm_from_dict(d["alarm"]),
            revision=wire.integer(d, "revision", where, minimum=1),
            calibrated=CalibratedState.from_dict(d["calibrated"]) if "calibrated" in d else None,
        )


def _alarm_from_dict(data: object) -> Alarm:
    """An Alarm's stored form: its counts and rates."""
    where = "error_watch.alarm"
    d = wire.mapping(data, where)
    wire.only_keys(d, {*_ALARM_INTS, *_ALARM_FLOATS}, where)
    at, since, run, errors = (wire.integer(d, k, where, minimum=0) for k in _ALARM_INTS)
    reference, alternative, statistic, threshold = (finite_number(d.get(k), f"{where}.{k}") for k in _ALARM_FLOATS)
    return Alarm(at, since, run, errors, reference, alternative, statistic, threshold)


def fold_labels(
    watch: ErrorWatch | None,
    model_name: str,
    live_version: int,
    observations: Sequence[Observation],
    policy: ErrorDetector = CLOUD_DETECTOR,
    reference: tuple[int, int] = (0, 0),
    reliability: Reliability | None = None,
    calibrated_policy: CalibratedDetector = CALIBRATED_DETECTOR,
) -> tuple[ErrorWatch, Alarm | None]:
    """One arrival batch of the live version's labelled samples folded in; a new live version starts afresh.

    `reference` is (errors, trials) of the version's holdout, used only when the watch starts; `reliability`, its
    reliability table, starts the calibrated detector beside it then, or later on a watch running without one.
    Returns the watch to store (its revision one past the one read) and the alarm this batch raised, if any (the
    calibrated one's first).
    """
    revision = 0 if watch is None else watch.revision
    calibrated = None if reliability is None else initial_calibrated(calibrated_policy, reliability)
    if watch is None or watch.version != live_version or watch.model_name != model_name:
        watch = ErrorWatch(model_name, live_version, initial_state(policy, *reference), revision=revision,
                           calibrated=calibrated)  # fmt: skip
    elif watch.calibrated is None and calibrated is not None:  # a table read late: the calibrated one starts now
        watch = replace(watch, calibrated=calibrated)
    state, calibrated, raised = observe_both(watch.state, watch.calibrated, observations, policy, calibrated_policy)
    stored = ErrorWatch(model_name, live_version, state, raised or watch.alarm, revision + 1, calibrated)
    return stored, raised


def observe_both(
    state: DetectorState,
    calibrated: CalibratedState | None,
    observations: Sequence[Observation],
    policy: ErrorDetector = CLOUD_DETECTOR,
    calibrated_policy: CalibratedDetector = CALIBRATED_DETECTOR,
) -> tuple[DetectorState, CalibratedState | None, Alarm | None]:
    """One arrival batch through both detectors (the calibrated one where it runs); the batch's alarm, if any
    (the calibrated detector's first: it weighs every sample)."""
    state, alarm = observe(state, observations, policy)
    calibrated_alarm = None
    if calibrated is not None:
        calibrated, calibrated_alarm = observe_calibrated(calibrated, observations, calibrated_policy)
    return state, calibrated, calibrated_alarm or alarm


def live_alarm(watch: ErrorWatch | None, live_version: int | None) -> RaisedAlarm | None:
    """The watch's latest alarm if it is about the version the fleet runs now (an older version's is moot)."""
    if watch is None or live_version is None or watch.version != live_version:
        return None
    return watch.raised()
