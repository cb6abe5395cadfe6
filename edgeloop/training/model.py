"""Fit the classifier, export it to ONNX, and measure the exported graph: the device runs ONNX, not sklearn."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Split:
    """A stratified train/holdout split of features (float32) and label indices (int64)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray


def split(features: np.ndarray, targets: np.ndarray, holdout_fraction: float, seed: int) -> Split:
    """Stratified holdout so every class is measured; the seed makes it repeatable."""
    from sklearn.model_selection import train_test_split

    x_train, x_holdout, y_train, y_holdout = train_test_split(
        features, targets, test_size=holdout_fraction, stratify=targets, random_state=seed
    )
    return Split(x_train, y_train, x_holdout, y_holdout)


def fit(x: np.ndarray, y: np.ndarray, hidden: tuple[int, ...], max_iter: int, seed: int) -> Pipeline:
    """StandardScaler + MLP in one Pipeline, so the exported graph takes raw features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter, random_state=seed)),
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(x, y)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            log.warning("training did not converge in max_iter=%d iterations; consider raising it", max_iter)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return pipeline


def to_onnx(pipeline: Pipeline, n_features: int, n_classes: int, metadata: Mapping[str, str]) -> bytes:
    """ONNX with input `input` float32 [N, n_features] and outputs `label` int64 [N], `probabilities`."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
    from sklearn.neural_network import MLPClassifier

    model = convert_sklearn(
        pipeline,
        name="edgeloop",
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        final_types=[
            (LABEL_OUTPUT, Int64TensorType([None])),
            (PROBABILITIES_OUTPUT, FloatTensorType([None, n_classes])),
        ],
        options={MLPClassifier: {"zipmap": False}},
    )
    for key, value in sorted(metadata.items()):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    data: bytes = model.SerializeToString()
    return data


def predict_onnx(model: bytes, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the exported graph with onnxruntime on CPU: (label indices, probabilities)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(
        [LABEL_OUTPUT, PROBABILITIES_OUTPUT], {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)}
    )
    return np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (every class counts the same, so a neglected class shows)."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro")), 6),
        "holdout_rows": float(len(y_true)),
    }


def golden_rows(labels: np.ndarray, probabilities: np.ndarray, count: int) -> np.ndarray:
    """Holdout rows for the device self-test: the most confident row of each predicted class first.

    Confident rows keep the self-test from hinging on a near tie; spreading over classes makes it
    catch a model that answers one class for everything.
    """
    confidence = probabilities.max(axis=1)
    by_confidence = np.lexsort((np.arange(len(confidence)), -confidence))
    rank_in_class = np.empty(len(confidence), dtype=np.int64)
    seen: dict[int, int] = {}
    for row in by_confidence:
        label = int(labels[row])
        rank_in_class[row] = seen.get(label, 0)
        seen[label] = rank_in_class[row] + 1
    chosen = sorted(by_confidence, key=lambda row: (rank_in_class[row], -confidence[row], row))[:count]
    return np.sort(np.asarray(chosen, dtype=np.int64))
