"""The device runtime: micro-batched inference, store-and-forward and health reporting in one loop."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.core.drift import DriftSummary
from edgeloop.core.errors import ConfigError, LinkError, ModelFormatError, StoreError
from edgeloop.core.health import (
    DETAIL_MAX_BYTES,
    FEATURE_NAME_MAX_BYTES,
    VERSION_MAX_BYTES,
    HealthReport,
    LatencySummary,
    ReportPolicy,
    clip,
    report_due,
)
from edgeloop.core.names import HEALTH_SHADOW, results_topic
from edgeloop.core.overrides import OverrideResult, resolve_overrides
from edgeloop.core.probation import ModelStatus
from edgeloop.core.records import (
    MAX_REQUEST_ID_CHARS,
    MAX_RESULTS_PER_RECORD,
    InferenceResult,
    RecordKind,
    result_payload,
)
from edgeloop.core.samplers import SampleBudget, payload_bytes
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import RecordBuffer
from edgeloop.device.drift import DriftMonitor
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.model import LoadedModel, ScreenedBatch, SessionPool, load_model
from edgeloop.device.models import ModelManager, default_store_dir
from edgeloop.device.sampling import SampleStage
from edgeloop.device.uplink import Uplink

log = logging.getLogger(__name__)

NO_ACTIVE_MODEL = "no active model"
NON_FINITE_OUTPUT = "the model produced a non-finite probability (counted as an inference error)"
BAD_REQUEST_ID = f"request_id must be 1-{MAX_REQUEST_ID_CHARS} characters"
FORWARD_INTERVAL_S = 1.0
"""How long a partial batch may wait before it is forwarded; also the base of the backoff after a LinkError."""
IDLE_POLL_S = 0.1
"""How often an idle loop wakes to forward, report and notice the stop event."""
LATENCY_WINDOW = 10_000
"""Latency samples kept between health reports; bounded so a long outage cannot grow memory."""
STOP_FORWARD_ROUNDS = 10
"""Forward rounds attempted on stop; what is left stays durable in the buffer for the next start."""
COMMIT_MAX_RESULTS = 256
"""Staged results committed together at most: one buffer transaction (one fsync) for up to this many."""
MAX_SAMPLE_BYTES = 64 * 1024
"""A sample payload larger than this is dropped (and counted): it would crowd a message on its own."""

InferenceRequest = tuple[str, Sequence[float] | np.ndarray]
"""(request id, features). Decoders hand over 1-D numpy rows: a batch of them becomes one matrix in a
single copy, where lists of Python floats cost ~1 µs per row to convert."""


@dataclass(frozen=True)
class Rejected:
    """A request that got no inference, and why (bad input, no model, or a failed run)."""

    request_id: str
    reason: str


CONFIDENCE_DECIMALS = 6
"""Confidences travel rounded: more digits than a float32 holds only lengthen the records."""


ResultColumns = tuple[Sequence[str], Sequence[int], Sequence[str], Sequence[float], int, float]
"""One RESULT record's results as core.records.result_payload's arguments: request ids, label indices, label
names, confidences, model version, latency (ms). Valid by construction (ids and outputs are checked before),
kept as plain columns until the commit turns them into a record or infer's caller asks for answers."""


def _answers(columns: ResultColumns) -> list[InferenceResult]:
    """One InferenceResult per request of a record's columns."""
    request_ids, indices, labels, confidences, version, latency_ms = columns
    return [
        InferenceResult(rid, label, index, confidence, version, latency_ms)
        for rid, label, index, confidence in zip(request_ids, labels, indices, confidences, strict=True)
    ]


@dataclass(frozen=True)
class _Outcome:
    """One micro-batch's outcome, kept columnar: results for the rows at `accepted`, reasons for the rest."""

    results: tuple[ResultColumns, ...]
    accepted: Sequence[int]
    rejected: Mapping[int, str]

    def rejected_at(self, positions: Sequence[int]) -> dict[int, str]:
        """The rejections re-keyed from this outcome's rows to the given batch positions."""
        return {positions[i]: reason for i, reason in self.rejected.items()}

    def answers(self, batch: Sequence[InferenceRequest]) -> list[InferenceResult | Rejected]:
        """Per-request answers, in the batch's order (built only for infer's callers)."""
        rows = [row for columns in self.results for row in _answers(columns)]
        if not self.rejected:
            return list(rows)
        answers: dict[int, InferenceResult | Rejected] = {
            i: Rejected(batch[i][0], reason) for i, reason in self.rejected.items()
        }
        answers.update(zip(self.accepted, rows, strict=True))
        return [answers[i] for i in range(len(batch))]


