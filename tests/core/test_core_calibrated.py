"""The calibrated detector: every labelled sample judged by its confidence band against the version's holdout,
under its stated false-alarm bound, hard examples included; its state parses strictly (hypothesis mangles it)."""

from __future__ import annotations

import bisect
import contextlib
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.core.calibrated import (
    CalibratedDetector,
    CalibratedState,
    band_of,
    initial_calibrated,
    observe_calibrated,
)
from edgeloop.core.detectors import ErrorDetector, Observation, initial_state, observe
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import Reliability

EDGES = (0.6, 0.7, 0.8, 0.9, 0.95)


def error_rate(confidence: float, scale: float = 0.8) -> float:
    """A model whose error rate falls with its confidence (zero at 1), as a calibrated one's does."""
    return scale * (1.0 - confidence)


def answer(rng: random.Random, rate: Any = error_rate) -> tuple[float, bool]:
    """One answer: confidence uniform in [0.5, 1), wrong with the rate at that confidence."""
    confidence = rng.uniform(0.5, 1.0)
    return confidence, rng.random() < rate(confidence)


def holdout_table(rng: random.Random, rows: int, rate: Any = error_rate) -> Reliability:
    """The version's reliability table from a holdout of `rows` answers."""
    counts, errors = [0] * (len(EDGES) + 1), [0] * (len(EDGES) + 1)
    for _ in range(rows):
        confidence, wrong = answer(rng, rate)
        band = bisect.bisect_right(EDGES, confidence)
        counts[band] += 1
        errors[band] += wrong
    return Reliability(EDGES, tuple(counts), tuple(errors))


def samples(rng: random.Random, n: int, *, hard_below: float = 0.0, rate: Any = error_rate) -> list[Observation]:
    """n labelled samples: random ones, plus (hard_below > 0.5) every answer under that confidence, as a
    low_confidence sampler takes them (the rows of a band most likely wrong)."""
    out = []
    for t in range(n):
        confidence, wrong = answer(rng, rate)
        if confidence < hard_below:
            out.append(Observation(wrong, False, float(t), confidence))
        elif rng.random() < 0.2:
            out.append(Observation(wrong, True, float(t), confidence))
    return out


def test_the_stated_bound_is_the_policy_false_alarm_at_its_horizon() -> None:
    policy = CalibratedDetector()
    assert policy.false_alarm_bound(policy.horizon, 6) == pytest.approx(policy.false_alarm)
    assert policy.false_alarm_bound(10, 6) < policy.false_alarm_bound(1000, 6) < policy.false_alarm
    assert policy.threshold(6) == pytest.approx(math.log(6 * 3 * 10_000 / 0.005))
    assert policy.band_risk(4) * 8 == pytest.approx(policy.false_alarm * policy.reference_share)  # 4 bands, 4 groups


def test_bands_and_groups_are_bounded_from_above_and_an_empty_band_gives_no_evidence() -> None:
    table = Reliability((0.8,), (0, 200), (0, 4))
    (low, high), (everything, top) = CalibratedDetector().references(table)
    assert low == 1.0
    assert 0.02 < high < 0.1
    assert everything == top == high  # the group of all bands pools the same 200 rows
    state = initial_calibrated(CalibratedDetector(), table)
    hard = [Observation(True, False, 0.0, 0.9)] * 500  # hard examples judged by the empty band below theirs
    state, alarm = observe_calibrated(state, hard, CalibratedDetector())
    assert alarm is None
    assert state.monitored == 500
    assert all(c[0] == 0.0 for c in state.cusums)


