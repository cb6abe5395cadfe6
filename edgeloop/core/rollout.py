"""Rollout states and the only transitions between them; the controller and registry share these."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import InvalidTransitionError, ValidationError
from edgeloop.core.evidence import GateEvidence, confidence_allowance
from edgeloop.core.names import ring_group, validate_model_name


class RolloutState(StrEnum):
    """Where a model version's rollout stands."""

    PENDING = "pending"
    IN_RING = "in_ring"
    HALTED = "halted"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


LEGAL_TRANSITIONS: MappingProxyType[RolloutState, frozenset[RolloutState]] = MappingProxyType(
    {
        RolloutState.PENDING: frozenset({RolloutState.IN_RING, RolloutState.HALTED}),
        RolloutState.IN_RING: frozenset(
            {RolloutState.IN_RING, RolloutState.COMPLETED, RolloutState.HALTED, RolloutState.ROLLING_BACK}
        ),
        RolloutState.HALTED: frozenset({RolloutState.IN_RING, RolloutState.ROLLING_BACK}),
        RolloutState.ROLLING_BACK: frozenset({RolloutState.ROLLED_BACK}),
        RolloutState.COMPLETED: frozenset(),
        RolloutState.ROLLED_BACK: frozenset(),
    }
)
"""IN_RING -> IN_RING is a promotion to the next ring; COMPLETED and ROLLED_BACK are final."""


@dataclass(frozen=True)
class Rollout:
    """One model version's way through the rings; state_version guards concurrent writers."""

    model_name: str
    model_version: int
    state: RolloutState
    ring: int
    ring_count: int
    state_version: int = 0
    reason: str = ""
    started_at: float = 0.0
    ring_started_at: float | None = None
    """When the current ring got the candidate (None: not yet); bake time and the ring timeout count from here."""
    last_known_good: int | None = None
    """The version every ring that got the candidate returns to on revert (None: there is none)."""
    baseline_at_start: VersionHealth | None = None
    """Last-known-good's fleet sums when the rollout began: relative gates compare the candidate with what
    last-known-good did since then, under the same conditions, not over its whole life (see VersionHealth.since)."""
    evidence: GateEvidence | None = None
    """The new-world gate's figures from the registry record (None: no evidence, the confidence gate as set)."""

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        if self.ring_count < 1:
            raise ValidationError("ring_count", f"must be >= 1, got {self.ring_count}")
        if not 0 <= self.ring < self.ring_count:
            raise ValidationError("ring", f"{self.ring} is outside 0..{self.ring_count - 1}")

    @property
    def is_final(self) -> bool:
        """No transition leaves a final state."""
        return not LEGAL_TRANSITIONS[self.state]

    def to_dict(self) -> dict[str, Any]:
        """Item form for the rollouts table."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "state": self.state.value,
            "ring": self.ring,
            "ring_count": self.ring_count,
            "state_version": self.state_version,
            "reason": self.reason,
            "started_at": self.started_at,
            "ring_started_at": self.ring_started_at,
            "last_known_good": self.last_known_good,
            "baseline_at_start": None
            if self.baseline_at_start is None
            else json.dumps(self.baseline_at_start.to_dict(), sort_keys=True),
            "evidence": None if self.evidence is None else self.evidence.to_text(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        """Parse the item form, refusing unknown states and keys."""
        where = "rollout"
        wire.only_keys(data, set(cls.__dataclass_fields__), where)
        state = wire.text(data, "state", where)
        if state not in RolloutState.__members__.values():
            raise ValidationError(f"{where}.state", f"{state!r}; expected one of {[s.value for s in RolloutState]}")
        ring_started = data.get("ring_started_at")
        good = data.get("last_known_good")
        baseline = data.get("baseline_at_start")
        if baseline is not None:
            try:
                baseline = VersionHealth.from_dict(json.loads(wire.text(data, "baseline_at_start", where)))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{where}.baseline_at_start", f"is not JSON: {exc}") from exc
        evidence = data.get("evidence")
        if evidence is not None:
            evidence = GateEvidence.from_text(wire.text(data, "evidence", where), f"{where}.evidence")
        return cls(
            model_name=wire.text(data, "model_name", where),
            model_version=wire.integer(data, "model_version", where, minimum=1),
            state=RolloutState(state),
            ring=wire.integer(data, "ring", where, minimum=0),
            ring_count=wire.integer(data, "ring_count", where, minimum=1),
            state_version=wire.integer(data, "state_version", where, minimum=0),
            reason=wire.text(data, "reason", where, allow_empty=True),
            started_at=wire.number(data, "started_at", where),
            ring_started_at=None if ring_started is None else wire.number(data, "ring_started_at", where),
            last_known_good=None if good is None else wire.integer(data, "last_known_good", where, minimum=1),
            baseline_at_start=baseline,
            evidence=evidence,
        )


@dataclass(frozen=True)
class DecisionEntry:
    """One line of a rollout's decision log, as summary.json and `edgeloop rollout status` show it."""

    at: float
    ring: int
    decision: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"at": self.at, "ring": self.ring, "decision": self.decision, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionEntry:
        """Parse the JSON form."""
        wire.only_keys(data, {"at", "ring", "decision", "reason"}, "decision")
        return cls(
            at=wire.number(data, "at", "decision"),
            ring=wire.integer(data, "ring", "decision", minimum=0),
            decision=wire.text(data, "decision", "decision"),
            reason=wire.text(data, "reason", "decision", allow_empty=True),
        )


