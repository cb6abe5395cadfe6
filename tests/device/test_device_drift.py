"""The drift monitor: its ring keeps the last rows, its numpy binning is the core's, and a drifted stream shows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support import uniform_baseline

from edgeloop.core.drift import fractions
from edgeloop.device.drift import DriftMonitor


class FakeModel:
    """What the monitor reads of a model: the manifest's baseline and the input width."""

    def __init__(self, width: int) -> None:
        names = tuple(f"f{i}" for i in range(width))

        class Manifest:
            baseline = uniform_baseline(names, 0.0, 16.0)

        self.manifest = Manifest()
        self.width = width


def monitor(window: int, width: int = 3) -> DriftMonitor:
    return DriftMonitor(FakeModel(width), window)  # type: ignore[arg-type]


def test_rows_and_batches_fill_a_ring_that_keeps_the_last_window() -> None:
    ring = monitor(window=5)
    rows = np.arange(24, dtype=np.float32).reshape(8, 3)
    ring.add_row(rows[0:1], 0.1)
    ring.add_batch(rows[1:4], np.array([0.2, 0.3, 0.4], dtype=np.float32))
    ring.add_row(rows[4:5], 0.5)
    ring.add_batch(rows[5:8], np.array([0.6, 0.7, 0.8], dtype=np.float32))  # wraps
    kept, confidences = ring.snapshot()
    assert ring.seen == 8
    assert kept.tolist() == rows[3:].tolist()  # the last five, oldest first, from either path
    assert [round(c, 2) for c in confidences.tolist()] == [0.4, 0.5, 0.6, 0.7, 0.8]


def test_a_row_from_one_path_replaces_an_older_one_from_the_other() -> None:
    ring = monitor(window=3)
    rows = np.arange(21, dtype=np.float32).reshape(7, 3)
    ring.add_batch(rows[:3], np.zeros(3, dtype=np.float32))
    ring.add_row(rows[3:4], 1.0)
    ring.add_row(rows[4:5], 1.0)
    ring.add_batch(rows[5:6], np.zeros(1, dtype=np.float32))
    kept, confidences = ring.snapshot()
    assert kept.tolist() == rows[3:6].tolist()
    assert confidences.tolist() == [1.0, 1.0, 0.0]
    ring.add_row(rows[6:7], 0.5)
    assert ring.snapshot()[0].tolist() == rows[4:7].tolist()


def test_a_batch_larger_than_the_window_keeps_its_tail() -> None:
    ring = monitor(window=4)
    rows = np.arange(30, dtype=np.float32).reshape(10, 3)
    ring.add_batch(rows, np.linspace(0, 1, 10, dtype=np.float32))
    kept, _ = ring.snapshot()
    assert kept.tolist() == rows[-4:].tolist()
    assert ring.seen == 10


def test_the_snapshot_is_a_copy() -> None:
    ring = monitor(window=2)
    ring.add_row(np.ones((1, 3), dtype=np.float32), 0.5)
    kept, _ = ring.snapshot()
    ring.add_row(np.zeros((1, 3), dtype=np.float32), 0.5)
    assert kept.tolist() == [[1.0, 1.0, 1.0]]


def test_numpy_binning_matches_the_core() -> None:
    rng = np.random.default_rng(3)
    ring = monitor(window=300)
    rows = rng.choice([0.0, 3.99, 4.0, 8.0, 11.5, 12.0, 16.0], size=(300, 3)).astype(np.float32)
    confidences = rng.uniform(0.3, 1.0, 300).astype(np.float32)
    ring.add_batch(rows, confidences)
    stats = ring.stats(*ring.snapshot())
    edges = (4.0, 8.0, 12.0)
    assert stats.feature_fractions == tuple(fractions(edges, rows[:, j].tolist()) for j in range(3))
    assert stats.confidence_fractions == fractions((0.5, 0.9), confidences.astype(np.float64).tolist())
    assert stats.confidence_mean == pytest.approx(float(confidences.mean()))


