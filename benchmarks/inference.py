"""Inference path vs bare onnxruntime, side by side in one run, on the digits MLP trained here.

The path is the component's: micro-batching (the runtime loop's queue collect), validation, inference,
post-processing, health statistics and the hand-off to the buffer (an in-memory buffer, so disk fsync
does not dominate: `--buffer memory` is MemoryBuffer, `--buffer sqlite` is SqliteBuffer on ":memory:").
Message decoding is excluded: requests arrive as (request_id, 1-D float64 array), what the component's
message parser produces. The bare side is `session.run` on a session opened with the same settings,
fed the same rows as numpy arrays. A shared machine slows down and speeds up over seconds, so both sides are
measured interleaved, finely enough that each slow spell hits them alike: the batch-1 latencies in alternating
blocks of calls (pooled over Sizes.rounds), and the three throughputs in alternating stretches of about 25 ms
each (Sizes.stretches of them): bare single calls, bare batched calls, then the path, whose loop thread gets a
stretch's requests queued at once and is timed until the last of their results is in the buffer. A throughput
is its side's rows over its side's time, all stretches together.

    python benchmarks/inference.py [--quick] [--batch 32] [--buffer memory|sqlite] [--samplers JSON] [--no-drift]
                                   [--cpu N | --no-pin]

Both sides run on one CPU (the last one allowed unless --cpu says otherwise; --no-pin leaves it to the scheduler).

The default configuration monitors drift (a ring of driftWindow rows, scored at health time); `--samplers`
turns hard-example sampling on, e.g. '{"random": 0.01, "low_confidence": 0.5, "small_margin": 0.1}'.

Prints a few human-readable lines, then, as its last line, one JSON object with the keys
bare_p50_us, path_p50_us, ratio_p50, bare_per_s, bare_batched_per_s, path_per_s,
speedup_vs_naive, fraction_of_limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from _common import emit

from edgeloop.core.names import component_version, model_component_name
from edgeloop.core.records import Record, RecordKind
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import MemoryBuffer, RecordBuffer
from edgeloop.device.inference import InferenceRequest
from edgeloop.device.onnx_session import SessionSettings
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.staging import COMMIT_MAX_RESULTS
from edgeloop.device.stored_payload import StagedResults
from edgeloop.device.uplink import MemoryUplink
from edgeloop.training.config import TrainingConfig
from edgeloop.training.job import train

THING = "bench-1"
MODEL = "digits"
PROBABILITIES = "probabilities"
KEYS = (
    "bare_p50_us",
    "path_p50_us",
    "ratio_p50",
    "bare_per_s",
    "bare_batched_per_s",
    "path_per_s",
    "speedup_vs_naive",
    "fraction_of_limit",
)


@dataclass(frozen=True)
class Sizes:
    """How many timed calls each measurement makes."""

    latency_calls: int
    """Batch-1 calls per side per latency round."""
    stretches: int
    """Alternating throughput stretches per side."""
    trickle: int
    max_iter: int
    rounds: int = 5
    """Latency rounds, pooled."""
    stretch_calls: int = 2_000
    """Bare single calls per stretch (about 25 ms)."""
    stretch_batches: int = 1_500
    """Bare batched calls per stretch (about 25 ms at batch 32)."""
    stretch_requests: int = 8_192
    """Requests the path's loop gets per stretch (about 25 ms; whole micro-batches at batchMax 32)."""


QUICK = Sizes(latency_calls=2_000, stretches=40, trickle=40, max_iter=20)
FULL = Sizes(latency_calls=20_000, stretches=200, trickle=200, max_iter=200)


def results_in(payloads: Sequence[Mapping[str, Any]]) -> int:
    """Results in RESULT payloads, read off staged columns without building their dicts (the harness's cost)."""
    return sum(len(p.columns[0]) if isinstance(p, StagedResults) else len(p["request_ids"]) for p in payloads)


