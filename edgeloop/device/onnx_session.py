"""onnxruntime sessions for a small CPU: settings, sharing between simulated devices, and IO-bound runs.

The private onnxruntime attributes the engine uses for speed (InferenceSession._sess and IOBinding._iobinding)
are looked up with getattr and fall back to the public API where a session lacks them (see onnx_model).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edgeloop.core.errors import ConfigError, ModelFormatError
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.settings import GRAPH_OPTIMIZATIONS, DeviceConfig

log = logging.getLogger(__name__)

ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    value
    for value in vars(ort_state).values()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == ort_state.__name__
)
"""onnxruntime's exceptions all derive straight from Exception, so they are listed rather than caught broadly."""
BINDING_ERRORS: tuple[type[Exception], ...] = (*ORT_ERRORS, AttributeError, TypeError, RuntimeError)
"""What building an IO binding can raise on a session it does not suit (the engine then keeps session.run)."""

GRAPH_OPTIMIZATION_LEVELS: Mapping[str, ort.GraphOptimizationLevel] = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
assert tuple(GRAPH_OPTIMIZATION_LEVELS) == GRAPH_OPTIMIZATIONS, "settings and the engine name the same levels"

FLOAT32 = np.dtype(np.float32)
BATCH_MAX = 4096
"""The largest micro-batch a configuration allows (DeviceConfig.batchMax); larger batches still work, a bit slower."""
BIND_ROWS_MAX = BATCH_MAX
"""Micro-batch sizes up to this bind (1 MiB of input at 64 features); a larger one always runs plain."""

SessionRun = Callable[[list[str], dict[str, np.ndarray], Any], list[Any]]


@dataclass(frozen=True)
class Binding:
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


def open_session(path: Path, settings: SessionSettings) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), settings.session_options(), providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise ModelFormatError(f"{path.name} is not a loadable ONNX model: {exc}") from exc


def check_output(session: ort.InferenceSession, manifest: ModelManifest) -> None:
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
