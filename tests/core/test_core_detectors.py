"""The error-stream detector: its false-alarm bound holds on stationary streams, it sees rises, delay only delays it,
and its policy and state parse strictly (hypothesis mangles their stored forms)."""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.core.detectors import (
    DetectorState,
    ErrorDetector,
    Observation,
    initial_state,
    observation_of,
    observe,
    reference_from_accuracy,
    reference_from_manifest,
    reference_rate,
    upper_rate,
)
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.sample_payload import Sample


def _stream(rng: random.Random, rate: float, n: int) -> list[bool]:
    return [rng.random() < rate for _ in range(n)]


def _binomial(rng: random.Random, rate: float, n: int) -> int:
    return sum(_stream(rng, rate, n))


# --- the bound ---


def test_the_stated_bound_is_the_policy_false_alarm_at_its_horizon() -> None:
    policy = ErrorDetector(false_alarm=0.02, horizon=5000)
    assert policy.false_alarm_bound(5000) == pytest.approx(0.02)
    assert policy.false_alarm_bound(50) < policy.false_alarm_bound(5000)
    assert policy.threshold == pytest.approx(math.log(4 * 5000 / 0.01))


def test_the_upper_rate_covers_the_true_rate_as_often_as_it_promises() -> None:
    """Chernoff: over 2000 draws of 180 rows at 10% errors, the true rate is above it at most `risk` of the time."""
    rng = random.Random(11)
    risk = 0.05
    misses = sum(upper_rate(_binomial(rng, 0.1, 180), 180, risk) < 0.1 for _ in range(2000))
    assert misses <= risk * 2000
    assert upper_rate(18, 180, risk) > 0.1
    assert upper_rate(18, 180, risk) > upper_rate(180, 1800, risk) > 0.1
    assert upper_rate(0, 0, risk) == 1.0


@pytest.mark.parametrize("seed", range(12))
def test_stationary_streams_with_an_estimated_reference_stay_under_the_bound(seed: int) -> None:
    """Random rate, holdout size and policy; 30 streams each: the share with an alarm is under the stated bound."""
    rng = random.Random(seed)
    rate, held = rng.uniform(0.01, 0.5), rng.randint(50, 500)
    policy = ErrorDetector(false_alarm=rng.choice([0.05, 0.2, 0.5]), horizon=rng.choice([200, 1000]))
    samples = policy.horizon
    alarmed = 0
    for _ in range(30):
        state = initial_state(policy, _binomial(rng, rate, held), held)
        state, _ = observe(state, _stream(rng, rate, samples), policy)
        alarmed += state.alarms > 0
    assert alarmed / 30 <= policy.false_alarm_bound(samples)


def test_with_a_known_rate_alarms_per_sample_stay_under_k_e_to_the_minus_h() -> None:
    """A loose policy (h = ln 40) and an exact reference: the detector fires by chance, and under the bound.

    The bound is conservative (a CUSUM's run length is well above e^h): here it is 0.025 and the rate ~0.0006."""
    policy = ErrorDetector(false_alarm=0.5, horizon=10, increases=(0.1,), reference_share=0.5)
    rng = random.Random(5)
    state = initial_state(policy, 10**7, 10**8)  # p0+ within 0.0002 of the true 0.1
    state, _ = observe(state, _stream(rng, 0.1, 40_000), policy)
    per_sample = state.alarms / 40_000
    assert per_sample <= math.exp(-policy.threshold)
    assert state.alarms > 0
    underestimated = initial_state(policy, 5 * 10**6, 10**8)  # a reference below the truth: no guarantee, many alarms
    underestimated, _ = observe(underestimated, _stream(rng, 0.1, 40_000), policy)
    assert underestimated.alarms > 5 * state.alarms


# --- detection ---


@pytest.mark.parametrize(("before", "after", "within"), [(0.1, 0.5, 150), (0.1, 0.3, 700), (0.25, 0.6, 200)])
def test_a_rise_is_detected_and_located(before: float, after: float, within: int) -> None:
    policy = ErrorDetector()
    rng = random.Random(f"{before}-{after}")
    state = initial_state(policy, *reference_from_accuracy(1 - before, 1000))
    state, early = observe(state, _stream(rng, before, 800), policy)
    state, alarm = observe(state, _stream(rng, after, within), policy)
    assert early is None
    assert alarm is not None
    assert alarm.at_sample > 800
    assert 700 <= alarm.since_sample <= alarm.at_sample  # the run began near the change
    assert alarm.run_error_rate > before
    assert alarm.reference_rate >= before


def test_label_delay_only_delays_detection() -> None:
    """The same samples arriving shuffled within a delay: no alarm before the change, one soon after it."""
    policy = ErrorDetector()
    rng = random.Random(3)
    served = [Observation(rng.random() < (0.1 if t < 1000 else 0.4), True, float(t)) for t in range(2000)]
    arrival = sorted(served, key=lambda o: o.served_at + rng.uniform(0, 300))  # up to 300 samples late
    state = initial_state(policy, 18, 180)
    alarm_at = None
    for start in range(0, 2000, 50):  # arrival batches
        state, alarm = observe(state, arrival[start : start + 50], policy)
        if alarm is not None and alarm_at is None:
            alarm_at = start
    prompt = initial_state(policy, 18, 180)
    prompt, on_time = observe(prompt, served, policy)
    assert on_time is not None
    assert alarm_at is not None
    assert 1000 <= alarm_at <= on_time.at_sample + 300


