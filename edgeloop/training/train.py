"""The training entry point: the same code in a SageMaker training job, on a laptop and in the local demo.

`train(config)` is the library call; `main(argv, env)` reads SageMaker's conventions, then calls it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import edgeloop
from edgeloop.core.errors import EdgeloopError
from edgeloop.core.manifest import (
    MANIFEST_FILE,
    Artifact,
    Baseline,
    Gate,
    Golden,
    InputSchema,
    Lineage,
    ModelManifest,
    OutputSchema,
)
from edgeloop.training import model as mdl
from edgeloop.training.baseline import baseline
from edgeloop.training.config import TrainingConfig
from edgeloop.training.conventions import build_config
from edgeloop.training.data import Dataset, check_holdout, load_dataset
from edgeloop.training.outputs import prepare_dirs, publish, write_atomic

MODEL_FILE = "model.onnx"
METRICS_FILE = "metrics.json"
PRECISION = "fp32"
GATE_BOUND = 0.01
"""Default accuracy drop a compressed variant may have versus fp32: one percentage point."""
GOLDEN_ROWS = 8
RANGE_MARGIN = 0.5
"""The input range the device accepts: the observed [min, max] widened by half its span on each side.
Wide enough for honest sensor drift (which the drift monitor should see, not the input check), narrow
enough to refuse garbage such as raw 0-255 pixels sent to a model trained on 0-16."""
ENV_OUTPUT_DIR = "SM_OUTPUT_DIR"
FAILURE_FILE = "failure"
METRIC_DEFINITIONS = (
    {"Name": "holdout:accuracy", "Regex": r"holdout_accuracy=([0-9.]+)"},
    {"Name": "holdout:macro_f1", "Regex": r"holdout_macro_f1=([0-9.]+)"},
)
"""SageMaker MetricDefinitions matching the log line train() writes, for the job launcher."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """What a run produced: the manifest, where the files are, and the holdout for streaming to devices."""

    manifest: ModelManifest
    model_path: Path
    manifest_path: Path
    metrics_path: Path | None
    x_holdout: np.ndarray
    """float32 [rows, features]: raw features, as a device receives them."""
    y_holdout: np.ndarray
    """int64 label indices into manifest.labels."""
    sklearn_accuracy: float


def train(config: TrainingConfig) -> TrainingResult:
    """Load, validate, fit, export ONNX, score the ONNX graph, then publish model.onnx + manifest.json."""
    started = datetime.now(UTC)
    job = config.training_job or f"local-{started:%Y%m%dT%H%M%SZ}"
    prepare_dirs(config.model_dir, config.output_data_dir)
    dataset = load_dataset(config.dataset, config.train_dir, config.label_column)
    check_holdout(dataset, config.holdout_fraction)
    parts = mdl.split(dataset.features, dataset.targets, config.holdout_fraction, config.seed)
    log.info(
        "training %s on %s: %d rows x %d features, %d classes, %d held out",
        config.model_name, dataset.uri, len(dataset.targets), len(dataset.feature_names),
        len(dataset.labels), len(parts.y_holdout),
    )  # fmt: skip
    pipeline = mdl.fit(parts.x_train, parts.y_train, config.hidden, config.max_iter, config.seed)
    sklearn_accuracy = float(pipeline.score(parts.x_holdout, parts.y_holdout))
    onnx_bytes = mdl.to_onnx(
        pipeline, len(dataset.feature_names), len(dataset.labels), _onnx_metadata(config, dataset, job)
    )
    predicted, probabilities = mdl.predict_onnx(onnx_bytes, parts.x_holdout)
    metrics = mdl.scores(parts.y_holdout, predicted)
    log.info(
        "holdout_accuracy=%.6f holdout_macro_f1=%.6f sklearn_accuracy=%.6f (onnx and sklearn agree on %.4f)",
        metrics["accuracy"], metrics["macro_f1"], sklearn_accuracy,
        float(np.mean(predicted == pipeline.predict(parts.x_holdout))),
    )  # fmt: skip
    chosen = mdl.golden_rows(predicted, probabilities, GOLDEN_ROWS)
    _, train_probabilities = mdl.predict_onnx(onnx_bytes, parts.x_train)
    manifest = _manifest(
        config, dataset, job, started, onnx_bytes, metrics,
        Golden(
            inputs=tuple(tuple(float(v) for v in parts.x_holdout[i]) for i in chosen),
            labels=tuple(int(predicted[i]) for i in chosen),
        ),
        baseline(parts.x_train, dataset.feature_names, train_probabilities.max(axis=1)),
    )  # fmt: skip
    paths = publish(config.model_dir, {MODEL_FILE: onnx_bytes, MANIFEST_FILE: manifest.to_json().encode()})
    metrics_path = _write_metrics(config.output_data_dir, manifest, sklearn_accuracy)
    log.info("wrote %s and %s (sha256 %s)", paths[MODEL_FILE], paths[MANIFEST_FILE], manifest.artifacts[0].sha256)
    return TrainingResult(
        manifest=manifest,
        model_path=paths[MODEL_FILE],
        manifest_path=paths[MANIFEST_FILE],
        metrics_path=metrics_path,
        x_holdout=parts.x_holdout,
        y_holdout=parts.y_holdout,
        sklearn_accuracy=sklearn_accuracy,
    )


def _onnx_metadata(config: TrainingConfig, dataset: Dataset, job: str) -> dict[str, str]:
    """Lineage inside the ONNX file too, so a stray model.onnx still says where it came from."""
    return {
        "model_name": config.model_name,
        "dataset": dataset.uri,
        "dataset_sha256": dataset.sha256,
        "training_job": job,
        "code_version": edgeloop.__version__,
    }


def _manifest(
    config: TrainingConfig,
    dataset: Dataset,
    job: str,
    started: datetime,
    onnx_bytes: bytes,
    metrics: Mapping[str, float],
    golden: Golden,
    training_baseline: Baseline,
) -> ModelManifest:
    """The manifest: the one contract the registry and the device read."""
    return ModelManifest(
        model_name=config.model_name,
        created_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        artifacts=(
            Artifact(
                file=MODEL_FILE,
                sha256=hashlib.sha256(onnx_bytes).hexdigest(),
                bytes=len(onnx_bytes),
                precision=PRECISION,
            ),
        ),
        selected=MODEL_FILE,
        input=_input_schema(dataset),
        output=OutputSchema(probabilities=mdl.PROBABILITIES_OUTPUT),
        labels=dataset.labels,
        metrics={PRECISION: dict(metrics)},
        golden=golden,
        lineage=Lineage(
            dataset=dataset.uri,
            dataset_sha256=dataset.sha256,
            training_job=job,
            code_version=edgeloop.__version__,
            hyperparameters=config.hyperparameters(),
        ),
        gate=Gate(metric="accuracy", bound=GATE_BOUND, drop=0.0, passed=True),
        baseline=training_baseline,
    )


def _input_schema(dataset: Dataset) -> InputSchema:
    """Observed range over the whole dataset (so every holdout and golden row fits), widened by the margin."""
    low, high = float(dataset.features.min()), float(dataset.features.max())
    margin = RANGE_MARGIN * (high - low) if high > low else 1.0
    return InputSchema(
        name=mdl.INPUT_NAME,
        dtype="float32",
        features=dataset.feature_names,
        minimum=low - margin,
        maximum=high + margin,
    )


def _write_metrics(output_dir: Path | None, manifest: ModelManifest, sklearn_accuracy: float) -> Path | None:
    """metrics.json in the job's output data (SageMaker uploads it as output.tar.gz)."""
    if output_dir is None:
        return None
    body = {
        "model_name": manifest.model_name,
        "training_job": manifest.lineage.training_job,
        "selected": manifest.selected,
        "metrics": {k: dict(v) for k, v in manifest.metrics.items()},
        "sklearn_accuracy": round(sklearn_accuracy, 6),
    }
    return write_atomic(output_dir / METRICS_FILE, (json.dumps(body, sort_keys=True, indent=2) + "\n").encode())


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Command-line and SageMaker entry: 0 on success, the error's exit code and one stderr line otherwise."""
    env = os.environ if env is None else env
    try:
        result = train(build_config(sys.argv[1:] if argv is None else argv, env))
    except EdgeloopError as exc:
        sys.stderr.write(f"error: {exc}\n")
        _report_failure(env, str(exc))
        return exc.exit_code
    log.info("model %s ready in %s", result.manifest.model_name, result.model_path.parent)
    return 0


def _report_failure(env: Mapping[str, str], message: str) -> None:
    """SageMaker shows <SM_OUTPUT_DIR>/failure as the job's FailureReason; only written inside a job."""
    output_dir = env.get(ENV_OUTPUT_DIR)
    if not output_dir:
        return
    try:
        write_atomic(Path(output_dir) / FAILURE_FILE, message.encode())
    except OSError as exc:
        log.error("could not write the failure reason to %s: %s", output_dir, exc)
