"""The prediction path: screen a micro-batch, run the serving model, tally it, and hand back result columns.

One path for every batch size: a lone request takes the same steps as a micro-batch, and only the model's
own row helpers (a bound batch-1 run read as a Python list) make it cheaper. What is done with the answers
(staged for the buffer, sampled rows priced against the day's budget) is the caller's.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import repeat
from operator import itemgetter
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from edgeloop.core.drift import DriftSummary
from edgeloop.core.errors import ConfigError, ModelFormatError
from edgeloop.core.records import MAX_REQUEST_ID_CHARS, MAX_RESULTS_PER_RECORD, InferenceResult
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.drift import DriftMonitor
from edgeloop.device.model_manager import ModelManager
from edgeloop.device.onnx_model import LoadedModel
from edgeloop.device.sample_stage import SampleStage
from edgeloop.device.sample_taker import SampledRow
from edgeloop.device.stored_payload import ResultColumns
from edgeloop.device.tally import Tally

log = logging.getLogger(__name__)

NO_ACTIVE_MODEL = "no active model"
NON_FINITE_OUTPUT = "the model produced a non-finite probability (counted as an inference error)"
BAD_REQUEST_ID = f"request_id must be a string of 1-{MAX_REQUEST_ID_CHARS} characters"
CONFIDENCE_DECIMALS = 6
"""Confidences travel rounded: more digits than a float32 holds only lengthen the records."""
SMALL_BATCH = 4
"""Up to this many confidences are rounded in plain Python: numpy's fixed cost is larger there."""
RUN_MAX_ROWS = 256
"""Queued requests one Inference.run takes at most: a backlog shares one screening, tally, drift and staging pass
(the Python cost per micro-batch, larger than onnxruntime's for a small model), in session runs of batchMax."""

InferenceRequest = tuple[str, Sequence[float] | np.ndarray]
"""(request id, features). Decoders hand over 1-D numpy rows: a batch of them becomes one matrix in a
single copy, where lists of Python floats cost ~1 µs per row to convert."""

_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_STR = frozenset({str})
_DECIMALS = repeat(CONFIDENCE_DECIMALS)
"""An endless CONFIDENCE_DECIMALS for map(round, ...): map stops at the shorter input."""

Confidences = np.ndarray | list[float]
"""A micro-batch's top-1 probabilities: a numpy column, or a Python list for a lone row."""


@dataclass(frozen=True)
class Rejected:
    """A request that got no inference, and why (bad input, no model, or a failed run)."""

    request_id: str
    reason: str


def answers_of(columns: ResultColumns) -> list[InferenceResult]:
    """One InferenceResult per request of a record's columns."""
    request_ids, indices, labels, confidences, version, latency_ms = columns
    return [
        InferenceResult(rid, label, index, confidence, version, latency_ms)
        for rid, label, index, confidence in zip(request_ids, labels, indices, confidences, strict=True)
    ]


class Outcome(NamedTuple):
    """One micro-batch's outcome, kept columnar: results for the rows at `accepted`, reasons for the rest."""

    results: tuple[ResultColumns, ...]
    accepted: Sequence[int]
    rejected: Mapping[int, str]
    sampled: Sequence[SampledRow] = ()
    """Rows some sampler took, for the sample budget."""
    stage: SampleStage | None = None
    """The sampling stage that took them (it makes their payloads)."""

    def rejected_at(self, positions: Sequence[int]) -> dict[int, str]:
        """The rejections re-keyed from this outcome's rows to the given batch positions."""
        return {positions[i]: reason for i, reason in self.rejected.items()}

    def answers(self, batch: Sequence[InferenceRequest]) -> list[InferenceResult | Rejected]:
        """Per-request answers, in the batch's order (built only for infer's callers)."""
        rows = [row for columns in self.results for row in answers_of(columns)]
        if not self.rejected:
            return list(rows)
        answers: dict[int, InferenceResult | Rejected] = {
            i: Rejected(batch[i][0], reason) for i, reason in self.rejected.items()
        }
        answers.update(zip(self.accepted, rows, strict=True))
        return [answers[i] for i in range(len(batch))]


_NO_REJECTIONS: Mapping[int, str] = MappingProxyType({})
_new_outcome = partial(tuple.__new__, Outcome)
"""An Outcome of all five fields built in C, without the generated __new__'s Python frame."""


@dataclass(frozen=True)
class ServingBinding:
    """What closes the loop for the serving model: its drift window and its sampling stage (None: off)."""

    model: LoadedModel | None
    drift: DriftMonitor | None = None
    stage: SampleStage | None = None


