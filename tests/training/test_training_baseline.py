import numpy as np
import pytest

from edgeloop.training.baseline import BINS, MIN_BAND_ROWS, RELIABILITY_EDGES, baseline, feature_baseline, reliability


def test_quantile_bins_hold_about_a_tenth_of_the_rows_each() -> None:
    column = np.random.default_rng(0).normal(5.0, 2.0, 10_000)
    stats = feature_baseline("x", column)
    assert len(stats.edges) == BINS - 1
    assert all(f == pytest.approx(0.1, abs=0.002) for f in stats.fractions)
    assert stats.mean == pytest.approx(5.0, abs=0.05)
    assert stats.std == pytest.approx(2.0, abs=0.05)
    assert sum(stats.fractions) == pytest.approx(1.0, abs=1e-9)


def test_a_constant_feature_gets_one_edge_and_all_rows_in_one_bin() -> None:
    stats = feature_baseline("x", np.full(50, 3.0))
    assert stats.edges == (3.0,)
    assert stats.fractions == (0.0, 1.0)
    assert stats.std == 0.0


def test_a_sparse_feature_collapses_tied_edges() -> None:
    column = np.array([0.0] * 90 + list(range(1, 11)), dtype=np.float64)
    stats = feature_baseline("pixel", column)
    assert list(stats.edges) == sorted(set(stats.edges))
    assert sum(stats.fractions) == pytest.approx(1.0)


def test_baseline_describes_every_feature_and_the_confidence() -> None:
    features = np.random.default_rng(1).uniform(0, 1, (200, 3))
    confidences = np.linspace(0.4, 1.0, 200)
    result = baseline(features, ("a", "b", "c"), confidences)
    assert [f.name for f in result.features] == ["a", "b", "c"]
    assert result.rows == 200
    assert result.confidence_mean == pytest.approx(0.7, abs=1e-6)
    assert len(result.confidence_fractions) == len(result.confidence_edges) + 1


def test_a_holdout_baseline_records_its_rows_and_predicted_class_mix() -> None:
    features = np.random.default_rng(2).uniform(0, 1, (200, 2))
    confidences = np.full(40, 0.8)
    predicted = np.array([0] * 10 + [2] * 30)
    result = baseline(features, ("a", "b"), confidences, predicted, classes=4)
    assert result.rows == 200  # the features still describe the training rows
    assert result.holdout_rows == 40
    assert result.class_fractions == (0.25, 0.0, 0.75, 0.0)
    assert result.confidence_mean == pytest.approx(0.8)


def test_without_predictions_the_baseline_is_the_older_form() -> None:
    result = baseline(np.zeros((20, 1)), ("a",), np.full(20, 0.9))
    assert (result.holdout_rows, result.class_fractions) == (None, None)


def test_predictions_must_match_the_confidences() -> None:
    with pytest.raises(ValueError, match="predicted"):
        baseline(np.zeros((20, 1)), ("a",), np.full(20, 0.9), np.zeros(19, dtype=np.int64), classes=2)


def test_quantile_edges_a_millionth_apart_stay_strictly_ascending_once_rounded() -> None:
    column = np.repeat(np.array([0.1, 0.1 + 4e-7, 0.1 + 8e-7, 0.5, 0.9]), 40)  # quantiles closer than DECIMALS keeps
    edges = feature_baseline("x", column).edges
    assert list(edges) == sorted(set(edges)), edges
    assert len(edges) >= 2


def test_with_true_labels_the_baseline_records_the_holdout_reliability() -> None:
    rng = np.random.default_rng(3)
    confidences = rng.uniform(0.5, 1.0, 400)
    predicted = rng.integers(0, 2, 400)
    wrong = rng.random(400) < 0.8 * (1.0 - confidences)  # less often wrong where the model is sure
    truth = np.where(wrong, 1 - predicted, predicted)
    result = baseline(np.zeros((10, 1)), ("a",), confidences, predicted, classes=2, truth=truth)
    table = result.reliability
    assert table is not None
    assert sum(table.rows) == 400 == result.holdout_rows
    assert sum(table.errors) == int(wrong.sum())
    assert min(table.rows) >= MIN_BAND_ROWS
    assert set(table.edges) <= set(RELIABILITY_EDGES)
    rates = [e / r for e, r in zip(table.errors, table.rows, strict=True)]
    assert rates[0] > rates[-1]
    without = baseline(np.zeros((10, 1)), ("a",), confidences, predicted, classes=2)
    assert without.reliability is None


def test_thin_bands_merge_with_a_neighbour_and_a_tiny_holdout_is_one_band() -> None:
    confidences = np.array([0.3] * 5 + [0.72] * 50 + [0.97] * 45 + [0.999] * 3)
    wrong = np.array([True] * 5 + [False] * 50 + [False] * 44 + [True] + [False] * 3)
    table = reliability(confidences, wrong, min_rows=40)
    assert table.rows == (55, 48)  # 0.3's five rows join 0.72's band; 0.999's three join 0.97's
    assert table.errors == (5, 1)
    assert table.edges == (0.8,)
    tiny = reliability(np.array([0.6, 0.9]), np.array([True, False]), min_rows=40)
    assert (tiny.edges, tiny.rows, tiny.errors) == ((), (2,), (1,))


def test_truth_needs_predictions_of_the_same_shape() -> None:
    with pytest.raises(ValueError, match="truth"):
        baseline(np.zeros((20, 1)), ("a",), np.full(20, 0.9), truth=np.zeros(20, dtype=np.int64))
