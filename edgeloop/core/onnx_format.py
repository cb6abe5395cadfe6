"""Recognise an ONNX ModelProto from its bytes (stdlib only), so the cloud never registers a non-model."""

from __future__ import annotations

from edgeloop.core.errors import ModelFormatError

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
IR_VERSION, GRAPH, OPSET_IMPORT = 1, 7, 8
"""ModelProto field numbers that every loadable ONNX model carries."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(pos, min(pos + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise ModelFormatError(f"not an ONNX model: malformed protobuf varint at byte {pos}")


def top_level_fields(data: bytes) -> set[tuple[int, int]]:
    """(field number, wire type) of every top-level protobuf field; refuses bytes that are not protobuf."""
    fields: set[tuple[int, int]] = set()
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ModelFormatError(f"not an ONNX model: field number 0 at byte {pos}")
        if wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
        else:
            raise ModelFormatError(f"not an ONNX model: unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ModelFormatError("not an ONNX model: truncated protobuf field")
        fields.add((field, wire))
    return fields


def check_onnx_model(data: bytes, name: str = "model") -> None:
    """Refuse bytes that do not parse as a ModelProto with ir_version, graph and opset_import."""
    if not data:
        raise ModelFormatError(f"{name} is empty, not an ONNX model")
    try:
        fields = top_level_fields(data)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{name}: {exc}") from exc
    required = {(IR_VERSION, _VARINT): "ir_version", (GRAPH, _LENGTH_DELIMITED): "graph"}
    required[(OPSET_IMPORT, _LENGTH_DELIMITED)] = "opset_import"
    missing = [label for key, label in required.items() if key not in fields]
    if missing:
        raise ModelFormatError(f"{name} is not an ONNX model: no {', '.join(missing)}")
