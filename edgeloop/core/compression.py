"""The gzip framing of compressed messages and its bounded inverse (a decompression bomb is refused, not inflated).

Why gzip at level 6 (benchmarks/compression.py measures it on SAMPLE batches like a drifting fleet's):
gzip and zlib wrap the same DEFLATE stream, so they compress equally well at equal CPU; gzip costs 12
more bytes of framing a message (about 1% of a typical 1 KB compressed batch) and buys objects that
`gunzip`, Athena, Glue and Spark read as `.json.gz` without our code, plus a CRC-32 of the whole input.
Level 6 is the knee on device CPUs: 4-6x on 5-sample batches, 6-10x on 40; level 9 adds 3-19% for 1.7-6x
the CPU (and packing compresses a few times a message), level 1 loses a quarter of it. bz2 and lzma gain
more on big batches at 5-30x the CPU and are not worth it on a device. The level is this module's alone:
any level decompresses the same way.
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
