"""The store-and-forward buffer: every record survives a crash or an outage until the cloud confirmed it.

Durability and recovery of SqliteBuffer (one file, owned by one process):

- WAL mode with synchronous=FULL, one transaction per call: a record is on disk when ``append`` returns,
  and an ack is on disk when ``ack`` returns, so kill -9 at any point loses no acknowledged append and
  re-delivers nothing that was acked (SQLite rolls back the unfinished transaction on the next open).
- Sequence numbers are reserved ahead in a sidecar file ``<buffer>.seq`` (JSON, replaced atomically and
  fsynced before any seq above the previous reservation is committed). Every seq ever handed out is at or
  below the sidecar's ``reserved_seq``.
- On open the file is checked (SQLite header, ``PRAGMA quick_check``; cost grows with the file, paid once per
  start). A corrupt file is renamed aside to ``<buffer>.corrupt-<UTC timestamp>`` together with its -wal and
  -shm (kept for inspection, openable there), a fresh file is started whose seq continues above the sidecar's
  reservation, so the far side never mistakes a new record for a duplicate of one delivered before, and the
  event is logged and counted (``quarantined``, in the new file's meta and in the sidecar). Should the
  sidecar be lost too, seq restarts at the current time in microseconds: above any earlier seq unless the
  device made more than a million records a second or its clock went back (logged as an error).
- Corruption found while running raises StoreError; the next start quarantines the file.
- Counters kept across restarts: last seq, acked, evicted and refused per class (in the meta table);
  quarantined (meta and sidecar). Evicted/refused counts of a quarantined file stay in that file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from edgeloop.core.buffer_policy import (
    Victim,
    bytes_to_free,
    choose_victims,
    eviction_order,
    kind_key,
    zero_counts,
)
from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.names import validate_thing_name
from edgeloop.core.records import Record, RecordKind
from edgeloop.core.settings import DeviceConfig

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_MAX_BYTES = DeviceConfig().bufferMaxBytes
"""The bound when the caller has no configuration yet; components pass DeviceConfig.bufferMaxBytes."""


@dataclass(frozen=True)
class BufferStats:
    """Counters the health report needs: what is waiting, what was produced, delivered, evicted or refused."""

    depth: int
    produced: int
    acked: int
    by_kind: Mapping[RecordKind, int]
    bytes: int
    max_bytes: int
    oldest_created_at: float | None
    evicted_by_kind: Mapping[str, int]
    refused_by_kind: Mapping[str, int]
    quarantined: int

    @property
    def evicted(self) -> int:
        """Records evicted to make room, all classes."""
        return sum(self.evicted_by_kind.values())

    @property
    def refused(self) -> int:
        """Records refused because the bound was full of more important ones, all classes."""
        return sum(self.refused_by_kind.values())


class RecordBuffer(Protocol):
    """A durable, prioritised, bounded queue of one device's records, acknowledged by sequence number.

    Semantics every implementation honours (tests/device/test_device_buffer.py checks them):

    - ``append(kind, payloads, now)`` stores one record per payload, all of the given kind and
      created at ``now``, and returns them carrying the payloads as given (not a parsed copy of the
      stored JSON: they were just proven serialisable, and callers keep their own objects). Each gets
      the next per-device sequence number, starting at 1 and strictly increasing for the life of the
      buffer (across restarts for a durable one; a number is never reused, even after eviction). The
      records are durable when append returns, and the call is one transaction: either every payload is
      stored or none is (group commit).
      Payloads must be JSON objects; they come back from ``peek`` parsed from the stored JSON, so a
      payload changed by its caller after append is stored unchanged.
    - The buffer holds at most ``max_bytes`` of payload JSON. An append that would exceed it evicts
      older records as edgeloop.core.buffer_policy says (lowest priority and oldest first, alerts last,
      never a more important class than the append's own); an append that still cannot fit is refused
      whole with StoreError("buffer full: ...") and counted. Evictions and refusals are counted per class.
    - ``peek(limit)`` returns up to ``limit`` buffered records without removing them: the most
      important first (lowest RecordKind value), oldest first (lowest seq) within a kind.
    - ``ack(seqs)`` removes the records with those sequence numbers, once the far side confirmed
      them, and returns how many it removed; unknown, evicted or already-acked numbers are ignored, so a
      repeated ack is harmless.
    - ``stats()`` returns BufferStats: depth (records waiting), produced (the last seq handed out),
      acked (records removed by ack, ever), depth per kind (every kind present), payload bytes and the
      bound, created_at of the oldest waiting record (the lowest seq of each class; exact while the clock
      passed to append does not go back), evictions and refusals per class, quarantined files.
    - ``set_max_bytes(n)`` changes the bound (a configuration update); the next append evicts down to it.
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

    def set_max_bytes(self, max_bytes: int) -> None:
        """A new bound (configuration update); the next append evicts down to it."""
        ...


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _one_shot_encoder() -> Callable[[Any], str]:
    """The C encoder JSONEncoder.encode builds anew on every call, built once (a third of a small append's cost).

    Same options, output and errors as _ENCODER.encode, except that a circular payload hits the recursion
    limit instead of the circular-reference check (both are refused). Falls back where there is no C encoder.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    iterencode = make(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
    return lambda payload: "".join(iterencode(payload, 0))


_encode = _one_shot_encoder()


def _payload_json(payload: Mapping[str, Any]) -> str:
    """JSON text of one payload (ASCII, so its length is its size in bytes), refusing what the wire cannot carry."""
    if not isinstance(payload, Mapping):
        raise ValidationError("payload", f"expected an object, got {type(payload).__name__}")
    try:
        return _encode(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError("payload", f"is not JSON-serialisable ({exc})") from exc


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise ValidationError("limit", f"must be >= 0, got {limit}")


def _check_max_bytes(max_bytes: int) -> int:
    if max_bytes <= 0:
        raise ValidationError("max_bytes", f"must be > 0, got {max_bytes}")
    return max_bytes


class _Ledger:
    """Depth, bytes and lifetime counters of one buffer, kept in memory and mirrored to storage by the caller."""

    def __init__(self) -> None:
        self.count = dict.fromkeys(RecordKind, 0)
        self.held = dict.fromkeys(RecordKind, 0)
        self.last_seq = 0
        self.acked = 0
        self.evicted = zero_counts()
        self.refused = zero_counts()
        self.quarantined = 0
        self.evicting = False

    def add(self, kind: RecordKind, n: int, size: int) -> None:
        self.count[kind] += n
        self.held[kind] += size

    def remove(self, kind: RecordKind, n: int, size: int) -> None:
        self.count[kind] -= n
        self.held[kind] -= size

    def note_evictions(self, victims: Mapping[RecordKind, list[Victim]]) -> None:
        """Count evicted records; log when eviction starts, not once per append, to keep logs readable."""
        for kind, chosen in victims.items():
            self.remove(kind, len(chosen), sum(size for _, size in chosen))
            self.evicted[kind_key(kind)] += len(chosen)
        if victims and not self.evicting:
            log.warning("buffer full: evicting oldest low-priority records (evicted so far %s)", self.evicted)
        self.evicting = bool(victims)

    def stats(self, max_bytes: int, oldest: float | None) -> BufferStats:
        return BufferStats(
            depth=sum(self.count.values()),
            produced=self.last_seq,
            acked=self.acked,
            by_kind=dict(self.count),
            bytes=sum(self.held.values()),
            max_bytes=max_bytes,
            oldest_created_at=oldest,
            evicted_by_kind=dict(self.evicted),
            refused_by_kind=dict(self.refused),
            quarantined=self.quarantined,
        )


class MemoryBuffer:
    """In-memory RecordBuffer for tests and the simulated fleet; same contract and bound, no durability."""

    def __init__(self, thing_name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._thing = validate_thing_name(thing_name)
        self._max_bytes = _check_max_bytes(max_bytes)
        self._lock = threading.Lock()
        self._queues: dict[RecordKind, OrderedDict[int, tuple[float, str]]] = {k: OrderedDict() for k in RecordKind}
        self._kind_of: dict[int, RecordKind] = {}
        self._ledger = _Ledger()

    def set_max_bytes(self, max_bytes: int) -> None:
        """A new bound (configuration update); the next append evicts down to it."""
        with self._lock:
            self._max_bytes = _check_max_bytes(max_bytes)

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records as JSON text (peek parses it back, as in SQLite) and give them sequence numbers."""
        texts = [_payload_json(p) for p in payloads]
        if not texts:
            return []
        with self._lock:
            self._make_room(kind, texts)
            first = self._ledger.last_seq + 1
            queue = self._queues[kind]
            for seq, text in enumerate(texts, first):
                queue[seq] = (now, text)
                self._kind_of[seq] = kind
            self._ledger.last_seq += len(texts)
            self._ledger.add(kind, len(texts), sum(map(len, texts)))
        return [Record(self._thing, seq, kind, now, payload) for seq, payload in enumerate(payloads, first)]

    def _make_room(self, kind: RecordKind, texts: list[str]) -> None:
        try:
            need = bytes_to_free(self._ledger.held, kind, sum(map(len, texts)), self._max_bytes)
        except StoreError:
            self._ledger.refused[kind_key(kind)] += len(texts)
            raise
        victims = choose_victims(need, eviction_order(kind), self._oldest) if need else {}
        for victim_kind, chosen in victims.items():
            for seq, _ in chosen:
                del self._queues[victim_kind][seq]
                del self._kind_of[seq]
        self._ledger.note_evictions(victims)

    def _oldest(self, kind: RecordKind) -> Iterator[Victim]:
        for seq, (_, text) in self._queues[kind].items():
            yield seq, len(text)

    def peek(self, limit: int) -> list[Record]:
        """The next records to forward, most important and oldest first."""
        _check_limit(limit)
        out: list[Record] = []
        with self._lock:
            for kind in sorted(RecordKind):
                for seq, (created_at, text) in self._queues[kind].items():
                    if len(out) == limit:
                        return out
                    out.append(Record(self._thing, seq, kind, created_at, json.loads(text)))
        return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove confirmed records; returns how many were removed."""
        removed = 0
        with self._lock:
            for seq in seqs:
                kind = self._kind_of.pop(seq, None)
                if kind is not None:
                    _, text = self._queues[kind].pop(seq)
                    self._ledger.remove(kind, 1, len(text))
                    removed += 1
            self._ledger.acked += removed
        return removed

    def stats(self) -> BufferStats:
        """Depth, bytes and lifetime counters."""
        with self._lock:
            firsts = [next(iter(q.values()))[0] for q in self._queues.values() if q]
            return self._ledger.stats(self._max_bytes, min(firsts, default=None))

    def close(self) -> None:
        """Nothing to release; present so callers can treat every buffer alike."""


# --- SQLite ---------------------------------------------------------------------------------------

_SCHEMA = (
    # Clustered by (kind, seq), the order peek reads, eviction and ack delete: an append writes one b-tree page.
    "CREATE TABLE IF NOT EXISTS queue ("
    " kind INTEGER NOT NULL, seq INTEGER NOT NULL, created_at REAL NOT NULL, payload TEXT NOT NULL,"
    " size INTEGER NOT NULL, PRIMARY KEY (kind, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL)",
)
_INSERT = "INSERT INTO queue (seq, kind, created_at, payload, size) VALUES (?, ?, ?, ?, ?)"
_ACK_CHUNK = 500
_VICTIM_PAGE = 256
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_HEADER_BYTES = 100
_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
LOCK_TIMEOUT_S = 5.0
"""How long opening waits for a file another process holds, before giving up (not quarantining)."""
SEQ_RESERVE = 100_000
"""Sequence numbers reserved per sidecar write: one extra fsync per this many records."""
SIDECAR_SUFFIX = ".seq"
QUARANTINE_INFIX = ".corrupt-"
_SIDE_FILES = ("-wal", "-shm", "-journal")


_COUNTERS = [f"{prefix}_{kind_key(kind)}" for prefix in ("evicted", "refused") for kind in RecordKind]
"""Meta keys of the per-class eviction and refusal counters."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the directory entry."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    """Replace a small file so that a crash leaves either the old or the new content, both durable."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class SeqMark:
    """The sidecar: every seq ever handed out is <= reserved_seq; survives the database file itself."""

    thing_name: str
    reserved_seq: int
    quarantined: int

    @classmethod
    def read(cls, path: Path) -> SeqMark | None:
        """The sidecar's content; None (logged) when it is missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["thing_name"]), int(data["reserved_seq"]), int(data["quarantined"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("sequence sidecar %s unreadable, ignoring it: %s", path, exc)
            return None

    def write(self, path: Path) -> None:
        """Durably replace the sidecar."""
        body = {"thing_name": self.thing_name, "reserved_seq": self.reserved_seq, "quarantined": self.quarantined}
        try:
            _write_atomically(path, json.dumps(body))
        except OSError as exc:
            raise StoreError(f"cannot write sequence sidecar {path}: {exc}") from exc


def _is_corruption(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT_CODES


def corruption_of(path: Path) -> str | None:
    """Why the file at `path` is not a usable SQLite database, or None when it is (or does not exist yet)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(SQLITE_HEADER_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot open buffer {path}: {exc}") from exc
    if not header:
        return None
    if not header.startswith(SQLITE_HEADER):
        return "not an SQLite database (bad header)"
    if len(header) < SQLITE_HEADER_BYTES:
        return f"truncated header ({len(header)} bytes)"
    return _quick_check(path)


def _quick_check(path: Path) -> str | None:
    try:
        conn = sqlite3.connect(str(path), timeout=LOCK_TIMEOUT_S, isolation_level=None)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if _is_corruption(exc):
            return f"unreadable ({exc})"
        raise StoreError(f"cannot open buffer {path}: {exc}") from exc
    if rows != [("ok",)]:
        return "quick_check failed: " + "; ".join(str(row[0]) for row in rows[:5])
    return None


def quarantine(path: Path, stamp: datetime) -> Path:
    """Rename a corrupt database and its -wal/-shm aside (kept for inspection); returns the new main path."""
    suffix = stamp.strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}{QUARANTINE_INFIX}{suffix}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{QUARANTINE_INFIX}{suffix}-{n}")
    try:
        for side in _SIDE_FILES:
            if Path(f"{path}{side}").exists():
                os.replace(f"{path}{side}", f"{target}{side}")
        os.replace(path, target)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot quarantine corrupt buffer {path}: {exc}") from exc
    return target


class SqliteBuffer:
    """RecordBuffer in one SQLite file (WAL, synchronous=FULL): a record acked by append is on disk."""

    def __init__(self, path: Path | str, thing_name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._thing = validate_thing_name(thing_name)
        self._max_bytes = _check_max_bytes(max_bytes)
        self._lock = threading.Lock()
        self._ledger = _Ledger()
        self._file = None if str(path) == ":memory:" else Path(path)
        self._sidecar = None if self._file is None else self._file.with_name(self._file.name + SIDECAR_SUFFIX)
        mark = self._read_mark()
        floor, quarantined = self._recover(mark)
        try:
            self._conn = sqlite3.connect(
                str(path), timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open buffer {path}: {exc}") from exc
        try:
            self._open(floor, quarantined)
        except BaseException:
            self._conn.close()
            raise
        self._reserved = mark.reserved_seq if mark else 0
        if self._reserved < self._ledger.last_seq or mark is None or mark.quarantined != self._ledger.quarantined:
            self._reserve(self._ledger.last_seq)

    def _open(self, floor: int, quarantined: int) -> None:
        """Set durability, create or migrate the schema, claim the file and load the ledger."""
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._transaction(lambda conn: self._init(conn, floor, quarantined))
            self._load()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open buffer {self._file or ':memory:'}: {exc}") from exc

    def _read_mark(self) -> SeqMark | None:
        if self._sidecar is None:
            return None
        mark = SeqMark.read(self._sidecar)
        if mark is not None and mark.thing_name != self._thing:
            raise StoreError(f"buffer belongs to thing {mark.thing_name!r}, not {self._thing!r} ({self._sidecar})")
        return mark

    def _recover(self, mark: SeqMark | None) -> tuple[int, int]:
        """Quarantine a corrupt file; the seq floor and quarantine count a fresh file starts from."""
        floor, quarantined = (mark.reserved_seq, mark.quarantined) if mark else (0, 0)
        if self._file is None:
            return floor, quarantined
        problem = corruption_of(self._file)
        if problem is None:
            return floor, quarantined
        moved = quarantine(self._file, datetime.now(UTC))
        if mark is None:
            floor = int(time.time() * 1_000_000)
            log.error("no sequence sidecar for corrupt buffer %s: seq restarts at the clock, %d", self._file, floor)
        log.error("buffer %s is corrupt (%s): moved to %s, starting a fresh one", self._file, problem, moved)
        return floor, quarantined + 1

    def _init(self, conn: sqlite3.Connection, floor: int, quarantined: int) -> None:
        """Create or migrate the schema and claim the file; a new file starts at the given floor."""
        for statement in _SCHEMA:
            conn.execute(statement)
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'records'").fetchone():
            # a file from before the bound (issue 2's schema); sizes are the payload lengths (ASCII JSON)
            conn.execute("INSERT INTO queue SELECT kind, seq, created_at, payload, length(payload) FROM records")
            conn.execute("DROP TABLE records")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('thing_name', ?)", (self._thing,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', ?), ('acked', 0)", (floor,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('quarantined', ?)", (quarantined,))
        conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, 0)", [(key,) for key in _COUNTERS])
        owner = self._meta(conn, "thing_name")
        if owner != self._thing:
            raise StoreError(f"buffer belongs to thing {owner!r}, not {self._thing!r}")

    def _load(self) -> None:
        """Fill the in-memory ledger from the file (one scan per start).

        An append does not write meta last_seq (one page less to fsync); every transaction that deletes
        records (ack, eviction) sets it to the last seq handed out. So the last seq ever handed out is the
        larger of meta last_seq and the highest seq still stored.
        """
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        (top,) = self._conn.execute("SELECT MAX(seq) FROM queue").fetchone()
        ledger = self._ledger
        ledger.last_seq = max(meta["last_seq"], top or 0)
        ledger.acked, ledger.quarantined = meta["acked"], meta["quarantined"]
        for kind in RecordKind:
            ledger.evicted[kind_key(kind)] = meta[f"evicted_{kind_key(kind)}"]
            ledger.refused[kind_key(kind)] = meta[f"refused_{kind_key(kind)}"]
        for kind, count, size in self._conn.execute("SELECT kind, COUNT(*), TOTAL(size) FROM queue GROUP BY kind"):
            ledger.add(RecordKind(kind), count, int(size))

    def _reserve(self, upto: int) -> None:
        """Durably reserve seqs above `upto` in the sidecar before any of them is committed."""
        if self._sidecar is None:
            self._reserved = upto
            return
        reserved = upto + SEQ_RESERVE
        SeqMark(self._thing, reserved, self._ledger.quarantined).write(self._sidecar)
        self._reserved = reserved  # only once durable: a failed write must not let a seq pass the mark

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> Any:
        return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def _transaction(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run body(conn) in one write transaction (caller holds the lock or is the constructor)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"buffer write failed: {exc}") from exc
        return result

    def set_max_bytes(self, max_bytes: int) -> None:
        """A new bound (configuration update); the next append evicts down to it."""
        with self._lock:
            self._max_bytes = _check_max_bytes(max_bytes)

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records in one transaction (group commit), evicting as the policy says, and number them."""
        texts = [_payload_json(p) for p in payloads]
        if not texts:
            return []
        size = sum(map(len, texts))
        with self._lock:
            try:
                need = bytes_to_free(self._ledger.held, kind, size, self._max_bytes)
            except StoreError:
                self._refuse(kind, len(texts))
                raise
            first = self._ledger.last_seq + 1
            last = first + len(texts) - 1
            if last > self._reserved:
                self._reserve(last)
            rows = [(first + i, int(kind), now, text, len(text)) for i, text in enumerate(texts)]
            if need == 0 and len(rows) == 1:  # one autocommitted statement is one transaction: fewer round trips
                victims = self._insert_one(rows[0])
            else:
                victims = self._transaction(lambda conn: self._write(conn, kind, need, rows))
            if victims or self._ledger.evicting:
                self._ledger.note_evictions(victims)
            self._ledger.last_seq = last
            self._ledger.add(kind, len(rows), size)
        return [Record(self._thing, seq, kind, now, payload) for seq, payload in enumerate(payloads, first)]

    def _write(
        self, conn: sqlite3.Connection, kind: RecordKind, need: int, rows: list[tuple[int, int, float, str, int]]
    ) -> dict[RecordKind, list[Victim]]:
        victims = choose_victims(need, eviction_order(kind), lambda k: self._oldest(conn, k)) if need else {}
        for victim_kind, chosen in victims.items():
            conn.execute("DELETE FROM queue WHERE kind = ? AND seq <= ?", (int(victim_kind), chosen[-1][0]))
            conn.execute(
                "UPDATE meta SET value = value + ? WHERE key = ?", (len(chosen), f"evicted_{kind_key(victim_kind)}")
            )
        if victims:  # meta last_seq covers every deleted seq (see _load)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (rows[-1][0],))
        conn.executemany(_INSERT, rows)
        return victims

    def _insert_one(self, row: tuple[int, int, float, str, int]) -> dict[RecordKind, list[Victim]]:
        try:
            self._conn.execute(_INSERT, row)
        except sqlite3.Error as exc:
            raise StoreError(f"buffer write failed: {exc}") from exc
        return {}

    @staticmethod
    def _oldest(conn: sqlite3.Connection, kind: RecordKind) -> Iterator[Victim]:
        """(seq, size) of one class, oldest first, read a page at a time (no cursor left open)."""
        after = 0
        while True:
            page = conn.execute(
                "SELECT seq, size FROM queue WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?",
                (int(kind), after, _VICTIM_PAGE),
            ).fetchall()
            yield from page
            if len(page) < _VICTIM_PAGE:
                return
            after = page[-1][0]

    def _refuse(self, kind: RecordKind, n: int) -> None:
        """Count a refused append durably, so the shadow shows what the device could not keep."""
        key = f"refused_{kind_key(kind)}"
        self._transaction(lambda conn: conn.execute("UPDATE meta SET value = value + ? WHERE key = ?", (n, key)))
        self._ledger.refused[kind_key(kind)] += n

    def peek(self, limit: int) -> list[Record]:
        """The next records to forward, most important and oldest first."""
        _check_limit(limit)
        rows = self._read("SELECT seq, kind, created_at, payload FROM queue ORDER BY kind, seq LIMIT ?", limit)
        return [Record(self._thing, seq, RecordKind(kind), at, json.loads(text)) for seq, kind, at, text in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove confirmed records in one transaction; returns how many were removed."""
        wanted = sorted({int(s) for s in seqs})
        if not wanted:
            return 0
        with self._lock:
            gone = self._transaction(lambda conn: self._delete(conn, wanted, self._ledger.last_seq))
            for kind, size in gone:
                self._ledger.remove(RecordKind(kind), 1, size)
            self._ledger.acked += len(gone)
        return len(gone)

    @staticmethod
    def _delete(conn: sqlite3.Connection, wanted: list[int], last_seq: int) -> list[tuple[int, int]]:
        gone: list[tuple[int, int]] = []
        for start in range(0, len(wanted), _ACK_CHUNK):
            chunk = wanted[start : start + _ACK_CHUNK]
            marks = ",".join("?" * len(chunk))
            for kind in RecordKind:  # the key is (kind, seq): one seek per class and seq
                sql = f"DELETE FROM queue WHERE kind = {int(kind)} AND seq IN ({marks}) RETURNING kind, size"
                gone += conn.execute(sql, chunk).fetchall()
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'acked'", (len(gone),))
        if gone:  # meta last_seq covers every deleted seq (see _load)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last_seq,))
        return gone

    def stats(self) -> BufferStats:
        """Depth, bytes and lifetime counters (the oldest record found through the priority index)."""
        firsts = " UNION ALL ".join(
            f"SELECT * FROM (SELECT created_at FROM queue WHERE kind = {int(k)} ORDER BY seq LIMIT 1)"
            for k in RecordKind
        )
        with self._lock:
            (oldest,) = self._read_locked(f"SELECT MIN(created_at) FROM ({firsts})")[0]
            return self._ledger.stats(self._max_bytes, oldest)

    def close(self) -> None:
        """Release the file; later calls raise StoreError."""
        with self._lock:
            self._conn.close()

    def _read(self, sql: str, *params: Any) -> list[Any]:
        with self._lock:
            return self._read_locked(sql, *params)

    def _read_locked(self, sql: str, *params: Any) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"buffer read failed: {exc}") from exc