@pytest.mark.parametrize("seed", range(10))
def test_stationary_streams_with_hard_examples_stay_under_the_bound(seed: int) -> None:
    """Random holdout size and policy; hard examples from the bottom of every band up to 0.75: the share of
    streams with an alarm stays under the stated bound."""
    rng = random.Random(seed)
    policy = CalibratedDetector(false_alarm=rng.choice([0.1, 0.3]), horizon=rng.choice([300, 1000]))
    alarmed = 0
    for _ in range(25):
        state = initial_calibrated(policy, holdout_table(rng, rng.randint(200, 800)))
        watched = samples(rng, 5 * policy.horizon, hard_below=0.75)[: policy.horizon]
        state, _ = observe_calibrated(state, watched, policy)
        alarmed += state.alarms > 0
    assert alarmed / 25 <= policy.false_alarm_bound(policy.horizon, len(EDGES) + 1)


def test_hard_examples_judged_by_their_own_band_would_alarm_falsely() -> None:
    """Why a hard example is judged by the band below: taken from the bottom of its band, it is wrong more often
    than the band's average. Marked unbiased (judged by its own band), the same stream alarms again and again."""
    rng = random.Random(4)
    policy = CalibratedDetector(false_alarm=0.1, horizon=1000)

    def steep(confidence: float) -> float:  # wrong half the time below 0.65, rarely above: mid-band [0.6, 0.7)
        return 0.5 if confidence < 0.65 else 0.02

    table = holdout_table(rng, 100_000, steep)
    hard = samples(rng, 20_000, hard_below=0.65, rate=steep)
    honest, _ = observe_calibrated(initial_calibrated(policy, table), hard, policy)
    as_if_random = [Observation(o.error, True, o.served_at, o.confidence) for o in hard]
    fooled, _ = observe_calibrated(initial_calibrated(policy, table), as_if_random, policy)
    assert honest.alarms == 0
    assert fooled.alarms >= 3


def test_samples_without_a_usable_confidence_are_skipped() -> None:
    policy = CalibratedDetector()
    table = Reliability((0.8,), (100, 200), (20, 4))
    batch = [
        Observation(True, False, 0.0, None),
        Observation(True, False, 1.0, 0.7),
        Observation(False, True, 2.0, 0.9),
    ]
    state, _ = observe_calibrated(initial_calibrated(policy, table), batch, policy)
    assert (state.monitored, state.skipped) == (1, 2)  # no confidence; a hard example in the lowest band


def confident_answers_go_wrong(confidence: float) -> float:
    """After a change of concept: the most confident answers (0.9 and up, a fifth of them) are now mostly wrong."""
    return 0.6 if confidence >= 0.9 else error_rate(confidence)


def first_alarms(table: Reliability, before: list[Observation], after: list[Observation]) -> tuple[int, int | None]:
    """(samples of the changed stream each detector consumed up to its alarm), calibrated then plain; the plain one
    watches the random share against the holdout's overall rate (None: it never alarmed)."""
    policy, plain = CalibratedDetector(), ErrorDetector()
    state, early = observe_calibrated(initial_calibrated(policy, table), before, policy)
    assert early is None
    start = state.monitored
    state, alarm = observe_calibrated(state, after, policy)
    assert alarm is not None
    assert alarm.run_error_rate > alarm.reference_rate
    calibrated_used = next(i for i, o in enumerate(_judged(after, table), 1) if o == alarm.at_sample - start)
    plain_state, plain_early = observe(initial_state(plain, sum(table.errors), sum(table.rows)), before, plain)
    assert plain_early is None
    for used, sample in enumerate(after, 1):
        plain_state, plain_alarm = observe(plain_state, [sample], plain)
        if plain_alarm is not None:
            return calibrated_used, used
    return calibrated_used, None


def _judged(after: list[Observation], table: Reliability) -> list[int]:
    """Per sample of `after`, how many of them the calibrated detector had judged by then."""
    out, judged = [], 0
    for o in after:
        band = band_of(table, o.confidence or 0.0) - (0 if o.unbiased else 1)
        judged += o.confidence is not None and band >= 0
        out.append(judged)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_change_of_concept_among_confident_answers_is_caught_sooner_than_by_the_error_rate(seed: int) -> None:
    """The error rate over all answers rises by about 11 points; in the top bands it goes from 2-6% to 60%."""
    rng = random.Random(seed)
    table = holdout_table(rng, 400)
    before = samples(rng, 3000, hard_below=0.6)
    after = samples(rng, 15_000, hard_below=0.6, rate=confident_answers_go_wrong)
    calibrated, plain = first_alarms(table, before, after)
    assert plain is None or calibrated < plain


