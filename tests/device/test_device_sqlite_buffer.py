"""SqliteBuffer beyond the RecordBuffer contract: durability across reopen, sidecar, quarantine and kill -9."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeloop.core.buffer_policy import BUFFER_FULL
from edgeloop.core.errors import StoreError
from edgeloop.core.records import Record, RecordKind, encode_batch, result_payload
from edgeloop.device import sqlite_recovery
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.sqlite_recovery import QUARANTINE_INFIX, SIDECAR_SUFFIX
from edgeloop.device.stored_payload import StagedResults

THING = "dev-1"
NONE = {"alert": 0, "event": 0, "sample": 0, "result": 0}


def _payloads(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"i": start + i, "nested": {"ok": True, "values": [1.5, None, "x"]}} for i in range(n)]


RECORD = 100
"""Payload bytes of every record _blobs makes, so bounds are easy to count in records."""


def _blobs(n: int) -> list[dict[str, object]]:
    return [{"p": "x" * (RECORD - 8)} for _ in range(n)]


def _fill(buffer: SqliteBuffer, *kinds: RecordKind) -> None:
    for kind in kinds:
        buffer.append(kind, _blobs(1), now=1.0)


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
    monkeypatch.setattr(sqlite_recovery, "LOCK_TIMEOUT_S", 0.01)
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
from edgeloop.device.sqlite_buffer import SqliteBuffer

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


def test_result_rows_an_older_version_stored_as_json_still_forward(tmp_path: Path) -> None:
    """A device upgraded in place: its RESULT rows of JSON text read back beside the columns rows stored now."""
    columns = (["req-1", "req-2"], [3, 7], ["three", "seven"], [0.5, 0.987654], 2, 0.25)
    path = tmp_path / "buffer.sqlite3"
    SqliteBuffer(path, THING).close()
    old = sqlite3.connect(path, isolation_level=None)
    text = json.dumps(result_payload(*columns), separators=(",", ":"))
    old.execute("INSERT INTO queue VALUES (?, 1, 1.0, ?, ?)", (int(RecordKind.RESULT), text, len(text)))
    old.close()

    buffer = SqliteBuffer(path, THING)
    buffer.append(RecordKind.RESULT, [StagedResults(columns)], now=2.0)
    records = buffer.peek(10)
    buffer.close()

    assert [r.seq for r in records] == [1, 2]
    assert records[0].payload == records[1].payload == result_payload(*columns)
    old_wire, new_wire = (encode_batch(THING, [Record(THING, 1, r.kind, 1.0, r.payload)]) for r in records)
    assert old_wire == new_wire