def transition(rollout: Rollout, target: RolloutState, reason: str, now: float | None = None) -> Rollout:
    """Move to target if the state machine allows it; a promotion advances the ring by one (its clock restarts)."""
    if target not in LEGAL_TRANSITIONS[rollout.state]:
        raise InvalidTransitionError(
            f"rollout of {rollout.model_name} v{rollout.model_version}: {rollout.state} -> {target} "
            f"is not allowed; from {rollout.state} the allowed targets are "
            f"{sorted(LEGAL_TRANSITIONS[rollout.state]) or 'none (final)'}"
        )
    ring = rollout.ring
    if rollout.state is RolloutState.IN_RING and target is RolloutState.IN_RING:
        if ring + 1 >= rollout.ring_count:
            raise InvalidTransitionError(f"ring {ring} is the last ring; complete the rollout instead")
        ring += 1
    if target is RolloutState.COMPLETED and ring != rollout.ring_count - 1:
        raise InvalidTransitionError(f"cannot complete in ring {ring} of {rollout.ring_count}")
    ring_started_at = rollout.ring_started_at
    if now is not None and target is RolloutState.IN_RING and (ring != rollout.ring or ring_started_at is None):
        ring_started_at = now
    return replace(
        rollout,
        state=target,
        ring=ring,
        state_version=rollout.state_version + 1,
        reason=reason,
        ring_started_at=ring_started_at,
    )


# --- policy -------------------------------------------------------------------------------------------

