"""The store-and-forward buffer: every record survives a crash or an outage until the cloud confirmed it.

RecordBuffer is the port; MemoryBuffer the in-memory adapter (tests, simulations); SqliteBuffer
(device.sqlite_buffer) the durable one a device runs, with its recovery in device.sqlite_recovery.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
from edgeloop.device.stored_payload import Stored, payload_of, stored_form

log = logging.getLogger(__name__)

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
      stored form: they were just proven serialisable, and callers keep their own objects). Each gets
      the next per-device sequence number, starting at 1 and strictly increasing for the life of the
      buffer (across restarts for a durable one; a number is never reused, even after eviction). The
      records are durable when append returns, and the call is one transaction: either every payload is
      stored or none is (group commit).
      Payloads must be JSON objects; they come back from ``peek`` read from their stored form (JSON text, or
      a staged RESULT record's columns: device.stored_payload), so a payload changed by its caller after
      append is stored unchanged.
    - The buffer holds at most ``max_bytes`` of stored payloads. An append that would exceed it evicts
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


def check_limit(limit: int) -> None:
    if limit < 0:
        raise ValidationError("limit", f"must be >= 0, got {limit}")


def check_max_bytes(max_bytes: int) -> int:
    if max_bytes <= 0:
        raise ValidationError("max_bytes", f"must be > 0, got {max_bytes}")
    return max_bytes


class Ledger:
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
        self._max_bytes = check_max_bytes(max_bytes)
        self._lock = threading.Lock()
        self._queues: dict[RecordKind, OrderedDict[int, tuple[float, Stored]]] = {k: OrderedDict() for k in RecordKind}
        self._kind_of: dict[int, RecordKind] = {}
        self._ledger = Ledger()

    def set_max_bytes(self, max_bytes: int) -> None:
        """A new bound (configuration update); the next append evicts down to it."""
        with self._lock:
            self._max_bytes = check_max_bytes(max_bytes)

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store records in their stored form (peek reads them back, as in SQLite) and give them sequence numbers."""
        texts = [stored_form(p) for p in payloads]
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

    def _make_room(self, kind: RecordKind, texts: list[Stored]) -> None:
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
        check_limit(limit)
        out: list[Record] = []
        with self._lock:
            for kind in sorted(RecordKind):
                for seq, (created_at, text) in self._queues[kind].items():
                    if len(out) == limit:
                        return out
                    out.append(Record(self._thing, seq, kind, created_at, payload_of(text)))
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
