"""When the cloud retrains: enough new labelled examples, or fleet drift above a bound for long enough.

Pure: the state is what the sample ingest and the fleet-health sums already know (labels since the last
training run, the fleet's drift score and since when it has been high); `retraining_decision` says whether
to put a Retraining Requested event on the bus, with the version to retrain from as the lineage parent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.events import EDGELOOP_SOURCE, RETRAINING_REQUESTED
from edgeloop.core.names import validate_model_name


@dataclass(frozen=True)
class RetrainingPolicy:
    """Thresholds of the retraining trigger; drift alone needs some labels too, or there is nothing to learn."""

    min_new_labels: int = 500
    drift_bound: float = 0.2
    """Fleet drift score (mean PSI the devices report) above which the world is taken to have changed."""
    drift_for_s: float = 3600.0
    min_labels_on_drift: int = 50
    cooldown_s: float = 6 * 3600.0
    """No second trigger this soon after one: a retrain takes time to train, gate and roll out."""

    def __post_init__(self) -> None:
        for name in ("min_new_labels", "min_labels_on_drift"):
            if getattr(self, name) < 1:
                raise ValidationError(f"retraining.{name}", f"must be >= 1, got {getattr(self, name)}")
        for name in ("drift_bound", "drift_for_s", "cooldown_s"):
            if getattr(self, name) < 0:
                raise ValidationError(f"retraining.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.min_labels_on_drift > self.min_new_labels:
            raise ValidationError("retraining.min_labels_on_drift", "cannot exceed min_new_labels")

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON (a stack's context, a handler's environment, the local stack's simulation files)."""
        return {name: getattr(self, name) for name in POLICY_KEYS}

    @classmethod
    def from_dict(cls, data: object, where: str = "retraining") -> RetrainingPolicy:
        """Parse a policy object; absent keys keep their defaults, unknown keys and wrong types are refused."""
        d = wire.mapping(data, where)
        wire.only_keys(d, set(POLICY_KEYS), where)
        values: dict[str, Any] = {
            key: wire.integer(d, key, where) if key in _INTEGER_KEYS else wire.number(d, key, where) for key in d
        }
        return cls(**values)


POLICY_KEYS = ("min_new_labels", "drift_bound", "drift_for_s", "min_labels_on_drift", "cooldown_s")
_INTEGER_KEYS = frozenset({"min_new_labels", "min_labels_on_drift"})


@dataclass(frozen=True)
class RetrainingState:
    """What the trigger knows about one model between training runs."""

    model_name: str
    parent_version: int | None
    """The version the fleet runs (last-known-good): the next model's lineage parent."""
    labels_since_training: int = 0
    drift_score: float | None = None
    drift_high_since: float | None = None
    last_triggered_at: float | None = None

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if self.labels_since_training < 0:
            raise ValidationError("labels_since_training", f"must be >= 0, got {self.labels_since_training}")


@dataclass(frozen=True)
class RetrainingDecision:
    """Whether to retrain now, and why (or why not)."""

    retrain: bool
    reason: str


def observe_drift(state: RetrainingState, score: float | None, policy: RetrainingPolicy, now: float) -> RetrainingState:
    """Fold the fleet's latest drift score in: the clock starts when it first goes above the bound."""
    high = score is not None and score > policy.drift_bound
    since = (state.drift_high_since if state.drift_high_since is not None else now) if high else None
    return replace(state, drift_score=score, drift_high_since=since)


def observe_labels(state: RetrainingState, new_labels: int) -> RetrainingState:
    """Count labelled examples that arrived since the last training run."""
    if new_labels < 0:
        raise ValidationError("new_labels", f"must be >= 0, got {new_labels}")
    return replace(state, labels_since_training=state.labels_since_training + new_labels)


def retraining_decision(
    state: RetrainingState, policy: RetrainingPolicy, now: float, alarm: str | None = None
) -> RetrainingDecision:
    """Retrain on enough labels, or on drift sustained for drift_for_s or an error alarm, with some labels; never
    within cooldown. `alarm` is why the labelled-error detector (core.error_watch) alarmed, if it has unhandled."""
    labels = state.labels_since_training
    if state.last_triggered_at is not None and now - state.last_triggered_at < policy.cooldown_s:
        left = policy.cooldown_s - (now - state.last_triggered_at)
        return RetrainingDecision(False, f"cooling down: {left:.0f} s until another retrain may start")
    if labels >= policy.min_new_labels:
        return RetrainingDecision(True, f"{labels} new labelled examples (>= {policy.min_new_labels})")
    if alarm is not None and labels >= policy.min_labels_on_drift:
        return RetrainingDecision(True, f"{alarm}; {labels} new labels")
    decision = _drift_decision(state, policy, now, labels)
    if alarm is not None and not decision.retrain:
        return RetrainingDecision(
            False, f"{alarm}, but only {labels} of {policy.min_labels_on_drift} labels to learn from"
        )
    return decision


