"""Input screening: which feature rows a model may see, in what layout, and why a bad row is refused.

A micro-batch is checked with numpy at once, and only the bad rows one by one; a lone row (the batch-1 path)
is checked in plain Python or with two reductions, where numpy's fixed cost would dominate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

from edgeloop.core.errors import ModelFormatError
from edgeloop.core.manifest import InputSchema, ModelManifest
from edgeloop.device.onnx_session import check_output

INPUT_TYPES: Mapping[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}
"""Session input types the engine feeds; the manifest's features are cast to the session's own type."""

_NUMERIC_KINDS = "fiu"
_PLAIN_NUMBERS = (int, float)
"""Exact types the batch-1 screen takes (not bool); anything else goes through numpy's screen."""
_NOT_A_ROW = "features must be a flat list of numbers"
_FLOAT_ARRAYS = (np.float64, np.float32)
"""Element types a decoded 1-D row may have for the batch-1 screen (what the component's decoders produce)."""
_NO_REJECTIONS: Mapping[int, str] = MappingProxyType({})
_FIRST_ROW = (0,)


class ScreenedBatch(NamedTuple):
    """A batch split into the rows the model may see and the rows refused, with why (a tuple: cheap at batch 1)."""

    matrix: np.ndarray
    accepted: tuple[int, ...]
    rejected: Mapping[int, str] = _NO_REJECTIONS


_new_screened = partial(tuple.__new__, ScreenedBatch)
"""A ScreenedBatch built in C, without the generated __new__'s Python frame (the batch-1 path's)."""


@dataclass(frozen=True)
class InputLayout:
    """How flat feature rows become the session's input: per-row shape, element type, fixed batch size."""

    row_shape: tuple[int, ...]
    dtype: type[np.floating[Any]] = np.float32
    fixed_batch: int | None = None


class InputScreen:
    """One model's input checks: the manifest's width and bounds, and the session's layout and element type."""

    def __init__(self, schema: InputSchema, layout: InputLayout | None) -> None:
        """layout None means [N, width] float32, the layout edgeloop's own training exports."""
        self.schema = schema
        self.width = schema.width
        self.layout = layout
        finite = math.isfinite(schema.minimum) and math.isfinite(schema.maximum)
        self._bounds = (schema.minimum, schema.maximum, finite)
        self._quick_shape = (schema.width,) if layout is None else None
        """The 1-D row shape the batch-1 screen takes; None when the session needs another layout."""
        self.dtype: np.dtype[Any] = np.dtype(layout.dtype if layout else np.float32)

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

    def check_input(self, row: object) -> str | None:
        """Why one request's features cannot be fed to the model, or None when they can."""
        try:
            values = np.asarray(row)
        except (ValueError, TypeError):
            return _NOT_A_ROW
        return self._row_reason(values)

    def screen(self, rows: Sequence[object] | np.ndarray) -> ScreenedBatch:
        """Check a whole batch with numpy at once; only the bad rows are looked at one by one."""
        if len(rows) == 1 and not isinstance(rows, np.ndarray):  # the batch-1 path: a lone decoded row
            row = rows[0]
            if type(row) is np.ndarray:
                feed = self.screen_row(row)
                if feed is not None:  # built in C: NamedTuple's generated __new__ is a Python frame
                    return _new_screened((feed, _FIRST_ROW, _NO_REJECTIONS))
            else:
                single = self._screen_one(row)
                if single is not None:
                    return single
        matrix = _as_matrix(rows, self.width)
        if matrix is None:
            return self._screen_rows(rows)
        if _within(matrix, *self._bounds):
            return ScreenedBatch(self.feedable(matrix), tuple(range(matrix.shape[0])))
        schema = self.schema
        with np.errstate(invalid="ignore"):
            good = (matrix.min(axis=1) >= schema.minimum) & (matrix.max(axis=1) <= schema.maximum)
            good &= np.isfinite(matrix).all(axis=1)
        bad = np.flatnonzero(~good).tolist()
        rejected = {i: self._bad_row_reason(matrix[i]) for i in bad}
        return ScreenedBatch(self.feedable(matrix[good]), tuple(np.flatnonzero(good).tolist()), rejected)

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
        schema = self.schema
        if type(low) not in _PLAIN_NUMBERS or type(high) not in _PLAIN_NUMBERS:
            return None
        if not schema.minimum <= low <= high <= schema.maximum:
            return None
        try:  # min/max may skip a NaN, so the sum vouches for finiteness; an overflow takes the full screen
            if not math.isfinite(sum(row)):
                return None
        except OverflowError:
            return None
        return ScreenedBatch(np.array([row], dtype=self.dtype), _FIRST_ROW)

    def _screen_rows(self, rows: Sequence[object] | np.ndarray) -> ScreenedBatch:
        reasons = [self.check_input(row) for row in rows]
        accepted = tuple(i for i, reason in enumerate(reasons) if reason is None)
        matrix = np.array([rows[i] for i in accepted], dtype=np.float64).reshape(len(accepted), self.width)
        rejected = {i: reason for i, reason in enumerate(reasons) if reason is not None}
        return ScreenedBatch(self.feedable(matrix), accepted, rejected)

    def feedable(self, matrix: np.ndarray) -> np.ndarray:
        """Contiguous and in the session's element type (float32 unless the model takes double)."""
        return np.ascontiguousarray(matrix, dtype=self.dtype)

    def _bad_row_reason(self, values: np.ndarray) -> str:
        reason = self._row_reason(values)
        assert reason is not None, "the vectorized screen and the row check disagree"
        return reason

    def _row_reason(self, values: np.ndarray) -> str | None:
        schema = self.schema
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
    check_output(session, manifest)
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
