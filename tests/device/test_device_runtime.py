"""The device runtime: inference, model swaps, store-and-forward and health, with a real ONNX model."""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from support import FakeClock

from edgeloop.core.errors import LinkError, ModelFormatError
from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.names import HEALTH_SHADOW, model_component_name, results_topic
from edgeloop.core.records import InferenceBatch, InferenceResult, Record, RecordKind, decode_batch
from edgeloop.core.settings import DeviceConfig
from edgeloop.device import runtime as runtime_module
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.inference import NO_ACTIVE_MODEL, Rejected
from edgeloop.device.onnx_model import LoadedModel, load_model
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.staging import COMMIT_MAX_RESULTS
from edgeloop.device.uplink import MemoryUplink

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory

THING = "dev-1"
COMPONENT = model_component_name("digits")
WAIT_S = 10.0


def config(version: int | None = 1, **overrides: Any) -> DeviceConfig:
    model = {"modelComponent": COMPONENT, "modelComponentVersion": f"{version}.0.0"} if version else {}
    return DeviceConfig(**{"batchMax": 8, "forwardBatchSize": 50, **model, **overrides})


@dataclass
class Device:
    runtime: DeviceRuntime
    buffer: MemoryBuffer
    uplink: MemoryUplink
    clock: FakeClock


@pytest.fixture
def make_device(model_root: Path) -> Callable[..., Device]:
    def make(cfg: DeviceConfig | None = None, *, buffer: MemoryBuffer | None = None, uplink: Any = None) -> Device:
        clock = FakeClock()
        buffer = buffer or MemoryBuffer(THING)
        uplink = uplink or MemoryUplink()
        runtime = DeviceRuntime(
            thing_name=THING,
            buffer=buffer,
            uplink=uplink,
            clock=clock,
            model_root=model_root,
            config=cfg or config(),
        )
        return Device(runtime, buffer, uplink, clock)

    return make


@pytest.fixture
def device(make_model_dir: ModelDirFactory, make_device: Callable[..., Device]) -> Device:
    make_model_dir(1)
    return make_device()


def requests(model: DigitsModel, n: int, prefix: str = "r") -> list[tuple[str, list[float]]]:
    return [(f"{prefix}{i}", model.rows[i % len(model.rows)].tolist()) for i in range(n)]


def buffered(buffer: MemoryBuffer) -> list[Record]:
    return buffer.peek(1_000_000)


def result_rows(records: list[Record]) -> list[InferenceResult]:
    """The results RESULT records carry (one record per micro-batch), one per request, in record order."""
    return [
        row for r in records if r.kind is RecordKind.RESULT for row in InferenceBatch.from_payload(r.payload).rows()
    ]


# --- inference ----------------------------------------------------------------------------------


def test_infer_answers_every_request_in_order_and_buffers_the_results(
    device: Device, digits_model: DigitsModel
) -> None:
    good = requests(digits_model, 5)
    batch = [good[0], ("bad-nan", [math.nan] * 64), good[1], good[2], ("bad-short", [1.0]), good[3], good[4]]

    answers = device.runtime.infer(batch)

    assert [a.request_id for a in answers] == [rid for rid, _ in batch]
    results = [a for a in answers if isinstance(a, InferenceResult)]
    assert [r.label for r in results] == [str(label) for label in digits_model.labels[:5]]
    assert {r.model_version for r in results} == {1}
    assert isinstance(answers[1], Rejected)
    assert "NaN" in answers[1].reason
    assert isinstance(answers[4], Rejected)
    assert "expected 64 features" in answers[4].reason
    assert len(buffered(device.buffer)) == 1  # one micro-batch, one record
    stored = result_rows(buffered(device.buffer))
    assert [(s.request_id, s.label, s.model_version) for s in stored] == [
        (r.request_id, r.label, r.model_version) for r in results
    ]
    health = device.runtime.health()
    assert (health.inferences, health.rejected_inputs, health.errors) == (5, 2, 0)
    assert health.latency.max_ms > 0


class CountingBuffer(MemoryBuffer):
    """Notes each append as the result counts of the records it carried."""

    def __init__(self, thing_name: str) -> None:
        super().__init__(thing_name)
        self.appends: list[list[int]] = []

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        self.appends.append([len(p["request_ids"]) for p in payloads])
        return super().append(kind, payloads, now)


