"""Retraining recipes: old rows join only where cross-validation on recent labels says they help."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeloop.local.retrain import (
    Labelled,
    aligned,
    choose_recipe,
    cross_fitted_errors,
    gate_evidence,
    gate_pairs,
    with_every_class,
)
from edgeloop.training.config import TrainingConfig
from edgeloop.training.model import TREES


def _config(tmp_path: Path) -> TrainingConfig:
    return TrainingConfig(model_dir=tmp_path / "m", model_name="digits", n_estimators=20)


def _world(rng: np.random.Generator, n: int, flip: bool, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0.0, 1.0, (n, 2))
    y = (x[:, 0] > 0).astype(np.int64)
    return x + shift, (1 - y) if flip else y


def _recent(x: np.ndarray, y: np.ndarray, answer: np.ndarray) -> list[Labelled]:
    return [
        Labelled(row, int(t), 1, int(a), i, i % 2 == 0) for i, (row, t, a) in enumerate(zip(x, y, answer, strict=True))
    ]


def test_old_rows_that_contradict_the_new_concept_are_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    old_x, old_y = _world(rng, 600, flip=False)
    new_x, new_y = _world(rng, 90, flip=True)  # the labelling concept flipped, the inputs did not move
    recipe = choose_recipe(_recent(new_x, new_y, 1 - new_y), old_x, old_y, 2, _config(tmp_path), 0, families=(TREES,))
    assert recipe.mix == "none"
    assert recipe.scores["trees+none"] > recipe.scores["trees+all"] + 0.3
    assert recipe.cv_accuracy > 0.8


def test_old_rows_moved_to_the_new_inputs_join_when_the_labels_followed_the_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    old_x, old_y = _world(rng, 600, flip=False)
    new_x, new_y = _world(rng, 40, flip=False, shift=3.0)  # every input moved, the concept moved with it
    new_y = (new_x[:, 0] > 3.0).astype(np.int64)
    recipe = choose_recipe(_recent(new_x, new_y, np.ones(40, dtype=np.int64)), old_x, old_y, 2, _config(tmp_path), 0,
                           families=(TREES,))  # fmt: skip
    assert recipe.mix in ("aligned", "none")
    assert recipe.scores["trees+aligned"] > recipe.scores["trees+all"]


def test_aligned_rows_take_the_new_inputs_mean_and_spread() -> None:
    rng = np.random.default_rng(2)
    old = rng.normal(0.0, 1.0, (500, 3))
    new = rng.normal(5.0, 2.0, (500, 3))
    moved = aligned(old, new)
    assert np.allclose(moved.mean(axis=0), new.mean(axis=0))
    assert np.allclose(moved.std(axis=0), new.std(axis=0))
    assert aligned(old, new[:1]) is old, "one new row says nothing about spread"


def test_every_class_keeps_two_rows_so_label_indices_do_not_shift() -> None:
    x, y = np.zeros((4, 1)), np.array([0, 0, 2, 2])
    old_x, old_y = np.arange(6, dtype=float).reshape(6, 1), np.array([1, 1, 1, 0, 2, 1])
    x2, y2 = with_every_class(x, y, old_x, old_y, 3)
    assert np.bincount(y2, minlength=3).tolist() == [2, 2, 2]
    assert x2[-2:, 0].tolist() == [0.0, 1.0], "the first old rows of the missing class"


def test_the_gate_compares_only_samples_the_deployed_version_answered(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    new_x, new_y = _world(rng, 30, flip=True)
    recent = _recent(new_x, new_y, 1 - new_y)
    recent[0] = Labelled(recent[0].x, recent[0].y, 7, recent[0].answer, 0, True)  # answered by another version
    recipe = choose_recipe(recent, *_world(rng, 100, flip=False), 2, _config(tmp_path), 0, families=(TREES,))
    candidate, deployed = gate_pairs(recent, recipe, deployed=1)
    assert len(candidate) == len(deployed) == 29
    assert not any(deployed), "the deployed version answered the old concept"
    errors, trials = cross_fitted_errors(recent, recipe)
    assert trials == 15, "the random share: every other sample here"
    assert 0 <= errors <= trials


def test_the_evidence_has_the_gates_accuracies_and_the_random_shares_confidences(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    new_x, new_y = _world(rng, 60, flip=True)
    recent = [replace(s, confidence=0.95 if s.unbiased else 0.55) for s in _recent(new_x, new_y, 1 - new_y)]
    recent[0] = replace(recent[0], version=7)  # answered by another version: in neither figure
    recipe = choose_recipe(recent, *_world(rng, 100, flip=False), 2, _config(tmp_path), 0, families=(TREES,))
    assert recipe.oof_confidence.shape == recipe.oof.shape
    assert ((recipe.oof_confidence >= 0.5) & (recipe.oof_confidence <= 1.0)).all(), "top-1 of two classes"
    evidence = gate_evidence(recent, recipe, deployed=1)
    assert evidence is not None
    candidate, _ = gate_pairs(recent, recipe, deployed=1)
    assert (evidence.samples, evidence.confidence_samples, evidence.deployed_version) == (59, 29, 1)
    assert evidence.candidate_accuracy == pytest.approx(sum(candidate) / 59)
    assert evidence.deployed_accuracy == 0.0
    assert evidence.deployed_confidence == pytest.approx(0.95), "the random share only: hard examples bias it down"
    drawn = [float(c) for s, c in zip(recent, recipe.oof_confidence, strict=True) if s.unbiased and s.version == 1]
    assert evidence.candidate_confidence == pytest.approx(sum(drawn) / len(drawn))
    assert evidence.backs_candidate


def test_no_evidence_without_a_random_sample_or_a_known_confidence(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    new_x, new_y = _world(rng, 40, flip=True)
    recent = _recent(new_x, new_y, 1 - new_y)  # the device's confidence unknown
    recipe = choose_recipe(recent, *_world(rng, 100, flip=False), 2, _config(tmp_path), 0, families=(TREES,))
    assert gate_evidence(recent, recipe, deployed=1) is None
    hard_only = [replace(s, unbiased=False, confidence=0.6) for s in recent]
    assert gate_evidence(hard_only, recipe, deployed=1) is None
    assert gate_evidence([replace(s, confidence=0.6) for s in recent], recipe, deployed=2) is None, "not answered"
