"""A sequential change detector on the deployed version's error stream, with a stated false-alarm bound.

The cloud learns, sample by labelled sample, whether the device's answer was wrong (1) or right (0). The
detector asks whether the error rate has risen above the version's reference rate p0, and alarms as soon
as the evidence is strong enough, never on a fixed schedule.

**Method.** One one-sided Bernoulli CUSUM per alternative p1 = p0 + d (d in `increases`): S = max(0, S + l),
l = ln(p1/p0) for an error and ln((1-p1)/(1-p0)) for a right answer; an alarm when any S reaches h. S >= h
at sample t means some start s <= t whose likelihood-ratio product from s to t reached e^h. Under no change
that product is a non-negative martingale of mean 1 (a supermartingale for any true rate below p0), so by
Ville's inequality it ever reaches e^h with probability at most e^-h. A union over the N starts of the
first N samples and the K alternatives gives

    P(an alarm within N monitored samples | error rate <= p0) <= K N e^-h,

and the same sum bounds the expected number of alarms (the CUSUM restarts after each). h is chosen so this
is the policy's `false_alarm` share at `horizon` samples.

**The reference.** p0 is not known: it is estimated from `reference_trials` labelled rows with
`reference_errors` wrong (the version's holdout from its manifest, and/or its first `warmup` labelled samples).
The detector uses the Chernoff upper confidence bound p0+ = max{q : n kl(p_hat, q) <= ln(1/b_j)}, which the
true rate exceeds with probability at most b_j. A few hundred holdout rows leave p0+ well above p_hat, so
the reference grows with the version's own watched samples: whenever the samples watched since the last
refresh are as many as the reference holds (and it holds fewer than `max_reference`), they join it and p0+
is recomputed (j + 1). The j-th bound spends b_j = b / 2^(j+1), b the `reference_share` of `false_alarm`, so
every p0+ ever used is above the true rate except with probability at most b; the CUSUM's parameters only
change between samples, so its likelihood-ratio products stay supermartingales. Overall
P(false alarm within `horizon`) <= `false_alarm`. After an alarm the samples since the last refresh are
dropped instead of joining (they may hold the change).

**Label delay.** Labels come minutes to hours after inference and out of order. The detector consumes them
in arrival order (each arrival batch sorted by inference time). If the labeller's delay does not depend on
whether the answer was wrong, the errors of a stationary stream in arrival order are still independent
Bernoulli(p) draws, so the bound holds unchanged. After a change at inference time T, every sample labelled
after T + D (D the longest delay) was answered after T: the CUSUM is >= 0 at that moment and climbs from
there exactly as an undelayed one started at 0, so delay postpones detection by at most D's worth of
arrivals and never causes an alarm. What the detector cannot do is see a change before its labels arrive.

**Which samples.** Hard-example samplers pick rows the model is unsure of, so their error rate is higher
than the stream's. With `use="unbiased"` (the default) only the samples flagged unbiased (the random share,
drawn without looking at the answer) are watched, against the holdout or warm-up reference. With
`use="all"`, every sample is watched, and the reference must come from the same mix: the version's own
first `warmup` samples (the sampler mix is the same before and after, so a rise is still a rise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.detector_state import DetectorState, finite_number
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.sample_payload import Sample

DEFAULT_INCREASES = (0.05, 0.1, 0.2, 0.4)
"""Error-rate rises watched for, in absolute points: small ones need many samples, large ones few."""
USES = ("unbiased", "all")
MAX_ALTERNATIVE = 0.999
"""An alternative at or above this rate is dropped (a right answer would be near-impossible evidence)."""
_BISECTIONS = 60
UNBIASED_SAMPLER = "random"
"""The sampler that draws without looking at the answer (and is tried first, so it names every row it draws)."""
MARGIN_SAMPLER = "small_margin"
MARGIN_TOLERANCE = 1e-3
"""How far a sample's margin may sit from 2c - 1 and still be a two-class answer's (the payload rounds both)."""


@dataclass(frozen=True)
class ErrorDetector:
    """The policy: how sure an alarm must be, over how many samples, which rises, which samples, which reference."""

    false_alarm: float = 0.01
    """P(any alarm within `horizon` monitored samples while the error rate has not risen) is at most this."""
    horizon: int = 10_000
    increases: tuple[float, ...] = DEFAULT_INCREASES
    reference_share: float = 0.5
    """The part of false_alarm spent on the reference rate's upper confidence bound."""
    warmup: int = 0
    """The first usable samples join the reference instead of being watched (the version's own error rate)."""
    use: str = "unbiased"
    max_reference: int = 1000
    """Watched samples stop joining the reference once it holds this many trials (a slow drift must not hide)."""

    def __post_init__(self) -> None:
        where = "detector"
        if not 0.0 < self.false_alarm < 1.0:
            raise ValidationError(f"{where}.false_alarm", f"must be in (0, 1), got {self.false_alarm}")
        if self.horizon < 1:
            raise ValidationError(f"{where}.horizon", f"must be >= 1, got {self.horizon}")
        if not self.increases or any(not 0.0 < d < 1.0 for d in self.increases):
            raise ValidationError(f"{where}.increases", f"need one or more rises in (0, 1), got {self.increases}")
        if not 0.0 < self.reference_share < 1.0:
            raise ValidationError(f"{where}.reference_share", f"must be in (0, 1), got {self.reference_share}")
        if self.warmup < 0:
            raise ValidationError(f"{where}.warmup", f"must be >= 0, got {self.warmup}")
        if self.use not in USES:
            raise ValidationError(f"{where}.use", f"{self.use!r}; expected one of {USES}")
        if self.max_reference < 0:
            raise ValidationError(f"{where}.max_reference", f"must be >= 0, got {self.max_reference}")

    @property
    def threshold(self) -> float:
        """h: the CUSUM level at which K alternatives over `horizon` starts spend the CUSUM's share of false_alarm."""
        cusum_share = self.false_alarm * (1.0 - self.reference_share)
        return math.log(len(self.increases) * self.horizon / cusum_share)

    @property
    def reference_risk(self) -> float:
        """b: the chance that any reference upper bound used is below the true pre-change rate."""
        return self.false_alarm * self.reference_share

    def refresh_risk(self, refreshes: int) -> float:
        """b_j = b / 2^(j+1): the risk the j-th reference bound spends (they sum to b)."""
        return self.reference_risk / 2.0 ** (refreshes + 1)

    def false_alarm_bound(self, samples: int) -> float:
        """The stated bound on P(an alarm within `samples` monitored samples | no rise): b + K n e^-h."""
        return min(1.0, self.reference_risk + len(self.increases) * samples * math.exp(-self.threshold))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the trigger persists its policy beside the state)."""
        return {
            "false_alarm": self.false_alarm,
            "horizon": self.horizon,
            "increases": list(self.increases),
            "reference_share": self.reference_share,
            "warmup": self.warmup,
            "use": self.use,
            "max_reference": self.max_reference,
        }

    @classmethod
    def from_dict(cls, data: object) -> ErrorDetector:
        """Parse a policy, refusing unknown keys and out-of-range values."""
        where = "detector"
        d = wire.mapping(data, where)
        wire.only_keys(d, set(cls.__dataclass_fields__), where)
        return cls(
            false_alarm=wire.number(d, "false_alarm", where),
            horizon=wire.integer(d, "horizon", where, minimum=1),
            increases=tuple(finite_number(v, f"{where}.increases") for v in wire.sequence(d, "increases", where)),
            reference_share=wire.number(d, "reference_share", where),
            warmup=wire.integer(d, "warmup", where, minimum=0),
            use=wire.text(d, "use", where),
            max_reference=wire.integer(d, "max_reference", where, minimum=0),
        )


@dataclass(frozen=True)
class Observation:
    """One labelled sample of the watched version: was its answer wrong, and may it estimate the error rate."""

    error: bool
    unbiased: bool = True
    """Drawn without regard to the answer (the random share); False for a hard-example sample."""
    served_at: float = 0.0
    """When the device answered: the order within one arrival batch."""
    confidence: float | None = None
    """The answer's top-1 confidence, where the sampler's choice depended on nothing else that predicts an error
    (edgeloop.core.calibrated); None: the calibrated detector cannot judge this sample."""


def observation_of(sample: Sample, true_index: int, served_at: float = 0.0) -> Observation:
    """A labelled sample as the detectors see it: wrong or right, whether the random share drew it, and the
    confidence it was answered with unless a margin the confidence does not fix chose it (more than two classes)."""
    by_margin = (
        sample.sampler == MARGIN_SAMPLER and abs(sample.margin - (2.0 * sample.confidence - 1.0)) > MARGIN_TOLERANCE
    )
    confidence = None if by_margin else sample.confidence
    return Observation(sample.label_index != true_index, sample.sampler == UNBIASED_SAMPLER, served_at, confidence)


@dataclass(frozen=True)
class Alarm:
    """The error rate has risen: where the detector noticed it and what it saw."""

    at_sample: int
    """Monitored samples consumed when the alarm fired (1-based)."""
    since_sample: int
    """Where the run that crossed began: the CUSUM's estimate of the change point (monitored samples)."""
    run_samples: int
    run_errors: int
    reference_rate: float
    """p0+, the reference's upper bound the run was compared with."""
    alternative: float
    statistic: float
    threshold: float

    @property
    def run_error_rate(self) -> float:
        """The error rate over the run that raised the alarm."""
        return self.run_errors / self.run_samples if self.run_samples else 0.0


