"""The cloud's labelled-error watch: one per model's live version, restarted with it, its alarm keyed and stored
strictly (hypothesis mangles the stored form)."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.core.calibrated import CalibratedDetector
from edgeloop.core.detectors import ErrorDetector, Observation
from edgeloop.core.error_watch import CALIBRATED_DETECTOR, CLOUD_DETECTOR, ErrorWatch, fold_labels, live_alarm
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import Reliability

POLICY = ErrorDetector(warmup=100)


def stream(rng: random.Random, rate: float, n: int, *, hard_share: float = 0.0) -> list[Observation]:
    """n labelled samples at an error rate; a share of them hard-example picks (biased: wrong far more often)."""
    out = []
    for _ in range(n):
        if rng.random() < hard_share:
            out.append(Observation(rng.random() < 0.9, unbiased=False))
        else:
            out.append(Observation(rng.random() < rate))
    return out


def folded(batches: list[list[Observation]], version: int = 3, watch: ErrorWatch | None = None) -> ErrorWatch:
    for batch in batches:
        watch, _ = fold_labels(watch, "digits", version, batch, POLICY)
    assert watch is not None
    return watch


def test_the_cloud_policy_warms_up_so_a_version_without_a_holdout_is_watched() -> None:
    assert CLOUD_DETECTOR.warmup > 0
    watch, alarm = fold_labels(None, "digits", 3, [Observation(False)] * 5, CLOUD_DETECTOR)
    assert (watch.version, watch.revision, alarm) == (3, 1, None)
    assert watch.state.warmup_left == CLOUD_DETECTOR.warmup - 5


def test_a_holdout_reference_is_taken_when_the_watch_starts() -> None:
    watch, _ = fold_labels(None, "digits", 3, [], ErrorDetector(), reference=(20, 200))
    assert (watch.state.reference_errors, watch.state.reference_trials) == (20, 200)
    with pytest.raises(ValidationError, match="reference"):
        fold_labels(None, "digits", 3, [], ErrorDetector())  # neither a holdout nor a warm-up


@pytest.mark.parametrize("seed", range(8))
def test_an_abrupt_rise_among_arrival_batches_alarms_and_a_stationary_stream_does_not(seed: int) -> None:
    rng = random.Random(seed)
    steady = [stream(rng, 0.1, 60, hard_share=0.5) for _ in range(40)]  # 2400 labels, ~1200 unbiased
    calm = folded(steady)
    assert calm.alarm is None
    assert calm.raised() is None
    assert calm.state.skipped > 0, "hard-example samples are not watched under use='unbiased'"
    risen = folded([stream(rng, 0.45, 60, hard_share=0.5) for _ in range(10)], watch=calm)
    raised = risen.raised()
    assert raised is not None
    assert raised.key.startswith("v3#")
    assert "version 3" in raised.reason
    assert risen.alarm is not None
    assert risen.alarm.run_error_rate > 0.3


def test_a_new_live_version_starts_a_fresh_watch_and_an_old_alarm_is_moot() -> None:
    rng = random.Random(5)
    alarmed = folded([stream(rng, 0.1, 300), stream(rng, 0.6, 300)])
    assert live_alarm(alarmed, 3) is not None
    assert live_alarm(alarmed, 4) is None
    assert live_alarm(alarmed, None) is None
    assert live_alarm(None, 3) is None
    fresh, _ = fold_labels(alarmed, "digits", 4, [Observation(False)], POLICY)
    assert (fresh.version, fresh.alarm, fresh.revision) == (4, None, alarmed.revision + 1)
    assert fresh.state.warmup_left == POLICY.warmup - 1


def test_a_later_alarm_gets_a_new_key() -> None:
    rng = random.Random(2)
    first = folded([stream(rng, 0.1, 300), stream(rng, 0.6, 200)])
    again = folded([stream(rng, 0.7, 400)], watch=first)
    assert first.raised() is not None
    assert again.raised() is not None
    assert first.raised() != again.raised()


def test_a_watch_with_its_alarm_round_trips_through_json() -> None:
    watch = folded([stream(random.Random(1), 0.1, 300), stream(random.Random(2), 0.6, 300)])
    assert watch.alarm is not None
    assert ErrorWatch.from_dict(json.loads(json.dumps(watch.to_dict()))) == watch


TABLE = Reliability((0.9,), (200, 200), (40, 2))
"""A version wrong 20% of the time below 0.9 confidence and 1% above."""


def confident(rng: random.Random, n: int, above_rate: float) -> list[Observation]:
    """n labelled samples, half at 0.95 confidence wrong at above_rate, half at 0.7 wrong 20% of the time; a
    third of the low ones hard-example picks."""
    out = []
    for t in range(n):
        if t % 2:
            out.append(Observation(rng.random() < above_rate, True, float(t), 0.95))
        else:
            out.append(Observation(rng.random() < 0.2, t % 3 != 0, float(t), 0.7))
    return out


def test_with_a_reliability_table_the_calibrated_detector_runs_beside_and_alarms_first() -> None:
    rng = random.Random(7)
    watch, alarm = fold_labels(None, "digits", 3, confident(rng, 400, 0.01), POLICY, reliability=TABLE)
    assert alarm is None
    assert watch.calibrated is not None
    assert watch.calibrated.monitored > 0
    assert CALIBRATED_DETECTOR.false_alarm + CLOUD_DETECTOR.false_alarm <= 0.02  # the stated combined bound
    risen, alarm = fold_labels(watch, "digits", 3, confident(rng, 100, 0.4), POLICY)
    assert alarm is not None
    assert alarm.alternative in CALIBRATED_DETECTOR.odds  # the calibrated detector's (an odds multiplier)
    assert alarm.reference_rate < sum(TABLE.errors) / sum(TABLE.rows)  # mostly the confident band's rate
    raised = risen.raised()
    assert raised is not None
    assert raised.key == "v3#1"
    assert ErrorWatch.from_dict(json.loads(json.dumps(risen.to_dict()))) == risen
    later, _ = fold_labels(risen, "digits", 3, confident(rng, 200, 0.6), POLICY)
    assert later.raised() is not None
    assert later.raised() != raised  # a later alarm of either detector gets a new key


def test_a_table_starts_the_calibrated_detector_once_and_a_new_version_drops_it() -> None:
    rng = random.Random(8)
    plain, _ = fold_labels(None, "digits", 3, confident(rng, 10, 0.01), POLICY)
    assert plain.calibrated is None
    assert "calibrated" not in plain.to_dict()  # a watch stored before the calibrated detector reads the same
    late, _ = fold_labels(plain, "digits", 3, confident(rng, 10, 0.01), POLICY, reliability=TABLE)
    assert late.calibrated is not None  # a table read late starts it on the same version
    assert late.calibrated.monitored > 0
    assert late.state.reference_trials > plain.state.reference_trials  # the random-share one kept going
    kept, _ = fold_labels(late, "digits", 3, [], POLICY, reliability=Reliability((), (5,), (5,)))
    assert kept.calibrated == late.calibrated  # a running one is not restarted
    fresh, _ = fold_labels(kept, "digits", 4, [], POLICY)
    assert fresh.calibrated is None
    other, _ = fold_labels(kept, "digits", 4, [], POLICY, reliability=TABLE,
                           calibrated_policy=CalibratedDetector(odds=(3.0,)))  # fmt: skip
    assert other.calibrated is not None
    assert len(other.calibrated.cusums) == len(TABLE.rows)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": 0}, "error_watch.version"),
        ({"revision": 0}, "error_watch.revision"),
        ({"extra": 1}, "error_watch"),
        ({"alarm": {"at_sample": 1}}, "error_watch.alarm"),
        ({"state": {"reference_errors": 1}}, "detector_state"),
        ({"model_name": "no spaces allowed"}, "model_name"),
        ({"calibrated": {"cusums": []}}, "calibrated_state"),
        ({"calibrated": None}, "calibrated_state"),
    ],
)
def test_a_damaged_watch_names_its_field(change: dict[str, Any], field: str) -> None:
    data = {**folded([[Observation(False)] * 3]).to_dict(), **change}
    with pytest.raises(ValidationError) as info:
        ErrorWatch.from_dict(data)
    assert info.value.field.startswith(field)


def _mutated(rng: random.Random, value: Any) -> Any:
    """The value with one part replaced by junk, one level down at a time."""
    junk = rng.choice([None, True, -1, 1.5, float("nan"), "x", [], {}, {"k": 1}, 10**20])
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        return {**value, key: _mutated(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], _mutated(rng, value[i]), *value[i + 1 :]]
    return junk


@settings(max_examples=200, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_a_mangled_watch_parses_or_raises_validation_error_only(rng: random.Random) -> None:
    good = folded([stream(random.Random(1), 0.1, 300), stream(random.Random(2), 0.6, 300)]).to_dict()
    if rng.random() < 0.5:
        good, _ = fold_labels(None, "digits", 3, confident(rng, 50, 0.3), POLICY, reliability=TABLE)
        good = good.to_dict()
    try:
        parsed = ErrorWatch.from_dict(_mutated(rng, good))
    except ValidationError:
        return
    assert ErrorWatch.from_dict(parsed.to_dict()) == parsed


@settings(max_examples=200, deadline=None)
@given(data=st.recursive(st.none() | st.integers() | st.text(max_size=8), lambda x: st.dictionaries(st.text(), x)))
def test_any_json_value_parses_or_raises_validation_error_only(data: Any) -> None:
    with contextlib.suppress(ValidationError):
        ErrorWatch.from_dict(data)
