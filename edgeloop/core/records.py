"""Buffered records and the batches they travel in: identified by thing + sequence so the cloud dedupes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import validate_thing_name

MAX_MESSAGE_BYTES = 120_000
"""Below IoT Core's 128 KB payload limit, with room for the envelope."""


class RecordKind(IntEnum):
    """Priority classes: lower value is more important and is forwarded first."""

    ALERT = 0
    EVENT = 1
    SAMPLE = 2
    RESULT = 3

    @classmethod
    def parse(cls, name: object) -> RecordKind:
        """Parse the lowercase wire name."""
        for kind in cls:
            if kind.name.lower() == name:
                return kind
        raise ValidationError("kind", f"{name!r}; expected one of {[k.name.lower() for k in cls]}")


@dataclass(frozen=True)
class Record:
    """One durable fact produced on a device; (thing_name, seq) is its identity everywhere."""

    thing_name: str
    seq: int
    kind: RecordKind
    created_at: float
    payload: Mapping[str, Any]

    def to_wire(self) -> dict[str, Any]:
        """Per-record part of a batch message (the thing name lives in the envelope)."""
        return {"seq": self.seq, "kind": self.kind.name.lower(), "at": self.created_at, "payload": self.payload}


MAX_REQUEST_ID_CHARS = 128
"""Bounds a result record's size, so one request can never make a record too big to forward."""


@dataclass(frozen=True)
class InferenceResult:
    """What one inference produced: DeviceRuntime.infer's answer (RESULT records carry them as InferenceBatch)."""

    request_id: str
    label: str
    label_index: int
    confidence: float
    model_version: int
    latency_ms: float

    def __post_init__(self) -> None:
        if not 0 < len(self.request_id) <= MAX_REQUEST_ID_CHARS:
            raise ValidationError(
                "request_id", f"must be 1-{MAX_REQUEST_ID_CHARS} characters, got {len(self.request_id)}"
            )


MAX_RESULTS_PER_RECORD = 64
"""Results one RESULT record carries at most: 64 request ids of 128 escaped astral characters and label names
of 200 ASCII characters still fit one message (tests/core/test_core_records.py checks it)."""


@dataclass(frozen=True)
class InferenceBatch:
    """The results of one micro-batch, column by column: the payload of one RESULT record.

    Every result of a micro-batch was answered by the same model version and waited the batch's wall time
    (``latency_ms``). Label names travel with the indices, so the cloud reports names without the manifest.
    """

    request_ids: tuple[str, ...]
    label_indices: tuple[int, ...]
    labels: tuple[str, ...]
    confidences: tuple[float, ...]
    model_version: int
    latency_ms: float

    def __post_init__(self) -> None:
        n = len(self.request_ids)
        if not 0 < n <= MAX_RESULTS_PER_RECORD:
            raise ValidationError("results.request_ids", f"must hold 1-{MAX_RESULTS_PER_RECORD} results, got {n}")
        lengths = {len(self.label_indices), len(self.labels), len(self.confidences)}
        if lengths != {n}:
            raise ValidationError("results", f"columns differ in length: {n} request ids, {sorted(lengths)} others")
        if not 0 < min(map(len, self.request_ids)) <= max(map(len, self.request_ids)) <= MAX_REQUEST_ID_CHARS:
            raise ValidationError("results.request_ids", f"each must be 1-{MAX_REQUEST_ID_CHARS} characters")
        if min(self.label_indices) < 0:
            raise ValidationError("results.label_indices", f"must be >= 0, got {min(self.label_indices)}")
        if not math.isfinite(sum(self.confidences)):
            bad = [c for c in self.confidences if not math.isfinite(c)]
            if bad:  # a finite sum can overflow; only a non-finite value is refused
                raise ValidationError("results.confidences", f"must be finite, got {bad[0]!r}")
        if self.model_version < 1:
            raise ValidationError("results.model_version", f"must be >= 1, got {self.model_version}")
        if not math.isfinite(self.latency_ms):
            raise ValidationError("results.latency_ms", f"must be finite, got {self.latency_ms!r}")

    def __len__(self) -> int:
        return len(self.request_ids)

    def to_payload(self) -> dict[str, Any]:
        """Payload form for a Record: one JSON list per column."""
        return result_payload(
            self.request_ids, self.label_indices, self.labels, self.confidences, self.model_version, self.latency_ms
        )

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> InferenceBatch:
        """Parse a RESULT record's payload, refusing wrong types, unequal columns or one label with two names."""
        where = "results"
        wire.only_keys(
            data, {"model_version", "latency_ms", "request_ids", "label_indices", "labels", "confidences"}, where
        )
        request_ids = _column(data, "request_ids", str)
        indices = _column(data, "label_indices", int)
        labels = _column(data, "labels", str)
        confidences = tuple(float(c) for c in _column(data, "confidences", float))
        if not all(labels):
            raise ValidationError(f"{where}.labels", "label names must be non-empty")
        names: dict[int, str] = {}
        for index, label in zip(indices, labels, strict=False):
            if names.setdefault(index, label) != label:
                raise ValidationError(
                    f"{where}.labels", f"label index {index} is named both {names[index]!r} and {label!r}"
                )
        return cls(
            request_ids=request_ids,
            label_indices=indices,
            labels=labels,
            confidences=confidences,
            model_version=wire.integer(data, "model_version", where, minimum=1),
            latency_ms=wire.number(data, "latency_ms", where),
        )

    def rows(self) -> list[InferenceResult]:
        """One InferenceResult per request, for callers that want them one by one."""
        version, latency = self.model_version, self.latency_ms
        return [
            InferenceResult(rid, label, index, confidence, version, latency)
            for rid, label, index, confidence in zip(
                self.request_ids, self.labels, self.label_indices, self.confidences, strict=True
            )
        ]


