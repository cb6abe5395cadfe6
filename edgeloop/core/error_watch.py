"""The labelled-error detector (core.detectors) as the cloud runs it: one per model, on its live version.

The label ingest folds each newly labelled sample of the model's live (last-known-good) version into an
ErrorWatch and stores it; a new live version starts a fresh watch. The retraining trigger reads the watch
and, while its latest alarm is one it has not handled, treats it as a reason to retrain (core.retraining);
a triggered retrain records the alarm's key as handled, so one alarm triggers at most one retrain.

The reference rate comes from the version's holdout when the caller can read its manifest
(`reference_from_manifest`), and from the version's own first `warmup` usable samples either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.detector_state import DetectorState, finite_number
from edgeloop.core.detectors import Alarm, ErrorDetector, Observation, initial_state, observe
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import validate_model_name
from edgeloop.core.retraining import RaisedAlarm

CLOUD_DETECTOR = ErrorDetector(warmup=100)
"""The cloud's policy: the stated defaults, plus a warm-up so a version without a readable holdout is watched too."""

_ALARM_INTS = ("at_sample", "since_sample", "run_samples", "run_errors")
_ALARM_FLOATS = ("reference_rate", "alternative", "statistic", "threshold")
_WATCH_KEYS = {"model_name", "version", "state", "alarm", "revision"}


@dataclass(frozen=True)
class ErrorWatch:
    """The detector of one model's live version, its latest alarm, and the revision guarding its conditional write."""

    model_name: str
    version: int
    state: DetectorState
    alarm: Alarm | None = None
    """The latest alarm on this version (kept after the trigger handled it: the key says which one it was)."""
    revision: int = 0

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
        return RaisedAlarm(f"v{self.version}#{self.state.alarms}", reason)

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON)."""
        alarm = None if self.alarm is None else {k: getattr(self.alarm, k) for k in (*_ALARM_INTS, *_ALARM_FLOATS)}
        return {
            "model_name": self.model_name,
            "version": self.version,
            "state": self.state.to_dict(),
            "alarm": alarm,
            "revision": self.revision,
        }

    @classmethod
    def from_dict(cls, data: object) -> ErrorWatch:
        """Parse the stored form; a damaged item is an error (ValidationError naming the field), never a restart."""
        where = "error_watch"
        d = wire.mapping(data, where)
        wire.only_keys(d, _WATCH_KEYS, where)
        missing = sorted(_WATCH_KEYS - set(d))
        if missing:
            raise ValidationError(where, f"missing key(s) {missing}")
        return cls(
            model_name=wire.text(d, "model_name", where),
            version=wire.integer(d, "version", where, minimum=1),
            state=DetectorState.from_dict(d["state"]),
            alarm=None if d["alarm"] is None else _alarm_from_dict(d["alarm"]),
            revision=wire.integer(d, "revision", where, minimum=1),
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
) -> tuple[ErrorWatch, Alarm | None]:
    """One arrival batch of the live version's labelled samples folded in; a new live version starts afresh.

    `reference` is (errors, trials) of the version's holdout, used only when the watch starts. Returns the
    watch to store (its revision one past the one read) and the alarm this batch raised, if any.
    """
    revision = 0 if watch is None else watch.revision
    if watch is None or watch.version != live_version or watch.model_name != model_name:
        watch = ErrorWatch(model_name, live_version, initial_state(policy, *reference), revision=revision)
    state, alarm = observe(watch.state, observations, policy)
    return ErrorWatch(model_name, live_version, state, alarm or watch.alarm, revision + 1), alarm


def live_alarm(watch: ErrorWatch | None, live_version: int | None) -> RaisedAlarm | None:
    """The watch's latest alarm if it is about the version the fleet runs now (an older version's is moot)."""
    if watch is None or live_version is None or watch.version != live_version:
        return None
    return watch.raised()
