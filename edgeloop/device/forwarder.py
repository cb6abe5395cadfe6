"""Store-and-forward: drains the buffer through the uplink, paced and packed, acking only what was confirmed."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from edgeloop.core.backoff import IOT_CORE_PUBLISHES_PER_S, TokenBucket, UplinkState, full_jitter_delay, uplink_state
from edgeloop.core.compression import MAX_DECOMPRESSED_BYTES
from edgeloop.core.errors import LinkError, StoreError
from edgeloop.core.names import results_topic
from edgeloop.core.records import (
    BILLING_UNIT_BYTES,
    MAX_MESSAGE_BYTES,
    Record,
    RecordKind,
    batch_size,
    billed_units,
    encode_batch,
    pack_messages,
    record_cost,
)
from edgeloop.core.sample_batches import compressed_size, encode_samples_message, pack_samples
from edgeloop.device.buffer import RecordBuffer
from edgeloop.device.uplink import Uplink

log = logging.getLogger(__name__)

PUBLISH_RATE_PER_S = IOT_CORE_PUBLISHES_PER_S - 10
"""Records stay under IoT Core's per-connection limit with room for shadow updates on the same link."""
PUBLISH_BURST = 10
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
RECORD_REFUSED_EVENT = "record_refused"
"""The EVENT record that stands in, for the cloud, for a record too large to ever be published."""


@dataclass(frozen=True)
class ForwarderStats:
    """What the health report says about forwarding: link state, last sync and cumulative counters."""

    state: UplinkState
    last_success_at: float | None
    next_attempt_at: float | None
    messages: int
    records: int
    bytes: int
    billed_units: int
    failures: int
    consecutive_failures: int
    refused_oversized: int
    last_error: str


