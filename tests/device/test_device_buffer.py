"""One contract suite for every RecordBuffer, plus what only the durable SQLite buffer promises."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeloop.core.buffer_policy import BUFFER_FULL
from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.records import RecordKind
from edgeloop.device import buffer as buffer_module
from edgeloop.device.buffer import (
    DEFAULT_MAX_BYTES,
    QUARANTINE_INFIX,
    SIDECAR_SUFFIX,
    BufferStats,
    MemoryBuffer,
    RecordBuffer,
    SqliteBuffer,
)

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
    assert other.execute("SELECT COUNT(*) FROM queue").fetchone() == (2,)
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


def test_reopening_keeps_the_bound_counters_bytes_and_oldest(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, THING, max_bytes=2 * RECORD)
    _fill(first, RecordKind.ALERT, RecordKind.ALERT, RecordKind.ALERT)  # alert 1 evicted
    with pytest.raises(StoreError, match=BUFFER_FULL):
        first.append(RecordKind.RESULT, _blobs(1), now=2.0)
    before = first.stats()
    first.close()

    second = SqliteBuffer(path, THING, max_bytes=2 * RECORD)

    assert second.stats() == before
    assert (before.evicted_by_kind["alert"], before.refused_by_kind["result"], before.bytes) == (1, 1, 2 * RECORD)
    second.close()


def _sidecar(path: Path) -> dict[str, object]:
    return dict(json.loads(path.with_name(path.name + SIDECAR_SUFFIX).read_text()))


def test_seq_continues_above_the_reservation_when_the_file_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, THING)
    first.append(RecordKind.RESULT, _payloads(3), now=1.0)
    first.close()
    reserved = _sidecar(path)["reserved_seq"]
    path.unlink()

    second = SqliteBuffer(path, THING)

    assert isinstance(reserved, int)
    assert reserved >= 3
    assert [r.seq for r in second.append(RecordKind.RESULT, _payloads(1), now=2.0)] == [reserved + 1]
    second.close()


def test_a_sidecar_of_another_thing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    SqliteBuffer(path, THING).close()
    path.unlink()

    with pytest.raises(StoreError, match="belongs to thing 'dev-1', not 'dev-2'"):
        SqliteBuffer(path, "dev-2")


def _garbage(path: Path) -> None:
    path.write_bytes(b"definitely not a database " * 200)


def _truncate_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:50])


def _smash_a_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[2 * page : 3 * page] = b"\x5a" * page
    path.write_bytes(bytes(data))


def _truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_garbage, _truncate_header, _smash_a_page, _truncate_half])
def test_a_corrupt_file_is_quarantined_and_a_fresh_one_continues_the_seq(
    tmp_path: Path, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, THING)
    for _ in range(20):
        first.append(RecordKind.RESULT, [{"p": "x" * 200}] * 20, now=1.0)
    produced = first.stats().produced
    first.close()
    damage(path)
    damaged = path.read_bytes()

    second = SqliteBuffer(path, THING)

    (kept,) = tmp_path.glob(f"buffer.sqlite3{QUARANTINE_INFIX}*")
    assert kept.read_bytes() == damaged
    assert "is corrupt" in caplog.text
    stats = second.stats()
    assert (stats.quarantined, stats.depth) == (1, 0)
    assert second.append(RecordKind.ALERT, _payloads(1), now=2.0)[0].seq > produced
    second.close()


def test_quarantine_moves_the_wal_and_shm_along_and_counts_every_time(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    SqliteBuffer(path, THING).close()
    for _ in range(2):
        _garbage(path)
        Path(f"{path}-wal").write_bytes(b"wal")
        Path(f"{path}-shm").write_bytes(b"shm")
        SqliteBuffer(path, THING).close()

    reopened = SqliteBuffer(path, THING)

    assert reopened.stats().quarantined == 2
    assert _sidecar(path)["quarantined"] == 2
    kept = [p for p in tmp_path.glob(f"buffer.sqlite3{QUARANTINE_INFIX}*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 2
    for main in kept:
        assert Path(f"{main}-wal").read_bytes() == b"wal"
        assert Path(f"{main}-shm").read_bytes() == b"shm"
    reopened.close()


def test_a_corrupt_file_without_its_sidecar_restarts_seq_at_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    first = SqliteBuffer(path, THING)
    first.append(RecordKind.RESULT, _payloads(5), now=1.0)
    first.close()
    _garbage(path)
    path.with_name(path.name + SIDECAR_SUFFIX).unlink()
    before = int(time.time() * 1_000_000)

    second = SqliteBuffer(path, THING)

    assert second.append(RecordKind.RESULT, _payloads(1), now=2.0)[0].seq > before
    assert second.stats().quarantined == 1
    second.close()


def test_a_locked_file_is_not_mistaken_for_a_corrupt_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "LOCK_TIMEOUT_S", 0.01)
    path = tmp_path / "buffer.sqlite3"
    SqliteBuffer(path, THING).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="cannot open buffer"):
            SqliteBuffer(path, THING)
    finally:
        holder.close()

    assert list(tmp_path.glob(f"*{QUARANTINE_INFIX}*")) == []


def test_a_file_from_before_the_bound_gets_sizes(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, kind INTEGER, created_at REAL, payload TEXT)")
    old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL)")
    old.execute("INSERT INTO meta VALUES ('thing_name', ?), ('last_seq', 2), ('acked', 0)", (THING,))
    old.execute("INSERT INTO records VALUES (1, 3, 1.0, '{\"a\":1}'), (2, 0, 2.0, '{\"bb\":2}')")
    old.close()

    buffer = SqliteBuffer(path, THING)

    stats = buffer.stats()
    assert (stats.depth, stats.bytes, stats.produced, stats.oldest_created_at) == (2, 7 + 8, 2, 1.0)
    assert [r.seq for r in buffer.append(RecordKind.RESULT, _payloads(1), now=3.0)] == [3]
    buffer.close()


# --- SQLite only: kill -9 -------------------------------------------------------------------------

WRITER = """
import sys
from edgeloop.core.records import RecordKind
from edgeloop.device.buffer import SqliteBuffer

