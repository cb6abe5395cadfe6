"""Simulated bad candidates for `edgeloop demo --inject-bad-model`, and where each one must be stopped.

Every builder here is a simulation: it stands in for a bad training run, a slow export, an attacker or a
pipeline bug, so the demo can show the defence meant for it doing its job. Two kinds look honest to the
devices and must be caught by the canary's gates (inaccurate: confidence_drop; slow: p99_latency_ratio);
two never pass device verification (tampered: the artifact's SHA-256; selftest: the golden rows), so no
device ever answers with them and the deployment's job-failure gate reverts the ring.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from edgeloop.cloud.artifacts import ArtifactStore
from edgeloop.core.errors import EdgeloopError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.local.sim.scenario import BadKind
from edgeloop.training import model as mdl
from edgeloop.training.variants import latency_us_p50

DEVICE_VERIFICATION = "device verification"
CANARY_GATE = "canary gate"


@dataclass(frozen=True)
class Stop:
    """Where a kind must be stopped (device verification or a canary gate) and what must name it there."""

    by: str
    what: str
    """The failing gate's name, or the verification failure's short name."""

    @property
    def on_device(self) -> bool:
        """Stopped before activation: no device may ever answer with the version."""
        return self.by == DEVICE_VERIFICATION


EXPECTED_STOPS: Mapping[BadKind, Stop] = MappingProxyType(
    {
        BadKind.INACCURATE: Stop(CANARY_GATE, "confidence_drop"),
        BadKind.SLOW: Stop(CANARY_GATE, "p99_latency_ratio"),
        BadKind.TAMPERED: Stop(DEVICE_VERIFICATION, "sha256 mismatch"),
        BadKind.SELFTEST: Stop(DEVICE_VERIFICATION, "self-test failed"),
    }
)

DESCRIPTIONS: Mapping[BadKind, str] = MappingProxyType(
    {
        BadKind.INACCURATE: "labels shuffled before training",
        BadKind.SLOW: "honest classifier with a heavy, output-neutral extra subgraph",
        BadKind.TAMPERED: "honest model whose artifact is modified in S3 after signing",
        BadKind.SELFTEST: "signed manifest whose golden labels do not match the model",
    }
)
"""What each simulated kind is, for the demo's progress lines."""


# --- inaccurate: trained on shuffled labels ---------------------------------------------------------

INACCURATE_MAX_ITER = 30
"""Trained briefly as well, so it answers unsurely (the canary's confidence_drop gate sees that)."""


def shuffled_digits(train_dir: Path, seed: int) -> dict[str, Any]:
    """TrainingConfig fields for the inaccurate kind: the digits rows with their labels permuted (simulation).

    Its manifest, golden rows and gate come honestly from that model, so device verification passes it.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    train_dir.mkdir(parents=True, exist_ok=True)
    labels = np.random.default_rng(seed + 1).permutation(digits.target)
    names = np.array([f"pixel_{i}" for i in range(digits.data.shape[1])])
    np.savez(train_dir / "shuffled.npz", features=digits.data.astype(np.float32), label=labels, feature_names=names)
    return {"dataset": "npz", "train_dir": train_dir, "max_iter": INACCURATE_MAX_ITER}


# --- slow: the same answers, much later ----------------------------------------------------------------

SLOW_ROWS = 256
SLOW_WIDTH = 256
SLOW_LAYERS = 300
"""The extra subgraph: the first input row tiled to SLOW_ROWS rows through SLOW_LAYERS [SLOW_WIDTH]^2 MatMul+Tanh
layers sharing one weight matrix (so the file stays small, ~370 kB). It costs a fixed 100-300 ms per session run on
one core of the demo's host, whatever the batch size, against ~10 µs for the classifier itself."""
SLOW_LATENCY_ROWS = 4
"""Holdout rows timed (after as many warm-up runs) when the slow artifact's latency is measured for its manifest."""
_SLOW = "edgeloop_slow_"


