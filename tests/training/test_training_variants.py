"""The accuracy gate end to end: a damaged variant is measured, rejected and never shipped; the tree family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeloop.core.errors import ModelFormatError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.device.onnx_model import load_model
from edgeloop.training import TrainingConfig, TrainingResult, main, train
from edgeloop.training.variants import BUILDERS, quantize_dynamic_int8


def _config(root: Path, **overrides: object) -> TrainingConfig:
    values: dict[str, object] = {"model_dir": root / "model", "model_name": "digits", "hidden": (16,), "max_iter": 80}
    return TrainingConfig(**{**values, **overrides})  # type: ignore[arg-type]


def _scrambled(model: bytes) -> bytes:
    """The same graph with the last layer's weight columns reversed: same signature, wrong classes."""
    proto = onnx.load_from_string(model)
    weights = {i.name: i for i in proto.graph.initializer}
    last = [n for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights][-1]
    tensor = weights[last.input[1]]
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor)[:, ::-1].copy(), tensor.name))
    data: bytes = proto.SerializeToString()
    return data


def _damaged_dynamic(model: bytes, calibration: np.ndarray) -> bytes:
    """A dynamic INT8 variant built from a broken graph: the smallest file, and a useless one."""
    return quantize_dynamic_int8(_scrambled(model), calibration)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("damaged")
    return train(_config(root), builders={**BUILDERS, "int8-dynamic": _damaged_dynamic})


def test_a_variant_that_loses_accuracy_is_rejected_although_it_is_the_smallest(damaged: TrainingResult) -> None:
    manifest = damaged.manifest
    metrics = manifest.metrics
    assert metrics["int8-dynamic"]["bytes"] < min(metrics["fp32"]["bytes"], metrics["int8-static"]["bytes"])
    assert metrics["int8-dynamic"]["accuracy"] < 0.5
    reason = manifest.gate.rejected["int8-dynamic"]
    assert reason.startswith("accuracy drop ")
    assert reason.endswith("exceeds the bound 0.0100")
    assert manifest.selected_artifact.precision == "int8-static"
    assert manifest.gate.passed


def test_a_rejected_variant_is_measured_but_never_shipped(damaged: TrainingResult) -> None:
    manifest = damaged.manifest
    assert [a.precision for a in manifest.artifacts] == ["fp32", "int8-static"]
    model_dir = damaged.model_path.parent
    assert sorted(p.name for p in model_dir.iterdir()) == [MANIFEST_FILE, "model.int8-static.onnx", "model.onnx"]
    assert ModelManifest.from_json((model_dir / MANIFEST_FILE).read_text()).gate.rejected == manifest.gate.rejected
    load_model(model_dir, version=1)  # the device verifies and self-tests what was selected instead


def test_the_variant_table_shows_the_rejection_and_one_selected_row(damaged: TrainingResult) -> None:
    table = damaged.variant_table.splitlines()
    assert table[0].split()[:4] == ["precision", "file", "bytes", "accuracy"]
    rows = {line.split()[0]: line for line in table[1:4]}
    assert "(not shipped)" in rows["int8-dynamic"]
    assert "rejected: accuracy drop" in rows["int8-dynamic"]
    assert rows["int8-static"].endswith("pass <- selected")
    assert sum("<- selected" in line for line in table) == 1
    assert table[4] == "gate: accuracy drop <= 0.0100 vs fp32: passed; selected model.int8-static.onnx (int8-static)"


