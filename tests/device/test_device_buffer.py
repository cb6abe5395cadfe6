"""One contract suite for every RecordBuffer, plus what only the durable SQLite buffer promises."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.records import RecordKind
from edgeloop.device.buffer import BufferStats, MemoryBuffer, RecordBuffer, SqliteBuffer

THING = "dev-1"


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordBuffer]:
    made: MemoryBuffer | SqliteBuffer
    if request.param == "memory":
        made = MemoryBuffer(THING)
    elif request.param == "sqlite-memory":
        made = SqliteBuffer(":memory:", THING)
    else:
        made = SqliteBuffer(tmp_path / "buffer.sqlite3", THING)
    yield made
    made.close()


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

    assert buffer.stats() == BufferStats(
        depth=3,
        produced=5,
        acked=2,
        by_kind={RecordKind.ALERT: 1, RecordKind.EVENT: 0, RecordKind.SAMPLE: 0, RecordKind.RESULT: 2},
    )


def test_a_payload_that_is_not_json_stores_nothing_of_the_call(buffer: RecordBuffer) -> None:
    with pytest.raises(ValidationError, match="payload"):
        buffer.append(RecordKind.RESULT, [{"ok": 1}, {"bad": object()}], now=1.0)
    with pytest.raises(ValidationError, match="payload"):
        buffer.append(RecordKind.RESULT, [{"nan": float("nan")}], now=1.0)

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


# --- SQLite only: durability ----------------------------------------------------------------------


def test_reopening_keeps_records_seq_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, THING)
    first.append(RecordKind.RESULT, _payloads(3), now=1.0)
    first.append(RecordKind.ALERT, _payloads(1), now=2.0)
    first.ack([1])
    before = first.stats()
    waiting = first.peek(10)
    first.close()

    second = SqliteBuffer(path, THING)

    assert second.stats() == before
    assert second.peek(10) == waiting
    assert [r.seq for r in second.append(RecordKind.RESULT, _payloads(1), now=3.0)] == [5]
    second.close()


def test_seq_is_never_reused_after_everything_was_acked_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, THING)
    first.ack(r.seq for r in first.append(RecordKind.RESULT, _payloads(2), now=1.0))
    first.close()

    second = SqliteBuffer(path, THING)

    assert [r.seq for r in second.append(RecordKind.RESULT, _payloads(1), now=2.0)] == [3]
    assert second.stats().acked == 2
    second.close()


def test_appended_records_are_committed_when_append_returns(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    buffer = SqliteBuffer(path, THING)
    buffer.append(RecordKind.RESULT, _payloads(2), now=1.0)

    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM records").fetchone() == (2,)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()
    buffer.close()


def test_a_buffer_file_of_another_thing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    SqliteBuffer(path, THING).close()

    with pytest.raises(StoreError, match="belongs to thing 'dev-1', not 'dev-2'"):
        SqliteBuffer(path, "dev-2")


def test_a_closed_buffer_raises_store_error(tmp_path: Path) -> None:
    buffer = SqliteBuffer(tmp_path / "buffer.sqlite3", THING)
    buffer.close()

    with pytest.raises(StoreError):
        buffer.append(RecordKind.RESULT, _payloads(1), now=1.0)
    with pytest.raises(StoreError):
        buffer.stats()


def test_an_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open buffer"):
        SqliteBuffer(tmp_path / "missing-dir" / "buffer.sqlite3", THING)
