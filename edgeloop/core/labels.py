"""A sample's label as the labelling tool writes it: one S3 object per sample, labels/<thing>/<seq>.json.

{
  "schema_version": 1,
  "thing_name": "edge-dev-1", "seq": 41,   # the catalogued sample it labels (the key must say the same)
  "label_index": 7,                        # the true class index
  "labeller": "annotator-3"                # who (or which tool) labelled it
}

The key is the sample's identity, so relabelling a sample overwrites its object; the catalogue keeps the
newest label and counts the sample once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import LABELS_PREFIX, validate_thing_name

LABEL_SCHEMA_VERSION = 1
LABEL_KEYS = {"schema_version", "thing_name", "seq", "label_index", "labeller"}
MAX_LABEL_OBJECT_BYTES = 64 * 1024
MAX_LABELLER_CHARS = 128


class LabelOutcome(Enum):
    """What recording a label did: a first label (counted), a changed one, or a repeat of the stored one."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Label:
    """The true class of one catalogued sample and who said so."""

    thing_name: str
    seq: int
    label_index: int
    labeller: str

    def __post_init__(self) -> None:
        validate_thing_name(self.thing_name)
        if self.seq < 0:
            raise ValidationError("label.seq", f"must be >= 0, got {self.seq}")
        if self.label_index < 0:
            raise ValidationError("label.label_index", f"must be >= 0, got {self.label_index}")
        if not 0 < len(self.labeller) <= MAX_LABELLER_CHARS:
            raise ValidationError("label.labeller", f"must be 1-{MAX_LABELLER_CHARS} characters")

    def to_payload(self) -> dict[str, Any]:
        """The label object's JSON body."""
        return {
            "schema_version": LABEL_SCHEMA_VERSION,
            "thing_name": self.thing_name,
            "seq": self.seq,
            "label_index": self.label_index,
            "labeller": self.labeller,
        }

    @classmethod
    def from_payload(cls, data: object) -> Label:
        """Parse a label body, refusing unknown keys, wrong types and another schema version."""
        where = "label"
        d = wire.mapping(data, where)
        wire.only_keys(d, LABEL_KEYS, where)
        version = wire.integer(d, "schema_version", where)
        if version != LABEL_SCHEMA_VERSION:
            raise ValidationError(f"{where}.schema_version", f"{version}; expected {LABEL_SCHEMA_VERSION}")
        return cls(
            thing_name=wire.text(d, "thing_name", where),
            seq=wire.integer(d, "seq", where, minimum=0),
            label_index=wire.integer(d, "label_index", where, minimum=0),
            labeller=wire.text(d, "labeller", where),
        )


def label_key(thing_name: str, seq: int) -> str:
    """Where the labelling tool writes the label of (thing, seq)."""
    return f"{LABELS_PREFIX}{validate_thing_name(thing_name)}/{seq}.json"


def parse_label_object(key: str, data: bytes) -> Label:
    """A label object's label; its key must name the same sample, so a mis-filed label cannot land elsewhere."""
    parts = key.split("/")
    if not key.startswith(LABELS_PREFIX) or len(parts) != 3 or not parts[2].endswith(".json"):
        raise ValidationError("object", f"{key!r} is not a {LABELS_PREFIX}<thing>/<seq>.json key")
    if len(data) > MAX_LABEL_OBJECT_BYTES:
        raise ValidationError("object", f"{len(data)} bytes; a label object is at most {MAX_LABEL_OBJECT_BYTES}")
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("label", f"is not JSON ({exc})") from exc
    label = Label.from_payload(body)
    if (label.thing_name, str(label.seq)) != (parts[1], parts[2].removesuffix(".json")):
        raise ValidationError("label", f"labels {label.thing_name} seq {label.seq} but is stored at {key!r}")
    return label
