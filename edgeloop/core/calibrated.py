"""A change detector that uses every labelled sample: errors judged against the version's own calibration.

The random-share detector (edgeloop.core.detectors) can only watch samples drawn without looking at the
answer, because hard-example samplers pick rows the model is unsure of, which are wrong more often. This one
conditions on what the samplers look at instead. Under "no change", an answer the deployed version gave with
top-1 confidence c is wrong with probability p(c), and the version's holdout measured it per confidence band
(the manifest's reliability table, edgeloop.core.manifest). A sampler that chose a sample by its
confidence (low_confidence), or without looking at it (random, drifted), does not change p(c): given c, the
choice is independent of whether the answer was right. So every such sample is evidence, weighed by its band.

**Method.** One one-sided CUSUM per group g of bands (band g and every band above it: the answers given at
confidence g's lower edge or more) and odds multiplier k in `odds`. A sample in band b steps the CUSUMs of
groups 0 to b by the log-likelihood ratio of "the error odds are k times q0's", q1 = k q0 / (1 - q0 + k q0),
against q0: ln(q1/q0) for an error, ln((1-q1)/(1-q0)) for a right answer; S = max(0, S + l), an alarm when
any S reaches h. For a random sample, q0 is group g's pooled holdout rate: drawn without looking, a random
sample in group g is an answer drawn from the group's mix of confidences, wrong with the group's average
rate. For a hard example, q0 is the rate of the band below its own (see "Inside a band"). Each rate is the
Chernoff upper confidence bound of the holdout's (edgeloop.core.detectors.upper_rate) at risk r/2B, r the
`reference_share` of `false_alarm` and B the bands (B band bounds, B group bounds): every q0 is at or above
the true rate except with probability at most r. The groups are there because a change of concept moves
some bands and not others: a group that leaves out the unmoved low bands keeps them from drowning the
evidence of the moved ones above, and pooling the bands above g bounds the group's rate far tighter than
any of its bands alone (a holdout has a few hundred rows). An error among confident answers, where the
version is almost never wrong, weighs more than one among unsure ones, which is why this sees changes of
concept that leave the inputs alone and the overall error rate almost so. (A shift of the confidence mix
that raises a group's error rate alarms too: the version then answers worse, which is a change as well.)

**The bound.** For a sample whose true error rate p is at most q0, E[e^l] = p q1/q0 + (1-p)(1-q1)/(1-q0) <= 1
(it is 1 at p = q0 and grows with p), whatever band the sample is in and whatever sampler took it. So from
any start the product of e^l is a non-negative supermartingale, and by Ville's inequality it ever reaches
e^h with probability at most e^-h. A union over the first N starts, the B groups and the K multipliers, plus
the reference risk, gives

    P(an alarm within N watched samples | no change) <= r + B K N e^-h,

and h is chosen so this is `false_alarm` at `horizon` samples (the CUSUM restarts after an alarm, and the
same sum bounds the expected number of alarms).

**Label delay and order.** Labels arrive minutes to hours after inference, in any order. Under no change
each labelled sample's error depends only on its confidence (and sampler), not on when its label came, so the
argument above holds in arrival order (each arrival batch is sorted by inference time only to make the
estimated start readable). A delay that does not depend on the answer only postpones evidence: after a
change, the CUSUM climbs once the changed samples' labels arrive, and it never alarms because of the delay.

**Inside a band.** A band's holdout rate is an average over the band, and a hard-example sampler that takes
only the bottom of a band (confidence below its threshold) takes the rows most likely wrong in it. So a
sample not drawn at random is judged against the band below its own: the detector assumes that the error
rate does not rise with confidence, and then every row of the band below was answered at a confidence no
higher than this one's, so that band's rate (and its upper bound) is at least this sample's. A hard example
in the lowest band is skipped. A random sample is judged by its groups' pooled rates (its draw ignored the confidence).

**Which samples are skipped.** A sample with no confidence, and one a sampler chose by its top-1 minus top-2
margin where that margin is not a function of the confidence (more than two classes): given c, a small
margin picks the rows more likely wrong, which the table does not describe. With two classes the margin is
2c - 1, so margin-chosen samples count too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.detector_state import finite_number
from edgeloop.core.detectors import MAX_ALTERNATIVE, Alarm, Observation, upper_rate
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import Reliability

DEFAULT_ODDS = (2.0, 4.0, 10.0)
"""Error-odds multipliers watched for: small ones need many samples, large ones (a concept change where the
version was sure of itself) only a few errors."""
_CUSUM_LENGTH = 4


@dataclass(frozen=True)
class CalibratedDetector:
    """The policy: how sure an alarm must be, over how many samples, which odds rises, the reference's share."""

    false_alarm: float = 0.01
    """P(any alarm within `horizon` watched samples while nothing changed) is at most this."""
    horizon: int = 10_000
    odds: tuple[float, ...] = DEFAULT_ODDS
    reference_share: float = 0.5
    """The part of false_alarm spent on the bands' upper confidence bounds."""

    def __post_init__(self) -> None:
        where = "calibrated_detector"
        if not 0.0 < self.false_alarm < 1.0:
            raise ValidationError(f"{where}.false_alarm", f"must be in (0, 1), got {self.false_alarm}")
        if self.horizon < 1:
            raise ValidationError(f"{where}.horizon", f"must be >= 1, got {self.horizon}")
        if not self.odds or any(not (k > 1.0 and math.isfinite(k)) for k in self.odds):
            raise ValidationError(f"{where}.odds", f"need one or more finite multipliers > 1, got {self.odds}")
        if not 0.0 < self.reference_share < 1.0:
            raise ValidationError(f"{where}.reference_share", f"must be in (0, 1), got {self.reference_share}")

    def threshold(self, bands: int) -> float:
        """h: where B groups' K multipliers over `horizon` starts spend the CUSUMs' share of false_alarm."""
        return math.log(bands * len(self.odds) * self.horizon / (self.false_alarm * (1.0 - self.reference_share)))

    def band_risk(self, bands: int) -> float:
        """The risk each of the 2B upper bounds (B bands, B groups) spends: they sum to the reference's share."""
        return self.false_alarm * self.reference_share / (2 * bands)

    def false_alarm_bound(self, samples: int, bands: int) -> float:
        """The stated bound on P(an alarm within `samples` watched samples | no change): r + B K n e^-h."""
        cusums = bands * len(self.odds)
        return min(1.0, self.false_alarm * self.reference_share + cusums * samples * math.exp(-self.threshold(bands)))

    def references(self, table: Reliability) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(q0 per band, q0 per group: bands g and up pooled): the holdout error rates' upper confidence bounds
        (1.0 where there are no rows)."""
        risk, pairs = self.band_risk(len(table.rows)), list(zip(table.errors, table.rows, strict=True))
        bands = tuple(upper_rate(e, r, risk) for e, r in pairs)
        groups = tuple(
            upper_rate(sum(e for e, _ in pairs[g:]), sum(r for _, r in pairs[g:]), risk) for g in range(len(pairs))
        )
        return bands, groups


@dataclass(frozen=True)
class CalibratedState:
    """The table it judges by, and per band and multiplier (statistic, run samples, run errors, expected errors)."""

    reliability: Reliability
    cusums: tuple[tuple[float, int, int, float], ...]
    """Group by group, multiplier by multiplier (group g's k-th at g * K + k; group g: bands g and up)."""
    monitored: int = 0
    skipped: int = 0
    """Samples it could not judge (no confidence, or chosen by a margin the confidence does not fix)."""
    alarms: int = 0

    def __post_init__(self) -> None:
        where = "calibrated_state"
        for key in ("monitored", "skipped", "alarms"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"{where}.{key}", f"must be an integer >= 0, got {value!r}")
        for statistic, run, errors, expected in self.cusums:
            if not (math.isfinite(statistic) and statistic >= 0.0 and 0 <= errors <= run <= self.monitored):
                raise ValidationError(f"{where}.cusums", f"({statistic}, {run}, {errors}) is not a CUSUM state")
            if not (math.isfinite(expected) and 0.0 <= expected <= run):
                raise ValidationError(f"{where}.cusums", f"{expected} expected errors over {run} samples")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for the watch item."""
        return {
            "reliability": self.reliability.to_dict(),
            "cusums": [list(c) for c in self.cusums],
            "monitored": self.monitored,
            "skipped": self.skipped,
            "alarms": self.alarms,
        }

    @classmethod
    def from_dict(cls, data: object) -> CalibratedState:
        """Parse a stored state, refusing anything that is not one (ValidationError naming the field)."""
        where = "calibrated_state"
        d = wire.mapping(data, where)
        wire.only_keys(d, set(cls.__dataclass_fields__), where)
        cusums = []
        for item in wire.sequence(d, "cusums", where):
            if not isinstance(item, list) or len(item) != _CUSUM_LENGTH:
                raise ValidationError(f"{where}.cusums", f"expected [statistic, run, errors, expected], got {item!r}")
            run, errors = (wire.integer({"v": v}, "v", f"{where}.cusums", minimum=0) for v in item[1:3])
            cusums.append((finite_number(item[0], f"{where}.cusums"), run, errors, finite_number(item[3], where)))
        return cls(
            reliability=Reliability.from_dict(d.get("reliability"), f"{where}.reliability"),
            cusums=tuple(cusums),
            monitored=wire.integer(d, "monitored", where, minimum=0),
            skipped=wire.integer(d, "skipped", where, minimum=0),
            alarms=wire.integer(d, "alarms", where, minimum=0),
        )


def band_of(table: Reliability, confidence: float) -> int:
    """The band a confidence falls in: [edges[i-1], edges[i]), the first from 0, the last to 1."""
    return bisect.bisect_right(table.edges, confidence)


def initial_calibrated(policy: CalibratedDetector, table: Reliability) -> CalibratedState:
    """A fresh detector for one version, judging by its holdout's reliability table."""
    return CalibratedState(table, ((0.0, 0, 0, 0.0),) * (len(table.rows) * len(policy.odds)))


def observe_calibrated(
    state: CalibratedState, observations: Iterable[Observation], policy: CalibratedDetector
) -> tuple[CalibratedState, Alarm | None]:
    """Consume one arrival batch (sorted here by served_at); the first alarm it raised, if any.

    After an alarm every CUSUM restarts, so later samples of the same batch can raise (and count) another.
    """
    bands, per_band = len(state.reliability.rows), len(policy.odds)
    if len(state.cusums) != bands * per_band:
        raise ValidationError(
            "calibrated_state.cusums", f"{len(state.cusums)} CUSUMs for {bands} bands x {per_band} odds"
        )
    band_refs, group_refs = policy.references(state.reliability)
    band_steps, group_steps = _steps(band_refs, policy.odds), _steps(group_refs, policy.odds)
    threshold = policy.threshold(bands)
    cusums = list(state.cusums)
    monitored, skipped, alarms = state.monitored, state.skipped, state.alarms
    first: Alarm | None = None
    for sample in sorted(observations, key=lambda o: o.served_at):
        if sample.confidence is None:
            skipped += 1
            continue
        band = band_of(state.reliability, sample.confidence)
        if not sample.unbiased and band == 0:  # a hard example in the lowest band: nothing below bounds its rate
            skipped += 1
            continue
        monitored += 1
        fired: int | None = None
        for i in range((band + 1) * per_band):  # the groups of bands 0.., 1.., ..., band.. (all hold this one)
            group = i // per_band
            step = (group_steps[group] if sample.unbiased else band_steps[band - 1])[i % per_band]
            q0 = group_refs[group] if sample.unbiased else band_refs[band - 1]
            statistic, run, run_errors, expected = cusums[i]
            if step is not None:  # None: a reference too near certainty gives no evidence
                statistic += step[0] if sample.error else step[1]
            if statistic > 0.0:
                cusums[i] = (statistic, run + 1, run_errors + sample.error, expected + q0)
            else:
                cusums[i] = (0.0, 0, 0, 0.0)
            if statistic >= threshold and fired is None:
                fired = i
        if fired is not None:
            alarms += 1
            statistic, run, run_errors, expected = cusums[fired]
            if first is None:
                first = Alarm(monitored, monitored - run + 1, run, run_errors, round(expected / run, 6),
                              policy.odds[fired % per_band], round(statistic, 6), threshold)  # fmt: skip
            cusums = [(0.0, 0, 0, 0.0)] * len(cusums)
    return CalibratedState(state.reliability, tuple(cusums), monitored, skipped, alarms), first


Step = tuple[float, float] | None
"""(log-LR of an error, of a right answer) of one band and multiplier; None where q0 is too near 1."""


def _steps(references: tuple[float, ...], odds: tuple[float, ...]) -> list[list[Step]]:
    """Per band, per multiplier: the CUSUM increments."""
    out: list[list[Step]] = []
    for q0 in references:
        band: list[Step] = []
        for k in odds:
            q1 = k * q0 / (1.0 - q0 + k * q0)
            if q0 <= 0.0 or q1 >= MAX_ALTERNATIVE or q0 >= MAX_ALTERNATIVE:
                band.append(None)
                continue
            band.append((math.log(q1 / q0), math.log((1.0 - q1) / (1.0 - q0))))
        out.append(band)
    return out
