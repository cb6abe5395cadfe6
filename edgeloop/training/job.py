"""One training job, end to end: the same code in a SageMaker training job, on a laptop and in the local demo.

`train(config)` is the library call; `main(argv, env)` reads SageMaker's conventions, then calls it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

import edgeloop
from edgeloop.core.errors import EdgeloopError
from edgeloop.core.gate import GateDecision, decide
from edgeloop.core.manifest import (
    MANIFEST_FILE,
    PRECISIONS,
    REFERENCE_PRECISION,
    Artifact,
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
from edgeloop.training.model import AUTO, FAMILIES
from edgeloop.training.outputs import prepare_dirs, publish, write_atomic
from edgeloop.training.report import variant_table
from edgeloop.training.variants import BUILDERS, FP32_FILE, Builder, Measured, measure, stamped, variant_file

MODEL_FILE = FP32_FILE
METRICS_FILE = "metrics.json"
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
"""SageMaker MetricDefinitions matching the log line train() writes (for the selected variant), for the job launcher."""

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class FamilySelection:
    """Family auto's choice: the family kept and every family's accuracy on the validation split."""

    selected: str
    validation_accuracy: Mapping[str, float]
    requested: str = AUTO
    validation_fraction: float = mdl.VALIDATION_FRACTION

    def to_dict(self) -> dict[str, object]:
        """As metrics.json records it."""
        return {"requested": self.requested, "selected": self.selected, "validation_fraction":
                self.validation_fraction, "validation_accuracy": dict(self.validation_accuracy)}  # fmt: skip

    def lineage(self) -> dict[str, str]:
        """As lineage hyperparameters (strings), so the registry shows why this family was kept."""
        scores = {f"validation_accuracy_{name}": repr(score) for name, score in self.validation_accuracy.items()}
        return {"family_requested": self.requested, **scores}


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """What a run produced: the manifest, where the files are, and the holdout for streaming to devices."""

    manifest: ModelManifest
    model_path: Path
    """The selected variant's file."""
    manifest_path: Path
    metrics_path: Path | None
    x_holdout: np.ndarray
    """float32 [rows, features]: raw features, as a device receives them."""
    y_holdout: np.ndarray
    """int64 label indices into manifest.labels."""
    sklearn_accuracy: float
    skipped: Mapping[str, str] = field(default_factory=dict)
    """Precisions not built for this model, with why (a tree ensemble has nothing to quantize)."""
    failure: str | None = None
    """Why the model failed the gate (None when it passed): it is then not deployable."""
    family_selection: FamilySelection | None = None
    """For family auto: the family kept and each family's validation accuracy (None when the family was named)."""

    @property
    def variant_table(self) -> str:
        """The human-readable table of every variant and the gate's verdict."""
        return variant_table(self.manifest, self.skipped, self.failure)


@dataclass(frozen=True, eq=False)
class _Variants:
    """Every variant built, what each measured, and the precisions that could not be built."""

    models: dict[str, bytes]
    measured: dict[str, Measured]
    skipped: dict[str, str]