class Inference:
    """Runs micro-batches on the model manager's active model, with drift monitoring and sample picking bound to it."""

    def __init__(
        self, models: ModelManager, tally: Tally, config: Callable[[], DeviceConfig], rng: np.random.Generator
    ) -> None:
        """config reads the configuration in force (drift window, samplers, privacy)."""
        self._models = models
        self._tally = tally
        self._config = config
        self._rng = rng
        self._lock = threading.Lock()
        self._serving = ServingBinding(None)
        self._key: tuple[object, ...] | None = None
        self._drift_summary: DriftSummary | None = None
        self._drifted = False
        """Whether the last scored window was over driftThreshold: the `drifted` sampler's signal."""

    @property
    def drift_summary(self) -> DriftSummary | None:
        """The last scored drift window (None: not scored, or too few rows)."""
        return self._drift_summary

    @property
    def drifted(self) -> bool:
        """Whether the last scored window was over driftThreshold."""
        return self._drifted

    def retune(self, config: DeviceConfig) -> None:
        """New drift window, samplers or privacy: the binding is rebuilt at the next request."""
        key = (config.driftWindow, config.samplers, config.privacy, config.fleetSalt)
        if key != self._key:
            self._key = key
            with self._lock:
                self._serving = replace(self._serving, model=None)  # the drift window stays if the model and size do

    def _attach(self, model: LoadedModel) -> ServingBinding:
        """Bind drift monitoring and sampling to the model now serving (after a swap or a configuration change)."""
        with self._lock:
            serving, config = self._serving, self._config()
            if serving.model is model:
                return serving
            drift = serving.drift
            if drift is None or drift.model is not model or drift.window != config.driftWindow:
                drift = DriftMonitor(model, config.driftWindow) if config.driftWindow else None
                self._drift_summary, self._drifted = None, False
            self._serving = serving = ServingBinding(model, drift, self._sample_stage(config, model))
            return serving

    def _sample_stage(self, config: DeviceConfig, model: LoadedModel) -> SampleStage | None:
        """The sampling stage for this model, or None when no sampler is configured or the policy does not fit it."""
        if not config.samplers:
            return None
        try:
            return SampleStage(config, model, self._rng)
        except ConfigError as exc:  # validate_config refuses this up front when the manifest is on disk
            log.error("no samples from %s v%d: %s", model.manifest.model_name, model.version, exc)
            return None

    def score_drift(self) -> DriftSummary | None:
        """Score the drift window now (the health report's cadence): binning runs here, never per request."""
        monitor = self._serving.drift
        if monitor is None:
            self._drift_summary, self._drifted = None, False
            return None
        rows, confidences = monitor.snapshot()
        config = self._config()
        summary = monitor.summary(rows, confidences, config.driftThreshold, config.driftMinRows)
        self._drift_summary, self._drifted = summary, summary is not None and summary.drifted
        return summary

    def run(self, batch: Sequence[InferenceRequest], run_rows: int | None = None) -> Outcome:
        """Screen and run a batch; bad rows get their reason, the rest go through together.

        One body for every batch size (a lone row included): each step that would cost a Python frame per
        micro-batch is inline, since at batch 1 those frames are a visible share of the whole path. run_rows
        (batchMax) bounds one session run: a backlog of several micro-batches is screened, tallied and staged
        at once, while onnxruntime still runs at most run_rows rows at a time.
        """
        model = self._models.active()
        if model is None:
            self._tally.count(rejected_inputs=len(batch))
            return Outcome((), (), dict.fromkeys(range(len(batch)), NO_ACTIVE_MODEL))
        started = time.perf_counter()
        request_ids = list(map(_FIRST, batch))  # C-level passes: no Python frame per call
        if len(request_ids) == 1:  # the batch-1 path: one id, checked without the passes a batch needs
            first = request_ids[0]
            bad_ids = type(first) is not str or not 0 < len(first) <= MAX_REQUEST_ID_CHARS
        else:
            bad_ids = (
                not _STR.issuperset(map(type, request_ids))
                or not all(request_ids)  # "" is falsy
                or len(max(request_ids, key=len, default="")) > MAX_REQUEST_ID_CHARS
            )
        if bad_ids:
            return self._without_bad_ids(batch, request_ids, run_rows)
        matrix, screened_rows, refused = model.inputs.screen(list(map(_SECOND, batch)))
        if refused:
            self._tally.count(rejected_inputs=len(refused))
            shown = "; ".join(f"{batch[i][0]}: {reason}" for i, reason in list(refused.items())[:5])
            log.warning("%d of %d inputs rejected (first ones: %s)", len(refused), len(batch), shown)
            if not screened_rows:
                return Outcome((), (), refused)
            request_ids = [request_ids[i] for i in screened_rows]
        n = len(request_ids)
        serving = self._serving
        if serving.model is not model:
            serving = self._attach(model)
        stage = serving.stage
        lone = n == 1 and model.layout is None  # a lone plain row: Python lists, the cheaper form there
        labels: np.ndarray | list[int]
        confidences: Confidences
        margins: Confidences | None = None
        try:
            if lone and stage is None:
                index, confidence = model.predict_row(matrix)
                labels, confidences = [index], [confidence]
            elif lone:
                index, confidence, margin = model.predict_row_top2(matrix)
                labels, confidences, margins = [index], [confidence], [margin]
            elif stage is None:
                labels, confidences = model.predict(matrix, run_rows)
            else:
                labels, confidences, margins = model.predict_top2(matrix, run_rows)
        except ModelFormatError as exc:
            log.error("inference failed on a batch of %d: %s", n, exc)
            self._tally.count(errors=1)
            self._models.observe(model, requests=n, errors=n)
            return _remapped(Outcome((), (), dict.fromkeys(range(n), str(exc))), screened_rows, refused)
        rejected: Mapping[int, str] = _NO_REJECTIONS
        kept: Sequence[int] = range(n)
        rounded = [round(confidences[0], CONFIDENCE_DECIMALS)] if lone else _rounded(confidences)
        if not math.isfinite(sum(rounded)):  # NaN/inf anywhere poisons the sum (of Python floats: no overflow)
            finite = np.isfinite(np.asarray(confidences))  # a failing model: count it, keep the good rows
            bad, keep = np.flatnonzero(~finite).tolist(), np.flatnonzero(finite)
            log.error("model v%s gave non-finite probabilities for %d of %d rows", model.version, len(bad), n)
            self._tally.count(errors=len(bad))
            self._models.observe(model, requests=len(bad), errors=len(bad))
            rejected = dict.fromkeys(bad, NON_FINITE_OUTPUT)
            if not keep.size:
                return _remapped(Outcome((), (), rejected), screened_rows, refused)
            kept = keep.tolist()
            labels, confidences, matrix = np.asarray(labels)[keep], np.asarray(confidences)[keep], matrix[keep]
            margins = None if margins is None else np.asarray(margins)[keep]
            request_ids = [request_ids[i] for i in kept]
            rounded = [rounded[i] for i in kept]
            n = len(request_ids)
        batch_ms = (time.perf_counter() - started) * 1000
        indices: list[int] = labels if isinstance(labels, list) else labels.tolist()  # a list unless it is a batch
        names: list[str] = [model.manifest.labels[indices[0]]] if n == 1 else model.label_names.take(labels).tolist()
        if n <= MAX_RESULTS_PER_RECORD:
            results: tuple[ResultColumns, ...] = ((request_ids, indices, names, rounded, model.version, batch_ms),)
        else:
            step = MAX_RESULTS_PER_RECORD
            results = tuple(
                (
                    request_ids[i : i + step],
                    indices[i : i + step],
                    names[i : i + step],
                    rounded[i : i + step],
                    model.version,
                    batch_ms,
                )
                for i in range(0, n, step)
            )
        self._tally.served(batch_ms, rounded)
        if serving.drift is not None:
            serving.drift.add_batch(matrix, confidences, labels)
        self._models.observe(model, requests=n, errors=0)
        sampled: list[SampledRow] = []
        if stage is not None and margins is not None:
            for i, name in _pick(stage, confidences, margins, self._drifted):
                sampled.append((request_ids[i], matrix[i], indices[i], float(confidences[i]), float(margins[i]), name))
        outcome = _new_outcome((results, kept, rejected, sampled, stage))
        return _remapped(outcome, screened_rows, refused) if refused else outcome

    def _without_bad_ids(self, batch: Sequence[InferenceRequest], ids: list[str], run_rows: int | None) -> Outcome:
        """Refuse requests whose id could not travel in a record; the rest of the batch goes on."""
        bad = {
            i: BAD_REQUEST_ID
            for i, request_id in enumerate(ids)
            if type(request_id) is not str or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS
        }
        self._tally.count(rejected_inputs=len(bad))
        log.warning("%d of %d requests rejected: %s", len(bad), len(batch), BAD_REQUEST_ID)
        good = [i for i in range(len(batch)) if i not in bad]
        if not good:
            return Outcome((), (), bad)
        return _remapped(self.run([batch[i] for i in good], run_rows), good, bad)