def result_payload(
    request_ids: Sequence[str],
    label_indices: Sequence[int],
    labels: Sequence[str],
    confidences: Sequence[float],
    model_version: int,
    latency_ms: float,
) -> dict[str, Any]:
    """A RESULT record's payload, one JSON list per column (InferenceBatch.from_payload reads it back).

    The device's batch-1 path calls this directly with values that are valid by construction, skipping
    InferenceBatch's checks; everything else goes through InferenceBatch.to_payload.
    """
    return {
        "model_version": model_version,
        "latency_ms": round(latency_ms, 4),
        "request_ids": list(request_ids),
        "label_indices": list(label_indices),
        "labels": list(labels),
        "confidences": list(confidences),
    }


def _column(data: Mapping[str, Any], key: str, kind: type) -> tuple[Any, ...]:
    """A JSON list whose items all have one type (booleans are not numbers; integers are floats)."""
    values = wire.sequence(data, key, "results")
    accepted = (int, float) if kind is float else (kind,)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise ValidationError(f"results.{key}", f"expected {kind.__name__} items, got {value!r}")
    return tuple(values)


def encode_batch(thing_name: str, records: Sequence[Record]) -> bytes:
    """The MQTT payload for one batch; refuses records from another device."""
    if any(r.thing_name != thing_name for r in records):
        raise ValidationError("records", f"every record in a batch must come from {thing_name}")
    body = {"thing_name": thing_name, "records": [r.to_wire() for r in records]}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_batch(payload: bytes) -> tuple[Record, ...]:
    """Parse a batch message into records, validating every field."""
    try:
        body = wire.mapping(json.loads(payload), "batch")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("batch", f"is not JSON ({exc})") from exc
    thing = validate_thing_name(wire.text(body, "thing_name", "batch"))
    records = []
    for item in wire.sequence(body, "records", "batch"):
        item = wire.mapping(item, "batch.records[]")
        records.append(
            Record(
                thing_name=thing,
                seq=wire.integer(item, "seq", "batch.records[]", minimum=1),
                kind=RecordKind.parse(item.get("kind")),
                created_at=wire.number(item, "at", "batch.records[]"),
                payload=wire.mapping(item.get("payload"), "batch.records[].payload"),
            )
        )
    return tuple(records)


