"""Recovery of the SQLite buffer: sequence reservation in a sidecar, corruption checks and quarantine.

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
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edgeloop.core.errors import StoreError

log = logging.getLogger(__name__)

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


def is_corruption(exc: sqlite3.Error) -> bool:
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
        if is_corruption(exc):
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
