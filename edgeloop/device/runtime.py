"""The device runtime: micro-batched inference, store-and-forward and health reporting in one loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop.core.errors import EdgeloopError, LinkError, ModelFormatError
from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.names import HEALTH_SHADOW, model_component_name, model_version_from_component, results_topic
from edgeloop.core.records import InferenceResult, RecordKind, encode_batch, split_by_size
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import RecordBuffer
from edgeloop.device.model import LoadedModel, ScreenedBatch, load_model
from edgeloop.device.uplink import Uplink

log = logging.getLogger(__name__)

NO_ACTIVE_MODEL = "no active model"
FORWARD_INTERVAL_S = 1.0
"""How long results may wait before a partial batch is forwarded, and the retry pause after a LinkError."""
IDLE_POLL_S = 0.1
"""How often an idle loop wakes to forward, report and notice the stop event."""
LATENCY_WINDOW = 10_000
"""Latency samples kept between health reports; bounded so a long outage cannot grow memory."""
DETAIL_MAX_CHARS = 500
"""model_detail is cut to this, so an error message cannot push the shadow past its 8 KB limit."""
STOP_FORWARD_ROUNDS = 10
"""Forward rounds attempted on stop; what is left stays durable in the buffer for the next start."""

InferenceRequest = tuple[str, Sequence[float]]


@dataclass(frozen=True)
class Rejected:
    """A request that got no inference, and why (bad input, no model, or a failed run)."""

    request_id: str
    reason: str


@dataclass
class _Tally:
    """Counters since start, shared by the loop and the IPC handler threads (guarded by a lock)."""

    inferences: int = 0
    rejected_inputs: int = 0
    errors: int = 0


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
    ) -> None:
        self._thing = thing_name
        self._topic = results_topic(thing_name)
        self._buffer = buffer
        self._uplink = uplink
        self._clock = clock
        self._model_root = model_root
        self._forward_interval_s = forward_interval_s
        self._config = DeviceConfig()
        self._apply_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._state = ModelState.NONE
        self._detail = ""
        self._target: tuple[str, str, int] | None = None
        self._tally_lock = threading.Lock()
        self._tally = _Tally()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._next_forward = 0.0
        self._next_health = 0.0
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
            target = None
            if config.modelComponent:
                target = (config.modelComponent, config.modelComponentVersion, config.intraOpThreads)
            if target == self._target:
                return
            self._target = target
            if target is None:
                self._swap(None, ModelState.NONE, "no model configured")
            else:
                self._change_model(config)

    def _change_model(self, config: DeviceConfig) -> None:
        """VERIFYING while loading, then ACTIVE on the new model or REJECTED on the previous one."""
        label = f"{config.modelComponent} {config.modelComponentVersion}"
        self._set_state(ModelState.VERIFYING, f"verifying {label}")
        try:
            model = self._load(config)
        except (EdgeloopError, OSError) as exc:
            log.error("model %s rejected, keeping the previous one: %s", label, exc)
            self._set_state(ModelState.REJECTED, f"{label} rejected: {exc}")
            return
        log.info("model %s active", label)
        self._swap(model, ModelState.ACTIVE, f"{label} active")

    def _load(self, config: DeviceConfig) -> LoadedModel:
        """Load a model component's artifacts, laid out as Greengrass does: <root>/<component>/<version>/."""
        version = model_version_from_component(config.modelComponentVersion)
        model_dir = self._model_root / config.modelComponent / config.modelComponentVersion
        model = load_model(model_dir, version=version, intra_op_threads=config.intraOpThreads)
        carried_by = model_component_name(model.manifest.model_name)
        if carried_by != config.modelComponent:
            raise ModelFormatError(
                f"{model_dir} holds model {model.manifest.model_name!r}, not {config.modelComponent}"
            )
        return model

    def _swap(self, model: LoadedModel | None, state: ModelState, detail: str) -> None:
        """Replace the model in one step; a batch already running keeps the model it started with."""
        with self._swap_lock:
            self._model, self._state, self._detail = model, state, detail[:DETAIL_MAX_CHARS]

    def _set_state(self, state: ModelState, detail: str) -> None:
        with self._swap_lock:
            self._state, self._detail = state, detail[:DETAIL_MAX_CHARS]

    def _active_model(self) -> LoadedModel | None:
        with self._swap_lock:
            return self._model

    # --- inference -----------------------------------------------------------------------------

    def infer(self, requests: Sequence[InferenceRequest]) -> list[InferenceResult | Rejected]:
        """Answer every request, in order, with a result (buffered for the cloud) or a rejection."""
        size = self._config.batchMax
        answers: list[InferenceResult | Rejected] = []
        for start in range(0, len(requests), size):
            answers.extend(self._infer_batch(requests[start : start + size]))
        return answers

    def reject_input(self, reason: str) -> None:
        """Count a request refused before it reached the runtime (unparseable message, full queue)."""
        log.warning("input rejected: %s", reason)
        self._count(rejected_inputs=1)

    def _infer_batch(self, batch: Sequence[InferenceRequest]) -> list[InferenceResult | Rejected]:
        model = self._active_model()
        if model is None:
            self._count(rejected_inputs=len(batch))
            return [Rejected(request_id, NO_ACTIVE_MODEL) for request_id, _ in batch]
        started = time.perf_counter()
        screened = model.screen([features for _, features in batch])
        answers: dict[int, InferenceResult | Rejected] = {
            i: Rejected(batch[i][0], reason) for i, reason in screened.rejected.items()
        }
        self._count(rejected_inputs=len(screened.rejected))
        if screened.accepted:
            answers.update(self._predict(model, screened, [batch[i][0] for i in screened.accepted], started))
        return [answers[i] for i in range(len(batch))]

    def _predict(
        self, model: LoadedModel, screened: ScreenedBatch, request_ids: list[str], started: float
    ) -> dict[int, InferenceResult | Rejected]:
        """Run the accepted rows, then buffer their results in one append (one group commit)."""
        try:
            labels, confidences = model.predict(screened.matrix)
        except ModelFormatError as exc:
            log.error("inference failed on a batch of %d: %s", len(request_ids), exc)
            self._count(errors=1)
            return {i: Rejected(rid, str(exc)) for i, rid in zip(screened.accepted, request_ids, strict=True)}
        per_request_ms = (time.perf_counter() - started) * 1000 / len(request_ids)
        names = model.manifest.labels
        results = [
            InferenceResult(rid, names[label], label, confidence, model.version, per_request_ms)
            for rid, label, confidence in zip(request_ids, labels.tolist(), confidences.tolist(), strict=True)
        ]
        self._buffer.append(RecordKind.RESULT, [r.to_payload() for r in results], self._clock())
        self._count(inferences=len(results), latency_ms=per_request_ms, samples=len(results))
        return dict(zip(screened.accepted, results, strict=True))

    def _count(
        self,
        *,
        inferences: int = 0,
        rejected_inputs: int = 0,
        errors: int = 0,
        latency_ms: float = 0.0,
        samples: int = 0,
    ) -> None:
        with self._tally_lock:
            self._tally.inferences += inferences
            self._tally.rejected_inputs += rejected_inputs
            self._tally.errors += errors
            self._latencies.extend([latency_ms] * samples)

    # --- forwarding and health -----------------------------------------------------------------

    def forward(self) -> int:
        """Publish the next buffered records; each batch is acked only after the uplink confirmed it."""
        records = self._buffer.peek(self._config.forwardBatchSize)
        delivered = 0
        for batch in split_by_size(records):
            try:
                self._uplink.publish(self._topic, encode_batch(self._thing, batch))
            except LinkError as exc:
                log.warning("forwarding paused, %d records stay buffered: %s", len(records) - delivered, exc)
                break
            delivered += self._buffer.ack(record.seq for record in batch)
        return delivered

    def health(self) -> HealthReport:
        """The current health report (latency over the window since the last successful report)."""
        with self._swap_lock:
            model, state, detail = self._model, self._state, self._detail
        stats = self._buffer.stats()
        with self._tally_lock:
            tally, samples = _Tally(**vars(self._tally)), list(self._latencies)
        return HealthReport(
            thing_name=self._thing,
            model_name=model.manifest.model_name if model else None,
            model_version=model.version if model else None,
            model_state=state,
            model_detail=detail,
            inferences=tally.inferences,
            rejected_inputs=tally.rejected_inputs,
            errors=tally.errors,
            latency=LatencySummary.from_samples(samples),
            buffer_depth=stats.depth,
            records_produced=stats.produced,
            records_delivered=stats.acked,
            connected=self._uplink.connected,
            reported_at=self._clock(),
        )

    def report_health(self) -> bool:
        """Write the health shadow; False (not an exception) when the uplink is down."""
        report = self.health()
        try:
            self._uplink.update_shadow(self._thing, HEALTH_SHADOW, report.to_shadow_update())
        except LinkError as exc:
            log.warning("health report not sent: %s", exc)
            return False
        with self._tally_lock:
            self._latencies.clear()
        return True

    # --- the loop ------------------------------------------------------------------------------

    def run(self, inputs: queue.Queue[InferenceRequest], stop: threading.Event) -> None:
        """Serve until stop is set, then answer what is queued, forward and report one last time."""
        now = self._clock()
        self._next_forward = self._next_health = now
        while not stop.is_set():
            batch = self._collect(inputs)
            if batch:
                self._guarded(self.infer, batch)
            self._tick()
        self._finish(inputs)

    def _collect(self, inputs: queue.Queue[InferenceRequest]) -> list[InferenceRequest]:
        """One micro-batch: wait for a first request, then up to batchWaitMs for batchMax of them."""
        try:
            batch = [inputs.get(timeout=IDLE_POLL_S)]
        except queue.Empty:
            return []
        config = self._config
        deadline = time.monotonic() + config.batchWaitMs / 1000
        while len(batch) < config.batchMax:
            remaining = deadline - time.monotonic()
            try:
                batch.append(inputs.get(timeout=remaining) if remaining > 0 else inputs.get_nowait())
            except queue.Empty:
                break
        return batch

    def _tick(self) -> None:
        """Forward and report when due; a full forward round means a backlog, so stay due."""
        now = self._clock()
        if now >= self._next_forward:
            delivered = self._guarded(self.forward)
            full = delivered == self._config.forwardBatchSize
            self._next_forward = now if full else now + self._forward_interval_s
        if now >= self._next_health:
            self._next_health = now + self._config.healthIntervalSeconds
            self._guarded(self.report_health)

    def _finish(self, inputs: queue.Queue[InferenceRequest]) -> None:
        left: list[InferenceRequest] = []
        while True:
            try:
                left.append(inputs.get_nowait())
            except queue.Empty:
                break
        if left:
            self._guarded(self.infer, left)
        for _ in range(STOP_FORWARD_ROUNDS):
            if self._guarded(self.forward) != self._config.forwardBatchSize:
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
