"""The model loader and engine: trust nothing on disk until its digest, shape and self-test check out."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edgeloop.core.errors import ConfigError, IntegrityError, ModelFormatError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.settings import GRAPH_OPTIMIZATIONS, DeviceConfig

log = logging.getLogger(__name__)

ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    value
    for value in vars(ort_state).values()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == ort_state.__name__
)
"""onnxruntime's exceptions all derive straight from Exception, so they are listed rather than caught broadly."""
_BINDING_ERRORS: tuple[type[Exception], ...] = (*ORT_ERRORS, AttributeError, TypeError, RuntimeError)
"""What building an IO binding can raise on a session it does not suit (the engine then keeps session.run)."""

GRAPH_OPTIMIZATION_LEVELS: Mapping[str, ort.GraphOptimizationLevel] = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
assert tuple(GRAPH_OPTIMIZATION_LEVELS) == GRAPH_OPTIMIZATIONS, "settings and the engine name the same levels"

INPUT_TYPES: Mapping[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}
"""Session input types the engine feeds; the manifest's features are cast to the session's own type."""

_NUMERIC_KINDS = "fiu"
_PLAIN_NUMBERS = (int, float)
"""Exact types the batch-1 screen takes (not bool); anything else goes through numpy's screen."""
_NOT_A_ROW = "features must be a flat list of numbers"
_FLOAT_ARRAYS = (np.float64, np.float32)
"""Element types a decoded 1-D row may have for the batch-1 screen (what the component's decoders produce)."""

_FLOAT32 = np.dtype(np.float32)
BATCH_MAX = 4096
"""The largest micro-batch a configuration allows (DeviceConfig.batchMax); larger batches still work, a bit slower."""
_BIND_ROWS_MAX = BATCH_MAX
"""Micro-batch sizes up to this bind (1 MiB of input at 64 features); a larger one always runs plain."""

SessionRun = Callable[[list[str], dict[str, np.ndarray], Any], list[Any]]


@dataclass(frozen=True)
class _Binding:
    """One thread's buffers for one batch size, bound to the session once: a run copies rows in, reads answers out.

    Binding skips what session.run does on every call (wrapping the feed as an OrtValue, allocating the output,
    converting it back to numpy): about 1.5 us of a small model's 8 at batch 1, and 4-5 us of 23 at batch 32.
    The buffers are this thread's alone, and the output is overwritten by the thread's next run at that size.
    """

    rows: int
    run: Callable[[Any, Any], None]
    binding: Any
    feed: np.ndarray
    """[rows, width] float32, the bound input."""
    output: np.ndarray
    """[rows, classes] float32, the bound output."""
    first_row: np.ndarray
    """output[0], made once (batch 1 reads only it)."""


@dataclass(frozen=True)
class SessionSettings:
    """How an onnxruntime session is tuned for a small CPU; a change means a reload."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"

    def __post_init__(self) -> None:
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            expected = tuple(GRAPH_OPTIMIZATION_LEVELS)
            raise ConfigError("graphOptimization", f"{self.graph_optimization!r}; expected one of {expected}")
        for name in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, config: DeviceConfig) -> SessionSettings:
        """The session part of the component configuration."""
        return cls(config.intraOpThreads, config.interOpThreads, config.graphOptimization)

    def session_options(self) -> ort.SessionOptions:
        """Sequential execution, fixed thread pools and the chosen graph optimization level."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = GRAPH_OPTIMIZATION_LEVELS[self.graph_optimization]
        return options


