"""A loaded model: a verified, self-tested onnxruntime session, its manifest, and the engine's fast runs.

Reading and checking the artifact (manifest, digest, self-test) is here too; sessions and their settings are
in onnx_session, input checks in input_screen.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from edgeloop.core.errors import IntegrityError, ModelFormatError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.device.input_screen import InputLayout, InputScreen, ScreenedBatch, input_layout
from edgeloop.device.onnx_session import (
    BATCH_MAX,
    BIND_ROWS_MAX,
    BINDING_ERRORS,
    FLOAT32,
    ORT_ERRORS,
    Binding,
    SessionPool,
    SessionRun,
    SessionSettings,
    open_session,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, self-tested onnxruntime session and the manifest that vouches for it."""

    manifest: ModelManifest
    version: int
    session: ort.InferenceSession = field(repr=False)
    layout: InputLayout | None = None
    """None means [N, width] float32, the layout edgeloop's own training exports."""
    _run_session: SessionRun = field(init=False, repr=False, compare=False)
    _output_names: list[str] = field(init=False, repr=False, compare=False)
    inputs: InputScreen = field(init=False, repr=False, compare=False)
    """The input checks for this model's schema and layout (screen, screen_row, check_input)."""
    _classes: int = field(init=False, repr=False, compare=False)
    label_names: np.ndarray = field(init=False, repr=False, compare=False)
    """The manifest's labels as an object array: a batch's names in one take (a third of mapping the tuple)."""
    _row_starts: np.ndarray = field(init=False, repr=False, compare=False)
    """Flat index of each row's first probability in a [BATCH_MAX, classes] output, for the top-1 gather."""
    _bindings: threading.local = field(init=False, repr=False, compare=False)
    """Per thread: `row`, its batch-1 Binding once a plain run has shown the output is [1, classes] float32
    (False where the session cannot bind); `batch`, one Binding for the micro-batch size last run twice in a
    row (a sustained stream's batchMax), and `last_rows`, the size of its last plain batch run."""

    def __post_init__(self) -> None:
        # InferenceSession.run re-checks input names, OrtValue ownership and graph capture on every call (~1 us,
        # a sixth of a small model's run). load_model checks the names once, the engine feeds only numpy arrays on
        # the CPU provider, so the C++ session's own run is the same call without that cost.
        inner = getattr(self.session, "_sess", None)
        run = getattr(inner, "run", None)
        if not callable(run):
            session = self.session
            run = lambda names, feed, _options: session.run(names, feed)  # noqa: E731
        schema = self.manifest.input
        object.__setattr__(self, "_run_session", run)
        object.__setattr__(self, "_output_names", [self.manifest.output.probabilities])
        object.__setattr__(self, "inputs", InputScreen(schema, self.layout))
        classes = len(self.manifest.labels)
        object.__setattr__(self, "_classes", classes)
        object.__setattr__(self, "label_names", np.array(self.manifest.labels, dtype=object))
        object.__setattr__(self, "_row_starts", np.arange(0, BATCH_MAX * classes, classes, dtype=np.intp))
        object.__setattr__(self, "_bindings", threading.local())

    @property
    def width(self) -> int:
        """Features per request."""
        return self.manifest.input.width

    def predict(self, batch: np.ndarray, run_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Label indices and their probabilities for a screened batch of shape [n, width].

        run_rows bounds the rows of one session run (the micro-batch size): a larger batch runs in slices of it.
        """
        rows = batch.shape[0]
        if rows == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        probabilities = self._all_probabilities(batch, rows, run_rows)
        labels = probabilities.argmax(axis=1)
        confidences = self._top(probabilities, labels)
        if not math.isfinite(np.add.reduce(probabilities, axis=None)):  # a row with any NaN/inf is not an answer
            confidences = np.where(np.isfinite(probabilities).all(axis=1), confidences, np.nan)
        return labels, confidences

    def predict_top2(self, batch: np.ndarray, run_rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """predict's labels and confidences, plus each row's top-1 minus top-2 margin (for the samplers).

        One np.partition per batch finds the second probability without sorting the rows.
        """
        rows = batch.shape[0]
        if rows == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.float32)
        probabilities = self._all_probabilities(batch, rows, run_rows)
        labels = probabilities.argmax(axis=1)
        confidences = self._top(probabilities, labels)
        if not math.isfinite(np.add.reduce(probabilities, axis=None)):
            confidences = np.where(np.isfinite(probabilities).all(axis=1), confidences, np.nan)
        if probabilities.shape[1] < 2:
            return labels, confidences, np.ones_like(confidences)
        second = np.partition(probabilities, -2, axis=1)[:, -2]
        return labels, confidences, confidences - second

    def _top(self, probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Each row's probability at its argmax: the row maximum (NaN where the row has one), in one gather.

        Cheaper than max(axis=1), a reduction along ten-odd contiguous values per row at numpy's slow stride.
        """
        rows = probabilities.shape[0]
        starts = self._row_starts[:rows] if rows <= BATCH_MAX else np.arange(0, rows * self._classes, self._classes)
        top: np.ndarray = probabilities.ravel().take(labels + starts)
        return top

    def _all_probabilities(self, batch: np.ndarray, rows: int, run_rows: int | None) -> np.ndarray:
        """The [rows, classes] output, in session runs of at most run_rows rows (None: one run)."""
        if run_rows is None or rows <= run_rows:
            return self._checked(self._probabilities(batch), rows)
        out = np.empty((rows, self._classes), dtype=np.float32)
        done = 0
        bound: Binding | None = getattr(self._bindings, "batch", None)
        if bound is not None and bound.rows == run_rows and batch.dtype is FLOAT32:  # whole slices: the bound run
            feed, output, run, binding = bound.feed, bound.output, bound.run, bound.binding
            done = rows - rows % run_rows
            try:
                for start in range(0, done, run_rows):
                    feed[...] = batch[start : start + run_rows]
                    run(binding, None)
                    out[start : start + run_rows] = output
            except ORT_ERRORS as exc:
                raise ModelFormatError(f"inference failed: {exc}") from exc
        for start in range(done, rows, run_rows):  # the first slices (which bind run_rows) and a shorter last one
            part = batch[start : start + run_rows]
            out[start : start + run_rows] = self._checked(self._probabilities(part), part.shape[0])
        return out

    def _checked(self, probabilities: np.ndarray, rows: int) -> np.ndarray:
        if probabilities.shape != (rows, self._classes):
            expected = (rows, self._classes)
            name = self.manifest.output.probabilities
            raise ModelFormatError(f"output {name!r} has shape {probabilities.shape}, expected {expected}")
        return probabilities

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The session's [n, classes] output for a screened batch: a buffer the caller reads before the next run."""
        layout = self.layout
        if layout is None:
            return self._run_rows(batch if batch.dtype is FLOAT32 else self.inputs.feedable(batch))
        feed = self.inputs.feedable(batch).reshape((batch.shape[0], *layout.row_shape))
        size = layout.fixed_batch
        if size is None or size == feed.shape[0]:
            return self._run(feed)
        pad = -feed.shape[0] % size
        padded = np.concatenate([feed, np.repeat(feed[-1:], pad, axis=0)]) if pad else feed
        parts = [self._run(padded[i : i + size]) for i in range(0, padded.shape[0], size)]
        return np.concatenate(parts)[: feed.shape[0]]

    def _run_rows(self, feed: np.ndarray) -> np.ndarray:
        """A [n, width] float32 batch through this thread's binding for n, or a plain run (which may bind n)."""
        rows, local = feed.shape[0], self._bindings
        bound: Binding | None = getattr(local, "batch", None)
        if bound is not None and bound.rows == rows:
            bound.feed[...] = feed
            try:
                bound.run(bound.binding, None)
            except ORT_ERRORS as exc:
                raise ModelFormatError(f"inference failed: {exc}") from exc
            return bound.output
        probabilities = self._run(feed)
        if getattr(local, "last_rows", None) == rows and rows <= BIND_ROWS_MAX:  # a size that repeats: bind it
            local.batch = self._bind(rows, probabilities) or None
        local.last_rows = rows
        return probabilities

    def _run(self, feed: np.ndarray) -> np.ndarray:
        try:
            (probabilities,) = self._run_session(self._output_names, {self.manifest.input.name: feed}, None)
        except ORT_ERRORS as exc:
            raise ModelFormatError(f"inference failed: {exc}") from exc
        if not isinstance(probabilities, np.ndarray):
            raise ModelFormatError(f"output {self.manifest.output.probabilities!r} is not a tensor")
        return probabilities

    def predict_row(self, feed: np.ndarray) -> tuple[int, float]:
        """Label index and confidence of one screened row; a non-finite confidence is the caller's to refuse.

        Plain Python over the ten-odd probabilities is cheaper than numpy's argmax and max at batch 1.
        """
        row = self._row_probabilities(feed)
        if not math.isfinite(sum(row)):  # max() skips a NaN that is not first: refuse any non-finite value
            return 0, math.nan
        confidence = max(row)
        return row.index(confidence), confidence

    def predict_row_top2(self, feed: np.ndarray) -> tuple[int, float, float]:
        """predict_row's label index and confidence, plus the top-1 minus top-2 margin (only when a sampler runs)."""
        row = self._row_probabilities(feed)
        if not math.isfinite(sum(row)):
            return 0, math.nan, math.nan
        confidence = max(row)
        index = row.index(confidence)
        if len(row) < 2:
            return index, confidence, 1.0
        row[index] = -math.inf  # the list is this call's own copy: the next max is the runner-up
        return index, confidence, confidence - max(row)

    def _row_probabilities(self, feed: np.ndarray) -> list[float]:
        """One screened row's probabilities as a fresh Python list; a failed run or odd shape is a format error."""
        bound = getattr(self._bindings, "row", None)
        if bound:
            bound.feed[...] = feed
            try:
                bound.run(bound.binding, None)
            except ORT_ERRORS as exc:
                raise ModelFormatError(f"inference failed: {exc}") from exc
            answer: list[float] = bound.first_row.tolist()
            return answer
        try:
            (probabilities,) = self._run_session(self._output_names, {self.manifest.input.name: feed}, None)
            rows: list[list[float]] = probabilities.tolist()
        except ORT_ERRORS as exc:
            raise ModelFormatError(f"inference failed: {exc}") from exc
        except AttributeError as exc:
            raise ModelFormatError(f"output {self.manifest.output.probabilities!r} is not a tensor") from exc
        if len(rows) != 1 or len(rows[0]) != len(self.manifest.labels):
            self._checked(probabilities, 1)
        if bound is None:
            self._bindings.row = self._bind(1, probabilities)
        return rows[0]

    def _bind(self, rows: int, seen: np.ndarray) -> Binding | Literal[False]:
        """This thread's binding for `rows`, after a plain run gave `seen`; False where that output cannot bind.

        Only the plain layout binds ([N, width] float32 in), when the output just seen is a [rows, classes] float32
        tensor, on onnxruntime's own session type; any other session keeps session.run.
        """
        inner = getattr(self.session, "_sess", None)
        run = getattr(inner, "run_with_iobinding", None)
        shape = (rows, self._classes)
        if self.layout is not None or seen.dtype != FLOAT32 or seen.shape != shape or not callable(run):
            return False
        try:
            feed = np.zeros((rows, self.width), dtype=np.float32)
            output = np.zeros(shape, dtype=np.float32)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.manifest.input.name, ort.OrtValue.ortvalue_from_numpy(feed))
            binding.bind_ortvalue_output(self.manifest.output.probabilities, ort.OrtValue.ortvalue_from_numpy(output))
            native = binding._iobinding  # private, like _sess: the C++ binding run_with_iobinding takes
        except BINDING_ERRORS as exc:
            name = self.manifest.model_name
            log.info("%d-row runs stay on session.run for %s v%d: %s", rows, name, self.version, exc)
            return False
        return Binding(rows, run, native, feed, output, output[0])

    def screen_row(self, row: object) -> np.ndarray | None:
        """A lone decoded row ready to feed, or None when screen() must judge it (see InputScreen.screen_row)."""
        return self.inputs.screen_row(row)

    def screen(self, rows: object) -> ScreenedBatch:
        """The batch's feedable rows and the refused ones, with why (see InputScreen.screen)."""
        return self.inputs.screen(rows)  # type: ignore[arg-type]

    def check_input(self, row: object) -> str | None:
        """Why one request's features cannot be fed to the model, or None when they can."""
        return self.inputs.check_input(row)


