"""The forwarder: ordered, packed, paced drains that ack only confirmed records and back off on failure."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import decode_message

from edgeloop.core.backoff import UplinkState
from edgeloop.core.compression import MAX_DECOMPRESSED_BYTES, decompress
from edgeloop.core.errors import LinkError
from edgeloop.core.names import parse_samples_topic, results_topic, samples_object_key, samples_topic
from edgeloop.core.records import BILLING_UNIT_BYTES, MAX_MESSAGE_BYTES, RecordKind, billed_units, decode_batch
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import MemoryBuffer, RecordBuffer
from edgeloop.device.forwarder import RECORD_REFUSED_EVENT, Forwarder
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.uplink import MemoryUplink

THING = "dev-1"
HALF = 0.5


class ScriptedUplink(MemoryUplink):
    """MemoryUplink that can fail the next n publishes while staying 'connected', and notes the buffer."""

    def __init__(self, buffer: RecordBuffer) -> None:
        super().__init__()
        self.buffer = buffer
        self.fail_next = 0
        self.depth_during_publish: list[int] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.depth_during_publish.append(self.buffer.stats().depth)
        if self.fail_next:
            self.fail_next -= 1
            raise LinkError("no PUBACK within the timeout")
        super().publish(topic, payload)


@pytest.fixture(params=["memory", "sqlite"])
def buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordBuffer]:
    made: Any = MemoryBuffer(THING) if request.param == "memory" else SqliteBuffer(tmp_path / "b.sqlite3", THING)
    yield made
    made.close()


@pytest.fixture
def uplink(buffer: RecordBuffer) -> ScriptedUplink:
    return ScriptedUplink(buffer)


def forwarder(buffer: RecordBuffer, uplink: MemoryUplink, **kwargs: Any) -> Forwarder:
    return Forwarder(THING, buffer, uplink, **{"rand": lambda: HALF, **kwargs})


def fill(buffer: RecordBuffer, kind: RecordKind, count: int, *, blob: int = 100) -> list[int]:
    return [r.seq for r in buffer.append(kind, [{"i": i, "blob": "x" * blob} for i in range(count)], now=1.0)]


def delivered(uplink: MemoryUplink) -> list[tuple[RecordKind, int]]:
    return [(r.kind, r.seq) for topic, payload in uplink.published for r in decode_message(topic, payload)]


def test_drain_delivers_by_priority_in_seq_order_then_acks(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    results = fill(buffer, RecordKind.RESULT, 30)
    alerts = fill(buffer, RecordKind.ALERT, 5)
    events = fill(buffer, RecordKind.EVENT, 5)

    count = forwarder(buffer, uplink).drain(10.0, 100)

    assert count == 40
    assert delivered(uplink) == (
        [(RecordKind.ALERT, s) for s in alerts]
        + [(RecordKind.EVENT, s) for s in events]
        + [(RecordKind.RESULT, s) for s in results]
    )
    assert {topic for topic, _ in uplink.published} == {results_topic(THING)}
    assert uplink.depth_during_publish == [40]  # nothing acked before the confirmation
    assert buffer.stats().depth == 0


def test_counters_and_last_success(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 10)
    fwd = forwarder(buffer, uplink)

    fwd.drain(10.0, 100)

    stats = fwd.stats()
    size = len(uplink.published[0][1])
    assert (stats.messages, stats.records, stats.bytes, stats.billed_units) == (1, 10, size, billed_units(size))
    assert (stats.state, stats.last_success_at, stats.next_attempt_at) == (UplinkState.CONNECTED, 10.0, None)
    assert (stats.failures, stats.consecutive_failures, stats.last_error) == (0, 0, "")


def test_a_failed_publish_keeps_the_records_and_backs_off(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 10)
    fwd = forwarder(buffer, uplink, backoff_base_s=2.0)
    uplink.fail_next = 1

    assert fwd.drain(10.0, 100) == 0

    assert buffer.stats().depth == 10
    assert fwd.state is UplinkState.BACKING_OFF
    assert fwd.next_attempt_at == 10.0 + HALF * 2.0
    assert fwd.stats().last_error.endswith("no PUBACK within the timeout")
    assert fwd.drain(10.5, 100) == 0  # still backing off: the uplink is not even asked
    assert len(uplink.depth_during_publish) == 1
    assert fwd.drain(11.0, 100) == 10
    assert (fwd.state, fwd.last_success_at, fwd.stats().failures) == (UplinkState.CONNECTED, 11.0, 1)


def test_backoff_grows_exponentially_to_the_cap(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 1)
    fwd = forwarder(buffer, uplink, backoff_base_s=1.0, backoff_cap_s=8.0, rand=lambda: 0.999999)
    uplink.fail_next = 6
    now, waits = 0.0, []
    for _ in range(6):
        fwd.drain(now, 10)
        assert fwd.next_attempt_at is not None
        waits.append(round(fwd.next_attempt_at - now, 3))
        now = fwd.next_attempt_at

    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert fwd.stats().consecutive_failures == 6


def test_an_offline_uplink_is_reported_and_its_return_ends_the_wait(buffer: RecordBuffer) -> None:
    uplink = MemoryUplink(online=False)
    fill(buffer, RecordKind.EVENT, 3)
    fwd = forwarder(buffer, uplink, backoff_base_s=30.0)

    assert fwd.drain(0.0, 10) == 0
    assert fwd.state is UplinkState.OFFLINE
    assert fwd.next_drain_at(0.0, idle_s=1.0) == 1.0  # keeps looking although the backoff is 15 s
    assert fwd.drain(1.0, 10) == 0

    uplink.online = True
    assert fwd.drain(1.0, 10) == 3
    assert fwd.stats().state is UplinkState.CONNECTED


def test_the_rate_limit_paces_publishes(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 60, blob=6_000)  # about one record per unit: many messages
    fwd = forwarder(buffer, uplink, rate_per_s=10, burst=3, max_bytes=BILLING_UNIT_BYTES * 2)

    assert fwd.drain(0.0, 60) > 0

    assert len(uplink.published) == 3
    assert fwd.more_waiting
    assert fwd.next_attempt_at == pytest.approx(0.1)
    assert fwd.state is UplinkState.CONNECTED
    assert fwd.drain(0.05, 60) == 0
    assert fwd.drain(0.1, 60) > 0
    assert len(uplink.published) == 4


def test_no_window_of_one_second_sees_more_than_rate_plus_burst(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 400, blob=3_000)
    fwd = forwarder(buffer, uplink, rate_per_s=20, burst=5, max_bytes=BILLING_UNIT_BYTES * 2)
    times: list[float] = []
    for step in range(3_000):  # the loop polls every millisecond for three seconds
        now = step / 1000
        before = len(uplink.published)
        fwd.drain(now, 50)
        times.extend([now] * (len(uplink.published) - before))

    assert len(times) > 40
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 25


def test_an_oversized_record_is_refused_counted_and_does_not_block(
    buffer: RecordBuffer, uplink: ScriptedUplink
) -> None:
    before = fill(buffer, RecordKind.SAMPLE, 2)
    noise = secrets.token_urlsafe(MAX_MESSAGE_BYTES * 2)  # random text: compressed, still over the limit
    (huge,) = buffer.append(RecordKind.SAMPLE, [{"blob": noise}], now=1.0)
    after = fill(buffer, RecordKind.SAMPLE, 2)
    fwd = forwarder(buffer, uplink)

    while fwd.drain(5.0, 100) or fwd.more_waiting:
        pass

    assert [seq for _, seq in delivered(uplink) if _ is RecordKind.SAMPLE] == before + after
    (event,) = [r for t, p in uplink.published for r in decode_message(t, p) if r.kind is RecordKind.EVENT]
    assert event.payload["event"] == RECORD_REFUSED_EVENT
    assert (event.payload["seq"], event.payload["kind"]) == (huge.seq, "sample")
    assert event.payload["bytes"] > MAX_MESSAGE_BYTES
    assert "compressed alone" in event.payload["reason"]
    assert fwd.stats().refused_oversized == 1
    assert buffer.stats().depth == 0


def test_a_sample_goes_compressed_when_only_its_json_is_over_the_message_limit(
    buffer: RecordBuffer, uplink: ScriptedUplink
) -> None:
    (big,) = buffer.append(RecordKind.SAMPLE, [{"blob": "y" * (MAX_MESSAGE_BYTES * 3)}], now=1.0)
    (too_big,) = buffer.append(RecordKind.SAMPLE, [{"blob": "y" * MAX_DECOMPRESSED_BYTES}], now=1.0)
    fwd = forwarder(buffer, uplink)

    while fwd.drain(5.0, 100) or fwd.more_waiting:
        pass

    assert (RecordKind.SAMPLE, big.seq) in delivered(uplink)
    assert max(len(p) for _, p in uplink.published) < MAX_MESSAGE_BYTES
    (event,) = [r for t, p in uplink.published for r in decode_message(t, p) if r.kind is RecordKind.EVENT]
    assert event.payload["seq"] == too_big.seq
    assert f"over the {MAX_DECOMPRESSED_BYTES}-byte limit" in event.payload["reason"], "the cloud would not inflate it"


def test_a_partial_tail_waits_for_the_next_round_unless_flushed(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 400, blob=300)  # more than one message's worth
    fwd = forwarder(buffer, uplink)

    first = fwd.drain(0.0, 300)  # 300 of 400 peeked: more are waiting, so the tail is trimmed

    assert 0 < first < 300
    assert fwd.more_waiting
    sizes = [len(p) for _, p in uplink.published]
    assert all(s % BILLING_UNIT_BYTES > BILLING_UNIT_BYTES - 500 or s % BILLING_UNIT_BYTES == 0 for s in sizes)

    rest = fwd.drain(0.0, 400, flush=True)

    assert first + rest == 400
    assert [seq for _, seq in delivered(uplink)] == list(range(1, 401))


def test_a_failure_mid_round_acks_exactly_the_confirmed_messages(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fill(buffer, RecordKind.RESULT, 300, blob=1_000)  # three messages

    class FailSecond(ScriptedUplink):
        def publish(self, topic: str, payload: bytes) -> None:
            if self.published:
                raise LinkError("connection lost")
            super().publish(topic, payload)

    failing = FailSecond(buffer)
    count = forwarder(buffer, failing).drain(0.0, 300, flush=True)

    first = decode_message(*failing.published[0])
    assert count == len(first) < 300
    assert [r.seq for r in buffer.peek(1_000)] == list(range(len(first) + 1, 301))


def test_an_unexpected_publish_error_backs_off_and_acks_nothing(buffer: RecordBuffer) -> None:
    class Buggy(MemoryUplink):
        def publish(self, topic: str, payload: bytes) -> None:
            raise RuntimeError("driver bug")

    fill(buffer, RecordKind.RESULT, 3)
    fwd = forwarder(buffer, Buggy())
    assert fwd.drain(0.0, 10) == 0
    assert buffer.stats().depth == 3
    stats = fwd.stats()
    assert stats.failures == 1
    assert "driver bug" in str(stats.last_error)
    assert fwd.next_attempt_at is not None
    assert fwd.next_attempt_at > 0.0  # backing off, not retrying on the next tick


def test_next_drain_at(buffer: RecordBuffer, uplink: ScriptedUplink) -> None:
    fwd = forwarder(buffer, uplink, backoff_base_s=4.0)
    assert fwd.next_drain_at(5.0, idle_s=1.0) == 6.0  # idle: poll again later
    fill(buffer, RecordKind.RESULT, 20)
    fwd.drain(5.0, 10)
    assert fwd.next_drain_at(5.0, idle_s=1.0) == 5.0  # backlog: at once
    uplink.fail_next = 1
    fwd.drain(5.0, 10)
    assert fwd.next_drain_at(5.0, idle_s=1.0) == 7.0  # link up but failing: wait out the backoff


# --- wired into the runtime ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def runtime(buffer: RecordBuffer, uplink: MemoryUplink, clock: Clock, tmp_path: Path, **config: Any) -> DeviceRuntime:
    return DeviceRuntime(
        thing_name=THING,
        buffer=buffer,
        uplink=uplink,
        clock=clock,
        model_root=tmp_path / "packages" / "artifacts",  # laid out as Greengrass does
        config=DeviceConfig(**config),
    )


def test_the_runtime_backs_off_instead_of_hammering_a_failing_uplink(
    buffer: RecordBuffer, uplink: ScriptedUplink, tmp_path: Path
) -> None:
    fill(buffer, RecordKind.EVENT, 5)
    clock = Clock()
    device = runtime(buffer, uplink, clock, tmp_path)
    uplink.fail_next = 1

    assert device.forward() == 0
    assert device.forward() == 0
    assert len(uplink.depth_during_publish) == 1  # the second call waited out the backoff
    assert device.forwarder.state is UplinkState.BACKING_OFF

    clock.now += 60.0
    assert device.forward() == 5
    assert device.forwarder.last_success_at == clock.now


def test_stopping_the_runtime_flushes_partial_messages(
    buffer: RecordBuffer, uplink: ScriptedUplink, tmp_path: Path
) -> None:
    fill(buffer, RecordKind.RESULT, 350, blob=300)
    device = runtime(buffer, uplink, Clock(), tmp_path, forwardBatchSize=300)
    stop = threading.Event()
    stop.set()

    device.run(RequestQueue(), stop)

    assert buffer.stats().depth == 0
    assert [seq for _, seq in delivered(uplink)] == list(range(1, 351))


def test_samples_travel_on_their_own_topic_and_every_class_keeps_its_order(
    buffer: RecordBuffer, uplink: ScriptedUplink
) -> None:
    results = fill(buffer, RecordKind.RESULT, 10)
    samples = fill(buffer, RecordKind.SAMPLE, 6)
    events = fill(buffer, RecordKind.EVENT, 3)

    assert forwarder(buffer, uplink).drain(10.0, 100) == 19

    by_topic: dict[str, list[tuple[RecordKind, int]]] = {}
    for topic, payload in uplink.published:
        by_topic.setdefault(topic, []).extend((r.kind, r.seq) for r in decode_message(topic, payload))
    assert by_topic.pop(results_topic(THING)) == [(RecordKind.EVENT, s) for s in events] + [
        (RecordKind.RESULT, s) for s in results
    ]
    assert by_topic == {samples_topic(THING, samples[0], samples[-1]): [(RecordKind.SAMPLE, s) for s in samples]}
    assert delivered(uplink) == [(RecordKind.EVENT, s) for s in events] + [(RecordKind.SAMPLE, s) for s in samples] + [
        (RecordKind.RESULT, s) for s in results
    ], "priority order across topics too"
    assert buffer.stats().depth == 0


def test_sample_batches_go_gzip_compressed_on_a_topic_naming_their_seq_range(
    buffer: RecordBuffer, uplink: ScriptedUplink
) -> None:
    fill(buffer, RecordKind.RESULT, 5)
    samples = fill(buffer, RecordKind.SAMPLE, 40, blob=400)
    fwd = forwarder(buffer, uplink)

    assert fwd.drain(10.0, 100) == 45

    [(topic, payload)] = [(t, p) for t, p in uplink.published if t != results_topic(THING)]
    assert parse_samples_topic(topic) == (THING, samples[0], samples[-1])
    assert samples_object_key(topic) == f"samples/{THING}/{samples[0]}-{samples[-1]}.json.gz"
    assert payload[:2] == b"\x1f\x8b", "gzip"
    assert [r.seq for r in decode_batch(decompress(payload))] == samples
    assert len(payload) * 5 < len(decompress(payload)), "what crosses the uplink is the compressed batch"
    assert fwd.stats().bytes == sum(len(p) for _, p in uplink.published), "the counters see compressed bytes"


def test_a_retried_sample_batch_is_the_same_bytes_on_the_same_key(buffer: RecordBuffer) -> None:
    class Recording(ScriptedUplink):
        def __init__(self, buffer: RecordBuffer) -> None:
            super().__init__(buffer)
            self.attempts: list[tuple[str, bytes]] = []

        def publish(self, topic: str, payload: bytes) -> None:
            self.attempts.append((topic, payload))
            super().publish(topic, payload)

    uplink = Recording(buffer)
    uplink.fail_next = 1  # the PUBACK never came: the device cannot know IoT Core stored the first try
    samples = fill(buffer, RecordKind.SAMPLE, 8)
    fwd = forwarder(buffer, uplink)

    assert fwd.drain(0.0, 100) == 0
    assert fwd.drain(fwd.next_drain_at(0.0, idle_s=1.0), 100) == 8

    first, retry = uplink.attempts
    assert first == retry, "byte-identical: the rule's S3 write overwrites the same object"
    assert samples_object_key(retry[0]) == f"samples/{THING}/{samples[0]}-{samples[-1]}.json.gz"
    assert buffer.stats().depth == 0


def test_only_the_last_topic_run_is_held_back_for_a_fuller_message(
    buffer: RecordBuffer, uplink: ScriptedUplink
) -> None:
    samples = fill(buffer, RecordKind.SAMPLE, 3)
    fill(buffer, RecordKind.RESULT, 200)

    forwarder(buffer, uplink).drain(10.0, 50)  # a full round: more records wait behind these

    sent = delivered(uplink)
    assert [(RecordKind.SAMPLE, s) for s in samples] == sent[:3], "a short samples run is not starved"


def test_each_confirmed_sample_batch_is_reported_with_its_bytes_on_the_wire(
    buffer: RecordBuffer, uplink: ScriptedUplink
) -> None:
    """The sample budget learns its wire price from this hook: SAMPLE batches only, and only once confirmed."""
    reported: list[tuple[list[int], int]] = []
    fill(buffer, RecordKind.RESULT, 5)
    samples = fill(buffer, RecordKind.SAMPLE, 30, blob=300)
    fwd = forwarder(buffer, uplink, on_samples=lambda records, size: reported.append(([r.seq for r in records], size)))
    uplink.fail_next = 1  # the round's first publish fails: nothing confirmed, nothing reported

    fwd.drain(10.0, 100)
    assert reported == []
    assert fwd.drain(100.0, 100) == 35

    sample_messages = [p for t, p in uplink.published if t != results_topic(THING)]
    assert [seqs for seqs, _ in reported] == [samples]
    assert [size for _, size in reported] == [len(p) for p in sample_messages]
    assert reported[0][1] * 3 < sum(
        len(r.to_wire()["payload"]["blob"]) for r in decode_batch(decompress(sample_messages[0]))
    )
