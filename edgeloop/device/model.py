"""The model manager's loader: trust nothing on disk until its digest, shape and self-test check out."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edgeloop.core.errors import IntegrityError, ModelFormatError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest

log = logging.getLogger(__name__)

ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    value
    for value in vars(ort_state).values()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == ort_state.__name__
)
"""onnxruntime's exceptions all derive straight from Exception, so they are listed rather than caught broadly."""

_NUMERIC_KINDS = "fiu"


@dataclass(frozen=True)
class ScreenedBatch:
    """A batch split into the rows the model may see and the rows refused, with why."""

    matrix: np.ndarray
    accepted: tuple[int, ...]
    rejected: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, self-tested onnxruntime session and the manifest that vouches for it."""

    manifest: ModelManifest
    version: int
    session: ort.InferenceSession = field(repr=False)

    @property
    def width(self) -> int:
        """Features per request."""
        return self.manifest.input.width

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Label indices and their probabilities for a screened float32 batch of shape [n, width]."""
        if batch.shape[0] == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        names = [self.manifest.output.probabilities]
        try:
            (probabilities,) = self.session.run(names, {self.manifest.input.name: batch})
        except ORT_ERRORS as exc:
            raise ModelFormatError(f"inference failed: {exc}") from exc
        expected = (batch.shape[0], len(self.manifest.labels))
        if probabilities.shape != expected:
            raise ModelFormatError(f"output {names[0]!r} has shape {probabilities.shape}, expected {expected}")
        labels = probabilities.argmax(axis=1)
        return labels, probabilities[np.arange(len(labels)), labels]

    def check_input(self, row: object) -> str | None:
        """Why one request's features cannot be fed to the model, or None when they can."""
        try:
            values = np.asarray(row)
        except (ValueError, TypeError):
            return "features must be a flat list of numbers"
        return self._row_reason(values)

    def screen(self, rows: Sequence[object]) -> ScreenedBatch:
        """Check a whole batch with numpy at once; only the bad rows are looked at one by one."""
        matrix = _as_matrix(rows, self.width)
        if matrix is None:
            return self._screen_rows(rows)
        schema = self.manifest.input
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(matrix).all(axis=1) | (matrix < schema.minimum).any(axis=1)
            bad |= (matrix > schema.maximum).any(axis=1)
        rejected = {int(i): self._bad_row_reason(matrix[i]) for i in np.flatnonzero(bad)}
        accepted = tuple(int(i) for i in np.flatnonzero(~bad))
        return ScreenedBatch(matrix[~bad].astype(np.float32), accepted, rejected)

    def _screen_rows(self, rows: Sequence[object]) -> ScreenedBatch:
        reasons = [self.check_input(row) for row in rows]
        accepted = tuple(i for i, reason in enumerate(reasons) if reason is None)
        matrix = np.array([rows[i] for i in accepted], dtype=np.float32).reshape(len(accepted), self.width)
        rejected = {i: reason for i, reason in enumerate(reasons) if reason is not None}
        return ScreenedBatch(matrix, accepted, rejected)

    def _bad_row_reason(self, values: np.ndarray) -> str:
        reason = self._row_reason(values)
        assert reason is not None, "the vectorized screen and the row check disagree"
        return reason

    def _row_reason(self, values: np.ndarray) -> str | None:
        schema = self.manifest.input
        if values.ndim != 1:
            return "features must be a flat list of numbers"
        if values.shape[0] != self.width:
            return f"expected {self.width} features, got {values.shape[0]}"
        if values.dtype.kind not in _NUMERIC_KINDS:
            return "features must all be numbers (not text, booleans or null)"
        finite = np.isfinite(values)
        if not finite.all():
            return f"feature {schema.features[int(np.argmin(finite))]!r} is NaN or infinite"
        outside = np.flatnonzero((values < schema.minimum) | (values > schema.maximum))
        if outside.size:
            i = int(outside[0])
            return f"feature {schema.features[i]!r} = {values[i]} is outside [{schema.minimum}, {schema.maximum}]"
        return None