buffer = SqliteBuffer(sys.argv[1], sys.argv[2])
n = 0
while True:
    n += 1
    records = buffer.append(RecordKind(n % 4), [{"n": n, "i": i} for i in range(n % 7 + 1)], now=float(n))
    print("appended", *[r.seq for r in records], flush=True)
    if n % 5 == 0:
        print("acking", records[0].seq, flush=True)
        buffer.ack([records[0].seq])
        print("acked", records[0].seq, flush=True)
"""


def _kill_writer_after(path: Path, delay_s: float) -> dict[str, set[int]]:
    """Run the writer, SIGKILL it after delay_s of writing; the seqs it printed, by word."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), THING], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    first = writer.stdout.readline()  # the writer is up and writing
    time.sleep(delay_s)
    writer.send_signal(signal.SIGKILL)
    rest, _ = writer.communicate()
    seen: dict[str, set[int]] = {"appended": set(), "acking": set(), "acked": set()}
    *complete, _partial = (first + rest).split("\n")  # a line cut by the kill acknowledged nothing
    for line in complete:
        word, *seqs = line.split()
        seen[word].update(int(s) for s in seqs)
    return seen


def test_kill_9_at_random_moments_loses_no_acknowledged_append_and_redelivers_no_ack(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    rng = random.Random(7)
    seen: dict[str, set[int]] = {"appended": set(), "acking": set(), "acked": set()}
    for _ in range(4):
        for word, seqs in _kill_writer_after(path, rng.uniform(0.01, 0.2)).items():
            seen[word] |= seqs
        buffer = SqliteBuffer(path, THING)
        stored = [r.seq for r in buffer.peek(1_000_000)]
        buffer.close()

        assert len(stored) == len(set(stored))
        assert seen["appended"] - seen["acking"] <= set(stored)  # an ack cut by the kill may or may not have landed
        assert seen["acked"].isdisjoint(stored)
    assert len(seen["appended"]) > 20
    assert seen["acked"]


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
