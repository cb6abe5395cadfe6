"""The component's serve loop: collect micro-batches from the request queue, serve them, forward and report."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from edgeloop.core.health import ReportPolicy
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.inference import RUN_MAX_ROWS, InferenceRequest
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.staging import Staging
from edgeloop.device.tally import Tally

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.1
"""How often an idle loop wakes to forward, report and notice the stop event."""
BACKLOG_PASS_S = 0.05
"""A backlog is taken whole only while the last pass took less than this: a slow model keeps batchMax takes, so
health reports and the stop event between passes are not held up for seconds (a slow canary must be judged)."""
STOP_FORWARD_ROUNDS = 10
"""Forward rounds attempted on stop; what is left stays durable in the buffer for the next start."""


class LoopHost(Protocol):
    """What the loop drives: the runtime's facade."""

    @property
    def config(self) -> DeviceConfig: ...

    @property
    def forwarder(self) -> Forwarder: ...

    def serve(self, requests: Sequence[InferenceRequest]) -> None: ...

    def commit(self) -> int: ...

    def forward(self, *, flush: bool = False) -> int: ...

    def report_health(self) -> bool: ...

    def report_health_if_due(self) -> bool: ...


class ServeLoop:
    """Micro-batching and the periodic duties between batches; a failed step is logged and counted, never fatal."""

    def __init__(
        self, host: LoopHost, staging: Staging, tally: Tally, clock: Callable[[], float], forward_interval_s: float
    ) -> None:
        self._host = host
        self._staging = staging
        self._tally = tally
        self._clock = clock
        self._forward_interval_s = forward_interval_s
        self._next_forward = 0.0
        self._next_health = 0.0
        self._last_pass_s = 0.0

    def defer_forward(self, until: float) -> None:
        """No periodic forward round before `until` (a simulated fleet staggers its devices, as boot times do)."""
        self._next_forward = max(self._next_forward, until)

    def run(self, inputs: RequestQueue, stop: threading.Event) -> None:
        """Serve until stop is set, then answer what is queued, forward and report one last time."""
        now = self._clock()
        self._next_forward = self._next_health = now
        while not stop.is_set():
            batch = self._collect(inputs)
            if batch:
                started = time.monotonic()
                self._guarded(self._host.serve, batch)
                self._last_pass_s = time.monotonic() - started
            self.tick()
        self._finish(inputs)

    def _collect(self, inputs: RequestQueue) -> list[InferenceRequest]:
        """What to serve next: a backlog as it is (up to RUN_MAX_ROWS), else up to batchWaitMs for batchMax requests."""
        if self._staging.holds_results and not inputs.qsize():  # idle: nothing to share a commit with, so commit now
            self._guarded(self._host.commit)
        config = self._host.config
        batch: list[InferenceRequest] = []
        quick = self._last_pass_s < BACKLOG_PASS_S
        limit = max(config.batchMax, RUN_MAX_ROWS) if quick else config.batchMax
        taken = inputs.take(batch, limit)  # a backlog is taken in one lock round
        if taken >= config.batchMax:
            return batch
        if not taken:
            try:
                batch.append(inputs.get(timeout=IDLE_POLL_S))
            except queue.Empty:
                return []
        deadline = time.monotonic() + config.batchWaitMs / 1000
        while len(batch) < config.batchMax:
            if inputs.take(batch, config.batchMax - len(batch)):
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
            self._guarded(self._host.forward)
            self._next_forward = self._host.forwarder.next_drain_at(now, self._forward_interval_s)
        if now >= self._next_health:
            self._next_health = now + ReportPolicy.from_config(self._host.config).floor_s
            self._guarded(self._host.report_health_if_due)

    def _finish(self, inputs: RequestQueue) -> None:
        left = inputs.drain()
        size = self._host.config.batchMax
        for start in range(0, len(left), size):  # one guard per micro-batch: a failure loses only its own
            self._guarded(self._host.serve, left[start : start + size])
        self._guarded(self._host.commit)
        for _ in range(STOP_FORWARD_ROUNDS):
            if not self._guarded(self._flush) or not self._host.forwarder.more_waiting:
                break
        self._guarded(self._host.report_health)

    def _flush(self) -> int:
        """A forward round on shutdown: a partly filled last message goes too."""
        return self._host.forward(flush=True)

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run one loop step; a failure is logged and counted in the health report, never fatal to the loop."""
        try:
            return step(*args)
        except Exception:
            log.exception("%s failed; the loop carries on", step.__name__)
            self._tally.count(errors=1)
            return None