class TimedBuffer:
    """Wraps a buffer and notes when each append landed, to see what the micro-batch wait added."""

    def __init__(self, inner: RecordBuffer) -> None:
        self.inner = inner
        self.appended_at: list[tuple[float, int]] = []

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store, then note the time and how many results landed (a RESULT record holds a micro-batch)."""
        records = self.inner.append(kind, payloads, now)
        self.appended_at.append((time.perf_counter(), results_in(payloads)))
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class NullBuffer:
    """Takes the hand-off and keeps nothing: shows what the engine costs without the buffer's append."""

    def __init__(self, stats_from: RecordBuffer) -> None:
        self._stats_from = stats_from

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Drop the payloads."""
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stats_from, name)


def train_model(root: Path, max_iter: int) -> Path:
    """The digits MLP, written where Greengrass would unpack its model component (version 1)."""
    model_dir = root / model_component_name(MODEL) / component_version(1)
    train(TrainingConfig(model_dir=model_dir, model_name=MODEL, max_iter=max_iter))
    return model_dir


def make_buffer(kind: str) -> RecordBuffer:
    """The hand-off target: in memory either way, so the engine rather than fsync is measured."""
    return MemoryBuffer(THING) if kind == "memory" else SqliteBuffer(":memory:", THING)


def make_runtime(
    model_root: Path, buffer: RecordBuffer | TimedBuffer | NullBuffer | CompletionBuffer, config: DeviceConfig
) -> DeviceRuntime:
    """A device runtime on a frozen clock with its uplink down: forwarding stays out of the timed path.

    The path ends at the hand-off to the buffer. With a link up, a backlog keeps the forwarder due on every
    loop tick (packing, encoding and publishing records), which is the uplink's cost, not the inference
    path's; with the link down the first forward round fails and backs off past the frozen clock, as on a
    device that is offline. Shadow reports stay out the same way (the clock never reaches the next one).
    probationSeconds=0 in the config measures the steady state: a frozen clock would otherwise keep the
    model on probation for the whole run, and probation only watches the first minutes after a swap.
    """
    runtime = DeviceRuntime(
        thing_name=THING,
        buffer=buffer,
        uplink=MemoryUplink(online=False),
        clock=lambda: 1_000.0,
        model_root=model_root,
        config=config,
    )
    if runtime.health().model_state != "active":
        raise SystemExit(f"model did not load: {runtime.health().model_detail}")
    return runtime


def per_call_us(call: Callable[[int], object], calls: int) -> list[float]:
    """Wall time of each call in microseconds."""
    timer = time.perf_counter
    out = []
    for i in range(calls):
        started = timer()
        call(i)
        out.append((timer() - started) * 1e6)
    return out


def interleaved(
    bare: Callable[[int], object], path: Callable[[int], object], calls: int
) -> tuple[list[float], list[float]]:
    """Per-call times of both sides measured in alternating blocks, so machine noise hits them alike."""
    bare_us: list[float] = []
    path_us: list[float] = []
    block = max(1, calls // 10)
    for start in range(0, calls, block):
        bare_us += per_call_us(partial(_shifted, bare, start), block)
        path_us += per_call_us(partial(_shifted, path, start), block)
    return bare_us, path_us


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of the samples."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _shifted(call: Callable[[int], object], start: int, i: int) -> object:
    return call(start + i)


def rows_per_s(call: Callable[[int], object], calls: int, rows_per_call: int) -> float:
    """Throughput of repeated calls, wall clock."""
    started = time.perf_counter()
    for i in range(calls):
        call(i)
    return calls * rows_per_call / (time.perf_counter() - started)


def stretch_s(call: Callable[[int], object], calls: int, offset: int) -> float:
    """Seconds for `calls` consecutive calls (the indices continue where the last stretch stopped)."""
    started = time.perf_counter()
    for i in range(offset, offset + calls):
        call(i)
    return time.perf_counter() - started


class CompletionBuffer:
    """Wraps a buffer and sets an event once `expected` results are in it: the end of a stretch, without polling."""

    def __init__(self, inner: RecordBuffer) -> None:
        self.inner = inner
        self.done = threading.Event()
        self.results = 0
        self._expected = 0

    def expect(self, more: int) -> None:
        """The next stretch: set done once `more` further results have landed (the loop is idle when called)."""
        self._expected = self.results + more
        self.done.clear()

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        """Store, then count the results that landed (called from the loop thread only)."""
        records = self.inner.append(kind, payloads, now)
        self.results += results_in(payloads)
        if self.results >= self._expected:
            self.done.set()
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SustainedPath:
    """The runtime loop on its own thread, as in the component, fed one stretch of requests at a time.

    A stretch's requests are queued at once (one lock round, as if they had piled up), so the loop never finds
    its queue empty before the last of them; the stretch ends when the last result is in the buffer. The main
    thread waits on an event rather than polling: a poller contends for the queue's lock and the GIL, which a
    component's loop does not share with a benchmark. Between stretches (untimed) the buffer is replaced by a
    fresh one, so every stretch hands off to a buffer in the same state.
    """

    def __init__(self, model_root: Path, buffer_kind: str, config: DeviceConfig) -> None:
        self._buffer_kind = buffer_kind
        self._counted = CompletionBuffer(make_buffer(buffer_kind))
        self._runtime = make_runtime(model_root, self._counted, config)
        self._inputs = RequestQueue()
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._runtime.run, args=(self._inputs, self._stop), daemon=True)
        self._loop.start()

    def stretch_s(self, requests: list[InferenceRequest]) -> float:
        """Seconds from queueing `requests` to the last of their results being buffered."""
        self._counted.inner = make_buffer(self._buffer_kind)
        self._counted.expect(len(requests))
        inputs = self._inputs
        started = time.perf_counter()
        inputs.put_many(requests)
        if not self._counted.done.wait(timeout=600):
            raise SystemExit("the loop did not buffer a stretch's results within 600 s")
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop the loop thread."""
        self._stop.set()
        self._loop.join()