def _drift_decision(state: RetrainingState, policy: RetrainingPolicy, now: float, labels: int) -> RetrainingDecision:
    """The sustained-fleet-drift rule (after cooldown and the label count were checked)."""
    if state.drift_high_since is not None:
        lasted = now - state.drift_high_since
        if lasted >= policy.drift_for_s and labels >= policy.min_labels_on_drift:
            return RetrainingDecision(
                True,
                f"fleet drift {state.drift_score:.3f} > {policy.drift_bound} for {lasted:.0f} s, {labels} new labels",
            )
        if lasted >= policy.drift_for_s:
            return RetrainingDecision(
                False, f"drift sustained but only {labels} of {policy.min_labels_on_drift} labels to learn from"
            )
        return RetrainingDecision(False, f"drift high for {lasted:.0f} of {policy.drift_for_s:.0f} s")
    return RetrainingDecision(False, f"{labels} of {policy.min_new_labels} new labels; no sustained drift")


def triggered(state: RetrainingState, now: float) -> RetrainingState:
    """The state right after a trigger: labels start counting again, the cooldown begins."""
    return replace(state, labels_since_training=0, drift_high_since=None, last_triggered_at=now)


def retraining_event(state: RetrainingState, decision: RetrainingDecision, request_id: str) -> dict[str, Any]:
    """The PutEvents entry the training launcher consumes; request_id makes a re-sent trigger name the same job."""
    if not decision.retrain:
        raise ValidationError("decision", f"no retraining was decided ({decision.reason})")
    detail: Mapping[str, Any] = {
        "model_name": state.model_name,
        "request_id": request_id,
        "reason": decision.reason,
        **({"parent_version": state.parent_version} if state.parent_version is not None else {}),
    }
    return {"Source": EDGELOOP_SOURCE, "DetailType": RETRAINING_REQUESTED, "Detail": json.dumps(detail, sort_keys=True)}


# --- the trigger in the cloud: one evaluation per schedule tick, its state persisted between ticks ---------


