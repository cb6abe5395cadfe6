"""Hard-example samplers and the per-device daily byte budget: which inferences are worth sending back.

Each sampler is a small named test of one inference's signals against its one parameter, in [0, 1]:

- ``random``: a control sample, drawn with probability p whatever the inference looked like, so the
  retraining data is not only the hard tail (and the cloud can estimate what the fleet sees);
- ``low_confidence``: top-class probability below p;
- ``small_margin``: top-1 minus top-2 probability below p (the model hesitates between two labels);
- ``drifted``: while the device's drift window is over its threshold, with probability p.

They are tried in SAMPLER_ORDER and the first that fires names the sample, so a control sample is
always labelled ``random``, never mistaken for a hard one.

What the random samples estimate (weighted_accuracy): hard-example samplers take the inferences the model
is unsure of, and those are wrong far more often than the rest, so the share of labelled samples the model
got right says little about the traffic it serves. The random sampler takes each inference with a
probability that does not look at the inference (the rate in force when it was served, recorded in the
sample as `inclusion`), so weighting each random sample by 1/inclusion (Horvitz-Thompson) counts it for
every inference it stands for. The estimate is the ratio form (Hajek): sum(correct / inclusion) /
sum(1 / inclusion), consistent whatever the rate did over time (a rate boosted while drift is suspected
does not make the suspect period count more than the traffic it served). Samples of other samplers, and
random ones without a recorded inclusion, are left out of the estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from edgeloop.core.errors import ConfigError, ValidationError

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class SampleSignals:
    """What a sampler sees of one inference; the draws are uniform in [0, 1), made by the caller."""

    confidence: float
    margin: float
    drifted: bool
    control_draw: float
    drift_draw: float


Sampler = Callable[[SampleSignals, float], bool]


def random_control(signals: SampleSignals, rate: float) -> bool:
    """A share of all traffic, hard or not: the unbiased reference for the hard examples."""
    return signals.control_draw < rate


def low_confidence(signals: SampleSignals, threshold: float) -> bool:
    """The model was unsure of its top label."""
    return signals.confidence < threshold


def small_margin(signals: SampleSignals, threshold: float) -> bool:
    """The model hesitated between its two best labels."""
    return signals.margin < threshold


def drifted(signals: SampleSignals, rate: float) -> bool:
    """Inputs from a drifted window, thinned to a rate: what the next model must learn."""
    return signals.drifted and signals.drift_draw < rate


SAMPLERS: Mapping[str, Sampler] = MappingProxyType(
    {"random": random_control, "low_confidence": low_confidence, "small_margin": small_margin, "drifted": drifted}
)
SAMPLER_ORDER = tuple(SAMPLERS)
DEFAULT_PARAMETERS: Mapping[str, float] = MappingProxyType(
    {"random": 0.001, "low_confidence": 0.5, "small_margin": 0.1, "drifted": 0.05}
)
"""Parameters for samplers configured by name only (`"samplers": ["low_confidence", "random"]`)."""

SamplerSettings = tuple[tuple[str, float], ...]
"""Configured samplers and their parameters, in SAMPLER_ORDER."""


def parse_samplers(value: object) -> SamplerSettings:
    """The `samplers` configuration: a mapping of sampler name to parameter, or a list of names (default parameters)."""
    if isinstance(value, list | tuple) and all(isinstance(name, str) for name in value):
        chosen: Mapping[Any, Any] = {name: DEFAULT_PARAMETERS.get(name, 0.0) for name in value}
    elif isinstance(value, Mapping):
        chosen = value
    else:
        raise ConfigError("samplers", f"expected an object of sampler: parameter or a list of names, got {value!r}")
    for name, parameter in chosen.items():
        if name not in SAMPLERS:
            raise ConfigError("samplers", f"unknown sampler {name!r}; expected one of {SAMPLER_ORDER}")
        if isinstance(parameter, bool) or not isinstance(parameter, int | float) or not 0 <= parameter <= 1:
            raise ConfigError(f"samplers.{name}", f"parameter must be a number in [0, 1], got {parameter!r}")
    return tuple((name, float(chosen[name])) for name in SAMPLER_ORDER if name in chosen)


def samplers_config(settings: SamplerSettings) -> dict[str, float]:
    """The configuration form of parsed samplers."""
    return dict(settings)


def describe(settings: SamplerSettings) -> str:
    """A one-line form for the health shadow's list of applied overrides (which holds numbers or strings)."""
    return ",".join(f"{name}={parameter:g}" for name, parameter in settings) or "none"


