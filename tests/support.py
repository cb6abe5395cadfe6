"""Builders shared by every test tier (importable as `support`, since tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from edgeloop.core.compression import decompress
from edgeloop.core.manifest import (
    Artifact,
    Baseline,
    FeatureBaseline,
    Gate,
    Golden,
    InputSchema,
    Lineage,
    ModelManifest,
    OutputSchema,
)
from edgeloop.core.names import SAMPLES_TOPIC_FILTER, topic_matches
from edgeloop.core.records import Record, decode_batch

EVENTS_DIR = Path(__file__).parent / "events"


def decode_message(topic: str, payload: bytes) -> tuple[Record, ...]:
    """The records of any message a device published: a samples batch is gzip, the rest plain JSON."""
    return decode_batch(decompress(payload) if topic_matches(SAMPLES_TOPIC_FILTER, topic) else payload)


def load_event(name: str) -> dict[str, Any]:
    """A deep copy of a real-shaped sample event from tests/events/, safe to mutate."""
    return copy.deepcopy(json.loads((EVENTS_DIR / f"{name}.json").read_text()))


def manifest_for(artifact: bytes, *, model_name: str = "digits", accuracy: float = 0.97) -> ModelManifest:
    """A valid manifest describing `artifact` (a 4-feature, 3-class classifier)."""
    return ModelManifest(
        model_name=model_name,
        created_at="2026-11-24T12:00:00Z",
        artifacts=(Artifact("model.onnx", hashlib.sha256(artifact).hexdigest(), len(artifact), "fp32"),),
        selected="model.onnx",
        input=InputSchema("input", "float32", ("a", "b", "c", "d"), 0.0, 16.0),
        output=OutputSchema("probabilities"),
        labels=("0", "1", "2"),
        metrics={"fp32": {"accuracy": accuracy}},
        golden=Golden(inputs=((1.0, 2.0, 3.0, 4.0),), labels=(1,)),
        lineage=Lineage("builtin:test", "0" * 64, "job-1", "0.1.0", {"seed": "0"}),
        gate=FP32_GATE,
        baseline=uniform_baseline(("a", "b", "c", "d"), 0.0, 16.0),
    )


FP32_GATE = Gate(metric="accuracy", bound=0.01, drop=0.0, passed=True)
"""The gate of a manifest whose only variant is fp32: nothing to compare, so it passes."""


def uniform_baseline(features: tuple[str, ...], low: float, high: float) -> Baseline:
    """A baseline of features spread evenly over [low, high] in four bins, for manifests built by hand."""
    step = (high - low) / 4 if high > low else 0.25
    edges = (low + step, low + 2 * step, low + 3 * step)
    return Baseline(
        rows=100,
        features=tuple(FeatureBaseline(n, low + 2 * step, step * 2, low, high, edges, (0.25,) * 4) for n in features),
        confidence_mean=0.9,
        confidence_edges=(0.5, 0.9),
        confidence_fractions=(0.1, 0.3, 0.6),
    )


def model_tarball(files: dict[str, bytes]) -> bytes:
    """A SageMaker-style model.tar.gz holding the given files under ./ as the training job writes them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tiny_onnx_model() -> bytes:
    """A real, loadable ONNX model (Identity over 3 floats) for tests that move, hash and recognise models."""
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["input"], ["probabilities"])
    graph = helper.make_graph(
        [node],
        "edgeloop-test",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


FAKE_ONNX = tiny_onnx_model()
"""A genuine ONNX model's bytes; the cloud side never runs it, it verifies, moves and hashes it."""


class FakeClock:
    """A settable clock for code that takes `clock: Callable[[], float]`."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LocalKeySigner:
    """The in-memory ManifestSigner: a P-256 key in process (the device's own signing helper), for tests."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = "local-test-key"

    def sign(self, manifest: bytes) -> bytes:
        from edgeloop.device.signing import sign_manifest

        return sign_manifest(manifest, self._key)

    def public_key_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


def kms_signing_key(kms: Any, *, key_spec: str = "ECC_NIST_P256", key_usage: str = "SIGN_VERIFY") -> str:
    """Create a KMS key (on moto) and return its id; the defaults are the manifest-signing key's."""
    key: str = kms.create_key(KeySpec=key_spec, KeyUsage=key_usage, Description="edgeloop test")["KeyMetadata"]["KeyId"]
    return key
