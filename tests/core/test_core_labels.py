"""Label objects: the key names the sample, the body agrees with it, anything else is refused by field."""

from __future__ import annotations

import json

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.labels import Label, label_key, parse_label_object

LABEL = Label("edge-dev-1", 41, 7, "annotator-3")


def body(**changes: object) -> bytes:
    return json.dumps({**LABEL.to_payload(), **changes}).encode()


def test_a_label_object_round_trips_under_its_samples_key() -> None:
    key = label_key("edge-dev-1", 41)
    assert key == "labels/edge-dev-1/41.json"
    assert parse_label_object(key, body()) == LABEL


@pytest.mark.parametrize(
    ("key", "data", "field"),
    [
        ("labels/edge-dev-1/41.json", b"{nope", "label: is not JSON"),
        ("labels/edge-dev-1/41.json", body(seq=42), "stored at"),
        ("labels/edge-dev-2/41.json", body(), "stored at"),
        ("labels/loose.json", body(), "is not a labels/<thing>/<seq>.json key"),
        ("samples/edge-dev-1/41.json", body(), "is not a labels/"),
        ("labels/edge-dev-1/41.json", body(label_index=-1), "label.label_index"),
        ("labels/edge-dev-1/41.json", body(label_index="7"), "label.label_index"),
        ("labels/edge-dev-1/41.json", body(schema_version=2), "label.schema_version"),
        ("labels/edge-dev-1/41.json", body(colour="red"), "unknown key(s) ['colour']"),
        ("labels/edge-dev-1/41.json", body(labeller=""), "label.labeller"),
        ("labels/edge-dev-1/41.json", b" " * (64 * 1024 + 1), "at most"),
    ],
    ids=[
        "not-json",
        "other-seq",
        "other-thing",
        "loose",
        "wrong-prefix",
        "negative",
        "text-index",
        "schema",
        "unknown-key",
        "no-labeller",
        "too-big",
    ],
)
def test_a_bad_label_object_is_refused_by_name(key: str, data: bytes, field: str) -> None:
    with pytest.raises(ValidationError, match=None) as caught:
        parse_label_object(key, data)
    assert field in str(caught.value)
