"""Train the real digits model once, then check every promise the manifest and its ONNX variants make."""

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
from edgeloop.device.onnx_model import load_model
from edgeloop.training import TrainingConfig, TrainingResult, train
from edgeloop.training.job import METRICS_FILE, MODEL_FILE


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


def test_model_dir_holds_exactly_the_shipped_variants_and_the_manifest(trained: TrainingResult) -> None:
    model_dir = trained.model_path.parent
    shipped = [a.file for a in trained.manifest.artifacts]
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([MANIFEST_FILE, *shipped])
    assert [p.name for p in model_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_manifest_on_disk_parses_and_equals_the_returned_one(trained: TrainingResult) -> None:
    text = trained.manifest_path.read_text()
    parsed = ModelManifest.from_json(text)
    assert parsed.to_dict() == trained.manifest.to_dict()
    assert text == trained.manifest.to_json()


def test_every_artifact_digest_and_size_match_its_file(trained: TrainingResult) -> None:
    manifest = ModelManifest.from_json(trained.manifest_path.read_text())
    assert [a.precision for a in manifest.artifacts] == ["fp32", "int8-dynamic", "int8-static"]
    assert [a.file for a in manifest.artifacts] == [MODEL_FILE, "model.int8-dynamic.onnx", "model.int8-static.onnx"]
    for artifact in manifest.artifacts:
        data = (trained.model_path.parent / artifact.file).read_bytes()
        assert artifact.sha256 == hashlib.sha256(data).hexdigest()
        assert artifact.bytes == len(data) == manifest.metrics[artifact.precision]["bytes"]
    assert trained.model_path.name == manifest.selected


def test_every_variant_reports_its_metrics_size_and_latency(trained: TrainingResult) -> None:
    metrics = trained.manifest.metrics
    assert list(metrics) == ["fp32", "int8-dynamic", "int8-static"]
    for values in metrics.values():
        assert set(values) == {"accuracy", "macro_f1", "holdout_rows", "bytes", "latency_us_p50"}
        assert values["latency_us_p50"] > 0
    assert metrics["int8-dynamic"]["bytes"] < metrics["fp32"]["bytes"] / 2, "INT8 weights are a quarter of fp32"


def test_the_gate_selects_the_smallest_variant_within_one_point_of_fp32(trained: TrainingResult) -> None:
    manifest = trained.manifest
    gate = manifest.gate
    assert (gate.metric, gate.bound, gate.reference, gate.minimum) == ("accuracy", 0.01, "fp32", None)
    assert gate.passed
    assert manifest.deployable
    assert trained.failure is None
    passing = [p for p in manifest.metrics if p not in gate.rejected]
    assert all(manifest.metrics["fp32"]["accuracy"] - manifest.metrics[p]["accuracy"] <= 0.01 for p in passing)
    smallest = min(passing, key=lambda p: manifest.metrics[p]["bytes"])
    assert manifest.selected_artifact.precision == smallest
    assert gate.drop == pytest.approx(manifest.metrics["fp32"]["accuracy"] - manifest.holdout_accuracy, abs=1e-6)


def test_the_device_loader_verifies_and_self_tests_the_selected_variant(trained: TrainingResult) -> None:
    loaded = load_model(trained.model_path.parent, version=1)
    labels, _ = loaded.predict(trained.x_holdout)
    assert float(np.mean(labels == trained.y_holdout)) == pytest.approx(trained.manifest.holdout_accuracy, abs=1e-6)


def test_holdout_accuracy_of_the_exported_model_is_at_least_095(trained: TrainingResult) -> None:
    manifest = trained.manifest
    assert manifest.holdout_accuracy >= 0.95
    assert manifest.metrics["fp32"]["macro_f1"] >= 0.95
    assert manifest.metrics["fp32"]["holdout_rows"] == len(trained.y_holdout) == 360


def test_reported_accuracy_is_what_onnxruntime_gives_for_every_shipped_variant(trained: TrainingResult) -> None:
    for artifact in trained.manifest.artifacts:
        _, probabilities = _session(trained.model_path.parent / artifact.file).run(None, {"input": trained.x_holdout})
        accuracy = float(np.mean(probabilities.argmax(axis=1) == trained.y_holdout))
        assert accuracy == pytest.approx(trained.manifest.metrics[artifact.precision]["accuracy"], abs=1e-6)


def test_golden_rows_are_what_the_selected_variant_predicts(trained: TrainingResult) -> None:
    golden = ModelManifest.from_json(trained.manifest_path.read_text()).golden
    assert len(golden.inputs) == 8
    assert len(set(golden.labels)) == 8, "golden rows should cover different classes"
    _, probabilities = _session(trained.model_path).run(None, {"input": np.asarray(golden.inputs, dtype=np.float32)})
    assert probabilities.argmax(axis=1).tolist() == list(golden.labels)


def test_every_variant_keeps_the_signature_the_device_feeds(trained: TrainingResult) -> None:
    for artifact in trained.manifest.artifacts:
        session = _session(trained.model_path.parent / artifact.file)
        (inp,) = session.get_inputs()
        assert (inp.name, inp.type, inp.shape) == ("input", "tensor(float)", [None, 64])
        outputs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
        kind, (batch, classes) = outputs["probabilities"]
        assert (kind, classes) == ("tensor(float)", 10)
        assert not isinstance(batch, int), "any batch size (None or a symbolic name)"
        _, probabilities = session.run(None, {"input": trained.x_holdout[:5]})
        assert probabilities.sum(axis=1) == pytest.approx(np.ones(5), abs=1e-5)


def test_onnx_metadata_of_every_variant_carries_the_lineage_and_its_precision(trained: TrainingResult) -> None:
    for artifact in trained.manifest.artifacts:
        props = {p.key: p.value for p in onnx.load(str(trained.model_path.parent / artifact.file)).metadata_props}
        assert props["model_name"] == "digits"
        assert props["training_job"] == "job-123"
        assert props["dataset_sha256"] == trained.manifest.lineage.dataset_sha256
        assert props["code_version"] == edgeloop.__version__
        assert props["precision"] == artifact.precision


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
        "family": "mlp",
        "hidden": "64",
        "max_iter": "200",
        "seed": "0",
        "holdout_fraction": "0.2",
        "gate_metric": "accuracy",
        "gate_bound": "0.01",
    }
    assert lineage.parent_version is None


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
    assert body["gate"] == trained.manifest.gate.to_dict()
    assert body["selected"] == trained.manifest.selected
    assert body["training_job"] == "job-123"
    assert body["sklearn_accuracy"] == pytest.approx(trained.sklearn_accuracy, abs=1e-6)