def split_by_size(records: Iterable[Record], max_bytes: int = MAX_MESSAGE_BYTES) -> list[list[Record]]:
    """Group records, in order, into batches whose encoded size stays under max_bytes."""
    batches: list[list[Record]] = []
    current: list[Record] = []
    size = 0
    for record in records:
        envelope = len(encode_batch(record.thing_name, []))
        cost = len(json.dumps(record.to_wire(), separators=(",", ":"))) + 1
        if cost + envelope > max_bytes:
            too_big = f"seq {record.seq} alone makes a {cost + envelope}-byte batch, over {max_bytes}"
            raise ValidationError("record", too_big)
        if current and size + cost > max_bytes:
            batches.append(current)
            current = []
        if not current:
            size = envelope
        current.append(record)
        size += cost
    if current:
        batches.append(current)
    return batches


BILLING_UNIT_BYTES = 5 * 1024
"""IoT Core meters messages in 5 KB increments: a 5.1 KB message costs as much as a 10 KB one."""
IOT_CORE_MAX_PAYLOAD_BYTES = 128 * 1024
"""IoT Core refuses a publish whose payload is larger than this."""


def billed_units(size: int, unit_bytes: int = BILLING_UNIT_BYTES) -> int:
    """How many metering units IoT Core charges for a payload of size bytes (at least one)."""
    return max(1, -(-size // unit_bytes))


def record_cost(record: Record) -> int:
    """Bytes one record adds to an encoded batch: its JSON and the comma before the next one."""
    return len(json.dumps(record.to_wire(), separators=(",", ":"))) + 1


def batch_size(thing_name: str, costs: Iterable[int]) -> int:
    """Exact encoded size of a batch from its records' costs (the last record has no comma)."""
    total = sum(costs)
    return len(encode_batch(thing_name, [])) + total - 1 if total else len(encode_batch(thing_name, []))


@dataclass(frozen=True)
class Packing:
    """Records cut into messages to publish in order, records no message can carry, and how many wait."""

    messages: tuple[tuple[Record, ...], ...]
    oversized: tuple[Record, ...]
    held_back: int


def pack_messages(
    records: Sequence[Record],
    *,
    more_waiting: bool,
    max_bytes: int = MAX_MESSAGE_BYTES,
    unit_bytes: int = BILLING_UNIT_BYTES,
) -> Packing:
    """Cut records, in order, into messages that fill whole billing units.

    Messages are contiguous runs of the given order, so publishing them in turn keeps every class's
    order. Each is filled up to the largest whole number of units under max_bytes. When more records
    wait behind these, the last, partly filled message is trimmed back to a unit boundary (or held
    entirely when it is not the only one): its records lead the next, fuller round instead. A record
    that alone exceeds max_bytes can never be sent and is returned in ``oversized``.
    """
    if max_bytes < 1 or unit_bytes < 1:
        raise ValidationError("max_bytes", f"max_bytes and unit_bytes must be >= 1, got {max_bytes}, {unit_bytes}")
    capacity = max_bytes // unit_bytes * unit_bytes if max_bytes >= unit_bytes else max_bytes
    messages: list[list[tuple[Record, int]]] = []
    oversized: list[Record] = []
    current: list[tuple[Record, int]] = []
    total = 0
    for record in records:
        cost = record_cost(record)
        if batch_size(record.thing_name, [cost]) > max_bytes:
            oversized.append(record)
            continue
        if current and batch_size(record.thing_name, [total, cost]) > capacity:
            messages.append(current)
            current, total = [], 0
        current.append((record, cost))
        total += cost
    if current:
        messages.append(current)
    held_back = 0
    if more_waiting and messages:
        last = messages.pop()
        kept = _trim_to_unit(last, unit_bytes)
        if not kept and not messages:
            kept = last  # never stall: a lone message below one unit still goes
        held_back = len(last) - len(kept)
        if kept:
            messages.append(kept)
    return Packing(tuple(tuple(r for r, _ in m) for m in messages), tuple(oversized), held_back)


def _trim_to_unit(message: list[tuple[Record, int]], unit_bytes: int) -> list[tuple[Record, int]]:
    """The longest prefix of message whose size is at most its last whole unit boundary (may be empty)."""
    thing = message[0][0].thing_name
    boundary = batch_size(thing, [c for _, c in message]) // unit_bytes * unit_bytes
    kept: list[tuple[Record, int]] = []
    total = 0
    for item in message:
        if batch_size(thing, [total, item[1]]) > boundary:
            break
        kept.append(item)
        total += item[1]
    return kept
