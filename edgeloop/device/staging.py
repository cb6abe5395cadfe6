"""Group commit: micro-batch results and samples held briefly, then written to the buffer in one transaction."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from edgeloop.core.errors import StoreError
from edgeloop.core.records import RecordKind
from edgeloop.device.buffer import RecordBuffer
from edgeloop.device.stored_payload import ResultColumns, StagedResults
from edgeloop.device.tally import Tally

log = logging.getLogger(__name__)

COMMIT_MAX_RESULTS = 256
"""Staged results committed together at most: one buffer transaction (one fsync) for up to this many."""


class Staging:
    """RESULT and SAMPLE records waiting for one buffer transaction.

    A durable append costs an fsync, milliseconds on an SD card; committing every resultCommitMs (and at
    COMMIT_MAX_RESULTS, and whenever the input queue idles) turns one fsync per micro-batch into one per
    window. Staged results are as volatile as the queued requests in front of the runtime; 0 commits each.
    """

    def __init__(
        self, buffer: RecordBuffer, clock: Callable[[], float], tally: Tally, commit_ms: Callable[[], int]
    ) -> None:
        """commit_ms reads resultCommitMs from the configuration in force."""
        self._buffer = buffer
        self._clock = clock
        self._tally = tally
        self._commit_ms = commit_ms
        self._lock = threading.Lock()
        self._results: list[ResultColumns] = []
        """Micro-batch results not yet in the buffer, one RESULT record each."""
        self._result_count = 0
        self._samples: list[dict[str, Any]] = []
        """SAMPLE payloads waiting for the same commit as the results (samples are rare: they share its fsync)."""
        self._commit_by = 0.0
        """When the oldest staged record must be committed (time.monotonic)."""

    @property
    def holds_results(self) -> bool:
        """Whether results wait for a commit (an idle loop commits them at once)."""
        return bool(self._results)

    def stage(self, results: Sequence[ResultColumns]) -> None:
        """Hold a micro-batch's RESULT records (Inference.run's columns); commit at the window or COMMIT_MAX_RESULTS."""
        with self._lock:
            now = time.monotonic()
            if not self._results and not self._samples:
                self._commit_by = now + self._commit_ms() / 1000
            self._results.extend(results)
            for columns in results:
                self._result_count += len(columns[0])
            due = self._result_count >= COMMIT_MAX_RESULTS or now >= self._commit_by
        if due:
            self.commit()

    def stage_samples(self, payloads: list[dict[str, Any]]) -> None:
        """Hold SAMPLE payloads for the results' group commit."""
        with self._lock:
            now = time.monotonic()
            if not self._results and not self._samples:
                self._commit_by = now + self._commit_ms() / 1000
            self._samples.extend(payloads)
            due = now >= self._commit_by
        if due:
            self.commit()

    def commit(self) -> int:
        """Append every staged RESULT record in one transaction, then the staged SAMPLE records.

        A refusal is logged and counted as an error; the count returned is of RESULT records.
        """
        with self._lock:
            staged, results, samples = self._results, self._result_count, self._samples
            if not staged and not samples:
                return 0
            self._results, self._result_count, self._samples = [], 0, []
            # stored as columns, no JSON on the loop; Inference.run builds them from plain cells only
            payloads = [StagedResults(columns, plain=True) for columns in staged]
            now = self._clock()
            try:
                if payloads:
                    self._buffer.append(RecordKind.RESULT, payloads, now)
            except StoreError as exc:
                log.error("%d results in %d records were not buffered: %s", results, len(payloads), exc)
                self._tally.count(errors=1)
                payloads = []
            try:
                if samples:
                    self._buffer.append(RecordKind.SAMPLE, samples, now)
            except StoreError as exc:
                log.error("%d samples were not buffered: %s", len(samples), exc)
                self._tally.count(errors=1)
        return len(payloads)
