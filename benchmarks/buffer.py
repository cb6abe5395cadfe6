"""Durable-on-return append rate of SqliteBuffer (single and batched) and its drain rate, against peers.

Every store writes to a file in one temporary directory on the same disk, in the same run, and is
configured for the same durability: a put/append is on disk (WAL fsynced) when the call returns.

- edgeloop SqliteBuffer: WAL, synchronous=FULL, one transaction per append call. Single = one record per
  append; batched = BATCH records per append (one group commit). Drain = peek(200) + ack of what was
  peeked, until empty, from a buffer filled beforehand (records per second).
- persist-queue (persistqueue.SQLiteAckQueue and persistqueue.SQLiteQueue): its own WAL connection(s),
  auto_commit=True (a commit per put, the only mode in which put is durable on return), multithreading=False,
  and `PRAGMA synchronous=FULL` set on its connection after construction (it sets no synchronous level
  itself). Items are the same payload dicts (pickled, its default serializer). The faster of the two is
  reported as persist_queue_per_s.
- litequeue (LiteQueue): autocommit connection in WAL; it sets `PRAGMA synchronous = NORMAL` itself (not
  fsynced at commit), so this script sets `PRAGMA synchronous = FULL` on `queue.conn` after construction.
  Items are the same payloads, JSON-encoded in the timed call (it stores strings).

Peers have no batched put that is durable on return, so their rate is single puts; ratio_vs_best_peer is
batched_appends_per_s / max(persist_queue_per_s, litequeue_per_s).

    python benchmarks/buffer.py [--quick]

Prints one line per measurement, then, as its last line, one JSON object with the keys appends_per_s,
batched_appends_per_s, drain_per_s, persist_queue_per_s, litequeue_per_s, ratio_vs_best_peer.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import emit, parse_args

from edgeloop.core.records import RecordKind
from edgeloop.device.sqlite_buffer import SqliteBuffer

KEYS = (
    "appends_per_s",
    "batched_appends_per_s",
    "drain_per_s",
    "persist_queue_per_s",
    "litequeue_per_s",
    "ratio_vs_best_peer",
)
THING = "bench-1"
BATCH = 200
"""Records per batched append: what the runtime hands over after one micro-batch of inference results."""
DRAIN_PAGE = 200
UNBOUNDED = 64 * 1024**3
"""The largest bufferMaxBytes: peers have no bound, so eviction is kept out of the append measurement."""
TURN_CALLS = 10
"""Calls each store makes per turn before the next store's turn."""
PAYLOAD = {
    "request_id": "req-000001",
    "label": "7",
    "label_index": 7,
    "confidence": 0.981234,
    "model_version": 3,
    "latency_ms": 0.4321,
}
"""One inference result's worth of payload (~120 bytes of JSON), the same dict for every store."""


Step = Callable[[], int]
"""One durable write; returns the records it stored."""


def edgeloop_stores(folder: Path) -> tuple[dict[str, Step], list[Callable[[], None]]]:
    """Single (one record per append) and batched (BATCH records per append, one group commit)."""
    single = SqliteBuffer(folder / "single.sqlite3", THING, max_bytes=UNBOUNDED)
    batched = SqliteBuffer(folder / "batched.sqlite3", THING, max_bytes=UNBOUNDED)
    payloads = [PAYLOAD] * BATCH
    steps: dict[str, Step] = {
        "edgeloop single": lambda: len(single.append(RecordKind.RESULT, [PAYLOAD], now=1.0)),
        "edgeloop batched": lambda: len(batched.append(RecordKind.RESULT, payloads, now=1.0)),
    }
    return steps, [single.close, batched.close]


