"""The store-and-forward buffer: every record survives a crash or an outage until the cloud confirmed it."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.names import validate_thing_name
from edgeloop.core.records import Record, RecordKind


@dataclass(frozen=True)
class BufferStats:
    """Counters the health report needs: what is waiting, what was produced, what was delivered."""

    depth: int
    produced: int
    acked: int
    by_kind: Mapping[RecordKind, int]


class RecordBuffer(Protocol):
    """A durable, prioritised queue of one device's records, acknowledged by sequence number.

    Semantics every implementation honours (tests/device/test_device_buffer.py checks them):

    - ``append(kind, payloads, now)`` stores one record per payload, all of the given kind and
      created at ``now``, and returns them. Each gets the next per-device sequence number,
      starting at 1 and strictly increasing for the life of the buffer (across restarts for a
      durable one; an acked number is never reused). The records are durable when append returns,
      and the call is one transaction: either every payload is stored or none is (group commit).
      Payloads must be JSON objects; they come back from ``peek`` as parsed JSON.
    - ``peek(limit)`` returns up to ``limit`` buffered records without removing them: the most
      important first (lowest RecordKind value), oldest first (lowest seq) within a kind.
    - ``ack(seqs)`` removes the records with those sequence numbers, once the far side confirmed
      them, and returns how many it removed; unknown or already-acked numbers are ignored, so a
      repeated ack is harmless.
    - ``stats()`` returns BufferStats: depth (records waiting), produced (the last seq handed out),
      acked (records removed by ack, ever) and depth per kind (every kind present, zero or not).
    - Any storage failure raises StoreError; nothing is half-written.
    """

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records durably and give them sequence numbers."""
        ...

    def peek(self, limit: int) -> list[Record]:
        """The next records to forward, most important and oldest first."""
        ...

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove confirmed records; returns how many were removed."""
        ...

    def stats(self) -> BufferStats:
        """Depth and lifetime counters."""
        ...


def _payload_json(payload: Mapping[str, Any]) -> str:
    """JSON text of one payload, refusing anything the wire cannot carry."""
    if not isinstance(payload, Mapping):
        raise ValidationError("payload", f"expected an object, got {type(payload).__name__}")
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError("payload", f"is not JSON-serialisable ({exc})") from exc


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise ValidationError("limit", f"must be >= 0, got {limit}")


class MemoryBuffer:
    """In-memory RecordBuffer for tests and the simulated fleet; same contract, no durability."""

    def __init__(self, thing_name: str) -> None:
        self._thing = validate_thing_name(thing_name)
        self._lock = threading.Lock()
        self._queues: dict[RecordKind, OrderedDict[int, Record]] = {k: OrderedDict() for k in RecordKind}
        self._kind_of: dict[int, RecordKind] = {}
        self._last_seq = 0
        self._acked = 0

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records and give them sequence numbers (payloads round-trip JSON, as in SQLite)."""
        texts = [_payload_json(p) for p in payloads]
        with self._lock:
            records = [
                Record(self._thing, self._last_seq + i, kind, now, json.loads(text))
                for i, text in enumerate(texts, start=1)
            ]
            for record in records:
                self._queues[kind][record.seq] = record
                self._kind_of[record.seq] = kind
            self._last_seq += len(records)
        return records

    def peek(self, limit: int) -> list[Record]:
        """The next records to forward, most important and oldest first."""
        _check_limit(limit)
        out: list[Record] = []
        with self._lock:
            for kind in sorted(RecordKind):
                for record in self._queues[kind].values():
                    if len(out) == limit:
                        return out
                    out.append(record)
        return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove confirmed records; returns how many were removed."""
        removed = 0
        with self._lock:
            for seq in seqs:
                kind = self._kind_of.pop(seq, None)
                if kind is not None:
                    del self._queues[kind][seq]
                    removed += 1
            self._acked += removed
        return removed

    def stats(self) -> BufferStats:
        """Depth and lifetime counters."""
        with self._lock:
            by_kind = {kind: len(queue) for kind, queue in self._queues.items()}
            return BufferStats(sum(by_kind.values()), self._last_seq, self._acked, by_kind)

    def close(self) -> None:
        """Nothing to release; present so callers can treat every buffer alike."""


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records ("
    " seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, created_at REAL NOT NULL, payload TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS records_priority ON records (kind, seq)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL)",
)
_ACK_CHUNK = 500


class SqliteBuffer:
    """RecordBuffer in one SQLite file (WAL, synchronous=FULL): a record acked by append is on disk."""

    def __init__(self, path: Path | str, thing_name: str) -> None:
        self._thing = validate_thing_name(thing_name)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            with self._transaction() as conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
                self._claim(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open buffer {path}: {exc}") from exc

    def _claim(self, conn: sqlite3.Connection) -> None:
        """A buffer file belongs to one thing: records must never be forwarded under another's name."""
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('thing_name', ?)", (self._thing,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', 0), ('acked', 0)")
        owner = self._meta(conn, "thing_name")
        if owner != self._thing:
            raise StoreError(f"buffer belongs to thing {owner!r}, not {self._thing!r}")

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> Any:
        return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; any SQLite failure becomes StoreError after rollback."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"buffer write failed: {exc}") from exc

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records in one transaction (group commit) and give them sequence numbers."""
        texts = [_payload_json(p) for p in payloads]
        if not texts:
            return []
        with self._transaction() as conn:
            first = self._meta(conn, "last_seq") + 1
            rows = [(first + i, int(kind), now, text) for i, text in enumerate(texts)]
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (first + len(rows) - 1,))
        return [Record(self._thing, seq, kind, now, json.loads(text)) for seq, _, _, text in rows]

    def peek(self, limit: int) -> list[Record]:
        """The next records to forward, most important and oldest first."""
        _check_limit(limit)
        rows = self._read("SELECT seq, kind, created_at, payload FROM records ORDER BY kind, seq LIMIT ?", limit)
        return [Record(self._thing, seq, RecordKind(kind), at, json.loads(text)) for seq, kind, at, text in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove confirmed records in one transaction; returns how many were removed."""
        wanted = sorted({int(s) for s in seqs})
        if not wanted:
            return 0
        removed = 0
        with self._transaction() as conn:
            for start in range(0, len(wanted), _ACK_CHUNK):
                chunk = wanted[start : start + _ACK_CHUNK]
                marks = ",".join("?" * len(chunk))
                removed += conn.execute(f"DELETE FROM records WHERE seq IN ({marks})", chunk).rowcount
            conn.execute("UPDATE meta SET value = value + ? WHERE key = 'acked'", (removed,))
        return removed

    def stats(self) -> BufferStats:
        """Depth and lifetime counters."""
        by_kind = dict.fromkeys(RecordKind, 0)
        for kind, count in self._read("SELECT kind, COUNT(*) FROM records GROUP BY kind"):
            by_kind[RecordKind(kind)] = count
        meta = dict(self._read("SELECT key, value FROM meta WHERE key IN ('last_seq', 'acked')"))
        return BufferStats(sum(by_kind.values()), meta["last_seq"], meta["acked"], by_kind)

    def close(self) -> None:
        """Release the file; later calls raise StoreError."""
        with self._lock:
            self._conn.close()

    def _read(self, sql: str, *params: Any) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"buffer read failed: {exc}") from exc