def test_infer_makes_one_record_per_micro_batch_and_commits_them_in_one_append(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = CountingBuffer(THING)
    dev = make_device(config(batchMax=4), buffer=buffer)

    dev.runtime.infer(requests(digits_model, 10))

    assert buffer.appends == [[4, 4, 2]]  # three records, one transaction
    assert [r.seq for r in buffered(dev.buffer)] == [1, 2, 3]
    assert [r.request_id for r in result_rows(buffered(dev.buffer))] == [f"r{i}" for i in range(10)]


def test_serve_stages_results_until_the_commit_window_closes(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = CountingBuffer(THING)
    dev = make_device(config(batchMax=4, resultCommitMs=10_000), buffer=buffer)
    rows = requests(digits_model, 10)

    dev.runtime.serve(rows[:4])
    dev.runtime.serve(rows[4:5])
    assert buffer.appends == []
    assert dev.runtime.health().inferences == 5, "counted when answered, committed later"

    assert dev.runtime.commit() == 2
    assert buffer.appends == [[4, 1]]
    assert dev.runtime.commit() == 0, "nothing staged twice"
    assert [r.request_id for r in result_rows(buffered(dev.buffer))] == [f"r{i}" for i in range(5)]


def test_serve_commits_every_micro_batch_when_the_window_is_zero(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = CountingBuffer(THING)
    dev = make_device(config(batchMax=4, resultCommitMs=0), buffer=buffer)
    rows = requests(digits_model, 6)

    dev.runtime.serve(rows[:4])
    dev.runtime.serve(rows[4:5])
    dev.runtime.serve(rows[5:6])

    assert buffer.appends == [[4], [1], [1]]


def test_serve_commits_once_enough_results_are_staged(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = CountingBuffer(THING)
    dev = make_device(config(batchMax=64, resultCommitMs=10_000), buffer=buffer)
    rows = requests(digits_model, COMMIT_MAX_RESULTS + 1)

    for start in range(0, COMMIT_MAX_RESULTS, 64):
        dev.runtime.serve(rows[start : start + 64])
    dev.runtime.serve(rows[COMMIT_MAX_RESULTS:])

    assert buffer.appends == [[64] * (COMMIT_MAX_RESULTS // 64)]
    assert dev.runtime.commit() == 1


def test_without_a_model_every_request_is_rejected_and_counted(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    dev = make_device(config(version=None))

    answers = dev.runtime.infer(requests(digits_model, 3))

    assert answers == [Rejected(f"r{i}", NO_ACTIVE_MODEL) for i in range(3)]
    health = dev.runtime.health()
    assert (health.model_state, health.model_name, health.rejected_inputs) == (ModelState.NONE, None, 3)
    assert buffered(dev.buffer) == []


def test_an_inference_failure_is_counted_as_an_error(
    device: Device, digits_model: DigitsModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: LoadedModel, batch: np.ndarray, run_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        raise ModelFormatError("inference failed: boom")

    monkeypatch.setattr(LoadedModel, "predict", broken)

    answers = device.runtime.infer(requests(digits_model, 3))

    assert answers == [Rejected(f"r{i}", "inference failed: boom") for i in range(3)]
    assert device.runtime.health().errors == 1
    assert buffered(device.buffer) == []


def test_reject_input_counts_requests_refused_before_the_runtime(device: Device) -> None:
    device.runtime.reject_input("bad message")

    assert device.runtime.health().rejected_inputs == 1


# --- model manager ------------------------------------------------------------------------------


def test_an_active_model_shows_in_health(device: Device) -> None:
    health = device.runtime.health()

    assert (health.model_name, health.model_version, health.model_state) == ("digits", 1, ModelState.ACTIVE)


def test_a_new_version_is_swapped_in(
    device: Device, make_model_dir: ModelDirFactory, digits_model: DigitsModel
) -> None:
    make_model_dir(2)

    device.runtime.apply_config(config(2))

    answers = device.runtime.infer(requests(digits_model, 2))
    assert {a.model_version for a in answers if isinstance(a, InferenceResult)} == {2}
    assert device.runtime.health().model_version == 2


def test_a_model_failing_verification_is_rejected_and_the_previous_one_kept(
    device: Device, make_model_dir: ModelDirFactory, digits_model: DigitsModel, wrong_golden: Any
) -> None:
    make_model_dir(2, edit=wrong_golden)

    device.runtime.apply_config(config(2))

    health = device.runtime.health()
    assert (health.model_version, health.model_state) == (1, ModelState.REJECTED)
    assert f"{COMPONENT} 2.0.0 rejected: self-test failed" in health.model_detail
    answers = device.runtime.infer(requests(digits_model, 2))
    assert {a.model_version for a in answers if isinstance(a, InferenceResult)} == {1}


def test_a_missing_model_folder_is_rejected_without_a_previous_model(make_device: Callable[..., Device]) -> None:
    dev = make_device(config(7))

    health = dev.runtime.health()
    assert (health.model_name, health.model_state) == (None, ModelState.REJECTED)
    assert "7.0.0 rejected" in health.model_detail


def test_a_model_component_carrying_another_model_is_rejected(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], model_root: Path
) -> None:
    other = model_root / model_component_name("other") / "1.0.0"
    shutil.copytree(make_model_dir(1), other)

    dev = make_device(DeviceConfig(modelComponent=model_component_name("other"), modelComponentVersion="1.0.0"))

    health = dev.runtime.health()
    assert health.model_state == ModelState.REJECTED
    assert "holds model 'digits'" in health.model_detail


def test_clearing_the_model_from_the_config_unloads_it(device: Device, digits_model: DigitsModel) -> None:
    device.runtime.apply_config(config(version=None))

    assert device.runtime.infer(requests(digits_model, 1)) == [Rejected("r0", NO_ACTIVE_MODEL)]
    assert device.runtime.health().model_state == ModelState.NONE


def test_a_model_switch_mid_stream_answers_each_batch_with_exactly_one_version(
    device: Device, make_model_dir: ModelDirFactory, digits_model: DigitsModel
) -> None:
    make_model_dir(2)
    batches: list[list[InferenceResult | Rejected]] = []
    seen = {1: threading.Event(), 2: threading.Event()}
    stop = threading.Event()

    def stream() -> None:
        n = 0
        while not stop.is_set():
            answers = device.runtime.infer(requests(digits_model, 8, prefix=f"b{n}-"))
            batches.append(answers)
            n += 1
            for answer in answers:
                if isinstance(answer, InferenceResult):
                    seen[answer.model_version].set()

    worker = threading.Thread(target=stream)
    worker.start()
    assert seen[1].wait(WAIT_S)
    device.runtime.apply_config(config(2))
    assert seen[2].wait(WAIT_S)
    stop.set()
    worker.join(WAIT_S)

    versions = []
    for answers in batches:
        assert all(isinstance(a, InferenceResult) for a in answers)
        batch_versions = {a.model_version for a in answers if isinstance(a, InferenceResult)}
        assert len(batch_versions) == 1
        versions.append(batch_versions.pop())
    assert versions == sorted(versions)
    assert set(versions) == {1, 2}
    by_request = {
        a.request_id: a.model_version for answers in batches for a in answers if isinstance(a, InferenceResult)
    }
    stored = result_rows(buffered(device.buffer))
    assert {s.request_id: s.model_version for s in stored} == by_request


# --- forwarding ---------------------------------------------------------------------------------


class WatchingUplink(MemoryUplink):
    """Records what the buffer still held at the moment each publish was called."""

    def __init__(self, buffer: MemoryBuffer) -> None:
        super().__init__()
        self.buffer = buffer
        self.held_during_publish: list[list[int]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.held_during_publish.append([r.seq for r in self.buffer.peek(1_000_000)])
        super().publish(topic, payload)


def test_forward_acks_only_after_publish_returned(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    uplink = WatchingUplink(buffer)
    dev = make_device(config(batchMax=2), buffer=buffer, uplink=uplink)
    dev.runtime.infer(requests(digits_model, 6))

    delivered = dev.runtime.forward()

    assert delivered == 3
    assert uplink.held_during_publish == [[1, 2, 3]]
    ((topic, payload),) = uplink.published
    assert topic == results_topic(THING)
    assert [r.seq for r in decode_batch(payload)] == [1, 2, 3]
    assert buffered(buffer) == []
    assert dev.runtime.health().records_delivered == 3


def test_forward_moves_at_most_forward_batch_size(device: Device, digits_model: DigitsModel) -> None:
    device.runtime.apply_config(config(forwardBatchSize=4, batchMax=1))
    device.runtime.infer(requests(digits_model, 10))

    assert device.runtime.forward() == 4
    assert [r.seq for r in buffered(device.buffer)] == [5, 6, 7, 8, 9, 10]


def test_offline_records_stay_buffered_then_drain_in_order(device: Device, digits_model: DigitsModel) -> None:
    device.uplink.online = False
    device.runtime.infer(requests(digits_model, 7, prefix="a"))

    assert device.runtime.forward() == 0
    device.runtime.infer(requests(digits_model, 7, prefix="b"))
    assert device.runtime.forward() == 0
    assert device.runtime.health().buffer_depth == 2

    device.uplink.online = True
    device.runtime.apply_config(config(forwardBatchSize=1))
    while device.runtime.forward():
        pass

    delivered = [r for _, payload in device.uplink.published for r in decode_batch(payload)]
    assert len(device.uplink.published) == 2
    assert [r.seq for r in delivered] == [1, 2]
    expected = [f"a{i}" for i in range(7)] + [f"b{i}" for i in range(7)]
    assert [r.request_id for r in result_rows(delivered)] == expected
    assert device.runtime.health().buffer_depth == 0


def test_forward_stops_at_the_first_failed_publish(make_device: Callable[..., Device]) -> None:
    class FailSecond(MemoryUplink):
        def publish(self, topic: str, payload: bytes) -> None:
            if self.published:
                raise LinkError("second publish refused")
            super().publish(topic, payload)

    buffer = MemoryBuffer(THING)
    buffer.append(RecordKind.RESULT, [{"blob": "x" * 1_000} for _ in range(200)], now=1.0)
    dev = make_device(config(version=None, forwardBatchSize=200), buffer=buffer, uplink=FailSecond())

    delivered = dev.runtime.forward()

    first_batch = decode_batch(dev.uplink.published[0][1])
    assert 0 < delivered == len(first_batch) < 200
    assert [r.seq for r in buffered(buffer)] == list(range(len(first_batch) + 1, 201))


# --- health -------------------------------------------------------------------------------------


def test_the_health_shadow_document_parses_back(device: Device, digits_model: DigitsModel) -> None:
    device.runtime.infer([*requests(digits_model, 3), ("bad", [1.0])])
    device.runtime.forward()
    expected = device.runtime.health()

    assert device.runtime.report_health() is True

    ((thing, shadow, document),) = device.uplink.shadows
    assert (thing, shadow) == (THING, HEALTH_SHADOW)
    report = HealthReport.from_shadow(document)
    assert report == expected
    assert (report.inferences, report.rejected_inputs, report.records_delivered) == (3, 1, 1)
    assert report.connected is True


def test_the_latency_window_resets_only_after_a_successful_report(device: Device, digits_model: DigitsModel) -> None:
    device.runtime.infer(requests(digits_model, 3))
    device.uplink.online = False

    assert device.runtime.report_health() is False
    assert device.runtime.health().latency.max_ms > 0

    device.uplink.online = True
    assert device.runtime.report_health() is True
    assert device.runtime.health().latency == LatencySummary.from_samples([])
    assert device.runtime.health().inferences == 3


# --- the loop -----------------------------------------------------------------------------------


def test_run_after_stop_answers_the_queue_forwards_and_reports(device: Device, digits_model: DigitsModel) -> None:
    inputs = RequestQueue()
    for request in requests(digits_model, 20):
        inputs.put(request)
    stop = threading.Event()
    stop.set()

    device.runtime.run(inputs, stop)

    delivered = [r for _, payload in device.uplink.published for r in decode_batch(payload)]
    assert sorted(r.request_id for r in result_rows(delivered)) == sorted(f"r{i}" for i in range(20))
    report = HealthReport.from_shadow(device.uplink.shadows[-1][2])
    assert (report.inferences, report.buffer_depth, report.records_delivered) == (20, 0, 3)  # batches of 8


class SignallingUplink(MemoryUplink):
    """Lets a test wait until the loop has delivered a number of results."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def publish(self, topic: str, payload: bytes) -> None:
        with self.changed:
            super().publish(topic, payload)
            self.changed.notify_all()

    def delivered(self) -> int:
        return len(result_rows([r for _, p in self.published for r in decode_batch(p)]))

    def wait_for(self, results: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.delivered() >= results, WAIT_S)


def test_run_serves_a_stream_until_stopped(
    make_model_dir: ModelDirFactory, model_root: Path, tmp_path: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    uplink = SignallingUplink()
    buffer = SqliteBuffer(tmp_path / "buffer.sqlite3", THING)
    runtime = DeviceRuntime(
        thing_name=THING,
        buffer=buffer,
        uplink=uplink,
        clock=time.time,
        model_root=model_root,
        config=config(batchWaitMs=1, healthIntervalSeconds=0.05),
        forward_interval_s=0.01,
    )
    inputs = RequestQueue()
    stop = threading.Event()
    loop = threading.Thread(target=runtime.run, args=(inputs, stop))
    loop.start()
    for request in requests(digits_model, 30):
        inputs.put(request)
    assert uplink.wait_for(30)
    stop.set()
    loop.join(WAIT_S)

    assert not loop.is_alive()
    assert buffer.stats().depth == 0
    assert HealthReport.from_shadow(uplink.shadows[-1][2]).inferences == 30
    buffer.close()


def test_run_commits_staged_results_as_soon_as_its_queue_idles(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = CountingBuffer(THING)
    dev = make_device(config(batchWaitMs=1, resultCommitMs=10_000), buffer=buffer)
    inputs = RequestQueue()
    stop = threading.Event()
    loop = threading.Thread(target=dev.runtime.run, args=(inputs, stop))
    loop.start()
    try:
        inputs.put(requests(digits_model, 1)[0])
        deadline = time.monotonic() + WAIT_S
        while buffer.stats().produced < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert buffer.stats().produced == 1, "an idle loop does not sit on a result for the whole window"
    finally:
        stop.set()
        loop.join(WAIT_S)
    assert buffer.appends == [[1]]


def test_stopping_commits_what_is_staged_and_what_was_queued(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    dev = make_device(config(resultCommitMs=10_000))
    inputs = RequestQueue()
    dev.runtime.serve(requests(digits_model, 3, prefix="staged-"))
    for request in requests(digits_model, 5, prefix="queued-"):
        inputs.put(request)
    stop = threading.Event()
    stop.set()

    dev.runtime.run(inputs, stop)

    delivered = [r for _, payload in dev.uplink.published for r in decode_batch(payload)]
    ids = [r.request_id for r in result_rows(delivered + buffered(dev.buffer))]
    assert sorted(ids) == sorted([f"staged-{i}" for i in range(3)] + [f"queued-{i}" for i in range(5)])
    assert dev.buffer.stats().produced == len(delivered) + dev.buffer.stats().depth


def test_nothing_the_uplink_raises_stops_the_loop(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    class Exploding(MemoryUplink):
        def publish(self, topic: str, payload: bytes) -> None:
            raise RuntimeError("driver bug")

        def update_shadow(self, thing_name: str, shadow_name: str, document: Mapping[str, Any]) -> None:
            raise LinkError("offline")

    make_model_dir(1)
    device = make_device(uplink=Exploding())
    inputs = RequestQueue()
    for request in requests(digits_model, 3):
        inputs.put(request)
    stop = threading.Event()
    stop.set()

    device.runtime.run(inputs, stop)

    health = device.runtime.health()
    assert (health.inferences, health.buffer_depth) == (3, 1)
    assert health.uplink_state == "backing_off"  # an adapter bug backs off like an outage
    assert device.runtime.forwarder.stats().failures >= 1


def test_config_changes_apply_to_batching_without_reloading_the_model(
    device: Device, digits_model: DigitsModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real_load = load_model

    def counting_load(model_dir: Path, **kwargs: Any) -> LoadedModel:
        loads.append(model_dir)
        return real_load(model_dir, **kwargs)

    monkeypatch.setattr(runtime_module, "load_model", counting_load)

    device.runtime.apply_config(replace(device.runtime.config, batchMax=2, forwardBatchSize=9))
    device.runtime.infer(requests(digits_model, 3))

    assert loads == []
    assert device.runtime.config.batchMax == 2
    assert device.runtime.health().model_state == ModelState.ACTIVE


def test_changing_intra_op_threads_reloads_the_model(device: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []
    real_load = load_model

    def counting_load(model_dir: Path, **kwargs: Any) -> LoadedModel:
        loads.append(kwargs["intra_op_threads"])
        return real_load(model_dir, **kwargs)

    monkeypatch.setattr(runtime_module, "load_model", counting_load)

    device.runtime.apply_config(replace(device.runtime.config, intraOpThreads=2))

    assert loads == [2]
    assert device.runtime.health().model_state == ModelState.ACTIVE


def test_a_configuration_sets_the_buffer_bound(make_model_dir: ModelDirFactory, model_root: Path) -> None:
    buffer = MemoryBuffer(THING)
    device = DeviceRuntime(
        thing_name=THING,
        buffer=buffer,
        uplink=MemoryUplink(),
        clock=lambda: 1_000.0,
        model_root=model_root,
        config=DeviceConfig(),
    )
    device.apply_config(DeviceConfig(bufferMaxBytes=2 * 1024 * 1024))
    assert buffer.stats().max_bytes == 2 * 1024 * 1024