def heavy_subgraph(model: bytes, *, layers: int = SLOW_LAYERS, rows: int = SLOW_ROWS) -> bytes:
    """The model with a costly subgraph whose result (exactly zero) is added to `probabilities` (simulation).

    It reads the first input row, so onnxruntime cannot fold it away; multiplying by a zero matrix and adding
    leaves every probability bit for bit as it was, so accuracy, labels and golden rows stay true.
    """
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(model)
    graph = proto.graph
    features = _dim(graph.input, mdl.INPUT_NAME, 1)
    producer = next(n for n in graph.node if mdl.PROBABILITIES_OUTPUT in n.output)
    unslowed = f"{_SLOW}probabilities"
    producer.output[list(producer.output).index(mdl.PROBABILITIES_OUTPUT)] = unslowed
    rng = np.random.default_rng(0)
    weights = {
        "first": np.array([0], dtype=np.int64),
        "repeats": np.array([rows, 1], dtype=np.int64),
        "w_in": (rng.standard_normal((features, SLOW_WIDTH)) / np.sqrt(features)).astype(np.float32),
        "w": (rng.standard_normal((SLOW_WIDTH, SLOW_WIDTH)) / np.sqrt(SLOW_WIDTH)).astype(np.float32),
        "zero": np.zeros((SLOW_WIDTH, 1), dtype=np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(v, f"{_SLOW}{k}") for k, v in weights.items())

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> None:
        graph.node.append(helper.make_node(op, [f"{_SLOW}{i}" for i in inputs], [f"{_SLOW}{output}"], **attrs))

    graph.node.append(helper.make_node("Gather", [mdl.INPUT_NAME, f"{_SLOW}first"], [f"{_SLOW}row"], axis=0))
    node("Tile", ["row", "repeats"], "tiled")
    node("MatMul", ["tiled", "w_in"], "pre0")
    node("Tanh", ["pre0"], "h0")
    for i in range(1, layers + 1):
        node("MatMul", [f"h{i - 1}", "w"], f"pre{i}")
        node("Tanh", [f"pre{i}"], f"h{i}")
    node("MatMul", [f"h{layers}", "zero"], "zeros")
    node("Gather", ["zeros", "first"], "nothing", axis=0)
    graph.node.append(helper.make_node("Add", [unslowed, f"{_SLOW}nothing"], [mdl.PROBABILITIES_OUTPUT]))
    onnx.checker.check_model(proto)
    data: bytes = proto.SerializeToString()
    return data


def _dim(values: Any, name: str, axis: int) -> int:
    """A fixed dimension of a graph input or output."""
    value = next(v for v in values if v.name == name)
    return int(value.type.tensor_type.shape.dim[axis].dim_value)


def slow_down(model_dir: Path, x_holdout: np.ndarray) -> ModelManifest:
    """Make the trained model's selected artifact slow (simulation) and rewrite its manifest entry honestly.

    The artifact's digest, size and measured latency are the slow file's own; accuracy stays because the
    answers are unchanged (checked here on the holdout), so registry and devices see an honest model.
    """
    manifest = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    path, artifact = model_dir / manifest.selected, manifest.selected_artifact
    before = path.read_bytes()
    slow = heavy_subgraph(before)
    session = mdl.session(slow)
    if not np.array_equal(mdl.predict_onnx(before, x_holdout)[1], mdl.predict_onnx(session, x_holdout)[1]):
        raise EdgeloopError("the slow subgraph changed the model's answers; it must be output-neutral")
    path.write_bytes(slow)
    metrics = dict(manifest.metrics)
    metrics[artifact.precision] = {
        **metrics[artifact.precision],
        "bytes": float(len(slow)),
        "latency_us_p50": latency_us_p50(session, x_holdout[:SLOW_LATENCY_ROWS]),
    }
    rewritten = replace(artifact, sha256=hashlib.sha256(slow).hexdigest(), bytes=len(slow))
    artifacts = tuple(rewritten if a.file == artifact.file else a for a in manifest.artifacts)
    return _rewrite(model_dir, replace(manifest, artifacts=artifacts, metrics=metrics))


# --- selftest: golden rows that do not match the model -------------------------------------------------


def wrong_golden(model_dir: Path) -> ModelManifest:
    """Pair the golden rows with each other's expected labels (a simulated pipeline bug) and rewrite the manifest.

    The artifact is untouched and the manifest is signed as published, so digest and signature pass on the
    device; only the self-test can see that the expected outputs are not what this model computes.
    """
    manifest = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    golden = manifest.golden
    shifted = golden.labels[1:] + golden.labels[:1]
    computed, _ = mdl.predict_onnx((model_dir / manifest.selected).read_bytes(), np.asarray(golden.inputs))
    if list(shifted) == computed.tolist():
        raise EdgeloopError("shifting the golden labels left them matching the model; no self-test would fail")
    return _rewrite(model_dir, replace(manifest, golden=replace(golden, labels=shifted)))


def _rewrite(model_dir: Path, manifest: ModelManifest) -> ModelManifest:
    (model_dir / MANIFEST_FILE).write_text(manifest.to_json())
    return manifest


# --- tampered: the stored artifact changed after signing -----------------------------------------------


def tamper(store: ArtifactStore, artifact_uri: str) -> bytes:
    """Replace the published artifact with a still-loadable model of other weights (a simulated attacker).

    Every float initializer is negated: the file is valid ONNX that answers differently, so only the
    SHA-256 the signed manifest carries can tell it from the model that was gated and signed.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(store.get(artifact_uri))
    for index, tensor in enumerate(proto.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32:
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(-values, tensor.name))
    tampered: bytes = proto.SerializeToString()
    store.put(artifact_uri, tampered)
    return tampered


# --- where it was stopped ------------------------------------------------------------------------------

VERIFICATION_FAILURES: tuple[tuple[str, str], ...] = (
    ("sha256 is", "sha256 mismatch"),
    ("bytes, manifest expects", "size mismatch"),
    ("does not verify", "signature invalid"),
    ("unsigned:", "signature missing"),
    ("self-test failed", "self-test failed"),
)
"""Phrases of the device's verification errors (edgeloop.device.onnx_model, .signing) and their short names."""
DETAIL_CHARS = 120


def verification_failure(detail: str) -> str:
    """The short name of a device's verification failure, or the (clipped) detail when none matches."""
    for phrase, name in VERIFICATION_FAILURES:
        if phrase in detail:
            return name
    return detail[:DETAIL_CHARS]


def stopped_by(revert_reason: str | None, device_failures: list[str]) -> str | None:
    """Where a reverted version was stopped: the devices' verification, else the ring's gates that failed.

    revert_reason is the controller's "ring <name> failed: <gates>" decision, device_failures the details
    of the version's failed deployments (each device's verification error).
    """
    if device_failures:
        names = sorted({verification_failure(d) for d in device_failures})
        return f"{DEVICE_VERIFICATION}: {', '.join(names)}"
    return reverted_by(revert_reason)


def reverted_by(revert_reason: str | None) -> str | None:
    """The controller's revert decision as '<ring> gate: <failed gates>'."""
    if revert_reason is None:
        return None
    ring, failed, gates = revert_reason.partition(" failed: ")
    return f"{ring.removeprefix('ring ')} gate: {gates}" if failed else revert_reason