@dataclass(frozen=True)
class ScreenedBatch:
    """A batch split into the rows the model may see and the rows refused, with why."""

    matrix: np.ndarray
    accepted: tuple[int, ...]
    rejected: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputLayout:
    """How flat feature rows become the session's input: per-row shape, element type, fixed batch size."""

    row_shape: tuple[int, ...]
    dtype: type[np.floating[Any]] = np.float32
    fixed_batch: int | None = None


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
    _bounds: tuple[float, float, bool] = field(init=False, repr=False, compare=False)
    _quick_shape: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    """The 1-D row shape the batch-1 path takes; None when the session needs another layout."""
    _dtype: np.dtype[Any] = field(init=False, repr=False, compare=False)
    _classes: int = field(init=False, repr=False, compare=False)
    _row_starts: np.ndarray = field(init=False, repr=False, compare=False)
    """Flat index of each row's first probability in a [BATCH_MAX, classes] output, for the top-1 gather."""
    _bindings: threading.local = field(init=False, repr=False, compare=False)
    """Per thread: `row`, its batch-1 _Binding once a plain run has shown the output is [1, classes] float32
    (False where the session cannot bind); `batch`, one _Binding for the micro-batch size last run twice in a
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
        finite = math.isfinite(schema.minimum) and math.isfinite(schema.maximum)
        object.__setattr__(self, "_bounds", (schema.minimum, schema.maximum, finite))
        object.__setattr__(self, "_quick_shape", (schema.width,) if self.layout is None else None)
        object.__setattr__(self, "_dtype", np.dtype(self.layout.dtype if self.layout else np.float32))
        classes = len(self.manifest.labels)
        object.__setattr__(self, "_classes", classes)
        object.__setattr__(self, "_row_starts", np.arange(0, BATCH_MAX * classes, classes, dtype=np.intp))
        object.__setattr__(self, "_bindings", threading.local())

    @property
    def width(self) -> int:
        """Features per request."""
        return self.manifest.input.width

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Label indices and their probabilities for a screened batch of shape [n, width]."""
        rows = batch.shape[0]
        if rows == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        probabilities = self._checked(self._probabilities(batch), rows)
        labels = probabilities.argmax(axis=1)
        confidences = self._top(probabilities, labels)
        if not math.isfinite(np.add.reduce(probabilities, axis=None)):  # a row with any NaN/inf is not an answer
            confidences = np.where(np.isfinite(probabilities).all(axis=1), confidences, np.nan)
        return labels, confidences

    def predict_top2(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """predict's labels and confidences, plus each row's top-1 minus top-2 margin (for the samplers).

        One np.partition per batch finds the second probability without sorting the rows.
        """
        rows = batch.shape[0]
        if rows == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.float32)
        probabilities = self._checked(self._probabilities(batch), rows)
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
            return self._run_rows(batch if batch.dtype is _FLOAT32 else self._feedable(batch))
        feed = self._feedable(batch).reshape((batch.shape[0], *layout.row_shape))
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
        bound: _Binding | None = getattr(local, "batch", None)
        if bound is not None and bound.rows == rows:
            bound.feed[...] = feed
            try:
                bound.run(bound.binding, None)
            except ORT_ERRORS as exc:
                raise ModelFormatError(f"inference failed: {exc}") from exc
            return bound.output
        probabilities = self._run(feed)
        if getattr(local, "last_rows", None) == rows and rows <= _BIND_ROWS_MAX:  # a size that repeats: bind it
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

    def screen_row(self, row: object) -> np.ndarray | None:
        """A lone decoded row ready to feed ([1, width] float32), or None when the full screen must judge it.

        The batch-1 path: a 1-D float array in range costs two reductions and a cast; anything else (lists,
        other layouts, a bad row) goes through screen(), which gives the reason for a bad one.
        """
        if type(row) is not np.ndarray or row.shape != self._quick_shape or row.dtype.type not in _FLOAT_ARRAYS:
            return None
        low, high, finite = self._bounds
        if not (low <= np.minimum.reduce(row) and np.maximum.reduce(row) <= high):  # NaN fails both comparisons
            return None
        if not finite and not np.isfinite(row).all():
            return None
        return np.array(row, dtype=np.float32, ndmin=2)

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

    def _bind(self, rows: int, seen: np.ndarray) -> _Binding | Literal[False]:
        """This thread's binding for `rows`, after a plain run gave `seen`; False where that output cannot bind.

        Only the plain layout binds ([N, width] float32 in), when the output just seen is a [rows, classes] float32
        tensor, on onnxruntime's own session type; any other session keeps session.run.
        """
        inner = getattr(self.session, "_sess", None)
        run = getattr(inner, "run_with_iobinding", None)
        shape = (rows, self._classes)
        if self.layout is not None or seen.dtype != _FLOAT32 or seen.shape != shape or not callable(run):
            return False
        try:
            feed = np.zeros((rows, self.width), dtype=np.float32)
            output = np.zeros(shape, dtype=np.float32)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.manifest.input.name, ort.OrtValue.ortvalue_from_numpy(feed))
            binding.bind_ortvalue_output(self.manifest.output.probabilities, ort.OrtValue.ortvalue_from_numpy(output))
        except _BINDING_ERRORS as exc:
            name = self.manifest.model_name
            log.info("%d-row runs stay on session.run for %s v%d: %s", rows, name, self.version, exc)
            return False
        return _Binding(rows, run, binding._iobinding, feed, output, output[0])

    def check_input(self, row: object) -> str | None:
        """Why one request's features cannot be fed to the model, or None when they can."""
        try:
            values = np.asarray(row)
        except (ValueError, TypeError):
            return _NOT_A_ROW
        return self._row_reason(values)

    def screen(self, rows: Sequence[object] | np.ndarray) -> ScreenedBatch:
        """Check a whole batch with numpy at once; only the bad rows are looked at one by one."""
        if len(rows) == 1 and not isinstance(rows, np.ndarray):
            single = self._screen_one(rows[0])
            if single is not None:
                return single
        matrix = _as_matrix(rows, self.width)
        if matrix is None:
            return self._screen_rows(rows)
        if _within(matrix, *self._bounds):
            return ScreenedBatch(self._feedable(matrix), tuple(range(matrix.shape[0])))
        schema = self.manifest.input
        with np.errstate(invalid="ignore"):
            good = (matrix.min(axis=1) >= schema.minimum) & (matrix.max(axis=1) <= schema.maximum)
            good &= np.isfinite(matrix).all(axis=1)
        bad = np.flatnonzero(~good).tolist()
        rejected = {i: self._bad_row_reason(matrix[i]) for i in bad}
        return ScreenedBatch(self._feedable(matrix[good]), tuple(np.flatnonzero(good).tolist()), rejected)

    def _screen_one(self, row: object) -> ScreenedBatch | None:
        """A lone list of in-range numbers, checked in plain Python (numpy's fixed cost dominates at batch 1).

        None sends the row through the full screen, which gives the reason for a bad one.
        """
        if type(row) is not list or len(row) != self.width:
            return None
        if any(type(value) is bool for value in row):
            return None  # the full screen names booleans as what they are
        try:
            low, high = min(row), max(row)
        except TypeError:
            return None
        schema = self.manifest.input
        if type(low) not in _PLAIN_NUMBERS or type(high) not in _PLAIN_NUMBERS:
            return None
        if not schema.minimum <= low <= high <= schema.maximum:
            return None
        try:  # min/max may skip a NaN, so the sum vouches for finiteness; an overflow takes the full screen
            if not math.isfinite(sum(row)):
                return None
        except OverflowError:
            return None
        return ScreenedBatch(np.array([row], dtype=self.layout.dtype if self.layout else np.float32), (0,))

    def _screen_rows(self, rows: Sequence[object] | np.ndarray) -> ScreenedBatch:
        reasons = [self.check_input(row) for row in rows]
        accepted = tuple(i for i, reason in enumerate(reasons) if reason is None)
        matrix = np.array([rows[i] for i in accepted], dtype=np.float64).reshape(len(accepted), self.width)
        rejected = {i: reason for i, reason in enumerate(reasons) if reason is not None}
        return ScreenedBatch(self._feedable(matrix), accepted, rejected)

    def _feedable(self, matrix: np.ndarray) -> np.ndarray:
        """Contiguous and in the session's element type (float32 unless the model takes double)."""
        return np.ascontiguousarray(matrix, dtype=self._dtype)

    def _bad_row_reason(self, values: np.ndarray) -> str:
        reason = self._row_reason(values)
        assert reason is not None, "the vectorized screen and the row check disagree"
        return reason

    def _row_reason(self, values: np.ndarray) -> str | None:
        schema = self.manifest.input
        if values.ndim != 1:
            return _NOT_A_ROW
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


