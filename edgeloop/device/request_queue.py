"""The runtime's input queue: bounded, with the non-blocking put IPC handlers need and the batch take the loop needs.

queue.Queue offers one item per lock round; a micro-batch loop wants everything already waiting in one. Rather
than reach into queue.Queue's internals (its mutex, deque and conditions), the runtime owns this small queue.
Full and Empty are the standard library's exceptions, so handlers written for queue.Queue keep working.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from itertools import repeat

from edgeloop.device.inference import InferenceRequest


class RequestQueue:
    """A FIFO of inference requests; maxsize 0 means unbounded."""

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[InferenceRequest] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def qsize(self) -> int:
        """Requests waiting now."""
        return len(self._items)

    def empty(self) -> bool:
        """Whether no request waits now."""
        return not self._items

    def _room(self) -> int | None:
        """Free places (None: unbounded); the caller holds the lock."""
        return None if not self.maxsize else self.maxsize - len(self._items)

    def put(self, request: InferenceRequest, timeout: float | None = None) -> None:
        """Queue one request, waiting up to timeout (None: for ever) for room; queue.Full when there was none."""
        with self._not_full:
            if self.maxsize and not self._not_full.wait_for(lambda: len(self._items) < self.maxsize, timeout):
                raise queue.Full
            self._items.append(request)
            self._not_empty.notify()

    def put_nowait(self, request: InferenceRequest) -> None:
        """Queue one request now, or raise queue.Full (an IPC handler must never block)."""
        with self._lock:
            room = self._room()
            if room is not None and room < 1:
                raise queue.Full
            self._items.append(request)
            self._not_empty.notify()

    def put_many(self, requests: Iterable[InferenceRequest]) -> int:
        """Queue many requests in one lock round, as if they had piled up; queue.Full (none queued) if too many."""
        items = list(requests)
        with self._lock:
            room = self._room()
            if room is not None and len(items) > room:
                raise queue.Full
            self._items.extend(items)
            self._not_empty.notify()
        return len(items)

    def get(self, timeout: float | None = None) -> InferenceRequest:
        """The oldest request, waiting up to timeout (None: for ever); queue.Empty when none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_empty:
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._not_empty.wait(remaining)
            request = self._items.popleft()
            self._not_full.notify()
            return request

    def get_nowait(self) -> InferenceRequest:
        """The oldest request, or queue.Empty."""
        return self.get(timeout=0)

    def take(self, into: list[InferenceRequest], limit: int) -> int:
        """Move up to limit waiting requests into `into`, in order, in one lock round; waiting producers wake."""
        with self._lock:
            items = self._items
            count = min(limit, len(items))
            into.extend(map(deque.popleft, repeat(items, count)))  # C-level pops, no Python frame per request
            if count:
                self._not_full.notify(count)
        return count

    def drain(self) -> list[InferenceRequest]:
        """Everything waiting, in order (the loop's last round on stop)."""
        taken: list[InferenceRequest] = []
        self.take(taken, sys.maxsize)
        return taken