def train(config: TrainingConfig, builders: Mapping[str, Builder] = BUILDERS) -> TrainingResult:
    """Load, fit, export fp32 and its INT8 variants, gate them on the holdout, publish what passed + manifest.json."""
    started = datetime.now(UTC)
    job = config.training_job or f"local-{started:%Y%m%dT%H%M%SZ}"
    prepare_dirs(config.model_dir, config.output_data_dir)
    dataset = load_dataset(config.dataset, config.train_dir, config.label_column, config.features)
    check_holdout(dataset, config.holdout_fraction)
    parts = mdl.split(dataset.features, dataset.targets, config.holdout_fraction, config.seed)
    config, selection = _resolve_family(config, parts)
    log.info(
        "training %s (%s) on %s: %d rows x %d features, %d classes, %d held out",
        config.model_name, config.family, dataset.uri, len(dataset.targets), len(dataset.feature_names),
        len(dataset.labels), len(parts.y_holdout),
    )  # fmt: skip
    pipeline = FAMILIES[config.family].fit(parts.x_train, parts.y_train, config)
    sklearn_accuracy = float(pipeline.score(parts.x_holdout, parts.y_holdout))
    fp32 = mdl.to_onnx(pipeline, len(dataset.feature_names), len(dataset.labels))
    variants = _build_variants(config, fp32, _onnx_metadata(config, dataset, job), parts, builders)
    decision = _decide(config, variants)
    manifest = _manifest(config, dataset, job, started, variants, decision, parts, selection)
    _log_outcome(manifest, decision, sklearn_accuracy)
    paths = _publish(config.model_dir, manifest, variants)
    metrics_path = _write_metrics(config.output_data_dir, manifest, sklearn_accuracy, variants.skipped, selection)
    log.info("wrote %s to %s", ", ".join(paths), config.model_dir)
    return TrainingResult(
        manifest=manifest,
        model_path=paths[manifest.selected],
        manifest_path=paths[MANIFEST_FILE],
        metrics_path=metrics_path,
        x_holdout=parts.x_holdout,
        y_holdout=parts.y_holdout,
        sklearn_accuracy=sklearn_accuracy,
        skipped=variants.skipped,
        failure=decision.failure,
        family_selection=selection,
    )


def _resolve_family(config: TrainingConfig, parts: mdl.Split) -> tuple[TrainingConfig, FamilySelection | None]:
    """Family auto becomes the family that validates better on the training rows (the gate's holdout stays unseen)."""
    if config.family != AUTO:
        return config, None
    family, scores = mdl.choose_family(parts.x_train, parts.y_train, config, config.seed)
    log.info("family auto: validation accuracy %s; kept %s", scores, family)
    return replace(config, family=family), FamilySelection(family, scores)


def _build_variants(
    config: TrainingConfig,
    fp32: bytes,
    metadata: Mapping[str, str],
    parts: mdl.Split,
    builders: Mapping[str, Builder],
) -> _Variants:
    """fp32 plus each compressed variant the family allows; one that cannot be built or run is skipped, with why."""
    reference = stamped(fp32, {**metadata, "precision": REFERENCE_PRECISION})
    variants = _Variants({REFERENCE_PRECISION: reference}, {REFERENCE_PRECISION: _measure(reference, parts)}, {})
    why_not = FAMILIES[config.family].not_quantizable
    for precision, build in builders.items():
        if why_not is not None:
            variants.skipped[precision] = why_not
            continue
        try:
            model = stamped(build(fp32, parts.x_train), {**metadata, "precision": precision})
            variants.measured[precision] = _measure(model, parts)
        except Exception as exc:  # quantizer and onnxruntime errors have no common base; fp32 still ships
            log.warning("%s variant skipped: %s", precision, exc, exc_info=True)
            variants.skipped[precision] = f"could not be built or run ({type(exc).__name__}: {str(exc)[:200]})"
            continue
        variants.models[precision] = model
    return variants


def _decide(config: TrainingConfig, variants: _Variants) -> GateDecision:
    """The core gate over what each variant measured on the declared metric, and its size."""
    return decide(
        {p: m.metrics[config.gate_metric] for p, m in variants.measured.items()},
        {p: len(m) for p, m in variants.models.items()},
        metric=config.gate_metric, bound=config.gate_bound, minimum=config.gate_minimum,
    )  # fmt: skip


def _publish(model_dir: Path, manifest: ModelManifest, variants: _Variants) -> dict[str, Path]:
    """The shipped variants, then the manifest; variant files of an earlier run that this one does not ship go."""
    shipped = {a.file: variants.models[a.precision] for a in manifest.artifacts}
    stale = [variant_file(p) for p in PRECISIONS if variant_file(p) not in shipped]
    return publish(model_dir, {**shipped, MANIFEST_FILE: manifest.to_json().encode()}, remove=stale)