def test_label_delay_only_delays_detection() -> None:
    """The same samples arriving shuffled within a delay: no alarm before the change, one soon after it."""
    rng = random.Random(8)
    policy = CalibratedDetector()
    table = holdout_table(rng, 400)
    before = samples(rng, 4000, hard_below=0.6)
    served = before + samples(rng, 10_000, hard_below=0.6, rate=lambda c: 0.6)
    served = [Observation(o.error, o.unbiased, float(t), o.confidence) for t, o in enumerate(served)]
    change = len(before)
    arrival = sorted(served, key=lambda o: o.served_at + rng.uniform(0, 200))
    state = initial_calibrated(policy, table)
    alarm_at = None
    for start in range(0, len(arrival), 25):
        batch = arrival[start : start + 25]
        state, alarm = observe_calibrated(state, batch, policy)
        if alarm is not None and alarm_at is None:
            alarm_at = max(o.served_at for o in batch)
    assert alarm_at is not None
    assert alarm_at >= change
    prompt, on_time_at = initial_calibrated(policy, table), None
    for sample in served:
        prompt, alarm = observe_calibrated(prompt, [sample], policy)
        if alarm is not None:
            on_time_at = sample.served_at
            break
    assert on_time_at is not None
    assert alarm_at <= on_time_at + 200 + 25  # the delay, and one arrival batch


def test_a_state_for_another_policy_is_refused() -> None:
    state = initial_calibrated(CalibratedDetector(), Reliability((), (10,), (1,)))
    with pytest.raises(ValidationError, match="cusums"):
        observe_calibrated(state, [], CalibratedDetector(odds=(2.0,)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"false_alarm": 0.0}, "false_alarm"),
        ({"horizon": 0}, "horizon"),
        ({"odds": ()}, "odds"),
        ({"odds": (1.0,)}, "odds"),
        ({"odds": (math.inf,)}, "odds"),
        ({"reference_share": 1.0}, "reference_share"),
    ],
)
def test_a_bad_policy_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        CalibratedDetector(**change)


def _running_state() -> CalibratedState:
    rng = random.Random(2)
    policy = CalibratedDetector()
    state = initial_calibrated(policy, holdout_table(rng, 300))
    state, _ = observe_calibrated(state, samples(rng, 500, hard_below=0.6, rate=lambda c: 0.3), policy)
    return state


def test_the_state_round_trips_through_json() -> None:
    state = _running_state()
    assert state.monitored > 0
    assert any(c[0] > 0 for c in state.cusums)
    assert CalibratedState.from_dict(state.to_dict()) == state


def _mutated(rng: random.Random, value: Any) -> Any:
    """A random edit somewhere in a JSON value: drop or add a key, change a type, a sign, a length."""
    junk = rng.choice([None, True, -1, 2**40, 1.5, math.nan, "x", [], {}, [1, 2, 3, 4, 5]])
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        edit = rng.random()
        if edit < 0.15:
            return {k: v for k, v in value.items() if k != key}
        if edit < 0.3:
            return {**value, "unexpected": junk}
        return {**value, key: _mutated(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], _mutated(rng, value[i]), *value[i + 1 :]]
    return junk


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_a_mangled_state_parses_or_raises_validation_error_only(rng: random.Random) -> None:
    data = _mutated(rng, _running_state().to_dict())
    try:
        parsed = CalibratedState.from_dict(data)
    except ValidationError:
        return
    assert CalibratedState.from_dict(parsed.to_dict()) == parsed  # whatever parses, round-trips


@settings(max_examples=300, deadline=None)
@given(data=JSON_VALUES)
def test_any_json_value_parses_or_raises_validation_error_only(data: Any) -> None:
    with contextlib.suppress(ValidationError):
        CalibratedState.from_dict(data)