class Forwarder:
    """Moves records from the buffer to the uplink; the buffer forgets a record only after its confirmation."""

    def __init__(
        self,
        thing_name: str,
        buffer: RecordBuffer,
        uplink: Uplink,
        *,
        rate_per_s: float = PUBLISH_RATE_PER_S,
        burst: float = PUBLISH_BURST,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        max_bytes: int = MAX_MESSAGE_BYTES,
        unit_bytes: int = BILLING_UNIT_BYTES,
        rand: Callable[[], float] = random.random,
        on_samples: Callable[[tuple[Record, ...], int], None] | None = None,
    ) -> None:
        """on_samples: told each confirmed SAMPLE batch and its bytes on the wire (the sample budget's price)."""
        self._thing = thing_name
        self._buffer = buffer
        self._uplink = uplink
        self._bucket = TokenBucket.full(rate_per_s, burst, 0.0)
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._max_bytes = max_bytes
        self._unit_bytes = unit_bytes
        self._rand = rand
        self._on_samples = on_samples
        self._last_success_at: float | None = None
        self._next_attempt_at: float | None = None
        self._down_at_failure = False
        self._more_waiting = False
        self._messages = self._records = self._bytes = self._units = 0
        self._failures = self._consecutive = self._refused = 0
        self._last_error = ""
        full_jitter_delay(1, base_s=backoff_base_s, cap_s=backoff_cap_s, rand=lambda: 0.0)  # validates the bounds

    @property
    def state(self) -> UplinkState:
        """connected, backing_off (last publish failed, retry pending) or offline (the uplink says down)."""
        return uplink_state(link_up=self._uplink.connected, consecutive_failures=self._consecutive)

    @property
    def last_success_at(self) -> float | None:
        """When a message was last confirmed (the health report's last successful sync)."""
        return self._last_success_at

    @property
    def next_attempt_at(self) -> float | None:
        """When drain will next try the uplink; None when it may try right away."""
        return self._next_attempt_at

    @property
    def more_waiting(self) -> bool:
        """Whether the last drain left records that can go without waiting for the clock."""
        return self._more_waiting

    def stats(self) -> ForwarderStats:
        """A snapshot for the health report."""
        return ForwarderStats(
            state=self.state,
            last_success_at=self._last_success_at,
            next_attempt_at=self._next_attempt_at,
            messages=self._messages,
            records=self._records,
            bytes=self._bytes,
            billed_units=self._units,
            failures=self._failures,
            consecutive_failures=self._consecutive,
            refused_oversized=self._refused,
            last_error=self._last_error,
        )

    def drain(self, now: float, limit: int, *, flush: bool = False) -> int:
        """Publish up to limit buffered records in packed messages; returns how many were confirmed and acked.

        Nothing is sent while backing off (unless the uplink came back since the failure) or once the
        rate limit is spent; the first failed publish ends the round and schedules a jittered retry.
        flush sends a partly filled last message too (used on shutdown).
        """
        self._more_waiting = False
        if not self._due(now):
            return 0
        records = self._buffer.peek(limit)
        if not records:
            return 0
        full = len(records) == limit
        runs = _runs_by_class(records)
        delivered, oversized = 0, False
        for index, (samples, run) in enumerate(runs):
            last = index == len(runs) - 1
            pack = pack_samples if samples else pack_messages
            packing = pack(
                run, more_waiting=full and not flush and last, max_bytes=self._max_bytes, unit_bytes=self._unit_bytes
            )
            if packing.oversized:
                self._refuse(packing.oversized, now)
                oversized = True
            for message in packing.messages:
                sent = self._publish(message, now)
                if sent is None:
                    return delivered
                delivered += sent
        self._more_waiting = full or oversized
        return delivered

    def _publish(self, message: tuple[Record, ...], now: float) -> int | None:
        """One paced, confirmed publish; None ends the round (no token left, or the publish failed)."""
        if not self._take_token(now):
            self._more_waiting = True
            return None
        try:
            topic, payload = self._encode(message)
            self._uplink.publish(topic, payload)
        except LinkError as exc:
            self._failed(exc, now)
            return None
        except Exception as exc:  # an adapter bug must back off like an outage, not retry every tick
            log.exception("publish of seqs %d..%d failed unexpectedly; backing off", message[0].seq, message[-1].seq)
            self._failed(exc, now)
            return None
        acked = self._confirmed(message, len(payload), now)
        if self._on_samples is not None and message[0].kind is RecordKind.SAMPLE:
            self._on_samples(message, len(payload))
        return acked

    def _encode(self, message: tuple[Record, ...]) -> tuple[str, bytes]:
        """SAMPLE batches compressed on their range's samples topic; everything else as JSON with the results."""
        if message[0].kind is RecordKind.SAMPLE:
            return encode_samples_message(self._thing, message)
        return results_topic(self._thing), encode_batch(self._thing, message)

    def next_drain_at(self, now: float, idle_s: float) -> float:
        """When the loop should call drain again: at once for a backlog, at the pacing deadline, or after idle_s."""
        pending = self._next_attempt_at
        if pending is not None and pending > now:
            if self._consecutive and self._down_at_failure:
                return min(pending, now + idle_s)  # keep looking: a link coming back ends the wait early
            return pending
        return now if self._more_waiting else now + idle_s

    def _due(self, now: float) -> bool:
        """Not before the backoff expires, unless the link was down at the failure and is back up now."""
        if self._next_attempt_at is None or now >= self._next_attempt_at:
            return True
        return self._consecutive > 0 and self._down_at_failure and self._uplink.connected

    def _take_token(self, now: float) -> bool:
        bucket = self._bucket.take(now)
        if bucket is None:
            self._next_attempt_at = now + self._bucket.wait_s(now)
            return False
        self._bucket = bucket
        return True

    def _confirmed(self, message: tuple[Record, ...], size: int, now: float) -> int:
        """The far side has the message: only now may the buffer forget its records."""
        acked = self._buffer.ack(record.seq for record in message)
        self._messages += 1
        self._records += len(message)
        self._bytes += size
        self._units += billed_units(size, self._unit_bytes)
        self._consecutive = 0
        self._next_attempt_at = None
        self._last_success_at = now
        return acked

    def _failed(self, exc: Exception, now: float) -> None:
        self._failures += 1
        self._consecutive += 1
        self._down_at_failure = not self._uplink.connected
        base_s, cap_s = self._backoff
        delay = full_jitter_delay(self._consecutive, base_s=base_s, cap_s=cap_s, rand=self._rand)
        self._next_attempt_at = now + delay
        self._last_error = str(exc)
        log.warning(
            "forwarding paused for %.2fs (failure %d), records stay buffered: %s", delay, self._consecutive, exc
        )

    def _refuse(self, records: tuple[Record, ...], now: float) -> None:
        """Take never-sendable records out (so they cannot block the queue), leaving an EVENT that says so."""
        events = []
        for record in records:
            size, reason = self._too_big(record)
            log.error("record seq %d (%s) refused: %s", record.seq, record.kind.name.lower(), reason)
            events.append(
                {
                    "event": RECORD_REFUSED_EVENT,
                    "seq": record.seq,
                    "kind": record.kind.name.lower(),
                    "bytes": size,
                    "reason": reason,
                }
            )
        try:
            self._buffer.append(RecordKind.EVENT, events, now)  # durable first: a crash here re-refuses, never hides
        except StoreError as exc:  # a full buffer must not keep an unsendable record blocking the queue
            log.error("could not buffer the refusal events for seqs %s: %s", [r.seq for r in records], exc)
        self._refused += self._buffer.ack(record.seq for record in records)

    def _too_big(self, record: Record) -> tuple[int, str]:
        """The size that keeps a record from any message and why: compressed and JSON size for a SAMPLE."""
        json_size = batch_size(self._thing, [record_cost(record)])
        if record.kind is not RecordKind.SAMPLE:
            return json_size, f"encoded alone it is {json_size} bytes, over the {self._max_bytes}-byte message limit"
        if json_size > MAX_DECOMPRESSED_BYTES:
            return json_size, f"its batch JSON alone is {json_size} bytes, over the {MAX_DECOMPRESSED_BYTES}-byte limit"
        size = compressed_size(self._thing, [record])
        return size, f"compressed alone it is {size} bytes, over the {self._max_bytes}-byte message limit"


def _runs_by_class(records: list[Record]) -> list[tuple[bool, list[Record]]]:
    """Cut the peeked records (priority order) into contiguous runs: SAMPLE runs (True) go apart, compressed."""
    runs: list[tuple[bool, list[Record]]] = []
    for record in records:
        samples = record.kind is RecordKind.SAMPLE
        if not runs or runs[-1][0] != samples:
            runs.append((samples, []))
        runs[-1][1].append(record)
    return runs
