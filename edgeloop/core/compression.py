"""The gzip framing of compressed messages and its bounded inverse (a decompression bomb is refused, not inflated).

Why gzip at level 6 (benchmarks/compression.py measures it on SAMPLE batches like the drift scenario's):
gzip and zlib wrap the same DEFLATE stream, so they compress equally well at equal CPU; gzip costs 12
more bytes of framing a message (under 1% of a typical 1-2 KB compressed batch) and buys objects that
`gunzip`, Athena, Glue and Spark read as `.json.gz` without our code, plus a CRC-32 of the whole input.
Level 6 is the knee: level 9 saves about 3% more at twice the CPU, level 1 loses about a sixth of the ratio.
"""

from __future__ import annotations

import gzip
import zlib

from edgeloop.core.errors import ValidationError

COMPRESSION = "gzip"
"""The one encoding of compressed payloads (SAMPLE batches); the object keys end in `.gz` to say so."""
COMPRESSION_LEVEL = 6
MAX_DECOMPRESSED_BYTES = 1024 * 1024
"""Devices pack at most this much JSON into one compressed message; the cloud refuses to inflate more."""
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def compress(data: bytes) -> bytes:
    """Deterministic gzip (no timestamp or name in the header), so a retried message is byte-identical."""
    return gzip.compress(data, COMPRESSION_LEVEL, mtime=0)


def decompress(data: bytes, *, limit: int = MAX_DECOMPRESSED_BYTES, where: str = "batch") -> bytes:
    """Inflate one gzip member, never more than limit bytes; truncation, trailing bytes or a bomb are refused."""
    if not data.startswith(_GZIP_MAGIC):
        raise ValidationError(where, f"is not {COMPRESSION} (starts with {data[:2]!r}, not {_GZIP_MAGIC!r})")
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValidationError(where, f"is corrupt {COMPRESSION} ({exc})") from exc
    if len(out) > limit:
        raise ValidationError(where, f"inflates beyond {limit} bytes, the limit; refused as a decompression bomb")
    if not inflater.eof:
        raise ValidationError(where, f"is truncated {COMPRESSION} ({len(data)} bytes end mid-stream)")
    if inflater.unused_data:
        raise ValidationError(where, f"has {len(inflater.unused_data)} bytes after its {COMPRESSION} stream")
    return out