def wait_bound(model_root: Path, config: DeviceConfig, requests: list[InferenceRequest], gap_s: float) -> list[float]:
    """Added latency (ms) of a lone request: queued to buffered, while the loop waits batchWaitMs for company."""
    timed = TimedBuffer(MemoryBuffer(THING))
    runtime = make_runtime(model_root, timed, config)
    inputs = RequestQueue()
    stop = threading.Event()
    loop = threading.Thread(target=runtime.run, args=(inputs, stop), daemon=True)
    loop.start()
    queued_at = []
    for request in requests:
        time.sleep(gap_s)
        queued_at.append(time.perf_counter())
        inputs.put(request)
    while sum(n for _, n in timed.appended_at) < len(requests):
        time.sleep(0.002)
    stop.set()
    loop.join()
    landed = [at for at, n in timed.appended_at for _ in range(n)]
    return [(done - put) * 1000 for put, done in zip(queued_at, landed, strict=True)]


def pin_to_one_cpu(cpu: int | None) -> int | None:
    """Run this process, and the threads it starts later, on one CPU; None where the OS cannot pin.

    The path's loop runs on its own thread and the bare calls on the main one: unpinned, the scheduler may put
    them on different CPUs, and on a shared machine one CPU can be slower than the other for seconds at a time
    (seen here: speedup_vs_naive 3.1 to 3.9 from run to run unpinned, 3.7 to 3.9 pinned). On one CPU both sides
    see the same machine, as on a single-core gateway.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    if chosen not in allowed:
        raise SystemExit(f"--cpu {chosen}: this process may run on CPUs {allowed}")
    os.sched_setaffinity(0, {chosen})
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement and print the JSON line last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores")
    parser.add_argument("--batch", type=int, default=DeviceConfig().batchMax, help="micro-batch size (batchMax)")
    parser.add_argument("--wait-ms", type=int, default=DeviceConfig().batchWaitMs, help="batchWaitMs")
    parser.add_argument("--buffer", choices=("memory", "sqlite"), default="memory", help="hand-off target")
    parser.add_argument("--samplers", type=json.loads, default={}, help="the samplers configuration (JSON)")
    parser.add_argument("--no-drift", action="store_true", help="driftWindow=0: no drift monitor")
    parser.add_argument(
        "--cpu", type=int, default=None, help="the one CPU both sides run on (default: the last one allowed)"
    )
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler move threads between CPUs")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    logging.basicConfig(level=logging.ERROR)
    pinned = None if args.no_pin else pin_to_one_cpu(args.cpu)
    sys.stdout.write(f"cpu: {'not pinned' if pinned is None else f'every thread on CPU {pinned}'}\n")
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-") as tmp:
        model_root = Path(tmp) / "packages" / "artifacts"
        model_dir = train_model(model_root, sizes.max_iter)
        result = measure(model_root, model_dir, args, sizes)
    emit(result, KEYS)
    return 0


def measure(model_root: Path, model_dir: Path, args: argparse.Namespace, sizes: Sizes) -> dict[str, float]:
    """Both sides on the same model and the same rows."""
    from edgeloop.core.manifest import ModelManifest

    manifest = ModelManifest.from_json((model_dir / "manifest.json").read_bytes())
    config = DeviceConfig(
        modelComponent=model_component_name(MODEL),
        modelComponentVersion=component_version(1),
        batchMax=args.batch,
        batchWaitMs=args.wait_ms,
        probationSeconds=0,
        samplers=DeviceConfig.from_config({"samplers": args.samplers}).samplers,
        driftWindow=0 if args.no_drift else DeviceConfig().driftWindow,
    )
    settings = SessionSettings.from_config(config)
    session = ort.InferenceSession(
        str(model_dir / manifest.selected), settings.session_options(), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    golden = np.asarray(manifest.golden.inputs, dtype=np.float32)
    noise = rng.uniform(-0.5, 0.5, size=(1024, golden.shape[1])).astype(np.float32)
    rows = np.clip(golden[np.arange(1024) % len(golden)] + noise, manifest.input.minimum, manifest.input.maximum)
    # What the component's decoder (excluded from the measurement) hands the runtime: one 1-D array per request.
    requests: list[InferenceRequest] = [(f"req-{i}", np.array(row, dtype=np.float64)) for i, row in enumerate(rows)]
    name, count, batch = manifest.input.name, len(rows), args.batch

    buffer = make_buffer(args.buffer)
    runtime = make_runtime(model_root, buffer, config)

    def bare(i: int) -> object:
        return session.run([PROBABILITIES], {name: rows[i % count : i % count + 1]})

    def path(i: int) -> None:
        runtime.serve([requests[i % count]])  # what the component loop calls with a micro-batch of one

    def answered(i: int) -> object:
        return runtime.infer([requests[i % count]])  # the library call: answers back, results committed on return

    batches = [rows[i : i + batch] for i in range(0, count - batch + 1, batch)]

    def bare_batched(i: int) -> object:
        return session.run([PROBABILITIES], {name: batches[i % len(batches)]})

    latency_rounds = [interleaved(bare, path, sizes.latency_calls) for _ in range(sizes.rounds)]
    bare_us = [us for bare_round, _ in latency_rounds for us in bare_round]
    path_us = [us for _, path_round in latency_rounds for us in path_round]
    bare_p50, path_p50 = statistics.median(bare_us), statistics.median(path_us)
    _, answered_us = interleaved(bare, answered, sizes.latency_calls)
    stream = [requests[i % count] for i in range(sizes.stretch_requests)]
    path_loop = SustainedPath(model_root, args.buffer, config)
    spent = {"bare": 0.0, "bare batched": 0.0, "path": 0.0}
    stretch_rates: dict[str, list[float]] = {side: [] for side in spent}
    for k in range(sizes.stretches):
        timed = {
            "bare": (stretch_s(bare, sizes.stretch_calls, k * sizes.stretch_calls), sizes.stretch_calls),
            "bare batched": (
                stretch_s(bare_batched, sizes.stretch_batches, k * sizes.stretch_batches),
                sizes.stretch_batches * batch,
            ),
            "path": (path_loop.stretch_s(stream), len(stream)),
        }
        for side, (seconds, rows_done) in timed.items():
            spent[side] += seconds
            stretch_rates[side].append(rows_done / seconds)
    path_loop.close()
    rows_per_side = {
        "bare": sizes.stretches * sizes.stretch_calls,
        "bare batched": sizes.stretches * sizes.stretch_batches * batch,
        "path": sizes.stretches * len(stream),
    }
    bare_per_s, bare_batched_per_s, path_per_s = (rows_per_side[side] / spent[side] for side in spent)
    engine = make_runtime(model_root, NullBuffer(buffer), config)
    engine_p50 = statistics.median(per_call_us(lambda i: engine.serve([requests[i % count]]), sizes.latency_calls))
    engine_per_s = rows_per_s(lambda i: engine.serve(requests[(i * batch) % (count - batch) :][:batch]), 400, batch)
    waits = wait_bound(model_root, config, requests[: sizes.trickle], gap_s=max(0.02, 3 * args.wait_ms / 1000))
    sys.stdout.write(
        f"model: digits MLP {model_dir / manifest.selected} ({manifest.input.width} features, "
        f"{len(manifest.labels)} classes); session: {settings}\n"
        f"buffer: {type(buffer).__name__}{' on :memory:' if args.buffer == 'sqlite' else ''}; "
        f"micro-batch: batchMax={batch}, batchWaitMs={args.wait_ms}; driftWindow={config.driftWindow}, "
        f"samplers={dict(config.samplers) or 'none'}\n"
        f"batch-1 p50 per round (bare us, path us; the figures pool every round): "
        f"{'; '.join(f'{statistics.median(b):.2f}, {statistics.median(p):.2f}' for b, p in latency_rounds)}\n"
        f"path at batch 1 (serve): p50 {path_p50:.2f} us, p99 {percentile(path_us, 99):.2f} us, mean "
        f"{statistics.fmean(path_us):.2f} us (p99 and mean carry the group commit every resultCommitMs / "
        f"{COMMIT_MAX_RESULTS} results); bare p99 {percentile(bare_us, 99):.2f} us\n"
        f"infer() (answers back, committed to the buffer on return): p50 {statistics.median(answered_us):.2f} us\n"
        f"engine alone (hand-off to a no-op buffer, no loop): p50 {engine_p50:.2f} us at batch 1, "
        f"{engine_per_s:,.0f}/s at batch {batch}; the rest of path_per_s goes to the buffer's append and the loop\n"
        f"wait bound: a lone request waited p50 {statistics.median(waits):.2f} ms, max {max(waits):.2f} ms "
        f"from queue to buffer (bound: batchWaitMs={args.wait_ms} + one batch)\n"
        f"throughput over {sizes.stretches} alternating stretches per side (rows/s; slowest, median and fastest "
        f"stretch): "
        + "; ".join(
            f"{side} {min(rates):,.0f} / {statistics.median(rates):,.0f} / {max(rates):,.0f}"
            for side, rates in stretch_rates.items()
        )
        + "\n"
    )
    return {
        "bare_p50_us": round(bare_p50, 2),
        "path_p50_us": round(path_p50, 2),
        "ratio_p50": round(path_p50 / bare_p50, 3),
        "bare_per_s": round(bare_per_s),
        "bare_batched_per_s": round(bare_batched_per_s),
        "path_per_s": round(path_per_s),
        "speedup_vs_naive": round(path_per_s / bare_per_s, 3),
        "fraction_of_limit": round(path_per_s / bare_batched_per_s, 3),
    }


if __name__ == "__main__":
    sys.exit(main())
