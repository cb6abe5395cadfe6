"""Fit the classifier, export it to ONNX, and measure the exported graph: the device runs ONNX, not sklearn."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from edgeloop.core.errors import ModelFormatError, TrainingDataError

if TYPE_CHECKING:  # numpy too: `edgeloop train --help` reads FAMILIES, and must not pay for numpy to do so
    import numpy as np
    import onnxruntime as ort
    from sklearn.pipeline import Pipeline

    from edgeloop.training.config import TrainingConfig

INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
FLOAT_TENSOR = "tensor(float)"

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


def _fit_mlp(x: np.ndarray, y: np.ndarray, config: TrainingConfig) -> Pipeline:
    """StandardScaler + MLP in one Pipeline, so the exported graph takes raw features."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(hidden_layer_sizes=config.hidden, max_iter=config.max_iter, random_state=config.seed)
    return _fitted(Pipeline([("scale", StandardScaler()), ("mlp", mlp)]), x, y, config.max_iter)


def _fit_trees(x: np.ndarray, y: np.ndarray, config: TrainingConfig) -> Pipeline:
    """A random forest: no scaling needed, one thread so a seed gives the same trees everywhere."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    forest = RandomForestClassifier(
        n_estimators=config.n_estimators, max_depth=config.max_depth, random_state=config.seed, n_jobs=1
    )
    return _fitted(Pipeline([("forest", forest)]), x, y, config.max_iter)


def _fit_linear(x: np.ndarray, y: np.ndarray, config: TrainingConfig) -> Pipeline:
    """StandardScaler + logistic regression: few parameters, so a few hundred labels already fit it about as well as
    thousands do (a retrain after a change has only its recent labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    linear = LogisticRegression(max_iter=LINEAR_MAX_ITER)
    return _fitted(Pipeline([("scale", StandardScaler()), ("linear", linear)]), x, y, LINEAR_MAX_ITER)


def _fitted(pipeline: Pipeline, x: np.ndarray, y: np.ndarray, max_iter: int) -> Pipeline:
    """Fit, turning a convergence warning into one clear log line (other warnings pass through)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(x, y)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            log.warning("training did not converge in max_iter=%d iterations; consider raising it", max_iter)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return pipeline


@dataclass(frozen=True)
class Family:
    """A model family: how it is fitted, its own hyperparameters, and why INT8 cannot apply (None if it can)."""

    fit: Callable[[np.ndarray, np.ndarray, TrainingConfig], Pipeline]
    hyperparameters: tuple[str, ...]
    not_quantizable: str | None = None


MLP = "mlp"
TREES = "trees"
LINEAR = "linear"
LINEAR_MAX_ITER = 1000
"""lbfgs iterations for the linear family (a convex fit: it converges, this only bounds a pathological one)."""
FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        MLP: Family(_fit_mlp, ("hidden", "max_iter")),
        TREES: Family(
            _fit_trees,
            ("n_estimators", "max_depth"),
            not_quantizable="tree ensembles do not quantize (no MatMul or Gemm for INT8 to act on)",
        ),
        LINEAR: Family(
            _fit_linear,
            (),
            not_quantizable="a linear classifier exports as one LinearClassifier op (no MatMul or Gemm for INT8)",
        ),
    }
)
"""Tabular and small-image classifiers (an 8x8 digit is 64 pixel features); the MLP is the default. The
linear one is there for few labels: after a change, a retrain that must learn from a few hundred samples."""
AUTO = "auto"
"""Not a family: the training entry point fits every family and keeps the better one on validation."""
FAMILY_CHOICES = (*FAMILIES, AUTO)
VALIDATION_FRACTION = 0.25
"""The share of the training rows choose_family holds out (never the gate's holdout, which it does not see)."""
METRICS = ("accuracy", "macro_f1")
"""What scores() measures on the holdout: the metrics a gate may be declared on."""


def choose_family(x: np.ndarray, y: np.ndarray, config: TrainingConfig, seed: int) -> tuple[str, dict[str, float]]:
    """The family with the better accuracy on a validation split of these rows, and every family's score.

    Each family is fitted on the rest of the rows with config's hyperparameters; a tie keeps the first
    (the MLP, which quantizes). The caller refits the winner on all its rows.
    """
    fit_x, val_x, fit_y, val_y = _validation_split(x, y, seed)
    scores = {name: round(float(family.fit(fit_x, fit_y, config).score(val_x, val_y)), 6)
              for name, family in FAMILIES.items()}  # fmt: skip
    best = max(scores.values())
    return next(name for name, score in scores.items() if score == best), scores


def _validation_split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified when every class can be on both sides, else shuffled; the fitting side needs two classes."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if len(y) < 4:
        raise TrainingDataError("rows", f"{len(y)} training rows are too few to choose a family by validation")
    counts = np.unique(y, return_counts=True)[1]
    held = int(np.ceil(VALIDATION_FRACTION * len(y)))
    stratify = y if counts.min() >= 2 and len(counts) <= held <= len(y) - len(counts) else None
    fit_x, val_x, fit_y, val_y = train_test_split(x, y, test_size=held, stratify=stratify, random_state=seed)
    if len(np.unique(fit_y)) < 2 or len(val_y) == 0:
        raise TrainingDataError(
            "rows", f"{len(y)} training rows are too few to choose a family by validation; name the family instead"
        )
    return fit_x, val_x, fit_y, val_y


def to_onnx(pipeline: Pipeline, n_features: int, n_classes: int) -> bytes:
    """ONNX with input `input` float32 [N, n_features] and outputs `label` int64 [N], `probabilities`."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    model = convert_sklearn(
        pipeline,
        name="edgeloop",
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        final_types=[
            (LABEL_OUTPUT, Int64TensorType([None])),
            (PROBABILITIES_OUTPUT, FloatTensorType([None, n_classes])),
        ],
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
    )
    data: bytes = model.SerializeToString()
    return data


def session(model: bytes) -> ort.InferenceSession:
    """An onnxruntime CPU session set up like a small device: one thread, sequential."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def check_signature(model: bytes) -> None:
    """Every variant must take float32 `input` and give float `probabilities`, as the device feeds and reads them."""
    run = session(model)
    inputs = [(i.name, i.type) for i in run.get_inputs()]
    outputs = {o.name: o.type for o in run.get_outputs()}
    if inputs != [(INPUT_NAME, FLOAT_TENSOR)] or outputs.get(PROBABILITIES_OUTPUT) != FLOAT_TENSOR:
        raise ModelFormatError(f"graph takes {inputs} and gives {outputs}; expected {INPUT_NAME!r} and "
                               f"{PROBABILITIES_OUTPUT!r} as {FLOAT_TENSOR}")  # fmt: skip


def predict_onnx(model: bytes | ort.InferenceSession, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label indices, probabilities), labels taken as the device takes them: the argmax of the probabilities."""
    import numpy as np

    run = session(model) if isinstance(model, bytes) else model
    (probabilities,) = run.run([PROBABILITIES_OUTPUT], {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)})
    probabilities = np.asarray(probabilities, dtype=np.float32)
    return probabilities.argmax(axis=1).astype(np.int64), probabilities


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
    import numpy as np

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