def initial_state(policy: ErrorDetector, reference_errors: int = 0, reference_trials: int = 0) -> DetectorState:
    """A fresh detector for one version: the reference counts it starts from (its holdout), then policy.warmup."""
    if reference_trials == 0 and policy.warmup == 0:
        raise ValidationError("detector.reference", "needs reference trials (a holdout) or warmup samples")
    return DetectorState(
        reference_errors=reference_errors,
        reference_trials=reference_trials,
        warmup_left=policy.warmup,
        cusums=((0.0, 0, 0),) * len(policy.increases),
    )


def reference_from_accuracy(accuracy: float, rows: int) -> tuple[int, int]:
    """(errors, trials) of a holdout of `rows` rows at `accuracy` (a manifest's metrics: accuracy, holdout_rows)."""
    if not 0.0 <= accuracy <= 1.0 or rows < 1:
        raise ValidationError("detector.reference", f"accuracy {accuracy} over {rows} rows is not a holdout")
    return round((1.0 - accuracy) * rows), rows


def reference_from_manifest(manifest: ModelManifest) -> tuple[int, int]:
    """(errors, trials) of the selected variant's holdout, as its manifest's metrics record them."""
    metrics = manifest.metrics[manifest.selected_artifact.precision]
    if "holdout_rows" not in metrics:
        raise ValidationError("metrics.holdout_rows", "the manifest does not say how many rows its holdout had")
    return reference_from_accuracy(metrics["accuracy"], int(metrics["holdout_rows"]))