def choose_sampler(settings: SamplerSettings, signals: SampleSignals) -> str | None:
    """The first configured sampler that takes this inference, or None."""
    for name, parameter in settings:
        if SAMPLERS[name](signals, parameter):
            return name
    return None


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""One encoder for every sample (json.dumps with arguments builds a new one per call); ASCII output."""


def payload_bytes(payload: Mapping[str, Any]) -> int:
    """What a sample costs against the budget: its compact JSON, as it travels in a batch."""
    return len(_COMPACT.encode(payload))


def utc_day(now: float) -> int:
    """Days since the epoch in UTC: the budget's period."""
    return math.floor(now / SECONDS_PER_DAY)


@dataclass(frozen=True)
class SampleBudget:
    """Sample bytes spent today against a daily limit, and counts since start (taken, dropped over budget).

    Once what is left of today's budget is smaller than the smallest sample offered so far, the day counts as
    spent: samples of one schema hardly differ in size, and building and measuring every later sample only to
    drop it would cost the inference path more than the few bytes a smaller one might still have used.
    """

    limit: int
    day: int | None = None
    spent: int = 0
    taken: int = 0
    dropped: int = 0
    smallest: int | None = None
    """The smallest sample size offered to admit (bytes), whatever the day; None before the first."""

    def admit(self, size: int, now: float) -> tuple[SampleBudget, bool]:
        """Whether a sample of size bytes fits today's budget, and the budget after it (a new UTC day starts at 0)."""
        today = utc_day(now)
        spent = self.spent if self.day == today else 0
        smallest = size if self.smallest is None else min(self.smallest, size)
        if spent + size > self.limit:
            return replace(self, day=today, spent=spent, dropped=self.dropped + 1, smallest=smallest), False
        return replace(self, day=today, spent=spent + size, taken=self.taken + 1, smallest=smallest), True

    def drop(self, now: float) -> SampleBudget:
        """Count a sample dropped without offering its size (the day is spent, or the sample is over its cap)."""
        return replace(self, day=utc_day(now), spent=self.spent_on(now), dropped=self.dropped + 1)

    def exhausted(self, now: float) -> bool:
        """Whether today's budget is spent: what is left is nothing, or less than the smallest sample seen."""
        left = self.limit - self.spent_on(now)
        return left <= 0 or (self.smallest is not None and left < self.smallest)

    def spent_on(self, now: float) -> int:
        """Bytes spent on the UTC day of now (0 once a new day has started)."""
        return self.spent if self.day == utc_day(now) else 0

    def with_limit(self, limit: int) -> SampleBudget:
        """The same day and counts under a new limit (a desired-state override keeps what was spent)."""
        return replace(self, limit=limit)


Z_95 = 1.959964
"""Two-sided 95% normal quantile, for the estimate's interval."""


@dataclass(frozen=True)
class AccuracyEstimate:
    """An accuracy estimate from weighted observations, its standard error and the sample it rests on."""

    accuracy: float | None
    """None when no observation could be weighted."""
    standard_error: float | None
    samples: int
    """Observations used (random samples with an inclusion probability)."""
    effective_samples: float
    """Kish's effective sample size: (sum w)^2 / sum w^2; smaller than samples when the weights vary."""
    represented: float
    """sum(1 / inclusion): how many inferences the samples stand for (an estimate of the traffic served)."""

    def interval(self) -> tuple[float, float] | None:
        """A 95% normal interval, clipped to [0, 1] (None without a standard error)."""
        if self.accuracy is None or self.standard_error is None:
            return None
        half = Z_95 * self.standard_error
        return max(0.0, self.accuracy - half), min(1.0, self.accuracy + half)


def weighted_accuracy(observations: Iterable[tuple[bool, float]]) -> AccuracyEstimate:
    """The Hajek estimate of accuracy from (correct, inclusion probability) pairs, with a linearised standard error."""
    pairs = list(observations)
    for correct, inclusion in pairs:
        if isinstance(inclusion, bool) or not math.isfinite(inclusion) or not 0.0 < inclusion <= 1.0:
            raise ValidationError("inclusion", f"must be a probability in (0, 1], got {inclusion!r}")
        if not isinstance(correct, bool):
            raise ValidationError("correct", f"expected true or false, got {correct!r}")
    if not pairs:
        return AccuracyEstimate(None, None, 0, 0.0, 0.0)
    weights = [1.0 / inclusion for _, inclusion in pairs]
    total = math.fsum(weights)
    accuracy = math.fsum(w for w, (correct, _) in zip(weights, pairs, strict=True) if correct) / total
    squares = math.fsum(w * w for w in weights)
    residuals = math.fsum(
        (w * ((1.0 if correct else 0.0) - accuracy)) ** 2 for w, (correct, _) in zip(weights, pairs, strict=True)
    )
    error = math.sqrt(residuals) / total if len(pairs) > 1 else None
    return AccuracyEstimate(round(accuracy, 6), error, len(pairs), total * total / squares, total)


def naive_accuracy(observations: Iterable[bool]) -> float | None:
    """The unweighted share correct: what the estimate corrects (biased when hard examples are in the sample)."""
    values = list(observations)
    return sum(values) / len(values) if values else None