SHARE_TOLERANCE = 1e-6
LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper bounds of the device-p99 histogram the aggregates keep (a last, open bucket holds the rest)."""
RING_LATENCY_QUANTILE = 0.9
"""A ring's p99 is the 90th percentile of its devices' reported p99s: one slow device does not decide."""


@dataclass(frozen=True)
class Ring:
    """One ring of a staged rollout: its share of the fleet, how long it bakes, how many must report."""

    name: str
    share: float
    bake_s: float
    min_devices: int = 1

    def __post_init__(self) -> None:
        where = f"rings[{self.name}]"
        try:
            ring_group(self.name)
        except ValidationError as exc:
            raise ValidationError(f"{where}.name", exc.message) from exc
        if not 0.0 < self.share <= 1.0:
            raise ValidationError(f"{where}.share", f"{self.share} is outside (0, 1]")
        if self.bake_s < 0:
            raise ValidationError(f"{where}.bake_s", f"must be >= 0, got {self.bake_s}")
        if self.min_devices < 0:
            raise ValidationError(f"{where}.min_devices", f"must be >= 0, got {self.min_devices}")


@dataclass(frozen=True)
class Gates:
    """What a candidate must show in its rings to be promoted; relative gates compare with last-known-good."""

    max_error_rate: float = 0.02
    max_p99_latency_ms: float | None = None
    max_p99_latency_ratio: float | None = 1.5
    max_confidence_drop: float | None = 0.05
    max_drift_increase: float | None = 0.1
    max_activation_failure_rate: float = 0.0
    max_job_failure_rate: float = 0.1
    min_inferences: int = 20
    """No metric verdict on fewer inferences than this in the rings so far (wait, and halt at the timeout)."""

    def __post_init__(self) -> None:
        for name in ("max_error_rate", "max_activation_failure_rate", "max_job_failure_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValidationError(f"gates.{name}", f"{getattr(self, name)} is outside [0, 1]")
        for name in ("max_p99_latency_ms", "max_p99_latency_ratio", "max_confidence_drop", "max_drift_increase"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValidationError(f"gates.{name}", f"must be >= 0 or null, got {value}")
        if self.min_inferences < 0:
            raise ValidationError("gates.min_inferences", f"must be >= 0, got {self.min_inferences}")


@dataclass(frozen=True)
class RolloutPolicy:
    """Rings in order (their shares add up to the whole fleet), the gates, and how long a ring may wait for data."""

    rings: tuple[Ring, ...]
    gates: Gates = Gates()
    ring_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.rings:
            raise ValidationError("rings", "needs at least one ring")
        names = [r.name for r in self.rings]
        if len(set(names)) != len(names):
            raise ValidationError("rings", f"ring names must be unique, got {names}")
        total = sum(r.share for r in self.rings)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValidationError("rings", f"shares add up to {total:g}, not 1: every device must be in one ring")
        if self.ring_timeout_s <= 0:
            raise ValidationError("ring_timeout_s", f"must be > 0, got {self.ring_timeout_s}")
        if any(r.bake_s > self.ring_timeout_s for r in self.rings):
            raise ValidationError("ring_timeout_s", f"{self.ring_timeout_s} is shorter than a ring's bake time")

    @property
    def ring_names(self) -> tuple[str, ...]:
        """Ring names in rollout order."""
        return tuple(r.name for r in self.rings)

    @property
    def shares(self) -> tuple[float, ...]:
        """Ring shares in rollout order."""
        return tuple(r.share for r in self.rings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutPolicy:
        """Parse a policy document (cdk.json context, the CLI, the controller's table); errors name the key."""
        wire.only_keys(data, {"rings", "gates", "ring_timeout_s"}, "policy")
        rings = []
        for item in wire.sequence(data, "rings", "policy"):
            ring = wire.mapping(item, "rings[]")
            wire.only_keys(ring, {"name", "share", "bake_s", "min_devices"}, "rings[]")
            rings.append(
                Ring(
                    name=wire.text(ring, "name", "rings[]"),
                    share=wire.number(ring, "share", "rings[]"),
                    bake_s=wire.number(ring, "bake_s", "rings[]"),
                    min_devices=wire.integer(ring, "min_devices", "rings[]", minimum=0) if "min_devices" in ring else 1,
                )
            )
        gates = _parse_gates(wire.mapping(data.get("gates", {}), "gates"))
        timeout = wire.number(data, "ring_timeout_s", "policy") if "ring_timeout_s" in data else 3600.0
        return cls(rings=tuple(rings), gates=gates, ring_timeout_s=timeout)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, the inverse of from_dict."""
        return {
            "rings": [
                {"name": r.name, "share": r.share, "bake_s": r.bake_s, "min_devices": r.min_devices} for r in self.rings
            ],
            "gates": {f.name: getattr(self.gates, f.name) for f in fields(self.gates)},
            "ring_timeout_s": self.ring_timeout_s,
        }


DEFAULT_POLICY = RolloutPolicy(
    rings=(
        Ring("canary", 0.05, bake_s=1800, min_devices=1),
        Ring("early", 0.25, bake_s=3600, min_devices=3),
        Ring("broad", 0.70, bake_s=3600, min_devices=5),
    ),
    ring_timeout_s=4 * 3600,
)
"""Five percent canary for half an hour, a quarter of the fleet for an hour, then everyone; four hours to report."""


def _parse_gates(data: Mapping[str, Any]) -> Gates:
    known = {f.name: f for f in fields(Gates)}
    wire.only_keys(data, set(known), "gates")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "min_inferences":
            values[key] = wire.integer(data, key, "gates", minimum=0)
        elif value is None and "None" in str(known[key].type):
            values[key] = None
        else:
            values[key] = wire.number(data, key, "gates")
    return Gates(**values)


# --- what the fleet reports, aggregated ------------------------------------------------------------


@dataclass(frozen=True)
class VersionHealth:
    """What the devices of one ring (or the whole fleet) report about one model version: sums, never averages.

    The health-ingest handler keeps these as atomic counters per (rollout, version, ring), so the
    controller reads a handful of items instead of every shadow. Sums add across rings with `+`.
    """

    devices_targeted: int = 0
    devices_on_version: int = 0
    """Devices whose latest report says this version is active."""
    activation_failures: int = 0
    """Devices that rejected or rolled back this version (verification, self-test or probation)."""
    job_failures: int = 0
    """Devices whose deployment failed (Greengrass job execution FAILED, REJECTED or TIMED_OUT)."""
    inferences: int = 0
    errors: int = 0
    confidence_sum: float = 0.0
    confidence_count: int = 0
    drift_sum: float = 0.0
    drift_count: int = 0
    p99_histogram: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS_MS) + 1)

    def __post_init__(self) -> None:
        if len(self.p99_histogram) != len(LATENCY_BUCKETS_MS) + 1:
            raise ValidationError("p99_histogram", f"needs {len(LATENCY_BUCKETS_MS) + 1} buckets")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and value < 0:
                raise ValidationError(f.name, f"must be >= 0, got {value}")

    def __add__(self, other: VersionHealth) -> VersionHealth:
        summed = {
            f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "p99_histogram"
        }
        histogram = tuple(a + b for a, b in zip(self.p99_histogram, other.p99_histogram, strict=True))
        return VersionHealth(**summed, p99_histogram=histogram)

    @property
    def error_rate(self) -> float | None:
        """Errors per request (inferences + errors); None before anything ran."""
        total = self.inferences + self.errors
        return self.errors / total if total else None

    @property
    def mean_confidence(self) -> float | None:
        """Mean confidence over the reported inferences."""
        return self.confidence_sum / self.confidence_count if self.confidence_count else None

    @property
    def mean_drift(self) -> float | None:
        """Mean drift score over the devices' reports."""
        return self.drift_sum / self.drift_count if self.drift_count else None

    @property
    def p99_ms(self) -> float | None:
        """The RING_LATENCY_QUANTILE of device p99s, as its bucket's upper bound (inf for the open bucket)."""
        total = sum(self.p99_histogram)
        if not total:
            return None
        needed, seen = RING_LATENCY_QUANTILE * total, 0
        for bound, count in zip((*LATENCY_BUCKETS_MS, math.inf), self.p99_histogram, strict=True):
            seen += count
            if seen >= needed:
                return bound
        return math.inf

    def since(self, start: VersionHealth) -> VersionHealth:
        """What accrued after `start` was read: counters (requests, errors, confidences) as differences; the
        gauges (devices, drift, p99 buckets: each device's latest report) as they are now."""
        counters = {
            name: max(getattr(self, name) - getattr(start, name), 0)
            for name in ("inferences", "errors", "confidence_sum", "confidence_count")
        }
        return replace(self, **counters)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the CLI and summary.json)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["p99_histogram"] = list(self.p99_histogram)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionHealth:
        """Parse the JSON form."""
        wire.only_keys(data, {f.name for f in fields(cls)}, "health")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            if f.name == "p99_histogram":
                values[f.name] = tuple(int(v) for v in wire.sequence(data, f.name, "health"))
            elif f.type == "float":
                values[f.name] = wire.number(data, f.name, "health")
            else:
                values[f.name] = wire.integer(data, f.name, "health", minimum=0)
        return cls(**values)