def edgeloop_drain(folder: Path, records: int) -> float:
    """peek + ack until empty, records per second, from a buffer holding `records`."""
    buffer = SqliteBuffer(folder / "drain.sqlite3", THING)
    try:
        for _ in range(records // BATCH):
            buffer.append(RecordKind.RESULT, [PAYLOAD] * BATCH, now=1.0)

        drained = 0
        started = time.perf_counter()
        while page := buffer.peek(DRAIN_PAGE):
            drained += buffer.ack(r.seq for r in page)
        return drained / (time.perf_counter() - started)
    finally:
        buffer.close()


def _full_sync(conn: Any) -> None:
    conn.execute("PRAGMA synchronous=FULL")
    (level,) = conn.execute("PRAGMA synchronous").fetchone()
    if level != 2:
        raise SystemExit(f"peer connection refused synchronous=FULL (got {level})")


def persist_queue_stores(folder: Path) -> tuple[dict[str, Step], list[Callable[[], None]]]:
    """persist-queue's SQLiteAckQueue and SQLiteQueue, one durable put per step."""
    import persistqueue

    ack = persistqueue.SQLiteAckQueue(str(folder / "pq-ack"), auto_commit=True, multithreading=False)
    plain = persistqueue.SQLiteQueue(str(folder / "pq-plain"), auto_commit=True, multithreading=False)
    for queue in (ack, plain):
        _full_sync(queue._putter)

    def put(queue: Any) -> int:
        queue.put(dict(PAYLOAD))
        return 1

    steps: dict[str, Step] = {
        "persist-queue SQLiteAckQueue": lambda: put(ack),
        "persist-queue SQLiteQueue": lambda: put(plain),
    }
    return steps, [ack.close, plain.close]


def litequeue_stores(folder: Path) -> tuple[dict[str, Step], list[Callable[[], None]]]:
    """litequeue's LiteQueue, one durable put per step."""
    from litequeue import LiteQueue

    queue = LiteQueue(str(folder / "litequeue.sqlite3"))
    _full_sync(queue.conn)

    def put() -> int:
        queue.put(json.dumps(PAYLOAD))  # it stores strings; every store gets the payload as a dict
        return 1

    return {"litequeue": put}, [queue.close]


def interleaved(steps: dict[str, Step], seconds: float) -> dict[str, float]:
    """Rate of each step, taking turns a few calls at a time (in rotating order, so no store always follows the
    same one) so that a busy moment of the shared disk hits every store alike."""
    spent = dict.fromkeys(steps, 0.0)
    done = dict.fromkeys(steps, 0)
    names = list(steps)
    deadline = time.perf_counter() + seconds
    turn = 0
    while time.perf_counter() < deadline:
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            step = steps[name]
            started = time.perf_counter()
            for _ in range(TURN_CALLS):
                done[name] += step()
            spent[name] += time.perf_counter() - started
        turn += 1
    return {name: done[name] / spent[name] for name in steps}


def main() -> None:
    """Measure everything side by side in one run and print the result line last."""
    args = parse_args(__doc__.splitlines()[0])
    seconds, drain_records = (15.0, 20_000) if args.quick else (60.0, 200_000)
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-buffer-") as tmp:
        folder = Path(tmp)
        steps: dict[str, Step] = {}
        closers: list[Callable[[], None]] = []
        for make in (edgeloop_stores, persist_queue_stores, litequeue_stores):
            made, close = make(folder)
            steps.update(made)
            closers += close
        try:
            rates = interleaved(steps, seconds)
        finally:
            for close in closers:
                close()
        drain = edgeloop_drain(folder, drain_records)
    for name, value in rates.items():
        print(f"{name}: {value:,.0f} records/s (stores took turns of {TURN_CALLS} calls for {seconds:.0f}s)")
    print(f"edgeloop drain: {drain:,.0f} records/s (peek {DRAIN_PAGE} + ack, {drain_records} records)")
    print("all stores: WAL, synchronous=FULL (set by this script on the peers' connections), durable on return")
    single, batched = rates["edgeloop single"], rates["edgeloop batched"]
    pq = max(rates["persist-queue SQLiteAckQueue"], rates["persist-queue SQLiteQueue"])
    lq = rates["litequeue"]
    best_peer = max(pq, lq)
    print(f"single vs best peer: {single / best_peer:.2f}x; batched vs best peer: {batched / best_peer:.1f}x")
    emit(
        {
            "appends_per_s": round(single, 1),
            "batched_appends_per_s": round(batched, 1),
            "drain_per_s": round(drain, 1),
            "persist_queue_per_s": round(pq, 1),
            "litequeue_per_s": round(lq, 1),
            "ratio_vs_best_peer": round(batched / best_peer, 2),
        },
        KEYS,
    )


if __name__ == "__main__":
    sys.exit(main())