def upper_rate(errors: int, trials: int, risk: float) -> float:
    """The Chernoff upper confidence bound on a Bernoulli rate: the true rate exceeds it with probability <= risk."""
    if trials == 0:
        return 1.0
    observed = errors / trials
    budget = math.log(1.0 / risk) / trials
    low, high = observed, 1.0
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        if _kl(observed, middle) > budget:
            high = middle
        else:
            low = middle
    return high


def observe(
    state: DetectorState, errors: Iterable[Observation | bool], policy: ErrorDetector
) -> tuple[DetectorState, Alarm | None]:
    """Consume one arrival batch of labelled samples (sorted here by served_at); the first alarm it raised, if any.

    After an alarm every CUSUM restarts, so later samples of the same batch can raise (and count) another.
    """
    if len(state.cusums) != len(policy.increases):
        raise ValidationError("detector_state.cusums", f"{len(state.cusums)} CUSUMs for {len(policy.increases)} rises")
    batch = sorted((e if isinstance(e, Observation) else Observation(bool(e)) for e in errors), key=_served_at)
    run = _Run(state, policy)
    for sample in batch:
        if policy.use == "unbiased" and not sample.unbiased:
            run.skipped += 1
        elif run.warmup_left:
            run.warm(sample.error)
        else:
            run.watch(sample.error)
    return run.state(), run.first


def reference_rate(state: DetectorState, policy: ErrorDetector) -> float | None:
    """p0+, the rate the detector compares with; None while warming up."""
    if state.warmup_left:
        return None
    return upper_rate(state.reference_errors, state.reference_trials, policy.refresh_risk(state.refreshes))