def _as_matrix(rows: Sequence[object] | np.ndarray, width: int) -> np.ndarray | None:
    """The batch as a numeric [n, width] array, or None when some row is ragged or not numeric."""
    try:
        matrix = np.asarray(rows)
    except (ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or matrix.dtype.kind not in _NUMERIC_KINDS:
        return None
    return matrix


def _within(matrix: np.ndarray, minimum: float, maximum: float, finite_bounds: bool) -> bool:
    """Every value in [minimum, maximum] (NaN fails both comparisons): two reductions for the common case."""
    if not finite_bounds and not np.isfinite(matrix).all():
        return False
    return bool(minimum <= np.minimum.reduce(matrix, axis=None) and np.maximum.reduce(matrix, axis=None) <= maximum)


class SessionPool:
    """onnxruntime sessions shared by verified artifact digest and settings: many simulated devices, one session.

    A real device runs one runtime and needs no pool; the local fleet simulation runs hundreds in one process.
    Sessions are read-only once built and onnxruntime allows concurrent run() calls on one session.
    """

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, SessionSettings], ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def get(self, sha256: str, settings: SessionSettings) -> ort.InferenceSession | None:
        """The session opened earlier for these exact bytes and settings, if any."""
        with self._lock:
            return self._sessions.get((sha256, settings))

    def put(self, sha256: str, settings: SessionSettings, session: ort.InferenceSession) -> None:
        """Share a session opened for these bytes and settings."""
        with self._lock:
            self._sessions.setdefault((sha256, settings), session)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


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
    session = shared or _open_session(artifact_path, settings)
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