@dataclass(frozen=True)
class _Loop:
    """What closes the loop for the serving model: its drift window and its sampling stage (None: off)."""

    model: LoadedModel | None
    drift: DriftMonitor | None = None
    stage: SampleStage | None = None


SampledRow = tuple[str, np.ndarray, int, float, float, str]
"""(request id, screened row, label index, confidence, margin, sampler) of one inference a sampler took."""


@dataclass
class _Tally:
    """Counters since start, shared by the loop and the IPC handler threads (guarded by a lock)."""

    inferences: int = 0
    rejected_inputs: int = 0
    errors: int = 0


def take_queued(inputs: queue.Queue[InferenceRequest], into: list[InferenceRequest], limit: int) -> int:
    """Move up to limit already-queued requests into `into` under one acquisition of the queue's lock.

    Same effect as repeated get_nowait() (producers blocked on a bounded queue are woken), without
    paying a lock round and exception machinery per request.
    """
    with inputs.mutex:
        waiting = inputs.queue
        count = min(limit, len(waiting))
        into.extend(map(deque.popleft, repeat(waiting, count)))  # C-level pops, no Python frame per request
        if count:
            inputs.not_full.notify(count)
    return count


class DeviceRuntime:
    """One device's inference engine, model manager, forwarder and health reporter."""

    def __init__(
        self,
        *,
        thing_name: str,
        buffer: RecordBuffer,
        uplink: Uplink,
        clock: Callable[[], float],
        model_root: Path,
        config: DeviceConfig,
        forward_interval_s: float = FORWARD_INTERVAL_S,
        store_dir: Path | None = None,
        component_version: str | None = None,
        rng: np.random.Generator | None = None,
        session_pool: SessionPool | None = None,
    ) -> None:
        """session_pool shares onnxruntime sessions between runtimes in one process (the fleet simulation)."""
        self._thing = thing_name
        self._session_pool = session_pool
        self._topic = results_topic(thing_name)
        self._buffer = buffer
        self._uplink = uplink
        self._clock = clock
        self._forward_interval_s = forward_interval_s
        self._config = DeviceConfig()
        self._apply_lock = threading.Lock()
        self._models = ModelManager(
            model_root=model_root,
            store_dir=store_dir or default_store_dir(model_root),
            clock=clock,
            loader=self._load_model,
        )
        self._target: tuple[object, ...] | None = None
        self._tally_lock = threading.Lock()
        self._tally = _Tally()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._next_forward = 0.0
        self._forwarder = Forwarder(
            thing_name, buffer, uplink, backoff_base_s=min(forward_interval_s, FORWARD_INTERVAL_S)
        )  # a long idle interval must not slow the retries after a failure
        self._next_health = 0.0
        self._component_version = component_version
        self._confidences: deque[float] = deque(maxlen=LATENCY_WINDOW)
        """Per-inference confidences, aligned with _latencies (same appends, same bound)."""
        self._reported: HealthReport | None = None
        self._report_tried_at: float | None = None
        self._override_lock = threading.Lock()
        self._base_config = self._overridden_config = config
        self._desired: dict[str, Any] = {}
        self._overrides = OverrideResult(config)
        self._commit_lock = threading.Lock()
        self._staged: list[ResultColumns] = []
        """Micro-batch results not yet in the buffer, one RESULT record each: committed together (see _stage)."""
        self._staged_results = 0
        self._commit_by = 0.0
        """When the oldest staged result must be committed (time.monotonic)."""
        self._staged_samples: list[dict[str, Any]] = []
        """SAMPLE payloads waiting for the same group commit as the results."""
        self._rng = rng or np.random.default_rng()
        self._loop_lock = threading.Lock()
        self._loop = _Loop(None)
        self._loop_key: tuple[object, ...] | None = None
        self._drift_summary: DriftSummary | None = None
        self._drifted = False
        """Whether the last scored window was over driftThreshold: the `drifted` sampler's signal."""
        self._sample_lock = threading.Lock()
        self._budget = SampleBudget(config.sampleBytesPerDay)
        self._budget_warned_day: int | None = None
        self.apply_config(config)

    @property
    def config(self) -> DeviceConfig:
        """The configuration in force."""
        return self._config

    # --- model manager -------------------------------------------------------------------------

    def apply_config(self, config: DeviceConfig) -> None:
        """Take a new configuration; a changed model is verified first and swapped in only if it passes."""
        with self._apply_lock:
            self._config = config
            self._retune_loop(config)
            self._buffer.set_max_bytes(config.bufferMaxBytes)
            self._models.configure(config)
            target = None
            if config.modelComponent:
                target = (
                    config.modelComponent,
                    config.modelComponentVersion,
                    config.modelPublicKey,
                    config.intraOpThreads,
                    config.interOpThreads,
                    config.graphOptimization,
                )
            if target == self._target:
                return
            self._target = target
            if target is None:
                self._models.clear("no model configured")
            else:
                self._models.activate(config)

    def _retune_loop(self, config: DeviceConfig) -> None:
        """New drift window, samplers or privacy: the loop is rebuilt at the next request; the budget carries on."""
        with self._sample_lock:
            self._budget = self._budget.with_limit(config.sampleBytesPerDay)
        key = (config.driftWindow, config.samplers, config.privacy, config.fleetSalt)
        if key != self._loop_key:
            self._loop_key = key
            with self._loop_lock:
                self._loop = replace(self._loop, model=None)  # the drift window stays if the model and size do

    def _attach(self, model: LoadedModel) -> _Loop:
        """Bind drift monitoring and sampling to the model now serving (after a swap or a configuration change)."""
        with self._loop_lock:
            loop, config = self._loop, self._config
            if loop.model is model:
                return loop
            drift = loop.drift
            if drift is None or drift.model is not model or drift.window != config.driftWindow:
                drift = DriftMonitor(model, config.driftWindow) if config.driftWindow else None
                self._drift_summary, self._drifted = None, False
            self._loop = loop = _Loop(model, drift, self._sample_stage(config, model))
            return loop

    def _sample_stage(self, config: DeviceConfig, model: LoadedModel) -> SampleStage | None:
        """The sampling stage for this model, or None when no sampler is configured or the policy does not fit it."""
        if not config.samplers:
            return None
        try:
            return SampleStage(config, model, self._rng)
        except ConfigError as exc:  # validate_config refuses this up front when the manifest is on disk
            log.error("no samples from %s v%d: %s", model.manifest.model_name, model.version, exc)
            return None

    def _load_model(self, model_dir: Path, version: int, config: DeviceConfig) -> LoadedModel:
        """The engine's loader with this configuration's session settings (the manager verifies around it)."""
        return load_model(
            model_dir,
            version=version,
            intra_op_threads=config.intraOpThreads,
            inter_op_threads=config.interOpThreads,
            graph_optimization=config.graphOptimization,
            pool=self._session_pool,
        )

    def model_status(self) -> ModelStatus:
        """The model manager's state, version and rollbacks, for the health report."""
        return self._models.status()

    def _active_model(self) -> LoadedModel | None:
        return self._models.active()

    # --- inference -----------------------------------------------------------------------------

    def infer(self, requests: Sequence[InferenceRequest]) -> list[InferenceResult | Rejected]:
        """Answer every request, in order, with a result or a rejection; the results are in the buffer on return."""
        answer = self._infer_one(requests[0]) if len(requests) == 1 else None
        if answer is not None:
            answers: list[InferenceResult | Rejected] = (
                [answer] if isinstance(answer, Rejected) else [*_answers(answer)]
            )
        else:
            size = self._config.batchMax
            answers = []
            for start in range(0, len(requests), size):
                batch = requests[start : start + size]
                answers.extend(self._infer_batch(batch).answers(batch))
        self.commit()
        return answers

    def serve(self, requests: Sequence[InferenceRequest]) -> None:
        """The component loop's path: the same screening, inference and staging, without answers nobody reads.

        Results are staged and committed to the buffer together, within resultCommitMs, at COMMIT_MAX_RESULTS,
        or as soon as the loop finds its input queue idle (see run); commit() forces it.
        """
        if len(requests) == 1 and self._infer_one(requests[0]) is not None:
            return
        size = self._config.batchMax
        if len(requests) <= size:  # the loop's case: one micro-batch, no slice copy
            self._infer_batch(requests)
            return
        for start in range(0, len(requests), size):
            self._infer_batch(requests[start : start + size])

    def reject_input(self, reason: str) -> None:
        """Count a request refused before it reached the runtime (unparseable message, full queue)."""
        log.warning("input rejected: %s", reason)
        self._count(rejected_inputs=1)

    def _infer_one(self, request: InferenceRequest) -> ResultColumns | Rejected | None:
        """A lone request the quick way: same checks, counts and record as a micro-batch of one, minus the fixed costs.

        None, before anything was counted or stored, sends the request down the general path: no model, an
        id that cannot travel, or a row the quick screen cannot vouch for (which the full screen then explains).
        """
        model = self._models.active()
        request_id, features = request
        if model is None or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
            return None
        started = time.perf_counter()
        feed = model.screen_row(features)
        if feed is None:
            return None
        loop = self._loop
        if loop.model is not model:
            loop = self._attach(model)
        stage = loop.stage
        try:
            if stage is None:
                index, confidence = model.predict_row(feed)
            else:
                index, confidence, margin = model.predict_row_top2(feed)
        except ModelFormatError as exc:
            log.error("inference failed on a batch of 1: %s", exc)
            self._count(errors=1)
            self._models.observe(model, requests=1, errors=1)
            return Rejected(request_id, str(exc))
        if not math.isfinite(confidence):
            log.error("model v%s gave non-finite probabilities for 1 of 1 rows", model.version)
            self._count(errors=1)
            self._models.observe(model, requests=1, errors=1)
            return Rejected(request_id, NON_FINITE_OUTPUT)
        latency_ms = (time.perf_counter() - started) * 1000
        rounded = round(confidence, CONFIDENCE_DECIMALS)
        columns = ((request_id,), (index,), (model.manifest.labels[index],), (rounded,), model.version, latency_ms)
        self._stage(columns, 1)
        with self._tally_lock:  # _count's work for one inference, without its keyword plumbing
            self._tally.inferences += 1
            self._latencies.append(latency_ms)
            self._confidences.append(rounded)
            if loop.drift is not None:
                loop.drift.add_row(feed, confidence)
        self._models.observe(model, requests=1, errors=0)
        if stage is not None:
            sampler = stage.pick_row(confidence, margin, self._drifted)
            if sampler is not None:
                self._take_samples(stage, [(request_id, feed, index, confidence, margin, sampler)])
        return columns

    def _infer_batch(self, batch: Sequence[InferenceRequest]) -> _Outcome:
        """Screen, run and buffer one micro-batch; bad rows get their reason, the rest go through together."""
        model = self._active_model()
        if model is None:
            self._count(rejected_inputs=len(batch))
            return _Outcome((), (), dict.fromkeys(range(len(batch)), NO_ACTIVE_MODEL))
        started = time.perf_counter()
        ids = [request_id for request_id, _ in batch]
        if not all(ids) or max(map(len, ids), default=0) > MAX_REQUEST_ID_CHARS:  # "" is falsy: one C pass each
            return self._without_bad_ids(batch, ids)
        screened = model.screen([features for _, features in batch])
        if not screened.rejected:
            return self._predict(model, screened, ids, started)
        self._count(rejected_inputs=len(screened.rejected))
        shown = "; ".join(f"{batch[i][0]}: {reason}" for i, reason in list(screened.rejected.items())[:5])
        log.warning("%d of %d inputs rejected (first ones: %s)", len(screened.rejected), len(batch), shown)
        if not screened.accepted:
            return _Outcome((), (), screened.rejected)
        done = self._predict(model, screened, [batch[i][0] for i in screened.accepted], started)
        accepted = tuple(screened.accepted[i] for i in done.accepted)
        return _Outcome(done.results, accepted, {**screened.rejected, **done.rejected_at(screened.accepted)})

    def _without_bad_ids(self, batch: Sequence[InferenceRequest], ids: list[str]) -> _Outcome:
        """Refuse requests whose id could not travel in a record; the rest of the batch goes on."""
        bad = {i: BAD_REQUEST_ID for i, request_id in enumerate(ids) if not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS}
        self._count(rejected_inputs=len(bad))
        log.warning("%d of %d requests rejected: %s", len(bad), len(batch), BAD_REQUEST_ID)
        good = [i for i in range(len(batch)) if i not in bad]
        if not good:
            return _Outcome((), (), bad)
        done = self._infer_batch([batch[i] for i in good])
        return _Outcome(done.results, tuple(good[i] for i in done.accepted), {**bad, **done.rejected_at(good)})

    def _predict(self, model: LoadedModel, screened: ScreenedBatch, request_ids: list[str], started: float) -> _Outcome:
        """Run the accepted rows, then buffer their results as RESULT records in one append (one group commit)."""
        n = len(request_ids)
        loop = self._loop
        if loop.model is not model:
            loop = self._attach(model)
        stage, matrix, margins = loop.stage, screened.matrix, None
        try:
            if stage is None:
                labels, confidences = model.predict(matrix)
            else:
                labels, confidences, margins = model.predict_top2(matrix)
        except ModelFormatError as exc:
            log.error("inference failed on a batch of %d: %s", n, exc)
            self._count(errors=1)
            self._models.observe(model, requests=n, errors=n)
            return _Outcome((), (), dict.fromkeys(range(n), str(exc)))
        rejected: dict[int, str] = {}
        kept: Sequence[int] = range(n)
        rounded = _rounded(confidences)
        if not math.isfinite(sum(rounded)):  # NaN/inf anywhere poisons the sum (of Python floats: no overflow)
            finite = np.isfinite(confidences)  # a model emitting NaN/inf is failing: count it, keep good rows
            bad, keep = np.flatnonzero(~finite).tolist(), np.flatnonzero(finite)
            log.error("model v%s gave non-finite probabilities for %d of %d rows", model.version, len(bad), n)
            self._count(errors=len(bad))
            self._models.observe(model, requests=len(bad), errors=len(bad))
            rejected = dict.fromkeys(bad, NON_FINITE_OUTPUT)
            if not keep.size:
                return _Outcome((), (), rejected)
            kept = keep.tolist()
            labels, confidences, matrix = labels[keep], confidences[keep], matrix[keep]
            margins = None if margins is None else margins[keep]
            request_ids = [request_ids[i] for i in kept]
            rounded = [rounded[i] for i in kept]
            n = len(request_ids)
        batch_ms = (time.perf_counter() - started) * 1000
        indices = labels.tolist()
        label_names = model.manifest.labels
        names = [label_names[i] for i in indices]
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
        for columns in results:
            self._stage(columns, len(columns[0]))
        with self._tally_lock:  # _count's work for n inferences and the drift window's, in one lock round
            self._tally.inferences += n
            self._latencies.extend([batch_ms] * n)
            self._confidences.extend(rounded)
            if loop.drift is not None:
                loop.drift.add_batch(matrix, confidences)
        self._models.observe(model, requests=n, errors=0)
        if stage is not None and margins is not None:
            self._sample_batch(stage, request_ids, matrix, indices, confidences, margins)
        return _Outcome(results, kept, rejected)

    def _sample_batch(
        self,
        stage: SampleStage,
        request_ids: Sequence[str],
        matrix: np.ndarray,
        indices: Sequence[int],
        confidences: np.ndarray,
        margins: np.ndarray,
    ) -> None:
        """The micro-batch's rows some sampler takes, one vectorized pass to find them."""
        picked = stage.pick_batch(confidences, margins, self._drifted)
        if picked:
            rows = [
                (request_ids[i], matrix[i], indices[i], float(confidences[i]), float(margins[i]), name)
                for i, name in picked
            ]
            self._take_samples(stage, rows)

    def _take_samples(self, stage: SampleStage, rows: Sequence[SampledRow]) -> None:
        """Privacy-filter the sampled rows into SAMPLE payloads, spend the day's budget, stage what fits."""
        summary, drifted = self._drift_summary, self._drifted
        score = None if summary is None else summary.score
        now = self._clock()
        kept: list[dict[str, Any]] = []
        for request_id, row, index, confidence, margin, name in rows:
            with self._sample_lock:
                if self._budget.exhausted(now):  # counted as dropped without building what would be dropped
                    self._budget = self._budget.drop(now)
                    continue
            payload = stage.payload(request_id, row, index, (confidence, margin, drifted, score), name)
            size = payload_bytes(payload)
            with self._sample_lock:
                if size > MAX_SAMPLE_BYTES:
                    self._budget, admitted = self._budget.drop(now), False
                else:
                    self._budget, admitted = self._budget.admit(size, now)
            if admitted:
                kept.append(payload)
        if len(kept) < len(rows):  # once per budget day at WARNING; the health report counts every drop
            level = logging.DEBUG if self._budget_warned_day == self._budget.day else logging.WARNING
            self._budget_warned_day = self._budget.day
            log.log(level, "%d of %d samples dropped: sampleBytesPerDay spent", len(rows) - len(kept), len(rows))
        if kept:
            self._stage_samples(kept)

    def _stage(self, staged: ResultColumns, results: int) -> None:
        """Hold a micro-batch's RESULT records for a group commit: one buffer transaction for many micro-batches.

        A durable append costs an fsync, milliseconds on an SD card; committing every resultCommitMs (and at
        COMMIT_MAX_RESULTS, and whenever the input queue idles) turns one fsync per micro-batch into one per
        window. Staged results are as volatile as the queued requests in front of the runtime; 0 commits each.
        """
        with self._commit_lock:
            now = time.monotonic()
            if not self._staged and not self._staged_samples:
                self._commit_by = now + self._config.resultCommitMs / 1000
            self._staged.append(staged)
            self._staged_results += results
            due = self._staged_results >= COMMIT_MAX_RESULTS or now >= self._commit_by
        if due:
            self.commit()

    def _stage_samples(self, payloads: list[dict[str, Any]]) -> None:
        """Hold SAMPLE payloads for the results' group commit (samples are rare: they share its fsync)."""
        with self._commit_lock:
            now = time.monotonic()
            if not self._staged and not self._staged_samples:
                self._commit_by = now + self._config.resultCommitMs / 1000
            self._staged_samples.extend(payloads)
            due = now >= self._commit_by
        if due:
            self.commit()

    def commit(self) -> int:
        """Append every staged RESULT record to the buffer in one transaction, then the staged SAMPLE records.

        A refusal is logged and counted; the count returned is of RESULT records.
        """
        with self._commit_lock:
            staged, results, samples = self._staged, self._staged_results, self._staged_samples
            if not staged and not samples:
                return 0
            self._staged, self._staged_results, self._staged_samples = [], 0, []
            payloads = [result_payload(*columns) for columns in staged]
            now = self._clock()
            try:
                if payloads:
                    self._buffer.append(RecordKind.RESULT, payloads, now)
            except StoreError as exc:
                log.error("%d results in %d records were not buffered: %s", results, len(payloads), exc)
                self._count(errors=1)
                payloads = []
            try:
                if samples:
                    self._buffer.append(RecordKind.SAMPLE, samples, now)
            except StoreError as exc:
                log.error("%d samples were not buffered: %s", len(samples), exc)
                self._count(errors=1)
        return len(payloads)

    def _count(
        self,
        *,
        inferences: int = 0,
        rejected_inputs: int = 0,
        errors: int = 0,
        latency_ms: float = 0.0,
        samples: int = 0,
        confidences: Sequence[float] = (),
    ) -> None:
        """One lock round per batch: counters since start, and the latency and confidence windows (per inference)."""
        with self._tally_lock:
            self._tally.inferences += inferences
            self._tally.rejected_inputs += rejected_inputs
            self._tally.errors += errors
            if samples:
                self._latencies.extend([latency_ms] * samples)
                self._confidences.extend(confidences)

    # --- forwarding and health -----------------------------------------------------------------

    @property
    def forwarder(self) -> Forwarder:
        """The store-and-forward side: uplink state, last sync and counters for the health report."""
        return self._forwarder

    def defer_forward(self, until: float) -> None:
        """No periodic forward round before `until` (a simulated fleet staggers its devices, as boot times do)."""
        self._next_forward = max(self._next_forward, until)

    def forward(self, *, flush: bool = False) -> int:
        """Publish the next buffered records, packed and paced; each is acked only after the uplink confirmed it."""
        return self._forwarder.drain(self._clock(), self._config.forwardBatchSize, flush=flush)

    def _flush(self) -> int:
        """A forward round on shutdown: a partly filled last message goes too."""
        return self.forward(flush=True)

    def health(self) -> HealthReport:
        """The current health report (latency and confidence over the window since the last successful report)."""
        status = self.model_status()
        stats = self._buffer.stats()
        forwarder = self._forwarder.stats()
        with self._tally_lock:
            tally, samples, confidences = _Tally(**vars(self._tally)), list(self._latencies), list(self._confidences)
        now = self._clock()
        oldest = stats.oldest_created_at
        drift = self._score_drift()
        with self._sample_lock:
            budget = self._budget
        sampling = bool(self._config.samplers or budget.taken or budget.dropped)
        return HealthReport(
            thing_name=self._thing,
            model_name=status.model_name,
            model_version=status.version,
            model_state=status.state,
            model_detail=clip(status.detail, DETAIL_MAX_BYTES),
            inferences=tally.inferences,
            rejected_inputs=tally.rejected_inputs,
            errors=tally.errors,
            latency=LatencySummary.from_samples(samples),
            buffer_depth=stats.depth,
            records_produced=stats.produced,
            records_delivered=stats.acked,
            connected=self._uplink.connected,
            reported_at=now,
            component_version=_clipped(self._component_version),
            model_component_version=_clipped(status.component_version),
            model_activated_at=status.activated_at,
            model_rollbacks=status.rollbacks,
            model_signed=status.signed,
            model_on_probation=status.on_probation if status.model_name else None,
            mean_confidence=round(sum(confidences) / len(confidences), 4) if confidences else None,
            buffer_bytes=stats.bytes,
            oldest_record_age_s=None if oldest is None else round(max(0.0, now - oldest), 3),
            evictions=dict(stats.evicted_by_kind),
            refusals=dict(stats.refused_by_kind),
            quarantined=stats.quarantined,
            uplink_state=forwarder.state.value,
            last_sync_at=forwarder.last_success_at,
            overrides=self._overrides.report,
            drift_score=None if drift is None else drift.score,
            drift_rows=None if drift is None else drift.rows,
            drifted_features=None if drift is None else _feature_names(drift.drifted_features),
            confidence_shift=None if drift is None else drift.confidence_shift,
            confidence_psi=None if drift is None else drift.confidence_psi,
            samples_taken=budget.taken if sampling else None,
            samples_dropped_budget=budget.dropped if sampling else None,
            sample_bytes_today=budget.spent_on(now) if sampling else None,
        )

    def _score_drift(self) -> DriftSummary | None:
        """Score the drift window now (the health report's cadence): binning runs here, never per request."""
        monitor = self._loop.drift
        if monitor is None:
            self._drift_summary, self._drifted = None, False
            return None
        with self._tally_lock:
            rows, confidences = monitor.snapshot()
        config = self._config
        summary = monitor.summary(rows, confidences, config.driftThreshold, config.driftMinRows)
        self._drift_summary, self._drifted = summary, summary is not None and summary.drifted
        return summary

    def report_health(self) -> bool:
        """Write the health shadow now; False (not an exception) when the uplink is down."""
        return self._send_health(self.health())

    def report_health_if_due(self) -> bool:
        """Write the health shadow if the interval is up or something significant changed (core.health.report_due)."""
        current = self.health()
        now = current.reported_at
        reason = report_due(self._reported, current, now, ReportPolicy.from_config(self._config), self._report_tried_at)
        if reason is None:
            return False
        log.debug("health report due: %s", reason)
        return self._send_health(current)

    def _send_health(self, report: HealthReport) -> bool:
        """One shadow write; on success the latency and confidence window starts over."""
        self._report_tried_at = report.reported_at
        try:
            self._uplink.update_shadow(self._thing, HEALTH_SHADOW, report.to_shadow_update())
        except LinkError as exc:
            log.warning("health report not sent: %s", exc)
            return False
        self._reported = report
        with self._tally_lock:  # drop what this report covered; samples that arrived since stay for the next
            for window in (self._latencies, self._confidences):
                for _ in range(min(report.latency.samples, len(window))):
                    window.popleft()
        return True

    # --- desired-state overrides -----------------------------------------------------------------

    @property
    def overrides(self) -> OverrideResult:
        """What the last desired section did: overrides applied and refused (with reasons)."""
        return self._overrides

    def apply_overrides(self, desired: Mapping[str, Any]) -> OverrideResult:
        """Tune the running configuration from the shadow's desired section; refused keys keep their value."""
        with self._override_lock:
            self._desired = dict(desired)
            if self._config != self._overridden_config:
                self._base_config = self._config  # apply_config was called directly: that is the new base
            return self._apply_overridden()

    def reconfigure(self, base: DeviceConfig) -> OverrideResult:
        """Take a new component configuration, keeping the desired-state overrides on top of it."""
        with self._override_lock:
            self._base_config = base
            return self._apply_overridden()

    def _apply_overridden(self) -> OverrideResult:
        result = resolve_overrides(self._base_config, self._desired)
        for key, reason in result.rejected.items():
            log.warning("desired-state override %s refused: %s", key, reason)
        self._overrides, self._overridden_config = result, result.config
        self.apply_config(result.config)
        return result

    # --- the loop ------------------------------------------------------------------------------

    def run(self, inputs: queue.Queue[InferenceRequest], stop: threading.Event) -> None:
        """Serve until stop is set, then answer what is queued, forward and report one last time."""
        now = self._clock()
        self._next_forward = self._next_health = now
        while not stop.is_set():
            batch = self._collect(inputs)
            if batch:
                self._guarded(self.serve, batch)
            self.tick()
        self._finish(inputs)

    def _collect(self, inputs: queue.Queue[InferenceRequest]) -> list[InferenceRequest]:
        """One micro-batch: wait for a first request, then up to batchWaitMs for batchMax of them."""
        if self._staged and not inputs.qsize():  # idle: nothing to share a commit with, so commit now
            self._guarded(self.commit)
        config = self._config
        batch: list[InferenceRequest] = []
        if not take_queued(inputs, batch, config.batchMax):  # a backlog is taken in one lock round
            try:
                batch.append(inputs.get(timeout=IDLE_POLL_S))
            except queue.Empty:
                return []
        deadline = time.monotonic() + config.batchWaitMs / 1000
        while len(batch) < config.batchMax:
            if take_queued(inputs, batch, config.batchMax - len(batch)):
                continue  # what is already queued is taken in one lock round, without a timed wait
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(inputs.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def tick(self) -> None:
        """The loop's periodic duties: forward and report when due (a full forward round means a backlog, so stay due).

        The component loop calls it between micro-batches; the fleet simulation calls it once per virtual-clock step.
        """
        now = self._clock()
        if now >= self._next_forward:
            self._guarded(self.forward)
            self._next_forward = self._forwarder.next_drain_at(now, self._forward_interval_s)
        if now >= self._next_health:
            self._next_health = now + ReportPolicy.from_config(self._config).floor_s
            self._guarded(self.report_health_if_due)

    def _finish(self, inputs: queue.Queue[InferenceRequest]) -> None:
        left: list[InferenceRequest] = []
        while True:
            try:
                left.append(inputs.get_nowait())
            except queue.Empty:
                break
        size = self._config.batchMax
        for start in range(0, len(left), size):  # one guard per micro-batch: a failure loses only its own
            self._guarded(self.serve, left[start : start + size])
        self._guarded(self.commit)
        for _ in range(STOP_FORWARD_ROUNDS):
            if not self._guarded(self._flush) or not self._forwarder.more_waiting:
                break
        self._guarded(self.report_health)

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run one loop step; a failure is logged and counted in the health report, never fatal to the loop."""
        try:
            return step(*args)
        except Exception:
            log.exception("%s failed; the loop carries on", step.__name__)
            self._count(errors=1)
            return None


SMALL_BATCH = 4
"""Up to this many confidences are rounded in plain Python: numpy's fixed cost is larger there."""


def _rounded(confidences: np.ndarray) -> list[float]:
    """Confidences as Python floats rounded to CONFIDENCE_DECIMALS, one numpy pass for a real batch."""
    if len(confidences) <= SMALL_BATCH:
        return [round(c, CONFIDENCE_DECIMALS) for c in confidences.tolist()]
    rounded: list[float] = confidences.astype(np.float64).round(CONFIDENCE_DECIMALS).tolist()
    return rounded


def _feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """Drifted feature names cut to their shadow budget."""
    return tuple(clip(name, FEATURE_NAME_MAX_BYTES) for name in names)


def _clipped(version: str | None) -> str | None:
    """A version string cut to its shadow budget."""
    return None if version is None else clip(version, VERSION_MAX_BYTES)