def test_biased_samples_are_skipped_or_used_with_their_own_warmup_reference() -> None:
    rng = random.Random(9)
    hard = [Observation(rng.random() < 0.6, unbiased=False) for _ in range(300)]  # hard examples: wrong more often
    fair = [Observation(rng.random() < 0.1) for _ in range(300)]
    unbiased = ErrorDetector()
    state, alarm = observe(initial_state(unbiased, 18, 180), hard + fair, unbiased)
    assert (alarm, state.skipped, state.monitored) == (None, 300, 300)
    everything = ErrorDetector(use="all", warmup=200)
    state, alarm = observe(initial_state(everything), hard[:100] + fair[:100] + hard[100:] + fair[100:], everything)
    assert state.warmup_left == 0
    assert state.skipped == 0
    assert state.reference_trials >= 200


def test_a_labelled_sample_becomes_an_observation_flagged_by_its_sampler() -> None:
    def sample(sampler: str, confidence: float = 0.4, margin: float = 0.1) -> Sample:
        privacy = AppliedPrivacy(PrivacyPolicy(), None)
        return Sample("r-1", "digits", 3, sampler, 7, "7", confidence, margin, False, None, {"a": 1.0}, privacy)

    assert observation_of(sample("random"), 7, 12.5) == Observation(False, True, 12.5, 0.4)
    assert observation_of(sample("low_confidence"), 2) == Observation(True, False, 0.0, 0.4)
    # chosen by a margin the confidence does not fix (three or more classes): the calibrated detector skips it
    assert observation_of(sample("small_margin"), 2).confidence is None
    # two classes: the margin is 2c - 1, so choosing by it is choosing by the confidence
    assert observation_of(sample("small_margin", 0.52, 0.04), 2).confidence == 0.52


def test_warmup_reference_has_no_rate_until_it_is_done() -> None:
    policy = ErrorDetector(warmup=10)
    state = initial_state(policy)
    assert reference_rate(state, policy) is None
    state, _ = observe(state, [False] * 10, policy)
    rate = reference_rate(state, policy)
    assert rate is not None
    assert 0.0 < rate < 1.0
    with pytest.raises(ValidationError, match="reference"):
        initial_state(ErrorDetector())


def test_a_state_for_another_policy_is_refused() -> None:
    state = initial_state(ErrorDetector(increases=(0.1,)), 1, 10)
    with pytest.raises(ValidationError, match="cusums"):
        observe(state, [True], ErrorDetector())


def test_reference_from_accuracy_counts_the_holdout() -> None:
    assert reference_from_accuracy(0.9, 180) == (18, 180)
    with pytest.raises(ValidationError):
        reference_from_accuracy(1.5, 180)


def test_the_reference_comes_from_the_selected_variants_holdout(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    selected = ModelManifest.from_dict(data).selected_artifact.precision
    data["metrics"][selected]["holdout_rows"] = 160
    accuracy = data["metrics"][selected]["accuracy"]
    assert reference_from_manifest(ModelManifest.from_dict(data)) == (round((1 - accuracy) * 160), 160)
    del data["metrics"][selected]["holdout_rows"]
    with pytest.raises(ValidationError, match="holdout_rows"):
        reference_from_manifest(ModelManifest.from_dict(data))


# --- the wire forms ---


def _running_state() -> DetectorState:
    policy = ErrorDetector()
    rng = random.Random(1)
    state, _ = observe(initial_state(policy, 18, 180), _stream(rng, 0.2, 500), policy)
    return state


def test_policy_and_state_round_trip_through_json() -> None:
    policy = ErrorDetector(false_alarm=0.05, horizon=500, increases=(0.1, 0.3), warmup=20, use="all")
    assert ErrorDetector.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    state = _running_state()
    assert DetectorState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


BAD_POLICIES: list[Any] = [
    ({"false_alarm": 0.0}, "detector.false_alarm"),
    ({"false_alarm": True}, "detector.false_alarm"),
    ({"horizon": 0}, "detector.horizon"),
    ({"increases": []}, "detector.increases"),
    ({"increases": [0.1, "0.2"]}, "detector.increases"),
    ({"increases": [1.5]}, "detector.increases"),
    ({"use": "hard"}, "detector.use"),
    ({"warmup": -1}, "detector.warmup"),
    ({"max_reference": 1.5}, "detector.max_reference"),
    ({"colour": "red"}, "detector"),
]


@pytest.mark.parametrize(("change", "field"), BAD_POLICIES)
def test_a_bad_policy_names_its_field(change: dict[str, Any], field: str) -> None:
    data = {**ErrorDetector().to_dict(), **change}
    with pytest.raises(ValidationError) as info:
        ErrorDetector.from_dict(data)
    assert info.value.field == field


def _mutated(rng: random.Random, value: Any) -> Any:
    """One random edit of a JSON value: a type swapped, a key dropped or added, a number pushed out of range."""
    junk = rng.choice([None, True, -1, 1.5, math.nan, "x", [], {}, [1, 2, 3], 10**9])
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        edit = rng.random()
        if edit < 0.2:
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
def test_mangled_input_parses_or_raises_validation_error_only(rng: random.Random) -> None:
    for parse, good in (
        (DetectorState.from_dict, _running_state().to_dict()),
        (ErrorDetector.from_dict, ErrorDetector().to_dict()),
    ):
        data = _mutated(rng, good)
        try:
            parsed = parse(data)
        except ValidationError:
            continue
        assert type(parsed).from_dict(parsed.to_dict()) == parsed  # whatever parses, round-trips


@settings(max_examples=300, deadline=None)
@given(data=JSON_VALUES)
def test_any_json_value_parses_or_raises_validation_error_only(data: Any) -> None:
    for parse in (DetectorState.from_dict, ErrorDetector.from_dict):
        with contextlib.suppress(ValidationError):  # refused with the project's error, or parsed
            parse(data)