def _remapped(done: Outcome, positions: Sequence[int], earlier: Mapping[int, str]) -> Outcome:
    """An outcome over a subset of a batch (at `positions`), re-keyed to the whole batch with its earlier refusals."""
    accepted = tuple(positions[i] for i in done.accepted)
    return done._replace(accepted=accepted, rejected={**earlier, **done.rejected_at(positions)})


def _pick(stage: SampleStage, confidences: Confidences, margins: Confidences, drifted: bool) -> list[tuple[int, str]]:
    """The rows some sampler takes: a few float comparisons for a lone row, one vectorized pass for a batch."""
    if isinstance(confidences, list):
        name = stage.pick_row(confidences[0], margins[0], drifted)
        return [] if name is None else [(0, name)]
    return stage.pick_batch(np.asarray(confidences), np.asarray(margins), drifted)


def _rounded(confidences: Confidences) -> list[float]:
    """Confidences as Python floats rounded to CONFIDENCE_DECIMALS, one numpy pass for a real batch."""
    if len(confidences) <= SMALL_BATCH:
        values = confidences if isinstance(confidences, list) else confidences.tolist()
        return list(map(round, values, _DECIMALS))
    rounded: list[float] = np.asarray(confidences).astype(np.float64).round(CONFIDENCE_DECIMALS).tolist()
    return rounded