def _as_matrix(rows: Sequence[object], width: int) -> np.ndarray | None:
    """The batch as a float64 [n, width] array, or None when some row is ragged or not numeric."""
    try:
        matrix = np.asarray(rows)
    except (ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or matrix.dtype.kind not in _NUMERIC_KINDS:
        return None
    return matrix.astype(np.float64, copy=False)


def load_model(model_dir: Path, *, version: int, intra_op_threads: int = 1) -> LoadedModel:
    """Verify, load, check and self-test the model in a model component's artifact folder."""
    manifest = read_manifest(model_dir)
    artifact_path = model_dir / manifest.selected
    verify_artifact(artifact_path, manifest)
    session = _open_session(artifact_path, intra_op_threads)
    _check_signature(session, manifest)
    model = LoadedModel(manifest=manifest, version=version, session=session)
    _self_test(model)
    _warm_up(model)
    log.info("loaded %s v%d from %s", manifest.model_name, version, artifact_path)
    return model


def read_manifest(model_dir: Path) -> ModelManifest:
    """Parse the manifest that ships next to the artifact."""
    path = model_dir / MANIFEST_FILE
    try:
        return ModelManifest.from_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise NotFoundError(f"no {MANIFEST_FILE} in {model_dir}") from exc


def verify_artifact(path: Path, manifest: ModelManifest) -> None:
    """Refuse an artifact whose size or SHA-256 differs from the manifest's claim."""
    expected = manifest.selected_artifact
    try:
        with path.open("rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError as exc:
        raise NotFoundError(f"model artifact {path} is missing") from exc
    if actual != expected.sha256:
        raise IntegrityError(f"{path.name}: sha256 is {actual}, manifest expects {expected.sha256}")
    size = path.stat().st_size
    if size != expected.bytes:
        raise IntegrityError(f"{path.name}: {size} bytes, manifest expects {expected.bytes}")


def _open_session(path: Path, intra_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise ModelFormatError(f"{path.name} is not a loadable ONNX model: {exc}") from exc


def _check_signature(session: ort.InferenceSession, manifest: ModelManifest) -> None:
    """The session must take exactly the manifest's input and produce its probabilities output."""
    inputs = {i.name: i for i in session.get_inputs()}
    schema = manifest.input
    if list(inputs) != [schema.name]:
        raise ModelFormatError(f"model inputs are {list(inputs)}, manifest declares only {schema.name!r}")
    declared = inputs[schema.name]
    if declared.type != "tensor(float)":
        raise ModelFormatError(f"input {schema.name!r} is {declared.type}, manifest says {schema.dtype}")
    width = declared.shape[-1] if declared.shape else None
    if isinstance(width, int) and width != schema.width:
        raise ModelFormatError(f"input {schema.name!r} takes {width} features, manifest lists {schema.width}")
    outputs = [o.name for o in session.get_outputs()]
    if manifest.output.probabilities not in outputs:
        raise ModelFormatError(f"model outputs are {outputs}, no {manifest.output.probabilities!r}")


def _self_test(model: LoadedModel) -> None:
    """The golden inputs must give the golden labels, or the artifact is not the model that was gated."""
    golden = model.manifest.golden
    if not golden.inputs:
        return
    labels, _ = model.predict(np.asarray(golden.inputs, dtype=np.float32))
    wrong = [i for i, (got, want) in enumerate(zip(labels.tolist(), golden.labels, strict=True)) if got != want]
    if wrong:
        raise ModelFormatError(
            f"self-test failed: {len(wrong)} of {len(golden.labels)} golden rows differ "
            f"(first: row {wrong[0]} gave {labels[wrong[0]]}, expected {golden.labels[wrong[0]]})"
        )


def _warm_up(model: LoadedModel) -> None:
    """One run at the middle of the input range, so the first real request does not pay for allocation."""
    schema = model.manifest.input
    middle = (schema.minimum + schema.maximum) / 2
    model.predict(np.full((1, schema.width), middle, dtype=np.float32))
