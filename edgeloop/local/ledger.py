"""What the scenario's world sent and what the cloud received, in columns: a simulated day of a thousand
devices is over a million requests, so nothing here is kept as an object per request.

Simulation bookkeeping, not platform code: the true label of every request (for the oracle labeller and
accuracy per phase), the answer the cloud received for it, and a bounded uniform sample of the drifted
rows' features for the oracle model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

REQUEST_MARK = "-s"
"""Request ids are '<thing>-s<n>': n indexes the ledger."""
UNANSWERED = -1
CHUNK = 65_536


def request_id(thing: str, n: int) -> str:
    """The id of the world's n-th request, sent to thing."""
    return f"{thing}{REQUEST_MARK}{n:07d}"


def request_index(request: str) -> int | None:
    """The ledger index in a request id, None for an id the world did not make."""
    _, mark, digits = request.rpartition(REQUEST_MARK)
    return int(digits) if mark and digits.isdigit() else None


class Ledger:
    """Per request: when it was sent, to which device, its true label, and the answer the cloud received."""

    def __init__(self) -> None:
        self.size = 0
        self.at_s = np.zeros(CHUNK, dtype=np.float32)
        self.device = np.zeros(CHUNK, dtype=np.int32)
        self.row = np.zeros(CHUNK, dtype=np.int32)
        """The dataset row each request was made from (the stream cycles its rows)."""
        self.truth = np.zeros(CHUNK, dtype=np.int16)
        self.predicted = np.full(CHUNK, UNANSWERED, dtype=np.int16)
        self.version = np.zeros(CHUNK, dtype=np.int16)
        self.counted_twice = 0
        """Requests whose answer the cloud counted a second time: must stay 0 (duplicates recognised upstream)."""

    def add(self, at_s: float, device: int, truth: np.ndarray, rows: np.ndarray | None = None) -> int:
        """Record len(truth) requests sent now to one device (made from dataset `rows`); returns the first index."""
        start, n = self.size, len(truth)
        self._grow(start + n)
        self.at_s[start : start + n] = at_s
        self.device[start : start + n] = device
        self.row[start : start + n] = -1 if rows is None else rows
        self.truth[start : start + n] = truth
        self.size += n
        return start

    def answer(self, index: int, label: int, version: int) -> None:
        """The cloud received the answer to request index (a second answer is counted, not overwritten)."""
        if not 0 <= index < self.size:
            return
        if self.predicted[index] != UNANSWERED:
            self.counted_twice += 1
            return
        self.predicted[index] = label
        self.version[index] = version

    def _grow(self, needed: int) -> None:
        if needed <= len(self.at_s):
            return
        size = max(needed, 2 * len(self.at_s))
        for name in ("at_s", "device", "row", "truth", "predicted", "version"):
            old = getattr(self, name)
            fill = UNANSWERED if name == "predicted" else 0
            new = np.full(size, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def answered(self) -> np.ndarray:
        """Indices of the requests the cloud has an answer for."""
        return np.flatnonzero(self.predicted[: self.size] != UNANSWERED)

    def accuracy(self, mask: np.ndarray) -> float | None:
        """Share of correct answers among the answered requests selected by mask (over the ledger's size)."""
        chosen = mask & (self.predicted[: self.size] != UNANSWERED)
        total = int(chosen.sum())
        if not total:
            return None
        return round(int((self.predicted[: self.size][chosen] == self.truth[: self.size][chosen]).sum()) / total, 4)


class TruthTable(Mapping[str, int]):
    """The ledger's true labels by request id: what the oracle labeller (a simulation stand-in) reads."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getitem__(self, request: str) -> int:
        index = request_index(request)
        if index is None or not 0 <= index < self._ledger.size:
            raise KeyError(request)
        return int(self._ledger.truth[index])

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the truth table is looked up by request id, not listed")

    def __len__(self) -> int:
        return self._ledger.size


@dataclass
class Reservoir:
    """A uniform sample of at most `capacity` rows (Algorithm R): the drifted rows the oracle learns from."""

    capacity: int
    width: int
    rng: np.random.Generator
    seen: int = 0

    def __post_init__(self) -> None:
        self.rows = np.zeros((self.capacity, self.width), dtype=np.float64)
        self.index = np.zeros(self.capacity, dtype=np.int64)

    def add(self, rows: np.ndarray, first_index: int) -> None:
        """Offer consecutive ledger rows first_index, first_index + 1, ..."""
        for offset, row in enumerate(rows):
            slot = self.seen if self.seen < self.capacity else int(self.rng.integers(0, self.seen + 1))
            self.seen += 1
            if slot < self.capacity:
                self.rows[slot] = row
                self.index[slot] = first_index + offset

    def kept(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, ledger indices) of the rows kept."""
        n = min(self.seen, self.capacity)
        return self.rows[:n], self.index[:n]
