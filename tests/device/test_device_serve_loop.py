"""The serve loop: micro-batch collection, the periodic duties between batches, and the last round on stop."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from support import FakeClock

from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.inference import RUN_MAX_ROWS, InferenceRequest
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.serve_loop import BACKLOG_PASS_S, IDLE_POLL_S, ServeLoop
from edgeloop.device.staging import Staging
from edgeloop.device.tally import Tally
from edgeloop.device.uplink import MemoryUplink

THING = "dev-1"


class Host:
    """The runtime's facade as the loop sees it, noting each call; `failing` names the steps that raise."""

    def __init__(self, config: DeviceConfig, failing: Sequence[str] = ()) -> None:
        self.config = config
        self.forwarder = Forwarder(THING, MemoryBuffer(THING), MemoryUplink())
        self.failing = set(failing)
        self.calls: list[str] = []
        self.served: list[list[str]] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise RuntimeError(f"{name} broke")

    def serve(self, requests: Sequence[InferenceRequest]) -> None:
        self._call("serve")
        self.served.append([rid for rid, _ in requests])

    def commit(self) -> int:
        self._call("commit")
        return 0

    def forward(self, *, flush: bool = False) -> int:
        self._call("flush" if flush else "forward")
        return 0

    def report_health(self) -> bool:
        self._call("report")
        return True

    def report_health_if_due(self) -> bool:
        self._call("report_if_due")
        return False


def make_loop(host: Host, clock: FakeClock | None = None, tally: Tally | None = None) -> ServeLoop:
    tally = tally or Tally()
    staging = Staging(MemoryBuffer(THING), clock or FakeClock(), tally, lambda: host.config.resultCommitMs)
    return ServeLoop(host, staging, tally, clock or FakeClock(), forward_interval_s=1.0)


def requests(n: int, prefix: str = "r") -> list[InferenceRequest]:
    return [(f"{prefix}{i}", [float(i)]) for i in range(n)]


class RecordingQueue(RequestQueue):
    """A queue that notes how long each get was allowed to block."""

    def __init__(self, items: Sequence[InferenceRequest]) -> None:
        super().__init__()
        self.timeouts: list[float] = []
        for item in items:
            self.put_nowait(item)

    def get(self, timeout: float | None = None) -> InferenceRequest:
        self.timeouts.append(timeout if timeout is not None else 0.0)
        return super().get(timeout=0)


@pytest.mark.parametrize("wait_ms", [0, 25])
def test_a_micro_batch_waits_at_most_batch_wait_ms_for_company(wait_ms: int) -> None:
    loop = make_loop(Host(DeviceConfig(batchMax=8, batchWaitMs=wait_ms)))
    inputs = RecordingQueue(requests(3))

    batch = loop._collect(inputs)

    assert [rid for rid, _ in batch] == ["r0", "r1", "r2"]
    assert all(0 <= t <= wait_ms / 1000 for t in inputs.timeouts)
    timed = [t for t in inputs.timeouts if t > 0]  # queued requests are taken without waiting
    assert len(timed) == (1 if wait_ms else 0)
    assert timed == sorted(timed, reverse=True)  # the deadline never moves


def test_an_idle_loop_waits_idle_poll_s_for_a_first_request() -> None:
    loop = make_loop(Host(DeviceConfig(batchMax=8, batchWaitMs=25)))
    inputs = RecordingQueue([])

    assert loop._collect(inputs) == []
    assert inputs.timeouts == [IDLE_POLL_S]


def test_a_backlog_goes_as_queued_without_waiting_for_more() -> None:
    loop = make_loop(Host(DeviceConfig(batchMax=4, batchWaitMs=10_000)))
    inputs = RecordingQueue(requests(10))

    batch = loop._collect(inputs)

    assert [rid for rid, _ in batch] == [f"r{i}" for i in range(10)]  # a full micro-batch or more: no wait
    assert inputs.timeouts == []  # taken as queued, in one lock round
    assert inputs.qsize() == 0