def load_model(
    model_dir: Path,
    *,
    version: int,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    graph_optimization: str = "all",
    settings: SessionSettings | None = None,
    pool: SessionPool | None = None,
) -> LoadedModel:
    """Verify, load, check, self-test and warm up the model in a model component's artifact folder.

    With a pool, a session already open for the same verified bytes and settings is reused (the artifact is
    still hashed and the self-test still run on this device's copy).
    """
    settings = settings or SessionSettings(intra_op_threads, inter_op_threads, graph_optimization)
    manifest = read_manifest(model_dir)
    artifact_path = model_dir / manifest.selected
    verify_artifact(artifact_path, manifest)
    shared = pool.get(manifest.selected_artifact.sha256, settings) if pool is not None else None
    session = shared or open_session(artifact_path, settings)
    layout = input_layout(session, manifest)
    model = LoadedModel(manifest=manifest, version=version, session=session, layout=layout)
    _self_test(model)
    if shared is None:
        _warm_up(model)
        if pool is not None:
            pool.put(manifest.selected_artifact.sha256, settings, session)
    log.info("loaded %s v%d from %s (%s)", manifest.model_name, version, artifact_path, settings)
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


def _self_test(model: LoadedModel) -> None:
    """The golden inputs must give the golden labels, or the artifact is not the model that was gated."""
    golden = model.manifest.golden
    if not golden.inputs:
        return
    labels, _ = model.predict(np.asarray(golden.inputs, dtype=np.float64))
    wrong = [i for i, (got, want) in enumerate(zip(labels.tolist(), golden.labels, strict=True)) if got != want]
    if wrong:
        raise ModelFormatError(
            f"self-test failed: {len(wrong)} of {len(golden.labels)} golden rows differ "
            f"(first: row {wrong[0]} gave {labels[wrong[0]]}, expected {golden.labels[wrong[0]]})"
        )


def _warm_up(model: LoadedModel) -> None:
    """Runs at batch 1 and a full batch, so the first real requests do not pay for allocation."""
    schema = model.manifest.input
    middle = (schema.minimum + schema.maximum) / 2
    for rows in (1, 32):
        model.predict(np.full((rows, schema.width), middle, dtype=np.float64))
