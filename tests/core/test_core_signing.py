"""The manifest signature's encoding, parsed without any crypto library."""

from __future__ import annotations

import base64

import pytest

from edgeloop.core.errors import ConfigError, IntegrityError
from edgeloop.core.signing import decode_signature, encode_signature, public_key_der

DER = bytes([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02])
"""The smallest well-formed SEQUENCE of two INTEGERs."""


def test_encode_then_decode_gives_the_der_back() -> None:
    assert decode_signature(encode_signature(DER)) == DER


@pytest.mark.parametrize(
    "text",
    [b"  " + base64.b64encode(DER) + b"\r\n", base64.b64encode(DER)[:4] + b"\n" + base64.b64encode(DER)[4:]],
    ids=["padded", "wrapped"],
)
def test_whitespace_around_and_inside_the_base64_is_allowed(text: bytes) -> None:
    assert decode_signature(text) == DER


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"%%%", "not base64"),
        (b"", "DER"),
        (base64.b64encode(b"\x31" + DER[1:]), "DER"),
        (base64.b64encode(DER + b"\x00"), "DER"),
        (base64.b64encode(bytes([0x30, 0x48]) + bytes(72)), "DER"),
    ],
    ids=["not-base64", "empty", "not-a-sequence", "trailing-byte", "too-long"],
)
def test_anything_but_base64_der_is_refused(text: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        decode_signature(text)


def test_public_key_der_reads_the_pem_body() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(b"key bytes").decode() + "\n-----END PUBLIC KEY-----\n"

    assert public_key_der(pem) == b"key bytes"


@pytest.mark.parametrize(
    "pem",
    ["no key here", "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n" * 2],
    ids=["none", "two"],
)
def test_public_key_der_wants_exactly_one_block(pem: str) -> None:
    with pytest.raises(ConfigError, match="modelPublicKey"):
        public_key_der(pem)
