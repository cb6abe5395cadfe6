"""A real (small) ONNX classifier and model-component folders laid out as Greengrass unpacks them."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from support import FP32_GATE, uniform_baseline

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
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE
from edgeloop.device.signing import sign_manifest

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
        gate=FP32_GATE,
        baseline=uniform_baseline(tuple(f"pixel_{i}" for i in range(WIDTH)), 0.0, 16.0),
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


@pytest.fixture(scope="session")
def signing_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key standing in for the KMS ECC_NIST_P256 key of the model pipeline."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def public_key_pem(signing_key: ec.EllipticCurvePrivateKey) -> str:
    """The signing key's public half as the component configuration carries it (modelPublicKey)."""
    return public_pem(signing_key)


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """A private key's public half as PEM text."""
    encoded = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return encoded.decode()


@pytest.fixture
def sign_model_dir(signing_key: ec.EllipticCurvePrivateKey) -> Callable[[Path], Path]:
    """Write manifest.json.sig next to a model folder's manifest, signed with the session's key."""

    def sign(folder: Path) -> Path:
        signature = sign_manifest((folder / MANIFEST_FILE).read_bytes(), signing_key)
        (folder / MANIFEST_SIGNATURE_FILE).write_bytes(signature)
        return folder

    return sign


# --- foreign models (helper E): ONNX graphs edgeloop did not train, to show any model with a manifest works ---


@dataclass(frozen=True)
class ForeignModel:
    """An ONNX model from elsewhere, its manifest, rows in range and the labels a reference gives them."""

    onnx: bytes
    manifest: ModelManifest
    rows: np.ndarray
    labels: np.ndarray


ForeignDirFactory = Callable[..., Path]


def foreign_manifest(
    name: str, onnx: bytes, *, input_name: str, output: str, rows: np.ndarray, labels: np.ndarray, classes: int
) -> ModelManifest:
    """A manifest for someone else's model: features, range and golden rows taken from the given rows."""
    return ModelManifest(
        model_name=name,
        created_at="2026-11-01T00:00:00Z",
        artifacts=(
            Artifact(file=ARTIFACT, sha256=hashlib.sha256(onnx).hexdigest(), bytes=len(onnx), precision="fp32"),
        ),
        selected=ARTIFACT,
        input=InputSchema(
            name=input_name,
            dtype="float32",
            features=tuple(f"f{i}" for i in range(rows.shape[1])),
            minimum=float(np.floor(rows.min())),
            maximum=float(np.ceil(rows.max())),
        ),
        output=OutputSchema(probabilities=output),
        labels=tuple(f"class-{i}" for i in range(classes)),
        metrics={"fp32": {"accuracy": 0.9}},
        golden=Golden(
            inputs=tuple(tuple(float(v) for v in row) for row in rows[:4]),
            labels=tuple(int(v) for v in labels[:4]),
        ),
        lineage=Lineage(dataset="tests", dataset_sha256="0" * 64, training_job="tests", code_version="tests"),
        gate=FP32_GATE,
        baseline=uniform_baseline(
            tuple(f"f{i}" for i in range(rows.shape[1])), float(np.floor(rows.min())), float(np.ceil(rows.max()))
        ),
    )


def softmax_image_model(batch: int | str = "N", channels: int = 1) -> ForeignModel:
    """An onnx.helper graph taking [batch, channels, 8, 8] images: Flatten, MatMul, Add, Softmax."""
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(7)
    width = channels * 64
    weights = rng.normal(size=(width, 10)).astype(np.float32)
    bias = rng.normal(size=10).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "image",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [batch, channels, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 10])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx = model.SerializeToString()
    x, _ = load_digits(return_X_y=True)
    rows = np.tile(x[:40], (1, channels)).astype(np.float32)
    labels = (rows @ weights + bias).argmax(axis=1)
    manifest = foreign_manifest(
        "pixels", onnx, input_name="pixels", output="probs", rows=rows, labels=labels, classes=10
    )
    return ForeignModel(onnx, manifest, rows, labels)


def iris_logistic_regression(*, double: bool = False, zipmap: bool = False) -> ForeignModel:
    """skl2onnx's LogisticRegression on iris: float or double input, probabilities as a tensor or a ZipMap."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=500).fit(x, y)
    tensor = DoubleTensorType if double else FloatTensorType
    model = to_onnx(
        classifier,
        initial_types=[("measurements", tensor([None, 4]))],
        options={"zipmap": zipmap},
        target_opset=17,
    )
    onnx = model.SerializeToString()
    output = "output_probability" if zipmap else "probabilities"
    rows = x[::10] if double else x[::10].astype(np.float32)
    labels = classifier.predict(rows)
    manifest = foreign_manifest(
        "iris", onnx, input_name="measurements", output=output, rows=rows, labels=labels, classes=3
    )
    return ForeignModel(onnx, manifest, rows, labels)


@pytest.fixture
def make_foreign_dir(model_root: Path) -> ForeignDirFactory:
    """Write a foreign model (or bare ONNX bytes and a manifest) as a model component version."""

    def make(
        model: ForeignModel | None = None,
        version: int = 1,
        *,
        manifest: ModelManifest | None = None,
        onnx: bytes | None = None,
    ) -> Path:
        chosen = manifest or (model.manifest if model else None)
        body = onnx or (model.onnx if model else None)
        assert chosen is not None, "give a ForeignModel or a manifest"
        assert body is not None, "give a ForeignModel or the onnx bytes"
        folder = model_root / model_component_name(chosen.model_name) / component_version(version)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ARTIFACT).write_bytes(body)
        (folder / MANIFEST_FILE).write_text(chosen.to_json())
        return folder

    return make


@pytest.fixture(scope="session")
def image_model() -> ForeignModel:
    """[N, 1, 8, 8] images, a manifest listing 64 features."""
    return softmax_image_model()


@pytest.fixture(scope="session")
def fixed_batch_image_model() -> ForeignModel:
    """[1, 1, 8, 8]: a model exported with its batch dimension fixed to one."""
    return softmax_image_model(batch=1)


@pytest.fixture(scope="session")
def three_channel_image_model() -> ForeignModel:
    """[N, 3, 8, 8]: 192 values per row."""
    return softmax_image_model(channels=3)


@pytest.fixture(scope="session")
def iris_model() -> ForeignModel:
    """skl2onnx LogisticRegression, float input, probabilities as a tensor."""
    return iris_logistic_regression()


@pytest.fixture(scope="session")
def iris_double_model() -> ForeignModel:
    """skl2onnx LogisticRegression taking tensor(double)."""
    return iris_logistic_regression(double=True)


@pytest.fixture(scope="session")
def iris_zipmap_model() -> ForeignModel:
    """skl2onnx LogisticRegression with its default ZipMap output (a sequence of maps)."""
    return iris_logistic_regression(zipmap=True)


@pytest.fixture(scope="session")
def make_foreign_manifest() -> Callable[..., ModelManifest]:
    """foreign_manifest, for tests that build their own graph."""
    return foreign_manifest
