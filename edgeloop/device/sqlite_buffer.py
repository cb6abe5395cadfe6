"""The durable buffer a device runs: one SQLite file (WAL, synchronous=FULL), recovered on open.

See device.sqlite_recovery for how a crash, a lost sidecar or a corrupt file is survived.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from edgeloop.core.buffer_policy import Victim, bytes_to_free, choose_victims, eviction_order, kind_key
from edgeloop.core.errors import StoreError
from edgeloop.core.names import validate_thing_name
from edgeloop.core.records import Record, RecordKind
from edgeloop.device import sqlite_recovery as recovery
from edgeloop.device.buffer import DEFAULT_MAX_BYTES, BufferStats, Ledger, check_limit, check_max_bytes
from edgeloop.device.sqlite_recovery import SEQ_RESERVE, SIDECAR_SUFFIX, SeqMark, corruption_of, quarantine
from edgeloop.device.stored_payload import Stored, payload_of, stored_form

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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

_COUNTERS = [f"{prefix}_{kind_key(kind)}" for prefix in ("evicted", "refused") for kind in RecordKind]
"""Meta keys of the per-class eviction and refusal counters."""


SYNCHRONOUS_MODES = ("FULL", "NORMAL")


class SqliteBuffer:
    """RecordBuffer in one SQLite file (WAL, synchronous=FULL): a record acked by append is on disk."""

    def __init__(
        self, path: Path | str, thing_name: str, *, max_bytes: int = DEFAULT_MAX_BYTES, synchronous: str = "FULL"
    ) -> None:
        """synchronous=NORMAL (simulations only) skips the fsync per commit: a killed process still loses nothing
        acknowledged (WAL), a power cut may; devices keep the default FULL."""
        if synchronous not in SYNCHRONOUS_MODES:
            raise StoreError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self._synchronous = synchronous
        self._thing = validate_thing_name(thing_name)
        self._max_bytes = check_max_bytes(max_bytes)
        self._lock = threading.Lock()
        self._ledger = Ledger()
        self._file = None if str(path) == ":memory:" else Path(path)
        self._sidecar = None if self._file is None else self._file.with_name(self._file.name + SIDECAR_SUFFIX)
        mark = self._read_mark()
        floor, quarantined = self._recover(mark)
        try:
            self._conn = sqlite3.connect(
                str(path), timeout=recovery.LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False
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
            self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
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
            self._max_bytes = check_max_bytes(max_bytes)

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records in one transaction (group commit), evicting as the policy says, and number them."""
        texts = [stored_form(p) for p in payloads]
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
        self, conn: sqlite3.Connection, kind: RecordKind, need: int, rows: list[tuple[int, int, float, Stored, int]]
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

    def _insert_one(self, row: tuple[int, int, float, Stored, int]) -> dict[RecordKind, list[Victim]]:
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
        check_limit(limit)
        rows = self._read("SELECT seq, kind, created_at, payload FROM queue ORDER BY kind, seq LIMIT ?", limit)
        return [Record(self._thing, seq, RecordKind(kind), at, payload_of(text)) for seq, kind, at, text in rows]

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
