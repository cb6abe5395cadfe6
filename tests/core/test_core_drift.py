"""Drift scores: PSI with its empty-bin floor, the baseline's bin rule, and the window summary."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import uniform_baseline

from edgeloop.core.drift import (
    CLASSES,
    CONFIDENCE,
    INPUT,
    MAX_DRIFTED_FEATURES,
    PSI_EPSILON,
    WindowStats,
    behaviour_score,
    bin_index,
    chi_square_quantile,
    fractions,
    noise_allowance,
    psi,
    smoothed,
    summarize,
)
from edgeloop.core.errors import ValidationError

QUARTERS = (0.25, 0.25, 0.25, 0.25)


@pytest.mark.parametrize(
    ("expected", "observed", "score"),
    [
        pytest.param(QUARTERS, QUARTERS, 0.0, id="identical"),
        pytest.param((0.5, 0.5), (0.6, 0.4), 0.1 * math.log(0.6 / 0.5) - 0.1 * math.log(0.4 / 0.5), id="small-shift"),
        pytest.param((0.5, 0.5), (0.9, 0.1), 0.4 * math.log(1.8) - 0.4 * math.log(0.2), id="large-shift"),
        pytest.param(
            (0.5, 0.5),
            (1.0, 0.0),
            0.5 * math.log(1 / 0.5) + (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5),
            id="empty-bin-is-floored",
        ),
        pytest.param((0.0, 1.0), (0.0, 1.0), 0.0, id="both-empty-contribute-nothing"),
    ],
)
def test_psi(expected: tuple[float, ...], observed: tuple[float, ...], score: float) -> None:
    assert psi(expected, observed) == pytest.approx(score)


def test_psi_is_symmetric_and_grows_with_the_shift() -> None:
    base = (0.5, 0.5)
    assert psi(base, (0.7, 0.3)) == pytest.approx(psi((0.7, 0.3), base))
    assert psi(base, (0.6, 0.4)) < psi(base, (0.7, 0.3)) < psi(base, (0.9, 0.1))


def test_psi_refuses_different_bins() -> None:
    with pytest.raises(ValidationError, match="psi"):
        psi((0.5, 0.5), (1.0,))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1e9, 0), (3.99, 0), (4.0, 1), (7.5, 1), (8.0, 2), (12.0, 3), (1e9, 3)],
    ids=lambda v: str(v),
)
def test_bin_index_follows_searchsorted_right(value: float, expected: int) -> None:
    assert bin_index((4.0, 8.0, 12.0), value) == expected


def test_fractions_share_values_by_bin() -> None:
    assert fractions((4.0, 8.0, 12.0), [0.0, 1.0, 4.0, 15.0]) == (0.5, 0.25, 0.0, 0.25)
    assert fractions((4.0,), []) == (0.0, 0.0)


BASELINE = uniform_baseline(tuple("abcdefg"), 0.0, 16.0)
"""Seven features in four equal bins; confidence 0.9 in three bins (0.1, 0.3, 0.6)."""


def window(per_feature: list[tuple[float, ...]], rows: int = 1000, confidence: float = 0.9) -> WindowStats:
    return WindowStats(rows, tuple(per_feature), confidence, (0.1, 0.3, 0.6))


def test_a_window_like_the_baseline_scores_zero() -> None:
    summary = summarize(BASELINE, window([QUARTERS] * 7), threshold=0.2, min_rows=500)
    assert summary is not None
    assert (summary.score, summary.drifted_features, summary.drifted) == (0.0, (), False)
    assert (summary.confidence_shift, summary.confidence_psi, summary.rows) == (0.0, 0.0, 1000)


def test_the_worst_feature_is_the_score_and_drifted_features_are_ranked() -> None:
    shifted = [QUARTERS] * 7
    shifted[2] = (0.1, 0.2, 0.3, 0.4)  # moderate, ~0.23
    shifted[5] = (0.0, 0.0, 0.0, 1.0)  # all mass in the last bin
    summary = summarize(BASELINE, window(shifted, confidence=0.7), threshold=0.2, min_rows=500)
    assert summary is not None
    assert summary.score == round(psi(QUARTERS, shifted[5]), 4)
    assert summary.drifted_features == ("f", "c")
    assert summary.drifted
    assert summary.confidence_shift == pytest.approx(-0.2)


def test_drifted_features_are_bounded() -> None:
    many = uniform_baseline(tuple(f"x{i}" for i in range(20)), 0.0, 16.0)
    stats = WindowStats(1000, ((0.0, 0.0, 0.0, 1.0),) * 20, 0.9, (0.1, 0.3, 0.6))
    summary = summarize(many, stats, threshold=0.2, min_rows=10)
    assert summary is not None
    assert len(summary.drifted_features) == MAX_DRIFTED_FEATURES


def test_a_threshold_at_the_score_counts_as_drifted() -> None:
    shifted = [QUARTERS] * 6 + [(0.1, 0.2, 0.3, 0.4)]
    score = round(psi(QUARTERS, shifted[6]), 4)
    summary = summarize(BASELINE, window(shifted), threshold=score, min_rows=1)
    assert summary is not None
    assert summary.drifted
    assert summary.drifted_features == ("g",)


def test_a_small_window_gets_no_score() -> None:
    assert summarize(BASELINE, window([QUARTERS] * 7, rows=499), threshold=0.2, min_rows=500) is None


def test_a_window_with_other_features_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"drift\.window"):
        summarize(BASELINE, window([QUARTERS] * 3), threshold=0.2, min_rows=1)


# --- the label-free behaviour signals: confidence and predicted-class mix against the holdout ---

HELD = 180
"""Holdout rows of a 900-row first model (holdout_fraction 0.2), as in the built-in scenarios."""
TEN = (0.1,) * 10
BEHAVING = dataclasses.replace(BASELINE, holdout_rows=HELD, class_fractions=TEN)


def classed(mix: tuple[float, ...], confidence: tuple[float, ...] = (0.1, 0.3, 0.6), rows: int = 400) -> WindowStats:
    return WindowStats(rows, (QUARTERS,) * 7, 0.9, confidence, mix)


@pytest.mark.parametrize(
    ("degrees", "quantile", "expected"),
    [(1, 0.95, 3.841), (1, 0.999, 10.828), (7, 0.999, 24.322), (9, 0.999, 27.877), (9, 0.5, 8.343)],
)
def test_the_chi_square_quantile_is_close_to_the_table(degrees: int, quantile: float, expected: float) -> None:
    assert chi_square_quantile(degrees, quantile) == pytest.approx(expected, rel=0.035 if degrees == 1 else 0.01)


def test_the_noise_allowance_shrinks_with_both_sides_rows() -> None:
    assert noise_allowance(10, 400, 180) > noise_allowance(10, 400, 720) > noise_allowance(10, 4000, 7200)
    assert noise_allowance(1, 400, 180) == 0.0
    with pytest.raises(ValidationError):
        chi_square_quantile(0, 0.5)


def test_smoothing_keeps_every_bin_open_and_the_total_one() -> None:
    shares = smoothed((1.0, 0.0), 10)
    assert shares == (10.5 / 11, 0.5 / 11)
    assert sum(shares) == pytest.approx(1.0)


def test_an_older_baseline_skips_the_behaviour_signals() -> None:
    summary = summarize(BASELINE, classed(TEN), threshold=0.2, min_rows=1)
    assert summary is not None
    assert (summary.confidence_score, summary.class_psi, summary.class_score) == (None, None, None)
    assert (summary.score, summary.input_psi, summary.source) == (0.0, 0.0, INPUT)


def test_a_window_that_kept_no_predictions_skips_the_class_mix() -> None:
    summary = summarize(BEHAVING, classed(()), threshold=0.2, min_rows=1)
    assert summary is not None
    assert summary.confidence_score == 0.0
    assert (summary.class_psi, summary.class_score) == (None, None)


def test_a_class_that_vanishes_is_drift_with_the_inputs_unchanged() -> None:
    mix = (0.0,) + (1 / 9,) * 9
    summary = summarize(BEHAVING, classed(mix), threshold=0.2, min_rows=1)
    assert summary is not None
    assert summary.input_psi == 0.0
    assert summary.class_score is not None
    assert summary.class_psi is not None
    assert summary.class_score >= 0.2
    assert summary.class_psi > summary.class_score  # the allowance comes off
    assert (summary.score, summary.source, summary.drifted) == (summary.class_score, CLASSES, True)


def test_a_model_grown_unsure_is_drift_through_its_confidence() -> None:
    summary = summarize(BEHAVING, classed(TEN, confidence=(0.6, 0.3, 0.1)), threshold=0.2, min_rows=1)
    assert summary is not None
    assert summary.confidence_score is not None
    assert summary.confidence_score >= 0.2
    assert (summary.source, summary.drifted) == (CONFIDENCE, True)


def test_a_window_with_another_class_count_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"drift\.window"):
        summarize(BEHAVING, classed((0.5, 0.5)), threshold=0.2, min_rows=1)


def _draw(rng: random.Random, shares: tuple[float, ...], rows: int) -> tuple[float, ...]:
    """The fractions of `rows` draws from `shares`."""
    counts = [0] * len(shares)
    for i in rng.choices(range(len(shares)), weights=shares, k=rows):
        counts[i] += 1
    return tuple(c / rows for c in counts)


@pytest.mark.parametrize(
    "shares",
    [
        pytest.param(TEN, id="ten-even"),
        pytest.param((0.3, 0.2, 0.1, 0.1, 0.08, 0.07, 0.06, 0.04, 0.03, 0.02), id="ten-skewed"),
        pytest.param((0.5, 0.2, 0.1, 0.1, 0.05, 0.02, 0.01, 0.01, 0.005, 0.005), id="ten-rare"),
        pytest.param((0.9, 0.1), id="two-skewed"),
        pytest.param((0.002, 0.003, 0.01, 0.01, 0.02, 0.025, 0.13, 0.8), id="confidence-bins"),
    ],
)
@pytest.mark.parametrize("rows", [200, 400])
def test_a_stationary_stream_stays_under_the_threshold(shares: tuple[float, ...], rows: int) -> None:
    """driftMinRows 200 and driftWindow 400 against a 180-row holdout: raw PSI is loud, the score is not."""
    rng = random.Random(f"{shares}-{rows}")
    scores, raw = [], []
    for _ in range(400):
        expected, observed = _draw(rng, shares, HELD), _draw(rng, shares, rows)
        scores.append(behaviour_score(expected, HELD, observed, rows))
        raw.append(psi(expected, observed))
    assert max(scores) < 0.1  # the threshold is 0.2
    assert sum(s > 0 for s in scores) <= 4  # NOISE_QUANTILE 0.999: about 0.4 of 400 expected
    if len(shares) == 10:  # what the allowance is for (docs/device.md states these)
        assert 0.05 < sum(raw) / len(raw) < 0.15
        assert max(raw) > 0.2


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.floats(1e-3, 1.0), min_size=2, max_size=12),
    held=st.integers(1, 5000),
    rows=st.integers(1, 5000),
)
def test_a_behaviour_score_is_never_negative_and_zero_for_equal_shares(
    weights: list[float], held: int, rows: int
) -> None:
    """Property over random shares and sizes."""
    shares = tuple(w / sum(weights) for w in weights)
    assert behaviour_score(shares, held, shares, rows) == 0.0
    assert behaviour_score(shares, held, tuple(reversed(shares)), rows) >= 0.0