def latency_bucket(p99_ms: float) -> int:
    """The histogram bucket a device's reported p99 falls in."""
    for index, bound in enumerate(LATENCY_BUCKETS_MS):
        if p99_ms <= bound:
            return index
    return len(LATENCY_BUCKETS_MS)


# --- decisions -----------------------------------------------------------------------------------------


class Action(StrEnum):
    """What the controller does next."""

    PROMOTE = "promote"
    WAIT = "wait"
    HALT = "halt"
    REVERT = "revert"


@dataclass(frozen=True)
class GateValue:
    """One gate's measured value against its threshold, for the decision log and `edgeloop rollout status`."""

    name: str
    value: float | None
    threshold: float
    passed: bool

    def describe(self) -> str:
        """'error_rate 0.031 > 0.02' style text."""
        shown = "n/a" if self.value is None else f"{self.value:.4g}"
        return f"{self.name} {shown} {'<=' if self.passed else '>'} {self.threshold:.4g}"


@dataclass(frozen=True)
class Decision:
    """decide()'s answer: the action, the state it leads to (None for wait), why, and the gate values seen."""

    action: Action
    target: RolloutState | None
    reason: str
    gates: tuple[GateValue, ...] = ()


JOB_FAILURE_GATE = "job_failure_rate"
"""The gate on failed deployments: the one whose failures the devices can explain (their failure causes)."""


