"""The device runtime: the composition root of one device's inference, group commit, forwarding and health.

DeviceRuntime owns the configuration and its desired-state overrides, and the infer/serve facade; each part
owns its own state and lock: Inference (the prediction path), Staging (group commit), SampleTaker (the day's
sample budget), Tally (counters), HealthReporter, Forwarder and ServeLoop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.core.health import HealthReport
from edgeloop.core.overrides import OverrideResult, resolve_overrides
from edgeloop.core.probation import ModelStatus
from edgeloop.core.records import InferenceResult
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import RecordBuffer
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.health_reporter import HealthReporter
from edgeloop.device.inference import RUN_MAX_ROWS, Inference, InferenceRequest, Outcome, Rejected, answers_of
from edgeloop.device.model_manager import ModelManager, default_store_dir
from edgeloop.device.onnx_model import LoadedModel, load_model
from edgeloop.device.onnx_session import SessionPool
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.sample_taker import SampleTaker
from edgeloop.device.serve_loop import ServeLoop
from edgeloop.device.staging import Staging
from edgeloop.device.tally import Tally
from edgeloop.device.uplink import Uplink

__all__ = ["FORWARD_INTERVAL_S", "DeviceRuntime", "InferenceRequest", "Rejected"]

log = logging.getLogger(__name__)

FORWARD_INTERVAL_S = 1.0
"""How long a partial batch may wait before it is forwarded; also the base of the backoff after a LinkError."""


class DeviceRuntime:
    """One device's inference engine, model manager, forwarder and health reporter, wired together."""

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
        self._session_pool = session_pool
        self._buffer = buffer
        self._clock = clock
        self._config = DeviceConfig()
        self._apply_lock = threading.Lock()
        self._override_lock = threading.Lock()
        self._base_config = self._overridden_config = config
        self._desired: dict[str, Any] = {}
        self._overrides = OverrideResult(config)
        self._target: tuple[object, ...] | None = None
        self._models = ModelManager(
            model_root=model_root,
            store_dir=store_dir or default_store_dir(model_root),
            clock=clock,
            loader=self._load_model,
        )
        self._tally = Tally()
        self._inference = Inference(self._models, self._tally, lambda: self._config, rng or np.random.default_rng())
        self._staging = Staging(buffer, clock, self._tally, lambda: self._config.resultCommitMs)
        self._samples = SampleTaker(config.sampleBytesPerDay, clock)
        self._forwarder = Forwarder(
            thing_name,
            buffer,
            uplink,
            backoff_base_s=min(forward_interval_s, FORWARD_INTERVAL_S),  # a long idle interval: retries stay quick
            on_samples=self._samples.published,  # the sample budget prices samples at their bytes on the wire
        )
        self._health = HealthReporter(
            thing_name=thing_name,
            models=self._models,
            buffer=buffer,
            forwarder=self._forwarder,
            uplink=uplink,
            clock=clock,
            tally=self._tally,
            inference=self._inference,
            samples=self._samples,
            config=lambda: self._config,
            overrides=lambda: self._overrides,
            component_version=component_version,
        )
        self._loop = ServeLoop(self, self._staging, self._tally, clock, forward_interval_s)
        self.apply_config(config)

    @property
    def config(self) -> DeviceConfig:
        """The configuration in force."""
        return self._config

    # --- configuration and the model manager ----------------------------------------------------

    def apply_config(self, config: DeviceConfig) -> None:
        """Take a new configuration; a changed model is verified first and swapped in only if it passes."""
        with self._apply_lock:
            self._config = config
            self._samples.set_limit(config.sampleBytesPerDay)
            self._inference.retune(config)
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

    # --- inference ------------------------------------------------------------------------------

    def infer(self, requests: Sequence[InferenceRequest]) -> list[InferenceResult | Rejected]:
        """Answer every request, in order, with a result or a rejection; the results are in the buffer on return."""
        if len(requests) == 1:  # the common library call: answers straight from the columns
            outcome = self._serve_batch(requests)
            answers: list[InferenceResult | Rejected] = [*answers_of(outcome.results[0])] if outcome.results else []
            answers = answers or [Rejected(requests[0][0], outcome.rejected[0])]
        else:
            size = self._config.batchMax
            answers = []
            for start in range(0, len(requests), size):
                batch = requests[start : start + size]
                answers.extend(self._serve_batch(batch).answers(batch))
        self.commit()
        return answers

    def serve(self, requests: Sequence[InferenceRequest]) -> None:
        """The component loop's path: the same screening, inference and staging, without answers nobody reads.

        A backlog of up to RUN_MAX_ROWS requests goes through one Inference.run (session runs of batchMax). Results
        are staged and committed to the buffer together, within resultCommitMs, at COMMIT_MAX_RESULTS,
        or as soon as the loop finds its input queue idle (see run); commit() forces it.
        """
        size = self._config.batchMax
        run = max(size, RUN_MAX_ROWS)
        if len(requests) <= run:  # the loop's case: one take from the queue, no slice copy (_serve_batch, inline)
            outcome = self._inference.run(requests, size)
            if outcome.results:
                self._staging.stage(outcome.results)
            if outcome.sampled:
                self._take_samples(outcome)
            return
        for start in range(0, len(requests), run):
            self._serve_batch(requests[start : start + run], size)

    def _serve_batch(self, batch: Sequence[InferenceRequest], run_rows: int | None = None) -> Outcome:
        """One batch through the prediction path; its results and samples staged for the group commit."""
        outcome = self._inference.run(batch, run_rows)
        if outcome.results:
            self._staging.stage(outcome.results)
        if outcome.sampled:
            self._take_samples(outcome)
        return outcome

    def _take_samples(self, outcome: Outcome) -> None:
        """The sampled rows the day's budget admits, staged for the results' group commit."""
        inference = self._inference
        if outcome.stage is not None:
            kept = self._samples.take(outcome.stage, outcome.sampled, inference.drift_summary, inference.drifted)
            if kept:
                self._staging.stage_samples(kept)

    def reject_input(self, reason: str) -> None:
        """Count a request refused before it reached the runtime (unparseable message, full queue)."""
        log.warning("input rejected: %s", reason)
        self._tally.count(rejected_inputs=1)

    def commit(self) -> int:
        """Append every staged RESULT record to the buffer in one transaction, then the staged SAMPLE records."""
        return self._staging.commit()

    # --- forwarding and health ------------------------------------------------------------------

    @property
    def forwarder(self) -> Forwarder:
        """The store-and-forward side: uplink state, last sync and counters for the health report."""
        return self._forwarder

    def forward(self, *, flush: bool = False) -> int:
        """Publish the next buffered records, packed and paced; each is acked only after the uplink confirmed it."""
        return self._forwarder.drain(self._clock(), self._config.forwardBatchSize, flush=flush)

    def health(self) -> HealthReport:
        """The current health report (latency and confidence over the window since the last successful report)."""
        return self._health.health()

    def report_health(self) -> bool:
        """Write the health shadow now; False (not an exception) when the uplink is down."""
        return self._health.report()

    def report_health_if_due(self) -> bool:
        """Write the health shadow if the interval is up or something significant changed."""
        return self._health.report_if_due()

    # --- the loop -------------------------------------------------------------------------------

    def run(self, inputs: RequestQueue, stop: threading.Event) -> None:
        """Serve until stop is set, then answer what is queued, forward and report one last time."""
        self._loop.run(inputs, stop)

    def tick(self) -> None:
        """The loop's periodic duties: forward and report when due (the fleet simulation calls it per step)."""
        self._loop.tick()

    def defer_forward(self, until: float) -> None:
        """No periodic forward round before `until` (a simulated fleet staggers its devices, as boot times do)."""
        self._loop.defer_forward(until)