class _Run:
    """observe()'s working copy of a state: plain attributes updated per sample, frozen again at the end."""

    def __init__(self, state: DetectorState, policy: ErrorDetector) -> None:
        self.policy = policy
        self.ref_errors, self.ref_trials = state.reference_errors, state.reference_trials
        self.refreshes, self.warmup_left = state.refreshes, state.warmup_left
        self.pending_errors, self.pending_trials = state.pending_errors, state.pending_trials
        self.monitored, self.skipped, self.alarms = state.monitored, state.skipped, state.alarms
        self.cusums = list(state.cusums)
        self.first: Alarm | None = None
        self.threshold = policy.threshold
        self.steps = [] if self.warmup_left else self._increments()

    def _reference(self) -> float:
        """p0+ of the current reference, at the current refresh's risk."""
        return upper_rate(self.ref_errors, self.ref_trials, self.policy.refresh_risk(self.refreshes))

    def _increments(self) -> list[tuple[float, float, float] | None]:
        """The CUSUM increments for the current reference."""
        return _steps(self._reference(), self.policy)

    def warm(self, error: bool) -> None:
        """A warm-up sample joins the reference."""
        self.ref_errors, self.ref_trials = self.ref_errors + error, self.ref_trials + 1
        self.warmup_left -= 1
        if not self.warmup_left:
            self.steps = self._increments()

    def watch(self, error: bool) -> None:
        """A watched sample: every CUSUM steps; an alarm restarts them; the reference may grow."""
        self.monitored += 1
        self.pending_errors, self.pending_trials = self.pending_errors + error, self.pending_trials + 1
        fired: tuple[int, float] | None = None
        for i, step in enumerate(self.steps):
            if step is None:
                continue
            up, down, alternative = step
            statistic, run, run_errors = self.cusums[i]
            statistic += up if error else down
            run, run_errors = (run + 1, run_errors + error) if statistic > 0.0 else (0, 0)
            self.cusums[i] = (max(0.0, statistic), run, run_errors)
            if statistic >= self.threshold and fired is None:
                fired = (i, alternative)
        if fired is not None:
            self._alarm(*fired)
        elif self.pending_trials >= self.ref_trials and self.ref_trials < self.policy.max_reference:
            self.ref_errors, self.ref_trials = (
                self.ref_errors + self.pending_errors,
                self.ref_trials + self.pending_trials,
            )
            self.pending_errors = self.pending_trials = 0
            self.refreshes += 1
            self.steps = self._increments()

    def _alarm(self, index: int, alternative: float) -> None:
        """Record an alarm (the batch's first is returned), restart the CUSUMs, drop the pending samples."""
        statistic, run, run_errors = self.cusums[index]
        self.alarms += 1
        if self.first is None:
            self.first = Alarm(self.monitored, self.monitored - run + 1, run, run_errors, self._reference(),
                               alternative, round(statistic, 6), self.threshold)  # fmt: skip
        self.cusums = [(0.0, 0, 0)] * len(self.cusums)
        self.pending_errors = self.pending_trials = 0

    def state(self) -> DetectorState:
        """The frozen state after the batch."""
        return DetectorState(
            reference_errors=self.ref_errors,
            reference_trials=self.ref_trials,
            refreshes=self.refreshes,
            warmup_left=self.warmup_left,
            pending_errors=self.pending_errors,
            pending_trials=self.pending_trials,
            monitored=self.monitored,
            skipped=self.skipped,
            alarms=self.alarms,
            cusums=tuple(self.cusums),
        )


def _steps(base: float, policy: ErrorDetector) -> list[tuple[float, float, float] | None]:
    """Per alternative: (log-LR of an error, of a right answer, p1); None where p1 is not in (p0+, MAX_ALTERNATIVE)."""
    steps: list[tuple[float, float, float] | None] = []
    for rise in policy.increases:
        alternative = base + rise
        if base <= 0.0 or alternative >= MAX_ALTERNATIVE:
            steps.append(None)
            continue
        steps.append((math.log(alternative / base), math.log((1 - alternative) / (1 - base)), alternative))
    return steps


def _kl(p: float, q: float) -> float:
    """Bernoulli Kullback-Leibler divergence kl(p, q), with 0 ln 0 = 0."""
    if q <= 0.0 or q >= 1.0:
        return math.inf if q != p else 0.0
    total = 0.0
    if p > 0.0:
        total += p * math.log(p / q)
    if p < 1.0:
        total += (1 - p) * math.log((1 - p) / (1 - q))
    return total


def _served_at(sample: Observation) -> float:
    return sample.served_at