def gate_values(
    candidate: VersionHealth, baseline: VersionHealth | None, gates: Gates, rollout: Rollout | None = None
) -> tuple[GateValue, ...]:
    """Every gate that can be judged from the data: relative ones only with a last-known-good baseline; the
    confidence drop against the rollout's evidence (edgeloop.core.evidence.confidence_allowance)."""
    values: list[GateValue] = []

    def check(name: str, value: float | None, threshold: float | None) -> None:
        if threshold is not None and value is not None:
            values.append(GateValue(name, value, threshold, value <= threshold))

    targeted = max(candidate.devices_targeted, 1)
    check("activation_failure_rate", candidate.activation_failures / targeted, gates.max_activation_failure_rate)
    check(JOB_FAILURE_GATE, candidate.job_failures / targeted, gates.max_job_failure_rate)
    check("error_rate", candidate.error_rate, gates.max_error_rate)
    check("p99_latency_ms", candidate.p99_ms, gates.max_p99_latency_ms)
    if baseline is not None:
        base_p99, p99 = baseline.p99_ms, candidate.p99_ms
        if base_p99 and p99 is not None:
            check("p99_latency_ratio", p99 / base_p99, gates.max_p99_latency_ratio)
        base_conf, conf = baseline.mean_confidence, candidate.mean_confidence
        if base_conf is not None and conf is not None:
            allowed = gates.max_confidence_drop
            if rollout is not None:
                allowed = confidence_allowance(allowed, rollout.evidence, rollout.last_known_good)
            check("confidence_drop", base_conf - conf, allowed)
        base_drift, drift = baseline.mean_drift, candidate.mean_drift
        if base_drift is not None and drift is not None:
            check("drift_increase", drift - base_drift, gates.max_drift_increase)
    return tuple(values)


HARD_GATES = frozenset({"activation_failure_rate", JOB_FAILURE_GATE})
"""Gates judged as soon as a device fails: a model that does not even activate needs no bake time."""


def decide(
    rollout: Rollout,
    policy: RolloutPolicy,
    rings: Mapping[int, VersionHealth],
    baseline: VersionHealth | None,
    now: float,
) -> Decision:
    """The controller's next step for a rollout, from the candidate's health per ring and last-known-good's.

    `rings` holds the candidate version's health in each ring it reached (0..rollout.ring); metric gates
    look at those rings together, the device count and bake time at the current one.
    """
    if rollout.state is RolloutState.PENDING:
        return Decision(Action.PROMOTE, RolloutState.IN_RING, f"start in ring 0 ({policy.rings[0].name})")
    if rollout.state is RolloutState.HALTED:
        return Decision(Action.WAIT, None, f"halted ({rollout.reason}); waiting for resume or abort")
    if rollout.state is RolloutState.ROLLING_BACK:
        return _settle_revert(rollout, rings)
    if rollout.state is not RolloutState.IN_RING:
        return Decision(Action.WAIT, None, f"{rollout.state}: nothing to do")
    return _judge_ring(rollout, policy, rings, baseline, now)