def test_a_uniform_stream_stays_below_the_threshold_and_a_shifted_one_crosses_it() -> None:
    rng = np.random.default_rng(5)
    ring = monitor(window=1000)
    ring.add_batch(rng.uniform(0, 16, (1000, 3)).astype(np.float32), np.full(1000, 0.9, dtype=np.float32))
    stable = ring.summary(*ring.snapshot(), threshold=0.2, min_rows=500)
    assert stable is not None
    assert stable.score < 0.05
    shifted = rng.uniform(0, 16, (1000, 3)).astype(np.float32)
    shifted[:, 1] = rng.uniform(12, 16, 1000)
    ring.add_batch(shifted, np.full(1000, 0.6, dtype=np.float32))
    drifted = ring.summary(*ring.snapshot(), threshold=0.2, min_rows=500)
    assert drifted is not None
    assert drifted.score > 1.0
    assert drifted.drifted_features == ("f1",)
    assert drifted.confidence_shift == pytest.approx(-0.3)


def test_no_score_below_the_minimum_rows() -> None:
    ring = monitor(window=1000)
    ring.add_batch(np.zeros((499, 3), dtype=np.float32), np.zeros(499, dtype=np.float32))
    assert ring.summary(*ring.snapshot(), threshold=0.2, min_rows=500) is None


class ClassedModel:
    """A model whose baseline holds a 180-row holdout's confidence and an even three-class mix."""

    def __init__(self) -> None:
        names = ("f0", "f1", "f2")

        class Manifest:
            baseline = dataclasses.replace(
                uniform_baseline(names, 0.0, 16.0), holdout_rows=180, class_fractions=(1 / 3, 1 / 3, 1 / 3)
            )

        self.manifest = Manifest()
        self.width = 3


def test_predicted_classes_ride_along_from_both_paths_and_score_the_class_mix() -> None:
    ring = DriftMonitor(ClassedModel(), window=300)  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    rows = rng.uniform(0, 16, (300, 3)).astype(np.float32)
    confidences = np.full(300, 0.95, dtype=np.float32)  # the baseline's top bin holds 0.6: confidence moves too
    ring.add_row(rows[0:1], 0.95, 1)
    ring.add_batch(rows[1:], confidences[1:], np.tile(np.array([0, 1, 2]), 100)[1:])
    kept, kept_confidences = ring.snapshot()
    classes = ring.classes_of(kept)
    assert classes is not None
    assert classes.tolist()[:4] == [1, 1, 2, 0]
    even = ring.summary(kept, kept_confidences, threshold=0.2, min_rows=200)
    assert even is not None
    assert even.class_score == 0.0
    ring.add_batch(rows, confidences, np.zeros(300, dtype=np.int64))  # every answer is class 0 now
    lopsided = ring.summary(*ring.snapshot(), threshold=0.2, min_rows=200)
    assert lopsided is not None
    assert lopsided.class_score is not None
    assert lopsided.class_score > 1.0
    assert lopsided.input_psi < 0.2
    assert (lopsided.source, lopsided.drifted) == ("classes", True)


def test_rows_from_another_snapshot_or_without_classes_skip_the_class_mix() -> None:
    ring = DriftMonitor(ClassedModel(), window=10)  # type: ignore[arg-type]
    rows = np.ones((10, 3), dtype=np.float32)
    ring.add_batch(rows, np.full(10, 0.9, dtype=np.float32), np.zeros(10, dtype=np.int64))
    kept, confidences = ring.snapshot()
    assert ring.classes_of(kept.copy()) is None  # not the rows the latest snapshot handed out
    ring.add_batch(rows[:2], np.full(2, 0.9, dtype=np.float32))  # a caller that kept no classes
    kept, confidences = ring.snapshot()
    assert ring.classes_of(kept) is None
    summary = ring.summary(kept, confidences, threshold=0.2, min_rows=1)
    assert summary is not None
    assert summary.class_score is None
    assert summary.confidence_score is not None