def test_static_int8_quantizes_activations_with_calibrated_ranges(damaged: TrainingResult) -> None:
    graph = onnx.load(str(damaged.model_path.parent / "model.int8-static.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") >= 4, "activations around both MatMuls, not only the weights"
    assert "DequantizeLinear" in ops


def test_a_variant_that_cannot_be_built_is_skipped_with_why_and_the_rest_ship(tmp_path: Path) -> None:
    def broken(model: bytes, calibration: np.ndarray) -> bytes:
        raise RuntimeError("quantizer fell over")

    def renamed(model: bytes, calibration: np.ndarray) -> bytes:
        proto = onnx.load_from_string(model)
        proto.graph.output[1].name = "scores"
        for node in proto.graph.node:
            node.output[:] = ["scores" if o == "probabilities" else o for o in node.output]
        data: bytes = proto.SerializeToString()
        return data

    result = train(_config(tmp_path), builders={"int8-dynamic": broken, "int8-static": renamed})
    assert result.skipped["int8-dynamic"] == "could not be built or run (RuntimeError: quantizer fell over)"
    assert result.skipped["int8-static"].startswith(f"could not be built or run ({ModelFormatError.__name__}: ")
    assert list(result.manifest.metrics) == ["fp32"]
    assert result.manifest.selected == "model.onnx"
    assert "skipped: could not be built or run (RuntimeError" in result.variant_table


def test_a_reference_below_the_minimum_fails_the_gate_and_only_fp32_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--out", str(tmp_path / "model"), "--hidden", "8", "--max-iter", "30", "--gate-minimum", "0.999"]
    assert main([*argv, "--parent-version", "7"], {}) == 0
    manifest = ModelManifest.from_json((tmp_path / "model" / MANIFEST_FILE).read_text())
    assert not manifest.deployable
    assert manifest.gate.minimum == 0.999
    assert sorted(manifest.gate.rejected) == ["int8-dynamic", "int8-static"]
    assert [a.file for a in manifest.artifacts] == ["model.onnx"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [MANIFEST_FILE, "model.onnx"]
    assert manifest.lineage.parent_version == 7
    assert manifest.lineage.hyperparameters["gate_minimum"] == "0.999"
    verdict = capsys.readouterr().out.splitlines()[-1]
    assert verdict.startswith("gate: accuracy drop <= 0.0100 vs fp32, fp32 accuracy >= 0.9990: FAILED (fp32 accuracy ")
    assert verdict.endswith("is below the minimum 0.9990); not deployable")


def test_a_declared_metric_and_bound_drive_the_gate(tmp_path: Path) -> None:
    result = train(_config(tmp_path, gate_metric="macro_f1", gate_bound=0.0))
    gate = result.manifest.gate
    assert (gate.metric, gate.bound) == ("macro_f1", 0.0)
    reference = result.manifest.metrics["fp32"]["macro_f1"]
    for precision, values in result.manifest.metrics.items():
        assert (precision in gate.rejected) == (values["macro_f1"] < reference)
    assert result.variant_table.splitlines()[0].split()[3] == "macro_f1"


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("forest")
    mlp_first = train(_config(root))  # the same model dir held an MLP's INT8 variants before
    assert len(mlp_first.manifest.artifacts) == 3
    return train(_config(root, family="trees", hidden=(64,), max_iter=200, n_estimators=20, max_depth=8))


def test_a_tree_ensemble_ships_fp32_only_and_says_why(forest: TrainingResult) -> None:
    manifest = forest.manifest
    assert [a.precision for a in manifest.artifacts] == ["fp32"]
    assert list(manifest.metrics) == ["fp32"]
    assert set(forest.skipped) == {"int8-dynamic", "int8-static"}
    assert all("tree ensembles do not quantize" in why for why in forest.skipped.values())
    assert manifest.holdout_accuracy >= 0.9
    assert manifest.lineage.hyperparameters["family"] == "trees"
    assert manifest.lineage.hyperparameters["n_estimators"] == "20"
    assert "hidden" not in manifest.lineage.hyperparameters


def test_a_tree_ensemble_gives_the_probabilities_tensor_the_device_reads(forest: TrainingResult) -> None:
    model_dir = forest.model_path.parent
    assert sorted(p.name for p in model_dir.iterdir()) == [MANIFEST_FILE, "model.onnx"], "stale INT8 files removed"
    loaded = load_model(model_dir, version=2)
    labels, confidences = loaded.predict(forest.x_holdout)
    assert float(np.mean(labels == forest.y_holdout)) == pytest.approx(forest.manifest.holdout_accuracy, abs=1e-6)
    assert confidences.dtype == np.float32
