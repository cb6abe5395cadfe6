"""When the cloud retrains: enough new labelled examples, or fleet drift above a bound for long enough.

Pure: the state is what the sample ingest and the fleet-health sums already know (labels since the last
training run, the fleet's drift score and since when it has been high); `retraining_decision` says whether
to put a Retraining Requested event on the bus, with the version to retrain from as the lineage parent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

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


def retraining_decision(state: RetrainingState, policy: RetrainingPolicy, now: float) -> RetrainingDecision:
    """Retrain on enough labels, or on drift sustained for drift_for_s with some labels; never within cooldown."""
    labels = state.labels_since_training
    if state.last_triggered_at is not None and now - state.last_triggered_at < policy.cooldown_s:
        left = policy.cooldown_s - (now - state.last_triggered_at)
        return RetrainingDecision(False, f"cooling down: {left:.0f} s until another retrain may start")
    if labels >= policy.min_new_labels:
        return RetrainingDecision(True, f"{labels} new labelled examples (>= {policy.min_new_labels})")
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
