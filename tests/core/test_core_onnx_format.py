"""Recognising ONNX ModelProto bytes with the standard library alone."""

from __future__ import annotations

import pytest
from support import tiny_onnx_model

from edgeloop.core.errors import ModelFormatError
from edgeloop.core.onnx_format import GRAPH, IR_VERSION, OPSET_IMPORT, check_onnx_model, top_level_fields


def test_a_real_model_passes_and_shows_its_fields() -> None:
    data = tiny_onnx_model()
    check_onnx_model(data)
    numbers = {field for field, _ in top_level_fields(data)}
    assert {IR_VERSION, GRAPH, OPSET_IMPORT} <= numbers


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "is empty"),
        (b"\x08\x07 this is not onnx", "not an ONNX model"),
        (b"PK\x03\x04zipfile", "not an ONNX model"),
        (b"\x08\x07", "no graph, opset_import"),
        (b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "malformed protobuf varint"),
        (b"\x3a\x20short", "truncated"),
    ],
    ids=["empty", "onnx-lookalike", "zip", "ir-version-only", "endless-varint", "truncated-graph"],
)
def test_bytes_that_are_not_a_model_are_refused_with_a_reason(data: bytes, match: str) -> None:
    with pytest.raises(ModelFormatError, match=match):
        check_onnx_model(data, "model.onnx")


def test_a_truncated_real_model_is_refused() -> None:
    data = tiny_onnx_model()
    with pytest.raises(ModelFormatError):
        check_onnx_model(data[: len(data) // 2])
