"""One contract suite for every RecordBuffer, plus what only the durable SQLite buffer promises."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeloop.core.buffer_policy import BUFFER_FULL
from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.records import RecordKind, result_payload
from edgeloop.device.buffer import DEFAULT_MAX_BYTES, BufferStats, MemoryBuffer, RecordBuffer
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.stored_payload import StagedResults, stored_form

THING = "dev-1"
NONE = {"alert": 0, "event": 0, "sample": 0, "result": 0}


AnyBuffer = MemoryBuffer | SqliteBuffer
BufferFactory = Callable[..., AnyBuffer]


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def make_buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BufferFactory]:
    """Every implementation the contract holds for, with a chosen bound."""
    made: list[AnyBuffer] = []

    def make(max_bytes: int = DEFAULT_MAX_BYTES) -> AnyBuffer:
        buffer: AnyBuffer
        if request.param == "memory":
            buffer = MemoryBuffer(THING, max_bytes=max_bytes)
        elif request.param == "sqlite-memory":
            buffer = SqliteBuffer(":memory:", THING, max_bytes=max_bytes)
        else:
            buffer = SqliteBuffer(tmp_path / "buffer.sqlite3", THING, max_bytes=max_bytes)
        made.append(buffer)
        return buffer

    yield make
    for buffer in made:
        buffer.close()


@pytest.fixture
def buffer(make_buffer: BufferFactory) -> RecordBuffer:
    return make_buffer()


def _payloads(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"i": start + i, "nested": {"ok": True, "values": [1.5, None, "x"]}} for i in range(n)]


def test_append_assigns_seq_from_one_and_returns_the_records(buffer: RecordBuffer) -> None:
    records = buffer.append(RecordKind.RESULT, _payloads(3), now=100.0)

    assert [r.seq for r in records] == [1, 2, 3]
    assert {r.thing_name for r in records} == {THING}
    assert {r.kind for r in records} == {RecordKind.RESULT}
    assert {r.created_at for r in records} == {100.0}
    assert [r.payload for r in records] == _payloads(3)


def test_seq_keeps_increasing_across_appends_and_acks(buffer: RecordBuffer) -> None:
    first = buffer.append(RecordKind.RESULT, _payloads(2), now=1.0)
    buffer.ack(r.seq for r in first)
    second = buffer.append(RecordKind.EVENT, _payloads(2), now=2.0)

    assert [r.seq for r in second] == [3, 4]


def test_append_of_nothing_stores_nothing(buffer: RecordBuffer) -> None:
    assert buffer.append(RecordKind.RESULT, [], now=1.0) == []
    assert buffer.stats().produced == 0


def test_peek_returns_payloads_as_appended_without_removing(buffer: RecordBuffer) -> None:
    appended = buffer.append(RecordKind.RESULT, _payloads(3), now=5.0)

    assert buffer.peek(10) == appended
    assert buffer.peek(10) == appended
    assert buffer.stats().depth == 3


def test_peek_orders_by_priority_then_seq_and_honours_the_limit(buffer: RecordBuffer) -> None:
    buffer.append(RecordKind.RESULT, _payloads(2), now=1.0)  # seq 1, 2
    buffer.append(RecordKind.ALERT, _payloads(1), now=2.0)  # seq 3
    buffer.append(RecordKind.SAMPLE, _payloads(1), now=3.0)  # seq 4
    buffer.append(RecordKind.ALERT, _payloads(1), now=4.0)  # seq 5
    buffer.append(RecordKind.EVENT, _payloads(1), now=5.0)  # seq 6

    assert [r.seq for r in buffer.peek(10)] == [3, 5, 6, 4, 1, 2]
    assert [r.seq for r in buffer.peek(3)] == [3, 5, 6]
    assert buffer.peek(0) == []


def test_negative_limit_is_refused(buffer: RecordBuffer) -> None:
    with pytest.raises(ValidationError, match="limit"):
        buffer.peek(-1)


def test_ack_removes_only_known_records_and_counts_them(buffer: RecordBuffer) -> None:
    buffer.append(RecordKind.RESULT, _payloads(4), now=1.0)

    assert buffer.ack([2, 4, 99]) == 2
    assert buffer.ack([2]) == 0
    assert buffer.ack([]) == 0
    assert [r.seq for r in buffer.peek(10)] == [1, 3]


def test_stats_count_depth_produced_acked_and_depth_per_kind(buffer: RecordBuffer) -> None:
    buffer.append(RecordKind.RESULT, _payloads(3), now=1.0)
    buffer.append(RecordKind.ALERT, _payloads(2), now=2.0)
    buffer.ack([1, 4])

    size = len('{"i":0,"nested":{"ok":true,"values":[1.5,null,"x"]}}')
    assert buffer.stats() == BufferStats(
        depth=3,
        produced=5,
        acked=2,
        by_kind={RecordKind.ALERT: 1, RecordKind.EVENT: 0, RecordKind.SAMPLE: 0, RecordKind.RESULT: 2},
        bytes=3 * size,
        max_bytes=DEFAULT_MAX_BYTES,
        oldest_created_at=1.0,
        evicted_by_kind=NONE,
        refused_by_kind=NONE,
        quarantined=0,
    )


def test_an_empty_buffer_has_no_oldest_record_and_no_bytes(buffer: RecordBuffer) -> None:
    buffer.ack(r.seq for r in buffer.append(RecordKind.EVENT, _payloads(2), now=1.0))

    stats = buffer.stats()

    assert (stats.depth, stats.bytes, stats.oldest_created_at) == (0, 0, None)


def test_oldest_created_at_is_the_oldest_waiting_record_of_any_class(buffer: RecordBuffer) -> None:
    buffer.append(RecordKind.RESULT, _payloads(1), now=10.0)  # seq 1
    buffer.append(RecordKind.ALERT, _payloads(1), now=20.0)  # seq 2
    assert buffer.stats().oldest_created_at == 10.0

    buffer.ack([1])

    assert buffer.stats().oldest_created_at == 20.0


def test_a_payload_that_is_not_json_stores_nothing_of_the_call(buffer: RecordBuffer) -> None:
    with pytest.raises(ValidationError, match="payload"):
        buffer.append(RecordKind.RESULT, [{"ok": 1}, {"bad": object()}], now=1.0)
    with pytest.raises(ValidationError, match="payload"):
        buffer.append(RecordKind.RESULT, [{"nan": float("nan")}], now=1.0)
    circular: dict[str, Any] = {"a": []}
    circular["a"].append(circular)
    with pytest.raises(ValidationError, match="payload"):
        buffer.append(RecordKind.RESULT, [circular], now=1.0)

    assert buffer.stats().produced == 0
    assert buffer.peek(10) == []


def test_concurrent_appends_get_distinct_consecutive_seqs(buffer: RecordBuffer) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def produce() -> None:
        for _ in range(20):
            got = buffer.append(RecordKind.RESULT, _payloads(5), now=1.0)
            with lock:
                seqs.extend(r.seq for r in got)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(seqs) == list(range(1, 401))
    assert buffer.stats().depth == 400


# --- the bound: eviction and refusal --------------------------------------------------------------

RECORD = 100
"""Payload bytes of every record _blobs makes, so bounds are easy to count in records."""


def _blobs(n: int) -> list[dict[str, object]]:
    return [{"p": "x" * (RECORD - 8)} for _ in range(n)]


def _fill(buffer: RecordBuffer, *kinds: RecordKind) -> None:
    for kind in kinds:
        buffer.append(kind, _blobs(1), now=1.0)


def _seqs(buffer: RecordBuffer) -> list[int]:
    return [r.seq for r in buffer.peek(1000)]


def test_results_over_the_bound_evict_the_oldest_results(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=10 * RECORD)
    _fill(buffer, *[RecordKind.RESULT] * 10)

    buffer.append(RecordKind.RESULT, _blobs(2), now=2.0)

    assert _seqs(buffer) == list(range(3, 13))
    stats = buffer.stats()
    assert (stats.bytes, stats.depth, stats.produced) == (10 * RECORD, 10, 12)
    assert stats.evicted_by_kind == {**NONE, "result": 2}
    assert stats.evicted == 2


def test_eviction_is_logged_when_it_starts_not_on_every_append(
    make_buffer: BufferFactory, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = make_buffer(max_bytes=2 * RECORD)
    _fill(buffer, *[RecordKind.RESULT] * 5)  # evictions on appends 3, 4 and 5
    buffer.ack([4, 5])
    _fill(buffer, RecordKind.RESULT, RecordKind.RESULT, RecordKind.RESULT)  # room for two, then evicting again

    assert [r.message.startswith(BUFFER_FULL) for r in caplog.records] == [True, True]


def test_eviction_takes_the_lowest_priority_oldest_first_and_alerts_last(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=8 * RECORD)
    a, e, s, r = RecordKind.ALERT, RecordKind.EVENT, RecordKind.SAMPLE, RecordKind.RESULT
    _fill(buffer, a, a, e, e, s, s, r, r)  # seq 1..8

    buffer.append(a, _blobs(3), now=2.0)  # seq 9..11: evicts results 7, 8 and sample 5

    assert _seqs(buffer) == [1, 2, 9, 10, 11, 3, 4, 6]
    assert buffer.stats().evicted_by_kind == {**NONE, "result": 2, "sample": 1}

    buffer.append(a, _blobs(4), now=3.0)  # seq 12..15: evicts sample 6, events 3, 4, then alert 1

    assert _seqs(buffer) == [2, 9, 10, 11, 12, 13, 14, 15]
    assert buffer.stats().evicted_by_kind == {"alert": 1, "event": 2, "sample": 2, "result": 2}


def test_an_append_that_would_evict_more_important_records_is_refused_and_counted(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=3 * RECORD)
    _fill(buffer, RecordKind.ALERT, RecordKind.EVENT, RecordKind.SAMPLE)

    with pytest.raises(StoreError, match=f"^{BUFFER_FULL}: .*result"):
        buffer.append(RecordKind.RESULT, _blobs(2), now=2.0)
    with pytest.raises(StoreError, match=f"^{BUFFER_FULL}"):
        buffer.append(RecordKind.EVENT, _blobs(3), now=2.0)  # only the sample and the event could go

    assert _seqs(buffer) == [1, 2, 3]
    stats = buffer.stats()
    assert stats.refused_by_kind == {**NONE, "result": 2, "event": 3}
    assert (stats.refused, stats.evicted, stats.produced) == (5, 0, 3)


def test_an_alert_evicts_the_oldest_alert_only_when_nothing_else_is_left(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=2 * RECORD)
    _fill(buffer, RecordKind.ALERT, RecordKind.ALERT)

    buffer.append(RecordKind.ALERT, _blobs(1), now=2.0)

    assert _seqs(buffer) == [2, 3]
    assert buffer.stats().evicted_by_kind == {**NONE, "alert": 1}


def test_an_append_bigger_than_the_bound_is_refused_whole(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=3 * RECORD)
    _fill(buffer, RecordKind.RESULT)

    with pytest.raises(StoreError, match=BUFFER_FULL):
        buffer.append(RecordKind.ALERT, _blobs(4), now=2.0)

    assert _seqs(buffer) == [1]
    assert buffer.stats().refused_by_kind == {**NONE, "alert": 4}
    assert buffer.stats().evicted == 0


def test_evicted_seqs_are_never_reused_and_acking_them_is_harmless(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=2 * RECORD)
    _fill(buffer, RecordKind.RESULT, RecordKind.RESULT, RecordKind.RESULT)  # seq 1 evicted

    assert buffer.ack([1]) == 0
    assert [r.seq for r in buffer.append(RecordKind.RESULT, _blobs(1), now=2.0)] == [4]
    assert buffer.stats().acked == 0


def test_a_smaller_bound_applies_at_the_next_append(make_buffer: BufferFactory) -> None:
    buffer = make_buffer(max_bytes=10 * RECORD)
    _fill(buffer, *[RecordKind.SAMPLE] * 10)

    buffer.set_max_bytes(3 * RECORD)
    buffer.append(RecordKind.SAMPLE, _blobs(1), now=2.0)

    assert _seqs(buffer) == [9, 10, 11]
    assert (buffer.stats().bytes, buffer.stats().max_bytes) == (3 * RECORD, 3 * RECORD)
    assert buffer.stats().evicted_by_kind == {**NONE, "sample": 8}


def test_a_bound_that_is_not_positive_is_refused(make_buffer: BufferFactory) -> None:
    with pytest.raises(ValidationError, match="max_bytes"):
        make_buffer(max_bytes=0)
    buffer = make_buffer(max_bytes=RECORD)
    with pytest.raises(ValidationError, match="max_bytes"):
        buffer.set_max_bytes(-1)


def test_append_returns_the_given_payloads_and_stores_a_copy(buffer: RecordBuffer) -> None:
    payloads = _payloads(2)
    first, second = buffer.append(RecordKind.RESULT, payloads, now=1.0)
    assert first.payload is payloads[0]
    assert second.payload is payloads[1]

    payloads[0]["i"] = 99  # a caller changing its object after append changes nothing stored
    payloads[1]["nested"]["values"].append("late")

    assert [r.payload for r in buffer.peek(10)] == _payloads(2)


def test_payloads_are_stored_as_compact_ascii_json_and_read_back_unchanged(buffer: RecordBuffer) -> None:
    payload = {"text": 'caf\u00e9 \U0001f600 "q"', "n": [1, 2.5, -0.0, 1e300], "nested": {"b": None, "t": True}}
    buffer.append(RecordKind.EVENT, [payload], now=1.0)

    [back] = buffer.peek(1)

    assert back.payload == payload
    expected = json.dumps(payload, separators=(",", ":"))
    assert buffer.stats().bytes == len(expected) == len(expected.encode())


# --- RESULT records staged as columns ----------------------------------------------------------


def test_staged_results_are_stored_as_columns_and_peek_as_their_payload(buffer: RecordBuffer) -> None:
    columns = (["req-1", "req-2"], [3, 7], ["three", "seven"], [0.5, 0.987654], 2, 0.25)
    staged = StagedResults(columns)

    records = buffer.append(RecordKind.RESULT, [staged, {"plain": 1}], now=5.0)

    assert records[0].payload is staged
    assert [r.payload for r in buffer.peek(10)] == [result_payload(*columns), {"plain": 1}]
    assert buffer.stats().bytes == len(stored_form(staged)) + len('{"plain":1}')


def test_the_bound_counts_stored_columns_and_evicts_them_like_any_record(make_buffer: BufferFactory) -> None:
    staged = StagedResults((["req-1"], [1], ["one"], [0.5], 1, 0.1))
    size = len(stored_form(staged))
    buffer = make_buffer(max_bytes=3 * size)

    for i in range(4):
        buffer.append(RecordKind.RESULT, [StagedResults(([f"req-{i}"], [1], ["one"], [0.5], 1, 0.1))], now=float(i))

    stats = buffer.stats()
    assert (stats.depth, stats.bytes, stats.evicted_by_kind["result"]) == (3, 3 * size, 1)
    assert [r.payload["request_ids"] for r in buffer.peek(10)] == [["req-1"], ["req-2"], ["req-3"]]
