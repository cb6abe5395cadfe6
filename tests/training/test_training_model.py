"""Family auto: both families fitted on a validation split of the training rows, the better one kept and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeloop.core.errors import TrainingDataError
from edgeloop.training import TrainingConfig, train
from edgeloop.training.model import AUTO, FAMILIES, LINEAR, MLP, TREES, choose_family


def _checkerboard(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned cells: what trees cut exactly and a small, briefly trained MLP does not."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 6, (rows, 2)).astype(np.float32)
    return x, ((np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2).astype(np.int64)


def _many_weak_features(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The sign of a sum of 30 features: a linear boundary; axis-aligned splits only approximate it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 30)).astype(np.float32)
    return x, (x.sum(axis=1) > 0).astype(np.int64)


def _config(tmp_path: Path, **overrides: object) -> TrainingConfig:
    values: dict[str, object] = {"model_dir": tmp_path / "model", "model_name": "auto-test", "hidden": (8,),
                                 "max_iter": 30, **overrides}  # fmt: skip
    return TrainingConfig(**values)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("data", "expected"), [(_checkerboard, TREES), (_many_weak_features, LINEAR)])
def test_the_family_that_validates_better_is_chosen(tmp_path: Path, data: object, expected: str) -> None:
    x, y = data(1200)  # type: ignore[operator]
    config = _config(tmp_path, max_iter=200)
    family, scores = choose_family(x, y, config, seed=0)
    assert set(scores) == set(FAMILIES)
    assert family == expected
    assert scores[family] == max(scores.values()) > min(scores.values()) + 0.03, scores
    assert choose_family(x, y, config, seed=0) == (family, scores), "repeatable for a seed"


def test_too_few_rows_to_validate_on_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="too few to choose a family"):
        choose_family(np.zeros((3, 2), np.float32), np.array([0, 1, 0]), _config(tmp_path), seed=0)
    with pytest.raises(TrainingDataError, match="too few to choose a family"):
        choose_family(np.zeros((6, 2), np.float32), np.zeros(6, np.int64), _config(tmp_path), seed=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_train_with_family_auto_ships_the_chosen_family_and_records_why(tmp_path: Path) -> None:
    x, y = _checkerboard(600)
    channel = tmp_path / "train"
    channel.mkdir()
    np.savez(channel / "data.npz", features=x, label=y)
    config = _config(tmp_path, family=AUTO, dataset="npz", train_dir=channel, output_data_dir=tmp_path / "out")
    result = train(config)
    assert result.family_selection is not None
    assert result.family_selection.selected == TREES
    lineage = result.manifest.lineage.hyperparameters
    assert (lineage["family"], lineage["family_requested"]) == (TREES, AUTO)
    assert "n_estimators" in lineage, "the kept family's hyperparameters"
    assert "hidden" not in lineage
    scores = result.family_selection.validation_accuracy
    assert {lineage[f"validation_accuracy_{f}"] for f in (MLP, TREES)} == {repr(scores[MLP]), repr(scores[TREES])}
    assert result.skipped
    assert all("tree ensembles" in why for why in result.skipped.values()), "a forest is not quantized"
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["family_selection"] == {"requested": AUTO, "selected": TREES, "validation_fraction": 0.25,
                                           "validation_accuracy": dict(scores)}  # fmt: skip


def test_a_named_family_records_no_selection_and_auto_lists_every_hyperparameter(tmp_path: Path) -> None:
    assert "family_selection" not in json.dumps(_config(tmp_path).hyperparameters())
    auto = _config(tmp_path, family=AUTO).hyperparameters()
    assert {"hidden", "max_iter", "n_estimators"} <= set(auto)
