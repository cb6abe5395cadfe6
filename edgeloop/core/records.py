"""Buffered records and the batches they travel in: identified by thing + sequence so the cloud dedupes."""

from __future__ import annotations

import json
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
    """What one inference produced; the payload of a RESULT record."""

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

    def to_payload(self) -> dict[str, Any]:
        """Payload form for a Record."""
        return {
            "request_id": self.request_id,
            "label": self.label,
            "label_index": self.label_index,
            "confidence": round(self.confidence, 6),
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 4),
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> InferenceResult:
        """Parse a RESULT record's payload."""
        where = "result"
        return cls(
            request_id=wire.text(data, "request_id", where),
            label=wire.text(data, "label", where),
            label_index=wire.integer(data, "label_index", where, minimum=0),
            confidence=wire.number(data, "confidence", where),
            model_version=wire.integer(data, "model_version", where, minimum=1),
            latency_ms=wire.number(data, "latency_ms", where),
        )


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
