"""The gzip framing: deterministic, round-trips, and its inverse refuses bombs, corruption and trailing bytes."""

from __future__ import annotations

import gzip
import zlib

import pytest

from edgeloop.core.compression import COMPRESSION_LEVEL, MAX_DECOMPRESSED_BYTES, compress, decompress
from edgeloop.core.errors import ValidationError

ITEMS = b",".join(b'{"seq":%d,"payload":{"x":0.5}}' % i for i in range(1, 100))
DATA = b'{"thing_name":"dev-1","records":[' + ITEMS + b"]}"


def test_compress_is_standard_gzip_and_deterministic() -> None:
    packed = compress(DATA)
    assert packed == compress(DATA), "no timestamp: a retry is byte-identical"
    assert gzip.decompress(packed) == DATA, "any gzip reader opens it"
    assert packed == gzip.compress(DATA, COMPRESSION_LEVEL, mtime=0)
    assert decompress(packed) == DATA


def test_the_limit_is_inclusive() -> None:
    assert decompress(compress(b" " * 100), limit=100) == b" " * 100
    with pytest.raises(ValidationError, match="inflates beyond 99 bytes"):
        decompress(compress(b" " * 100), limit=99)


def test_a_bomb_is_refused_without_inflating_it_whole() -> None:
    bomb = compress(b"\0" * (50 * MAX_DECOMPRESSED_BYTES))
    assert len(bomb) < 60_000
    with pytest.raises(ValidationError) as info:
        decompress(bomb)
    assert info.value.field == "batch"
    assert f"beyond {MAX_DECOMPRESSED_BYTES} bytes" in info.value.message
    assert "decompression bomb" in info.value.message


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (DATA, "is not gzip"),
        (b"", "is not gzip"),
        (zlib.compress(DATA), "is not gzip"),
        (_flip(compress(DATA), 30), "is corrupt gzip"),
        (_flip(compress(DATA), -6), "is corrupt gzip"),  # the CRC-32 of the input
        (compress(DATA)[:-4], "is truncated gzip"),
        (compress(DATA) + b"junk", "4 bytes after its gzip stream"),
        (compress(DATA) + compress(DATA), "bytes after its gzip stream"),
    ],
    ids=["json", "empty", "zlib", "corrupt-body", "bad-crc", "truncated", "trailing", "two-members"],
)
def test_what_is_not_one_whole_gzip_member_is_refused_by_name(data: bytes, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        decompress(data, where="object")
    assert info.value.field == "object"
    assert needle in info.value.message