def _measure(model: bytes, parts: mdl.Split) -> Measured:
    """Holdout metrics of a variant whose signature the device can run (else ModelFormatError)."""
    mdl.check_signature(model)
    return measure(model, parts.x_holdout, parts.y_holdout)


def _log_outcome(manifest: ModelManifest, decision: GateDecision, sklearn_accuracy: float) -> None:
    """The metric line SageMaker scrapes (selected variant), and the gate's verdict."""
    selected = manifest.metrics[manifest.selected_artifact.precision]
    log.info(
        "holdout_accuracy=%.6f holdout_macro_f1=%.6f sklearn_accuracy=%.6f selected=%s",
        selected["accuracy"], selected["macro_f1"], sklearn_accuracy, manifest.selected,
    )  # fmt: skip
    for precision, reason in decision.gate.rejected.items():
        log.warning("gate rejected %s: %s", precision, reason)
    if decision.failure is not None:
        log.error("model failed the gate and is not deployable: %s", decision.failure)


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
    variants: _Variants,
    decision: GateDecision,
    parts: mdl.Split,
    selection: FamilySelection | None = None,
) -> ModelManifest:
    """The manifest the registry and the device read; golden rows and baseline come from the selected variant."""
    selected = variants.measured[decision.selected]
    chosen = mdl.golden_rows(selected.labels, selected.probabilities, GOLDEN_ROWS)
    return ModelManifest(
        model_name=config.model_name,
        created_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        artifacts=tuple(
            Artifact(file=variant_file(p), sha256=hashlib.sha256(m).hexdigest(), bytes=len(m), precision=p)
            for p, m in _in_order(variants.models).items()
            if p not in decision.gate.rejected
        ),
        selected=variant_file(decision.selected),
        input=_input_schema(dataset),
        output=OutputSchema(probabilities=mdl.PROBABILITIES_OUTPUT),
        labels=dataset.labels,
        metrics={p: m.metrics for p, m in _in_order(variants.measured).items()},
        golden=Golden(
            inputs=tuple(tuple(float(v) for v in parts.x_holdout[i]) for i in chosen),
            labels=tuple(int(selected.labels[i]) for i in chosen),
        ),
        lineage=Lineage(
            dataset=dataset.uri,
            dataset_sha256=dataset.sha256,
            training_job=job,
            code_version=edgeloop.__version__,
            hyperparameters={**config.hyperparameters(), **(selection.lineage() if selection else {})},
            parent_version=config.parent_version,
        ),
        gate=decision.gate,
        baseline=baseline(  # behaviour on the holdout: on its training rows a model is surer than on new ones
            parts.x_train,
            dataset.feature_names,
            selected.probabilities.max(axis=1),
            selected.labels,
            len(dataset.labels),
            truth=parts.y_holdout,  # the reliability table: the cloud's calibrated detector (core.calibrated)
        ),
    )


def _in_order(by_precision: Mapping[str, _T]) -> dict[str, _T]:
    """Per-precision values in PRECISIONS order, so the manifest lists fp32 first whatever was built first."""
    return {p: by_precision[p] for p in PRECISIONS if p in by_precision}


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


def _write_metrics(
    output_dir: Path | None,
    manifest: ModelManifest,
    sklearn_accuracy: float,
    skipped: Mapping[str, str],
    selection: FamilySelection | None = None,
) -> Path | None:
    """metrics.json in the job's output data (SageMaker uploads it as output.tar.gz)."""
    if output_dir is None:
        return None
    body = {
        "model_name": manifest.model_name,
        "training_job": manifest.lineage.training_job,
        "selected": manifest.selected,
        "metrics": {k: dict(v) for k, v in manifest.metrics.items()},
        "gate": manifest.gate.to_dict(),
        "skipped": dict(skipped),
        "sklearn_accuracy": round(sklearn_accuracy, 6),
        **({"family_selection": selection.to_dict()} if selection is not None else {}),
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
    sys.stdout.write(result.variant_table)
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
