"""Compression of SAMPLE batches: ratio and speed of gzip/zlib levels, and what packing by compressed size saves.

Samples are built the way a device builds them: rows of the built-in digits dataset (64 features, 0-16)
through edgeloop.core.privacy.filter_features under three policies (raw values as the drift scenario
releases them; Laplace noise at epsilon 1, six decimals; every feature hashed), as SAMPLE records
with the payload edgeloop.core.sample_payload.Sample writes, in batches of 5 (a quiet drain), 40 and 200 (a full
peek, forwardBatchSize's default). For each codec and batch: ratio = batch JSON bytes / compressed bytes,
and speed = batch JSON MB compressed per second (best of repeats, one core). gzip and zlib are the same
DEFLATE stream at the same level; gzip's framing is 12 bytes longer (18 against 6).

Then the 200-sample raw-policy run is packed both ways, plain JSON (pack_messages) and compressed
(edgeloop.core.sample_batches.pack_samples), and the wire bytes and billed 5 KB units are compared.

    python benchmarks/compression.py [--quick]

Prints one line per measurement, then, as its last line, one JSON object with the keys raw_ratio,
laplace_ratio, hash_ratio (gzip level 6, 40-sample batches), level9_gain_pct, level9_cpu_factor,
gzip_extra_bytes, units_plain, units_compressed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import time
import zlib
from collections.abc import Callable

from _common import emit, parse_args

from edgeloop.core.compression import COMPRESSION_LEVEL, compress
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy, filter_features
from edgeloop.core.records import Record, RecordKind, billed_units, encode_batch, pack_messages
from edgeloop.core.sample_batches import encode_samples_message, pack_samples
from edgeloop.core.sample_payload import Sample

THING = "edgeloop-device-002"
SALT = "benchmark-fleet-salt"
POLICIES = {
    "raw": PrivacyPolicy(allow_raw=True),
    "laplace": PrivacyPolicy(laplace_epsilon=1.0),
    "hash": PrivacyPolicy(hash=tuple(f"pixel_{i}" for i in range(64))),
}
CODECS: dict[str, Callable[[bytes], bytes]] = {
    "gzip-1": lambda d: gzip.compress(d, 1, mtime=0),
    "gzip-6": compress,
    "gzip-9": lambda d: gzip.compress(d, 9, mtime=0),
    "zlib-6": lambda d: zlib.compress(d, 6),
    "bz2-9": lambda d: bz2.compress(d, 9),
    "lzma-6": lambda d: lzma.compress(d, preset=6),
}


def sample_records(policy: PrivacyPolicy, count: int, rng: random.Random) -> list[Record]:
    """SAMPLE records of digits rows through the policy, seqs spaced as results interleave them."""
    from sklearn.datasets import load_digits

    data = load_digits()
    names = [f"pixel_{i}" for i in range(64)]
    out = []
    for n in range(count):
        row = rng.randrange(len(data.target))
        noise = [rng.choice((-1, 1)) * rng.expovariate(1.0) * 16.0 for _ in names]
        features = filter_features(policy, names, data.data[row].tolist(), salt=SALT, noise=noise, bounds=(0, 16))
        confidence = round(rng.uniform(0.3, 1.0), 6)
        sample = Sample(
            request_id=f"{THING}-s{row:07d}", model_name="digits", model_version=1, sampler="low_confidence",
            label_index=int(data.target[row]), label=str(data.target[row]), confidence=confidence,
            margin=round(confidence * rng.random(), 6), drifted=n % 2 == 0, drift_score=round(rng.random(), 6),
            features=features, privacy=AppliedPrivacy(policy, 16.0 if policy.laplace_epsilon else None),
        )  # fmt: skip
        out.append(Record(THING, 5 + 7 * n, RecordKind.SAMPLE, 1_796_124_403.13 + n, sample.to_payload()))
    return out


def speed(codec: Callable[[bytes], bytes], data: bytes, budget_s: float) -> float:
    """Best MB/s over repeats within the time budget."""
    best, spent = float("inf"), 0.0
    while spent < budget_s:
        start = time.perf_counter()
        codec(data)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return len(data) / best / 1e6


def main() -> None:
    args = parse_args(__doc__ or "")
    budget = 0.05 if args.quick else 0.3
    rng = random.Random(7)
    ratios: dict[tuple[str, str, int], float] = {}
    speeds: dict[tuple[str, str, int], float] = {}
    for name, policy in POLICIES.items():
        records = sample_records(policy, 200, rng)
        for size in (5, 40, 200):
            data = encode_batch(THING, records[:size])
            for codec_name, codec in CODECS.items():
                ratios[name, codec_name, size] = len(data) / len(codec(data))
                speeds[name, codec_name, size] = speed(codec, data, budget)
                print(
                    f"{name:7s} {size:3d} samples {len(data):7d} B  {codec_name:6s} "
                    f"ratio {ratios[name, codec_name, size]:5.2f}  {speeds[name, codec_name, size]:7.1f} MB/s"
                )
    gain = 100 * (ratios["raw", "gzip-9", 40] / ratios["raw", "gzip-6", 40] - 1)
    cpu = speeds["raw", "gzip-6", 40] / speeds["raw", "gzip-9", 40]
    data = encode_batch(THING, sample_records(POLICIES["raw"], 40, rng))
    extra = len(compress(data)) - len(zlib.compress(data, COMPRESSION_LEVEL))
    records = sample_records(POLICIES["raw"], 200, rng)
    plain = [encode_batch(THING, m) for m in pack_messages(records, more_waiting=False).messages]
    packed = [encode_samples_message(THING, m)[1] for m in pack_samples(records, more_waiting=False).messages]
    units_plain, units_packed = sum(billed_units(len(p)) for p in plain), sum(billed_units(len(p)) for p in packed)
    print(f"200 samples: plain {len(plain)} messages {sum(map(len, plain))} B {units_plain} units; "
          f"compressed {len(packed)} messages {sum(map(len, packed))} B {units_packed} units")  # fmt: skip
    emit(
        {
            "raw_ratio": round(ratios["raw", "gzip-6", 40], 2),
            "laplace_ratio": round(ratios["laplace", "gzip-6", 40], 2),
            "hash_ratio": round(ratios["hash", "gzip-6", 40], 2),
            "level9_gain_pct": round(gain, 1),
            "level9_cpu_factor": round(cpu, 2),
            "gzip_extra_bytes": extra,
            "units_plain": units_plain,
            "units_compressed": units_packed,
        },
        ["raw_ratio", "laplace_ratio", "hash_ratio", "level9_gain_pct", "level9_cpu_factor", "gzip_extra_bytes",
         "units_plain", "units_compressed"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