def _open_session(path: Path, settings: SessionSettings) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), settings.session_options(), providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise ModelFormatError(f"{path.name} is not a loadable ONNX model: {exc}") from exc


def input_layout(session: ort.InferenceSession, manifest: ModelManifest) -> InputLayout | None:
    """Check the session against the manifest and say how to feed it (None: plain [N, width] float32)."""
    schema = manifest.input
    inputs = {i.name: i for i in session.get_inputs()}
    if list(inputs) != [schema.name]:
        raise ModelFormatError(f"model inputs are {list(inputs)}, manifest declares only {schema.name!r}")
    declared = inputs[schema.name]
    dtype = INPUT_TYPES.get(declared.type)
    if dtype is None:
        raise ModelFormatError(f"input {schema.name!r} is {declared.type}; the engine feeds {sorted(INPUT_TYPES)}")
    _check_output(session, manifest)
    dims = list(declared.shape or [None, schema.width])
    batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    row_shape = _row_shape(schema.name, dims, schema.width)
    if (row_shape, dtype, batch) == ((schema.width,), np.float32, None):
        return None
    return InputLayout(row_shape, dtype, batch)


def _row_shape(name: str, shape: list[Any], width: int) -> tuple[int, ...]:
    """The per-row input shape (all but the batch dimension): fixed dimensions must hold width values."""
    dims = shape[1:]
    if not dims:
        raise ModelFormatError(f"input {name!r} is one number per row, the manifest lists {width} features")
    known = [d for d in dims if isinstance(d, int) and d > 0]
    free = len(dims) - len(known)
    product = math.prod(known)
    if free == 0 and product != width:
        raise ModelFormatError(f"input {name!r} takes {product} features, manifest lists {width} (shape {shape})")
    if free > 1:
        raise ModelFormatError(f"input {name!r} has {free} free dimensions {shape}; at most one can be inferred")
    if free == 1:
        if width % product:
            raise ModelFormatError(f"input {name!r} {shape} cannot hold the manifest's {width} features")
        return tuple(d if isinstance(d, int) and d > 0 else width // product for d in dims)
    return tuple(known)


def _check_output(session: ort.InferenceSession, manifest: ModelManifest) -> None:
    """The probabilities output must exist and be a [N, classes] tensor (a ZipMap's list of dicts is refused)."""
    name = manifest.output.probabilities
    outputs = {o.name: o for o in session.get_outputs()}
    if name not in outputs:
        raise ModelFormatError(f"model outputs are {list(outputs)}, no {name!r}")
    declared = outputs[name]
    if not declared.type.startswith("tensor("):
        raise ModelFormatError(
            f"output {name!r} is {declared.type}, not a tensor: export it without ZipMap "
            "(skl2onnx: options={'zipmap': False}) so probabilities come as [N, classes]"
        )
    classes = declared.shape[-1] if declared.shape else None
    if isinstance(classes, int) and classes != len(manifest.labels):
        raise ModelFormatError(f"output {name!r} has {classes} classes, manifest lists {len(manifest.labels)} labels")


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