def _judge_ring(
    rollout: Rollout,
    policy: RolloutPolicy,
    rings: Mapping[int, VersionHealth],
    baseline: VersionHealth | None,
    now: float,
) -> Decision:
    ring, spec = rollout.ring, policy.rings[rollout.ring]
    current = rings.get(ring, VersionHealth())
    reached = sum((rings.get(i, VersionHealth()) for i in range(ring + 1)), VersionHealth())
    values = gate_values(reached, baseline, policy.gates, rollout)
    failed_hard = [g for g in values if not g.passed and g.name in HARD_GATES]
    if failed_hard:
        return _revert(ring, spec.name, failed_hard, values)
    waited = 0.0 if rollout.ring_started_at is None else now - rollout.ring_started_at
    required = min(spec.min_devices, current.devices_targeted)
    if current.devices_on_version < required or reached.inferences + reached.errors < policy.gates.min_inferences:
        shortfall = (
            f"{current.devices_on_version} of {required} required devices on v{rollout.model_version}, "
            f"{reached.inferences + reached.errors} of {policy.gates.min_inferences} inferences"
        )
        if waited >= policy.ring_timeout_s:
            return Decision(Action.HALT, RolloutState.HALTED, f"ring {spec.name}: {shortfall} after {waited:.0f} s")
        return Decision(Action.WAIT, None, f"ring {spec.name}: waiting for data ({shortfall})", values)
    failed = [g for g in values if not g.passed]
    if failed:
        return _revert(ring, spec.name, failed, values)
    if waited < spec.bake_s:
        return Decision(
            Action.WAIT, None, f"ring {spec.name}: gates pass, baking {waited:.0f} of {spec.bake_s:.0f} s", values
        )
    passed = ", ".join(g.describe() for g in values) or "no gate applies"
    if ring + 1 == rollout.ring_count:
        return Decision(Action.PROMOTE, RolloutState.COMPLETED, f"ring {spec.name} passed ({passed}); complete", values)
    following = policy.rings[ring + 1].name
    return Decision(Action.PROMOTE, RolloutState.IN_RING, f"ring {spec.name} passed ({passed}); to {following}", values)


def _revert(ring: int, name: str, failed: list[GateValue], values: tuple[GateValue, ...]) -> Decision:
    reasons = ", ".join(g.describe() for g in failed)
    return Decision(Action.REVERT, RolloutState.ROLLING_BACK, f"ring {name} failed: {reasons}", values)


def _settle_revert(rollout: Rollout, rings: Mapping[int, VersionHealth]) -> Decision:
    """ROLLING_BACK ends when no device in the rings that got the candidate still runs it."""
    left = sum(rings.get(i, VersionHealth()).devices_on_version for i in range(rollout.ring + 1))
    if left:
        return Decision(Action.WAIT, None, f"reverting: {left} device(s) still on v{rollout.model_version}")
    return Decision(
        Action.REVERT,
        RolloutState.ROLLED_BACK,
        f"every device in rings 0..{rollout.ring} left v{rollout.model_version}",
    )


class Command(StrEnum):
    """What an operator can ask of a running rollout (`edgeloop rollout pause|resume|promote|abort`)."""

    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"


COMMAND_TARGETS: Mapping[Command, RolloutState] = MappingProxyType(
    {
        Command.PAUSE: RolloutState.HALTED,
        Command.RESUME: RolloutState.IN_RING,
        Command.ABORT: RolloutState.ROLLING_BACK,
    }
)
COMMAND_FROM: Mapping[Command, frozenset[RolloutState]] = MappingProxyType(
    {
        Command.PAUSE: frozenset({RolloutState.PENDING, RolloutState.IN_RING}),
        Command.RESUME: frozenset({RolloutState.HALTED}),
        Command.PROMOTE: frozenset({RolloutState.IN_RING}),
        Command.ABORT: frozenset({RolloutState.IN_RING, RolloutState.HALTED}),
    }
)
"""States each command applies in: anything else is refused with the state named, never half-applied."""


def apply_command(rollout: Rollout, command: Command, reason: str, now: float) -> Rollout:
    """An operator's command as a legal transition; promote moves on even if the gates would wait."""
    allowed = COMMAND_FROM[command]
    if rollout.state not in allowed:
        raise InvalidTransitionError(
            f"rollout of {rollout.model_name} v{rollout.model_version} is {rollout.state}; "
            f"{command} applies only when it is {' or '.join(sorted(allowed))}"
        )
    why = f"{command} by operator" + (f": {reason}" if reason else "")
    if command is Command.PROMOTE:
        last = rollout.ring + 1 == rollout.ring_count
        return transition(rollout, RolloutState.COMPLETED if last else RolloutState.IN_RING, why, now)
    return transition(rollout, COMMAND_TARGETS[command], why, now)