@dataclass(frozen=True)
class TriggerRecord:
    """What the cloud trigger keeps per model between ticks: the policy's state and its own bookkeeping.

    The catalogue counts labels monotonically; `labels_counted` is how much of that total the state has
    already taken in, so a tick adds only the difference. `evaluated_at` is the last tick's time (a re-run
    of that tick changes nothing). `pending` is a Retraining Requested entry decided but not yet confirmed
    on the bus: whoever reads it next sends it again, under the same request id. `revision` guards the
    conditional write (0: never stored). `handled_alarm` is the key of the last error alarm a triggered retrain
    answered (core.error_watch): that alarm is cleared, a later one is not; absent in records stored before it.
    """

    state: RetrainingState
    labels_counted: int = 0
    evaluated_at: float | None = None
    pending: Mapping[str, Any] | None = None
    revision: int = 0
    handled_alarm: str | None = None

    def __post_init__(self) -> None:
        if self.labels_counted < 0:
            raise ValidationError("labels_counted", f"must be >= 0, got {self.labels_counted}")
        if self.revision < 0:
            raise ValidationError("revision", f"must be >= 0, got {self.revision}")

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON)."""
        state = self.state
        return {
            "model_name": state.model_name,
            "parent_version": state.parent_version,
            "labels_since_training": state.labels_since_training,
            "drift_score": state.drift_score,
            "drift_high_since": state.drift_high_since,
            "last_triggered_at": state.last_triggered_at,
            "labels_counted": self.labels_counted,
            "evaluated_at": self.evaluated_at,
            "pending": None if self.pending is None else dict(self.pending),
            "revision": self.revision,
            "handled_alarm": self.handled_alarm,
        }

    @classmethod
    def from_dict(cls, data: object) -> TriggerRecord:
        """Parse the stored form; a damaged item is an error, never a fresh start (that could re-trigger)."""
        where = "retraining_state"
        d = wire.mapping(data, where)
        wire.only_keys(d, {*_RECORD_KEYS, *_OPTIONAL_RECORD_KEYS}, where)
        missing = sorted(set(_RECORD_KEYS) - set(d))
        if missing:
            raise ValidationError(where, f"missing key(s) {missing}")
        pending = d["pending"]
        state = RetrainingState(
            model_name=wire.text(d, "model_name", where),
            parent_version=_optional_int(d, "parent_version", where),
            labels_since_training=wire.integer(d, "labels_since_training", where, minimum=0),
            drift_score=_optional_number(d, "drift_score", where),
            drift_high_since=_optional_number(d, "drift_high_since", where),
            last_triggered_at=_optional_number(d, "last_triggered_at", where),
        )
        return cls(
            state=state,
            labels_counted=wire.integer(d, "labels_counted", where, minimum=0),
            evaluated_at=_optional_number(d, "evaluated_at", where),
            pending=None if pending is None else dict(wire.mapping(pending, f"{where}.pending")),
            revision=wire.integer(d, "revision", where, minimum=1),
            handled_alarm=None if d.get("handled_alarm") is None else wire.text(d, "handled_alarm", where),
        )


_RECORD_KEYS = (
    "model_name",
    "parent_version",
    "labels_since_training",
    "drift_score",
    "drift_high_since",
    "last_triggered_at",
    "labels_counted",
    "evaluated_at",
    "pending",
    "revision",
)
_OPTIONAL_RECORD_KEYS = ("handled_alarm",)
"""Keys added later: a record stored before them still parses."""


def _optional_int(d: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if d.get(key) is None else wire.integer(d, key, where, minimum=1)


def _optional_number(d: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if d.get(key) is None else wire.number(d, key, where)


def initial_record(model_name: str) -> TriggerRecord:
    """A model the trigger has never evaluated: nothing counted, nothing pending."""
    return TriggerRecord(RetrainingState(model_name, parent_version=None))


@dataclass(frozen=True)
class TickResult:
    """One evaluation: the record to store (None: nothing changed), the decision, and the entry to put, if any."""

    record: TriggerRecord | None
    decision: RetrainingDecision
    entry: Mapping[str, Any] | None = None


def trigger_request_id(model_name: str, now: float) -> str:
    """Stable per (model, tick): a re-run or a concurrent run of the same tick names the same training job."""
    return f"retrain-{validate_model_name(model_name)}-{int(now)}"


@dataclass(frozen=True)
class RaisedAlarm:
    """An error alarm the trigger may act on (core.error_watch): a key that changes with every new alarm, and why."""

    key: str
    reason: str


def evaluate_tick(
    record: TriggerRecord,
    policy: RetrainingPolicy,
    *,
    now: float,
    label_total: int,
    live_version: int | None,
    drift_score: float | None,
    alarm: RaisedAlarm | None = None,
) -> TickResult:
    """Fold one tick's observations in and decide; a tick not later than the last evaluated one changes nothing.

    label_total is the catalogue's count of labelled samples of the model so far; drift_score the fleet's
    for live_version (the last-known-good version, the lineage parent). A new live version restarts the
    drift clock: its drift is a new model's, not the old one's. `alarm` is the labelled-error detector's
    latest alarm on live_version; once a retrain is triggered it is handled and no longer a reason.
    """
    if record.evaluated_at is not None and now <= record.evaluated_at:
        return TickResult(None, RetrainingDecision(False, f"tick at {now:.0f} already evaluated"))
    state = record.state
    if live_version != state.parent_version:
        state = replace(state, parent_version=live_version, drift_high_since=None)
    state = observe_labels(state, max(0, label_total - record.labels_counted))
    state = observe_drift(state, drift_score, policy, now)
    active = alarm if alarm is not None and alarm.key != record.handled_alarm else None
    decision = retraining_decision(state, policy, now, None if active is None else active.reason)
    entry = None
    handled = record.handled_alarm
    if decision.retrain:
        entry = retraining_event(state, decision, trigger_request_id(state.model_name, now))
        state = triggered(state, now)
        handled = handled if active is None else active.key
    stored = TriggerRecord(state, label_total, now, entry or record.pending, record.revision + 1, handled)
    return TickResult(stored, decision, entry)


def sent(record: TriggerRecord) -> TriggerRecord:
    """The record once its pending entry is confirmed on the bus."""
    return replace(record, pending=None, revision=record.revision + 1)


# --- recovery in the new world: where the change began, when to retrain again, whether a candidate may ship ---


@dataclass(frozen=True)
class RecoveryPolicy:
    """How the loop recovers after a detected change: labels before the first retrain, growth before the next,
    and the new-world gate a candidate must pass before it is registered."""

    min_labels: int = 50
    """Labelled samples of the new concept before the first retrain (fewer cannot tell a concept apart)."""
    growth: float = 2.0
    """Retrain again each time the new concept's labels grow by this factor (labels for it keep arriving)."""
    gate_min_samples: int = 20
    """Recent labelled samples, answered by the deployed version, the gate needs to compare on."""
    gate_z: float = 1.0
    """The candidate must win by this many standard errors of the paired (McNemar) difference."""

    def __post_init__(self) -> None:
        for name in ("min_labels", "gate_min_samples"):
            if getattr(self, name) < 1:
                raise ValidationError(f"recovery.{name}", f"must be >= 1, got {getattr(self, name)}")
        if not self.growth > 1.0:
            raise ValidationError("recovery.growth", f"must be > 1, got {self.growth}")
        if not self.gate_z >= 0.0:
            raise ValidationError("recovery.gate_z", f"must be >= 0, got {self.gate_z}")


