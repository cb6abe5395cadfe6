"""SAMPLE batches as they travel: gzip-compressed batch JSON on a topic naming the batch's sequence range.

The device packs SAMPLE records by their compressed size (IoT Core meters and limits what crosses the
wire), publishes each batch on `edgeloop/things/<thing>/samples/<first>-<last>`, and the samples rule stores
the payload untouched at `samples/<thing>/<first>-<last>.json.gz`: the same batch always lands on the same
key, so a retry overwrites it. The ingest trusts that key over the payload and checks the two agree.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, count

from edgeloop.core.compression import MAX_DECOMPRESSED_BYTES, compress, decompress
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import parse_samples_object_key, samples_topic
from edgeloop.core.records import (
    BILLING_UNIT_BYTES,
    MAX_MESSAGE_BYTES,
    Packing,
    Record,
    RecordKind,
    batch_size,
    decode_batch,
    encode_batch,
    record_cost,
)


def encode_samples_message(thing_name: str, records: Sequence[Record]) -> tuple[str, bytes]:
    """The topic and compressed payload of one batch of SAMPLE records (in seq order, as the buffer gives them)."""
    if not records:
        raise ValidationError("records", "a samples batch needs at least one record")
    if any(r.kind is not RecordKind.SAMPLE for r in records):
        raise ValidationError("records", "a samples batch carries SAMPLE records only")
    seqs = [r.seq for r in records]
    return samples_topic(thing_name, min(seqs), max(seqs)), compress(encode_batch(thing_name, records))


def decode_samples_object(key: str, data: bytes) -> tuple[str, tuple[Record, ...]]:
    """The thing and SAMPLE records of one samples object, refusing any disagreement with its key."""
    thing, first, last = parse_samples_object_key(key)
    records = decode_batch(decompress(data))
    if not records:
        raise ValidationError("batch.records", "is empty")
    for record in records:
        if record.thing_name != thing:
            raise ValidationError("batch.thing_name", f"{record.thing_name!r} in the object of {thing!r}")
        if record.kind is not RecordKind.SAMPLE:
            raise ValidationError("records[].kind", f"seq {record.seq} is {record.kind.name.lower()}, not sample")
    seqs = [r.seq for r in records]
    if (min(seqs), max(seqs)) != (first, last):
        raise ValidationError("batch.records", f"seqs span {min(seqs)}-{max(seqs)}, the key names {first}-{last}")
    if len(set(seqs)) != len(seqs):
        raise ValidationError("batch.records", "a seq appears twice")
    return thing, records


def compressed_size(thing_name: str, records: Sequence[Record]) -> int:
    """Bytes the batch of records takes on the wire."""
    return len(compress(encode_batch(thing_name, records)))


def pack_samples(
    records: Sequence[Record],
    *,
    more_waiting: bool,
    max_bytes: int = MAX_MESSAGE_BYTES,
    unit_bytes: int = BILLING_UNIT_BYTES,
    max_json_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> Packing:
    """Cut SAMPLE records, in order, into compressed messages that fill whole billing units.

    pack_messages's contract, measured after compression: each message's compressed size stays within
    the largest whole number of units under max_bytes, and its JSON within max_json_bytes (what the
    cloud agrees to inflate). When more records wait, the last message is trimmed back to a unit
    boundary (never to nothing when it is the only one). A record that alone breaks either bound is
    returned in ``oversized``.
    """
    if max_bytes < 1 or unit_bytes < 1:
        raise ValidationError("max_bytes", f"max_bytes and unit_bytes must be >= 1, got {max_bytes}, {unit_bytes}")
    capacity = max_bytes // unit_bytes * unit_bytes if max_bytes >= unit_bytes else max_bytes
    costs = [record_cost(r) for r in records]
    messages: list[tuple[Record, ...]] = []
    oversized: list[Record] = []
    start, last_start, ratio = 0, 0, 1.0  # ratio: JSON bytes per wire byte, learnt message by message
    while start < len(records):
        taken, ratio = _longest_fitting(records[start:], costs[start:], capacity, max_json_bytes, ratio)
        if taken == 0:
            oversized.append(records[start])
        else:
            messages.append(tuple(records[start : start + taken]))
            last_start = start
        start += max(taken, 1)
    held_back = 0
    if more_waiting and messages:
        last = messages.pop()
        boundary = compressed_size(last[0].thing_name, last) // unit_bytes * unit_bytes
        fitting = _longest_fitting(last, costs[last_start:], boundary, max_json_bytes, ratio)[0] if boundary else 0
        kept = last[:fitting]
        if not kept and not messages:
            kept = last  # never stall: a lone message below one unit still goes
        held_back = len(last) - len(kept)
        if kept:
            messages.append(kept)
    return Packing(tuple(messages), tuple(oversized), held_back)


PREDICTED_PROBES = 3
"""Probes placed where the last ratio predicts the limit lies; bisection takes over after them."""


def _longest_fitting(
    records: Sequence[Record], costs: Sequence[int], capacity: int, max_json_bytes: int, ratio: float
) -> tuple[int, float]:
    """How many leading records fit capacity compressed and max_json_bytes as JSON, and that prefix's ratio.

    Compressed size grows with the prefix and nearly in proportion, so the first probes go where the
    ratio seen so far predicts the limit, then bisection settles it: a few compressions of about one
    message each, never of the whole backlog.
    """
    thing = records[0].thing_name
    json_sizes = list(accumulate(costs))
    limit = bisect_right(json_sizes, max_json_bytes - batch_size(thing, []) + 1)  # batch_size drops one comma
    fits, fails, fit_size = 0, limit + 1, 0
    probe = min(max(1, bisect_right(json_sizes, capacity * ratio)), limit)
    for attempt in count():
        if fails - fits <= 1:
            break
        size = compressed_size(thing, records[:probe])
        if size <= capacity:
            fits, fit_size = probe, size
        else:
            fails = probe
        predicted = bisect_right(json_sizes, capacity * json_sizes[probe - 1] / size)
        guess = predicted if attempt < PREDICTED_PROBES else (fits + fails) // 2
        probe = min(max(guess, fits + 1), fails - 1)
    return fits, (json_sizes[fits - 1] / fit_size if fits else ratio)
