"""Train the real digits model once, then check every promise the manifest and the ONNX file make."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

import edgeloop
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.training import TrainingConfig, TrainingResult, train
from edgeloop.training.train import METRICS_FILE, MODEL_FILE


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("digits")
    return train(
        TrainingConfig(
            model_dir=root / "model",
            model_name="digits",
            output_data_dir=root / "output",
            training_job="job-123",
        )
    )


def _session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_model_dir_holds_exactly_the_model_and_its_manifest(trained: TrainingResult) -> None:
    model_dir = trained.model_path.parent
    assert sorted(p.name for p in model_dir.iterdir()) == [MANIFEST_FILE, MODEL_FILE]
    assert [p.name for p in model_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_manifest_on_disk_parses_and_equals_the_returned_one(trained: TrainingResult) -> None:
    text = trained.manifest_path.read_text()
    parsed = ModelManifest.from_json(text)
    assert parsed.to_dict() == trained.manifest.to_dict()
    assert text == trained.manifest.to_json()


def test_artifact_digest_and_size_match_the_file(trained: TrainingResult) -> None:
    data = trained.model_path.read_bytes()
    artifact = ModelManifest.from_json(trained.manifest_path.read_text()).selected_artifact
    assert artifact.file == MODEL_FILE
    assert artifact.precision == "fp32"
    assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert artifact.bytes == len(data)


def test_holdout_accuracy_of_the_exported_model_is_at_least_095(trained: TrainingResult) -> None:
    manifest = trained.manifest
    assert manifest.holdout_accuracy >= 0.95
    assert manifest.metrics["fp32"]["macro_f1"] >= 0.95
    assert manifest.metrics["fp32"]["holdout_rows"] == len(trained.y_holdout) == 360


def test_reported_accuracy_is_what_onnxruntime_gives_on_the_returned_holdout(trained: TrainingResult) -> None:
    labels, _ = _session(trained.model_path).run(None, {"input": trained.x_holdout})
    accuracy = float(np.mean(labels == trained.y_holdout))
    assert accuracy == pytest.approx(trained.manifest.holdout_accuracy, abs=1e-6)


def test_golden_rows_reproduce_with_onnxruntime(trained: TrainingResult) -> None:
    golden = ModelManifest.from_json(trained.manifest_path.read_text()).golden
    assert len(golden.inputs) == 8
    assert len(set(golden.labels)) == 8, "golden rows should cover different classes"
    labels, probabilities = _session(trained.model_path).run(
        None, {"input": np.asarray(golden.inputs, dtype=np.float32)}
    )
    assert labels.tolist() == list(golden.labels)
    assert probabilities.argmax(axis=1).tolist() == list(golden.labels)


def test_onnx_signature_takes_raw_float32_features_and_names_its_outputs(trained: TrainingResult) -> None:
    session = _session(trained.model_path)
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("input", "tensor(float)", [None, 64])
    outputs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
    assert outputs == {"label": ("tensor(int64)", [None]), "probabilities": ("tensor(float)", [None, 10])}
    _, probabilities = session.run(None, {"input": trained.x_holdout[:5]})
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(5), abs=1e-5)


def test_onnx_metadata_carries_the_lineage(trained: TrainingResult) -> None:
    props = {p.key: p.value for p in onnx.load(str(trained.model_path)).metadata_props}
    assert props["model_name"] == "digits"
    assert props["training_job"] == "job-123"
    assert props["dataset_sha256"] == trained.manifest.lineage.dataset_sha256
    assert props["code_version"] == edgeloop.__version__


def test_input_schema_labels_and_lineage(trained: TrainingResult) -> None:
    manifest = trained.manifest
    assert manifest.input.name == "input"
    assert manifest.input.features == tuple(f"pixel_{i}" for i in range(64))
    assert (manifest.input.minimum, manifest.input.maximum) == (-8.0, 24.0)  # 0..16 widened by half its span
    assert manifest.output.probabilities == "probabilities"
    assert manifest.labels == tuple(str(d) for d in range(10))
    lineage = manifest.lineage
    assert lineage.dataset == "builtin:digits"
    assert len(lineage.dataset_sha256) == 64
    assert lineage.training_job == "job-123"
    assert lineage.code_version == edgeloop.__version__
    assert lineage.hyperparameters == {
        "model_name": "digits",
        "dataset": "builtin:digits",
        "label_column": "label",
        "hidden": "64",
        "max_iter": "200",
        "seed": "0",
        "holdout_fraction": "0.2",
    }


def test_holdout_arrays_are_what_a_device_is_sent(trained: TrainingResult) -> None:
    assert trained.x_holdout.dtype == np.float32
    assert trained.x_holdout.shape == (360, 64)
    assert trained.y_holdout.dtype == np.int64
    assert set(trained.y_holdout.tolist()) == set(range(10))
    assert trained.sklearn_accuracy >= 0.95


def test_metrics_json_goes_to_the_output_data_dir(trained: TrainingResult) -> None:
    assert trained.metrics_path is not None
    assert trained.metrics_path.name == METRICS_FILE
    body = json.loads(trained.metrics_path.read_text())
    assert body["metrics"] == {k: dict(v) for k, v in trained.manifest.metrics.items()}
    assert body["training_job"] == "job-123"
    assert body["sklearn_accuracy"] == pytest.approx(trained.sklearn_accuracy, abs=1e-6)
