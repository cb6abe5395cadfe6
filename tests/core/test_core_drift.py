"""Drift scores: PSI with its empty-bin floor, the baseline's bin rule, and the window summary."""

from __future__ import annotations

import math

import pytest
from support import uniform_baseline

from edgeloop.core.drift import (
    MAX_DRIFTED_FEATURES,
    PSI_EPSILON,
    WindowStats,
    bin_index,
    fractions,
    psi,
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
