"""A real (small) ONNX classifier and model-component folders laid out as Greengrass unpacks them."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from edgeloop.core.manifest import (
    MANIFEST_FILE,
    Artifact,
    Golden,
    InputSchema,
    Lineage,
    ModelManifest,
    OutputSchema,
)
from edgeloop.core.names import component_version, model_component_name

MODEL_NAME = "digits"
ARTIFACT = "model.onnx"
WIDTH = 64


@dataclass(frozen=True)
class DigitsModel:
    """An ONNX logistic regression on sklearn's digits, with rows and the labels it gives them."""

    onnx: bytes
    rows: np.ndarray
    labels: np.ndarray


@pytest.fixture(scope="session")
def digits_model() -> DigitsModel:
    """Trained once per session (well under a second)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = LogisticRegression(max_iter=100).fit(x[:500], y[:500])
    onnx = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, WIDTH]))],
        final_types=[("label", Int64TensorType([None])), ("probabilities", FloatTensorType([None, 10]))],
        options={"zipmap": False},
        target_opset=17,
    )
    import onnxruntime as ort

    session = ort.InferenceSession(onnx.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = x[500:564]
    (probabilities,) = session.run(["probabilities"], {"input": rows})
    return DigitsModel(onnx.SerializeToString(), rows, probabilities.argmax(axis=1))


def digits_manifest(model: DigitsModel, artifact: bytes) -> ModelManifest:
    """A valid manifest for an artifact, with eight golden rows from the real model."""
    return ModelManifest(
        model_name=MODEL_NAME,
        created_at="2026-11-01T00:00:00Z",
        artifacts=(
            Artifact(file=ARTIFACT, sha256=hashlib.sha256(artifact).hexdigest(), bytes=len(artifact), precision="fp32"),
        ),
        selected=ARTIFACT,
        input=InputSchema(
            name="input",
            dtype="float32",
            features=tuple(f"pixel_{i}" for i in range(WIDTH)),
            minimum=0.0,
            maximum=16.0,
        ),
        output=OutputSchema(probabilities="probabilities"),
        labels=tuple(str(d) for d in range(10)),
        metrics={"fp32": {"accuracy": 0.95}},
        golden=Golden(
            inputs=tuple(tuple(float(v) for v in row) for row in model.rows[:8]),
            labels=tuple(int(v) for v in model.labels[:8]),
        ),
        lineage=Lineage(dataset="sklearn:digits", dataset_sha256="0" * 64, training_job="tests", code_version="tests"),
    )


ModelDirFactory = Callable[..., Path]


@pytest.fixture
def model_root(tmp_path: Path) -> Path:
    """The Greengrass artifacts root: <root>/<component>/<version>/."""
    return tmp_path / "packages" / "artifacts"


@pytest.fixture
def make_model_dir(model_root: Path, digits_model: DigitsModel) -> ModelDirFactory:
    """Write a model component version; keyword overrides break it in one chosen way."""

    def make(
        version: int = 1,
        *,
        artifact: bytes | None = None,
        manifest: ModelManifest | None = None,
        edit: Callable[[ModelManifest], ModelManifest] | None = None,
    ) -> Path:
        body = digits_model.onnx if artifact is None else artifact
        chosen = manifest or digits_manifest(digits_model, body)
        if edit is not None:
            chosen = edit(chosen)
        folder = model_root / model_component_name(MODEL_NAME) / component_version(version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ARTIFACT).write_bytes(body)
        (folder / MANIFEST_FILE).write_text(chosen.to_json())
        return folder

    return make


@pytest.fixture
def wrong_golden() -> Callable[[ModelManifest], ModelManifest]:
    """A manifest edit whose golden labels the model will not reproduce."""

    def edit(manifest: ModelManifest) -> ModelManifest:
        labels = tuple((label + 1) % 10 for label in manifest.golden.labels)
        return replace(manifest, golden=replace(manifest.golden, labels=labels))

    return edit
