"""What a retrain learns from after a change: the new concept's labelled samples, and old rows only where they help.

The cloud side of recovery, in the local runner: labelled samples since the estimated change point are the
new concept; the initial rows and older labels are the old world. Candidate recipes (family x how much of
the old world to add) are compared by cross-validation on the recent labels only (old rows always train,
never validate), and the winner's out-of-fold answers are what the new-world gate
(edgeloop.core.retraining.new_world_gate) compares with the deployed version's answers on the same samples; their
accuracies and confidences are the evidence a registered candidate carries to its canary (gate_evidence).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from edgeloop.core.evidence import GateEvidence
from edgeloop.training.config import TrainingConfig
from edgeloop.training.model import FAMILIES, LINEAR, MLP, TREES

CV_FOLDS = 3
"""Folds over the recent labels: each recipe is fitted this many times, so the loop stays fast."""
OLD_MIXES = ("none", "all", "aligned")
"""How much of the old world a recipe adds: nothing, all of it (up to OLD_MAX_ROWS, a uniform pick), or all of it
moved so each feature's mean and spread match the new concept's inputs (covariate shift: inputs moved,
labels followed; validation on recent labels says whether that holds)."""
OLD_MAX_ROWS = 1000
"""Old rows a recipe adds at most: enough to keep what the old world knew, few enough to fit in seconds."""
CV_MAX_ITER = 200
"""MLP iterations while comparing recipes (the published candidate trains with the caller's max_iter)."""
FAMILY_CHOICES = (LINEAR, MLP, TREES)
MIN_PER_CLASS = 2
"""Every class must appear this often in a training set (the training job's stratified holdout needs two)."""


@dataclass(frozen=True)
class Labelled:
    """One labelled sample as the cloud knows it: released features, true label, and the deployed answer."""

    x: np.ndarray
    y: int
    version: int
    """The model version that answered the sampled request."""
    answer: int
    index: int
    """The request's position in the stream (ledger index): what orders samples in time."""
    unbiased: bool = False
    """Taken by the random sampler, without looking at the answer: it may estimate an error rate."""
    confidence: float | None = None
    """The deployed answer's top-1 probability, as the device reported it (None: not known)."""
    judged: float | None = None
    """The confidence the calibrated detector may judge it by (core.detectors.observation_of: None where a margin
    the confidence does not fix chose it)."""


@dataclass(frozen=True)
class Recipe:
    """The chosen training set and family, with the cross-validated accuracy that chose it."""

    family: str
    mix: str
    x: np.ndarray
    y: np.ndarray
    cv_accuracy: float
    oof: np.ndarray
    """Out-of-fold predictions of this recipe on the recent labels (each from a model that did not see it)."""
    oof_confidence: np.ndarray
    """The top-1 probability of each out-of-fold prediction: how sure the candidate is on labels it did not see."""
    scores: dict[str, float]
    """Every recipe's cross-validated accuracy, '<family>+<mix>'."""


def choose_recipe(
    recent: Sequence[Labelled], old_x: np.ndarray, old_y: np.ndarray, classes: int, config: TrainingConfig,
    seed: int, new_inputs: np.ndarray | None = None, families: Sequence[str] = FAMILY_CHOICES,
) -> Recipe:  # fmt: skip
    """The family and old-world share with the best cross-validated accuracy on recent labels; ties go to the
    recipe listed first (less old data). new_inputs: features of every sample since the change (labelled or not
    yet), what `aligned` matches the old rows to (the labelled ones when None)."""
    rx = np.array([s.x for s in recent], dtype=np.float64).reshape(len(recent), old_x.shape[1])
    ry = np.array([s.y for s in recent], dtype=np.int64)
    folds = _folds(rx, CV_FOLDS)
    rng = np.random.default_rng(seed)
    picks = {mix: _old_pick(mix, len(old_x), rng) for mix in OLD_MIXES}
    quick = replace(config, max_iter=min(config.max_iter, CV_MAX_ITER))
    moved = aligned(old_x, rx if new_inputs is None or len(new_inputs) < len(rx) else new_inputs)
    best: Recipe | None = None
    scores: dict[str, float] = {}
    for family in families:
        for mix in OLD_MIXES:
            ox, oy = (moved if mix == "aligned" else old_x)[picks[mix]], old_y[picks[mix]]
            oof, sure = _out_of_fold(family, rx, ry, ox, oy, folds, quick)
            accuracy = float((oof == ry).mean())
            scores[f"{family}+{mix}"] = round(accuracy, 4)
            if best is None or accuracy > best.cv_accuracy:
                x, y = with_every_class(np.vstack([rx, ox]), np.concatenate([ry, oy]), old_x, old_y, classes)
                best = Recipe(family, mix, x, y, accuracy, oof, sure, scores)
    assert best is not None  # families is never empty
    return replace(best, scores=scores)


def _old_pick(mix: str, old: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the old rows a mix adds."""
    if mix == "none" or old == 0:
        return np.zeros(0, dtype=np.int64)
    if old > OLD_MAX_ROWS:
        return np.sort(rng.choice(old, size=OLD_MAX_ROWS, replace=False))
    return np.arange(old)


def aligned(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Old rows moved feature by feature to the new inputs' mean and standard deviation (a constant feature only
    moves)."""
    if len(old) == 0 or len(new) < 2:
        return old
    mean, std = old.mean(axis=0), old.std(axis=0)
    scale = np.where(std > 0, new.std(axis=0) / np.where(std > 0, std, 1.0), 1.0)
    return np.asarray((old - mean) * scale + new.mean(axis=0), dtype=np.float64)


def _folds(x: np.ndarray, k: int) -> np.ndarray:
    """A fold per row from its content (identical rows share a fold, so a repeated row never validates itself)."""
    return np.array([zlib.crc32(np.round(row, 3).tobytes()) % k for row in x], dtype=np.int64)


def _out_of_fold(
    family: str, rx: np.ndarray, ry: np.ndarray, ox: np.ndarray, oy: np.ndarray, folds: np.ndarray,
    config: TrainingConfig,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each recent label predicted by the recipe fitted without its fold (old rows always in training), and the
    prediction's top-1 probability."""
    oof, sure = np.full(len(ry), -1, dtype=np.int64), np.ones(len(ry), dtype=np.float64)
    with threadpool_limits(1):  # BLAS threads left spinning after a fit would slow the fleet's next inferences
        for fold in np.unique(folds):
            oof[fold == folds], sure[fold == folds] = _fold(family, rx, ry, ox, oy, folds == fold, config)
    return oof, sure


def _fold(
    family: str, rx: np.ndarray, ry: np.ndarray, ox: np.ndarray, oy: np.ndarray, test: np.ndarray,
    config: TrainingConfig,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One fold's answers and their top-1 probabilities: the recipe fitted on the other folds and the old rows."""
    train_x, train_y = np.vstack([rx[~test], ox]), np.concatenate([ry[~test], oy])
    if len(np.unique(train_y)) < 2:  # nothing to learn from: the constant answer, surely
        answer = np.full(int(test.sum()), train_y[0] if len(train_y) else -1, dtype=np.int64)
        return answer, np.ones(len(answer), dtype=np.float64)
    model = FAMILIES[family].fit(train_x, train_y, replace(config, family=family))
    proba = np.asarray(model.predict_proba(rx[test]), dtype=np.float64)
    classes = np.asarray(model.classes_, dtype=np.int64)
    return classes[proba.argmax(axis=1)], proba.max(axis=1)


def with_every_class(
    x: np.ndarray, y: np.ndarray, old_x: np.ndarray, old_y: np.ndarray, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The training set, plus the fewest old rows that give every class MIN_PER_CLASS rows: a model must keep the
    dataset's label indices (a class missing from its data would shift every index after it)."""
    counts = np.bincount(y, minlength=classes)
    extra = []
    for label in np.flatnonzero(counts < MIN_PER_CLASS):
        have = np.flatnonzero(old_y == label)[: MIN_PER_CLASS - counts[label]]
        extra.extend(have.tolist())
    if not extra:
        return x, y
    return np.vstack([x, old_x[extra]]), np.concatenate([y, old_y[extra]])


def cross_fitted_errors(recent: Sequence[Labelled], recipe: Recipe) -> tuple[int, int]:
    """(errors, trials) of the recipe's cross-fitted answers on the recent random-share samples: the reference a
    retrained version's error detector starts from (it watches the same share)."""
    errors = [bool(predicted != s.y) for s, predicted in zip(recent, recipe.oof, strict=True) if s.unbiased]
    return sum(errors), len(errors)


def gate_pairs(recent: Sequence[Labelled], recipe: Recipe, deployed: int) -> tuple[list[bool], list[bool]]:
    """(candidate right, deployed right) per recent label the deployed version answered: the gate's evidence."""
    candidate, live = [], []
    for sample, predicted in zip(recent, recipe.oof, strict=True):
        if sample.version == deployed:
            candidate.append(bool(predicted == sample.y))
            live.append(sample.answer == sample.y)
    return candidate, live


def gate_evidence(recent: Sequence[Labelled], recipe: Recipe, deployed: int) -> GateEvidence | None:
    """The new-world gate's figures for registration: both versions' accuracy on the recent labels the deployed
    version answered, and their mean top-1 confidence on the random share of those (what the canary's live mean
    estimates); None without a random sample whose deployed confidence is known."""
    candidate, live = gate_pairs(recent, recipe, deployed)
    pairs = zip(recent, recipe.oof_confidence, strict=True)
    drawn = [(float(s.confidence), float(sure)) for s, sure in pairs
             if s.version == deployed and s.unbiased and s.confidence is not None]  # fmt: skip
    if not candidate or not drawn:
        return None
    return GateEvidence(
        samples=len(candidate),
        confidence_samples=len(drawn),
        deployed_version=deployed,
        candidate_accuracy=sum(candidate) / len(candidate),
        deployed_accuracy=sum(live) / len(live),
        candidate_confidence=min(1.0, sum(sure for _, sure in drawn) / len(drawn)),
        deployed_confidence=min(1.0, sum(conf for conf, _ in drawn) / len(drawn)),
    )