def test_a_backlog_is_taken_run_max_rows_at_a_time() -> None:
    loop = make_loop(Host(DeviceConfig(batchMax=4, batchWaitMs=10_000)))
    inputs = RecordingQueue(requests(RUN_MAX_ROWS + 5))

    assert len(loop._collect(inputs)) == RUN_MAX_ROWS
    assert len(loop._collect(inputs)) == 5  # more than batchMax: no wait either
    assert inputs.timeouts == []


def test_a_batch_max_above_run_max_rows_is_still_filled() -> None:
    loop = make_loop(Host(DeviceConfig(batchMax=RUN_MAX_ROWS * 2, batchWaitMs=0)))
    inputs = RecordingQueue(requests(RUN_MAX_ROWS * 2 + 1))

    assert len(loop._collect(inputs)) == RUN_MAX_ROWS * 2


def test_stopping_serves_what_is_queued_in_micro_batches_then_commits_flushes_and_reports() -> None:
    host = Host(DeviceConfig(batchMax=4))
    inputs = RequestQueue()
    inputs.put_many(requests(10))
    stop = threading.Event()
    stop.set()

    make_loop(host).run(inputs, stop)

    assert host.served == [["r0", "r1", "r2", "r3"], ["r4", "r5", "r6", "r7"], ["r8", "r9"]]
    assert host.calls == ["serve", "serve", "serve", "commit", "flush", "report"]
    assert inputs.qsize() == 0


def test_a_failing_step_is_logged_and_counted_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    host = Host(DeviceConfig(batchMax=2), failing=("serve", "commit"))
    tally = Tally()
    inputs = RequestQueue()
    inputs.put_many(requests(3))
    stop = threading.Event()
    stop.set()

    make_loop(host, tally=tally).run(inputs, stop)

    assert host.calls == ["serve", "serve", "commit", "flush", "report"]  # one failed batch loses only itself
    assert tally.snapshot().errors == 3
    assert "serve failed; the loop carries on" in caplog.text


def test_tick_forwards_and_reports_when_due_and_not_before() -> None:
    clock = FakeClock()
    host = Host(DeviceConfig(healthMinIntervalSeconds=5.0))
    loop = make_loop(host, clock=clock)

    loop.tick()
    loop.tick()
    assert host.calls == ["forward", "report_if_due"]
    clock.now += 1.0
    loop.tick()
    assert host.calls == ["forward", "report_if_due", "forward"]
    clock.now += 5.0
    loop.tick()
    assert host.calls[-2:] == ["forward", "report_if_due"]


def test_defer_forward_holds_the_first_forward_round_back() -> None:
    clock = FakeClock()
    host = Host(DeviceConfig())
    loop = make_loop(host, clock=clock)
    loop.defer_forward(clock() + 30.0)

    loop.tick()
    assert "forward" not in host.calls
    clock.now += 30.0
    loop.tick()
    assert "forward" in host.calls


def test_the_loop_serves_a_stream_until_stopped() -> None:
    host = Host(DeviceConfig(batchMax=4, batchWaitMs=1))
    inputs = RequestQueue()
    stop = threading.Event()
    served = threading.Event()
    real_serve = host.serve

    def serve(batch: Sequence[InferenceRequest]) -> Any:
        real_serve(batch)
        if sum(map(len, host.served)) >= 9:
            served.set()

    host.serve = serve  # type: ignore[method-assign]
    thread = threading.Thread(target=make_loop(host).run, args=(inputs, stop))
    thread.start()
    for request in requests(9):
        inputs.put(request)
    assert served.wait(10)
    stop.set()
    thread.join(10)

    assert not thread.is_alive()
    assert [rid for batch in host.served for rid in batch] == [f"r{i}" for i in range(9)]


def test_after_a_slow_pass_a_backlog_is_taken_batch_max_at_a_time() -> None:
    loop = make_loop(Host(DeviceConfig(batchMax=4, batchWaitMs=10_000)))
    inputs = RecordingQueue(requests(20))
    loop._last_pass_s = BACKLOG_PASS_S * 2  # a slow model: reports and stop must not wait for a whole backlog

    assert len(loop._collect(inputs)) == 4
    loop._last_pass_s = 0.0
    assert len(loop._collect(inputs)) == 16