def change_point(errors: Sequence[bool], min_side: int = 10) -> int:
    """Where the error rate most likely stepped up: the split of a Bernoulli sequence into two rates with the
    highest likelihood (later rate higher); 0 when no split leaves min_side on each side or none raises it."""
    n = len(errors)
    prefix = [0]
    for e in errors:
        prefix.append(prefix[-1] + (1 if e else 0))
    best, at = _bernoulli_loglik(prefix[n], n), 0
    for k in range(min_side, n - min_side + 1):
        left, right = prefix[k], prefix[n] - prefix[k]
        if right / (n - k) <= left / k:
            continue
        score = _bernoulli_loglik(left, k) + _bernoulli_loglik(right, n - k)
        if score > best:
            best, at = score, k
    return at


def _bernoulli_loglik(ones: int, n: int) -> float:
    """Log-likelihood of ones in n draws at their own rate (0 for a pure segment)."""
    if ones in (0, n):
        return 0.0
    p = ones / n
    return ones * math.log(p) + (n - ones) * math.log(1 - p)


def retrain_due(concept_labels: int, trained_on: int | None, policy: RecoveryPolicy) -> RetrainingDecision:
    """After a detection: first at min_labels of the new concept, then each time they grow by `growth`."""
    if trained_on is None:
        if concept_labels >= policy.min_labels:
            return RetrainingDecision(True, f"change detected, {concept_labels} labels of the new concept")
        return RetrainingDecision(False, f"{concept_labels} of {policy.min_labels} labels of the new concept")
    target = math.ceil(trained_on * policy.growth)
    if concept_labels >= target:
        return RetrainingDecision(True, f"the new concept's labels grew from {trained_on} to {concept_labels}")
    return RetrainingDecision(False, f"{concept_labels} of {target} labels for the next retrain")


def new_world_gate(
    candidate_right: Sequence[bool], deployed_right: Sequence[bool], policy: RecoveryPolicy, *, successor: bool = False
) -> RetrainingDecision:
    """Register a candidate only if it beats the deployed version on recent labelled samples neither saw
    (the candidate's answers cross-fitted): a paired sign test on the samples where they disagree.

    successor: the deployed version was itself retrained on this concept, and the candidate learns the same
    concept from more of its labels; it must then only not lose (as many wins as losses): more labels of one
    concept are not expected to make a worse model, and a significance bar would keep the fleet on fewer."""
    if len(candidate_right) != len(deployed_right):
        raise ValidationError("new_world_gate", f"{len(candidate_right)} candidate vs {len(deployed_right)} answers")
    n = len(candidate_right)
    if n < policy.gate_min_samples:
        return RetrainingDecision(False, f"only {n} of {policy.gate_min_samples} recent labelled samples to compare on")
    wins = sum(1 for c, d in zip(candidate_right, deployed_right, strict=True) if c and not d)
    losses = sum(1 for c, d in zip(candidate_right, deployed_right, strict=True) if d and not c)
    candidate, deployed = sum(map(bool, candidate_right)) / n, sum(map(bool, deployed_right)) / n
    figures = f"candidate {candidate:.3f} vs deployed {deployed:.3f} on {n} recent samples ({wins} won, {losses} lost)"
    if wins - losses > policy.gate_z * math.sqrt(wins + losses) and wins > losses:
        return RetrainingDecision(True, f"{figures}: it beats the deployed version")
    if successor and wins >= losses:
        return RetrainingDecision(True, f"{figures}: on more labels of the same concept, no worse than its predecessor")
    return RetrainingDecision(False, f"{figures}: not better than the deployed version")
