"""The durable buffer's bound: which records make room for new ones, and when a new one is refused instead.

Policy (the same for every RecordBuffer implementation):

- The bound counts payload bytes (the UTF-8 JSON of each payload); storage overhead is not counted.
- An append that would push the total over the bound first evicts stored records, lowest priority first
  (highest RecordKind value: RESULT, then SAMPLE, then EVENT, then ALERT) and oldest first (lowest seq)
  within a class. ALERTs therefore go last, only when nothing else is left.
- An append may only evict records of lower or equal priority than its own kind: telemetry never pushes
  out an alert. If the append cannot fit even after evicting all of those, the whole append is refused
  (StoreError "buffer full: ...", nothing of it stored) and its records are counted as refused by kind.
  The records being appended are never the ones dropped in favour of older records of their own class:
  within a class the newest data wins, the oldest goes.
- Every evicted and every refused record is counted by class; nothing disappears silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from edgeloop.core.errors import StoreError
from edgeloop.core.records import RecordKind

BUFFER_FULL = "buffer full"
"""Prefix of the StoreError message for a refused append, so callers and logs can tell it from a disk failure."""

Victim = tuple[int, int]
"""(seq, payload bytes) of a record chosen for eviction."""


def kind_key(kind: RecordKind) -> str:
    """The lowercase wire name used as key in per-class counters (stats, health)."""
    return kind.name.lower()


def zero_counts() -> dict[str, int]:
    """A per-class counter with every class present."""
    return {kind_key(kind): 0 for kind in RecordKind}


def eviction_order(incoming: RecordKind) -> tuple[RecordKind, ...]:
    """Classes an append of `incoming` may evict, lowest priority first; never more important ones."""
    return tuple(sorted((kind for kind in RecordKind if kind >= incoming), reverse=True))


def bytes_to_free(held: Mapping[RecordKind, int], incoming: RecordKind, incoming_bytes: int, max_bytes: int) -> int:
    """Bytes that must be evicted before `incoming_bytes` of `incoming` fit; raises when they never can."""
    if max_bytes <= 0:
        raise StoreError(f"{BUFFER_FULL}: max_bytes must be > 0, got {max_bytes}")
    need = sum(held.values()) + incoming_bytes - max_bytes
    if need <= 0:
        return 0
    evictable = sum(held.get(kind, 0) for kind in eviction_order(incoming))
    if need > evictable:
        raise StoreError(
            f"{BUFFER_FULL}: {incoming_bytes} bytes of {kind_key(incoming)} do not fit in {max_bytes} bytes; "
            f"only {evictable} bytes are of lower or equal priority and may be evicted"
        )
    return need


def choose_victims(
    need: int, order: Sequence[RecordKind], oldest_of: Callable[[RecordKind], Iterable[Victim]]
) -> dict[RecordKind, list[Victim]]:
    """Oldest records of each class in `order` until at least `need` bytes are freed (reads lazily)."""
    victims: dict[RecordKind, list[Victim]] = {}
    freed = 0
    for kind in order:
        if freed >= need:
            break
        for seq, size in oldest_of(kind):
            victims.setdefault(kind, []).append((seq, size))
            freed += size
            if freed >= need:
                break
    if freed < need:
        raise StoreError(f"{BUFFER_FULL}: found only {freed} of {need} evictable bytes (stored sizes out of step)")
    return victims
