"""Drift streams for developing and benchmarking the loop: river's generators written as CSV plus a scenario file.

Each stream is a standard stream-learning benchmark of the kind MOA and river generate, with known change
points: abrupt and gradual changes, with the inputs fixed (pure concept drift) or moving, binary and
multiclass. A stream file carries a timestamp and an id column (never features: the scenario excludes them)
and the label. The scenario file holds only what a new user would write (dataset, label_column,
exclude_columns, initial_rows, drift_at_rows, devices, requests_per_s): every policy stays at its default.

    python benchmarks/streams.py OUT_DIR [--seed N] [--rows N] [--only NAME ...]

writes OUT_DIR/<name>.csv and OUT_DIR/<name>.json per stream and prints one line per stream.
These are development streams: the loop is judged on held-out ones with other seeds and change points.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INITIAL_SHARE = 0.15
"""The first rows train the first model (the scenario's initial_rows)."""
DEVICES = 5
REQUESTS_PER_S = 2.0


@dataclass(frozen=True)
class StreamSpec:
    """One generated stream: how to build it, and where its concept changes (row indices in the file)."""

    name: str
    kind: str
    """abrupt or gradual."""
    inputs: str
    """fixed (only the labelling concept changes) or moving (the inputs change too)."""
    classes: int
    build: Callable[[int, int, Sequence[int], int], Iterator[tuple[dict[Any, float], Any]]]
    """(seed, rows, change points, width) -> river-style (x, y) pairs."""


def _river() -> Any:
    try:
        from river.datasets import synth
    except ImportError as exc:  # a bench/dev dependency only
        raise SystemExit("benchmarks/streams.py needs river: pip install -e '.[bench]'") from exc
    return synth


def _chain(
    concepts: Sequence[Any], points: Sequence[int], width: int, seed: int, rows: int
) -> Iterator[tuple[dict[Any, float], Any]]:
    """Concepts one after another, switching at each point (width 1: abrupt; wider: a sigmoid blend of the two)."""
    rng = np.random.default_rng(seed)
    streams = [iter(concept) for concept in concepts]
    for i in range(rows):
        yield next(streams[sum(1 for p in points if _switched(i, p, width, rng))])


def sea(seed: int, rows: int, points: Sequence[int], width: int = 1) -> Iterator[tuple[dict[Any, float], Any]]:
    """SEA: three uniform inputs, label x0 + x1 <= threshold; each concept a new threshold (inputs fixed)."""
    synth = _river()
    variants = [0, 2, 1, 3]
    concepts = [synth.SEA(variant=variants[i % 4], noise=0.05, seed=seed + i) for i in range(len(points) + 1)]
    return _chain(concepts, points, width, seed, rows)


def agrawal(seed: int, rows: int, points: Sequence[int], width: int = 1) -> Iterator[tuple[dict[Any, float], Any]]:
    """Agrawal: nine loan-applicant inputs, a new classification function per concept (inputs fixed)."""
    synth = _river()
    functions = [0, 2, 4, 6]
    concepts = [
        synth.Agrawal(classification_function=functions[i % 4], seed=seed + i, perturbation=0.05)
        for i in range(len(points) + 1)
    ]
    return _chain(concepts, points, width, seed, rows)


def hyperplane(seed: int, rows: int, points: Sequence[int], width: int = 1) -> Iterator[tuple[dict[Any, float], Any]]:
    """Rotating hyperplane: ten uniform inputs, each concept a new random plane (inputs fixed)."""
    synth = _river()
    concepts = [
        synth.Hyperplane(seed=seed + 17 * i, n_features=10, n_drift_features=0, noise_percentage=0.05)
        for i in range(len(points) + 1)
    ]
    return _chain(concepts, points, width, seed, rows)


def led(seed: int, rows: int, points: Sequence[int], width: int = 1) -> Iterator[tuple[dict[Any, float], Any]]:
    """LED digits: 24 binary inputs (7 segments + 17 irrelevant), ten classes; segments swap wires per concept."""
    synth = _river()
    concepts = [
        synth.LEDDrift(seed=seed + i, noise_percentage=0.05, irrelevant_features=True, n_drift_features=3 * i)
        for i in range(len(points) + 1)
    ]
    return _chain(concepts, points, width, seed, rows)


def rbf(seed: int, rows: int, points: Sequence[int], width: int = 1) -> Iterator[tuple[dict[Any, float], Any]]:
    """Random RBF: Gaussian clusters of five classes in ten inputs; each concept new clusters (inputs move)."""
    synth = _river()
    concepts = [
        synth.RandomRBF(seed_model=seed + 31 * i, seed_sample=seed + i, n_classes=5, n_features=10, n_centroids=20)
        for i in range(len(points) + 1)
    ]
    return _chain(concepts, points, width, seed, rows)


def shifted_blobs(
    seed: int, rows: int, points: Sequence[int], width: int = 1
) -> Iterator[tuple[dict[Any, float], Any]]:
    """Three Gaussian classes in six inputs; at each point every class mean moves (inputs move, labels follow)."""
    rng = np.random.default_rng(seed)
    means = [rng.normal(0, 2.5, size=(3, 6))]
    for _ in points:
        means.append(means[-1] + rng.normal(0, 1.5, size=(3, 6)))
    for i in range(rows):
        concept = sum(1 for p in points if _switched(i, p, width, rng))
        label = int(rng.integers(3))
        x = rng.normal(means[concept][label], 1.0)
        yield dict(enumerate(x.tolist())), label


def _switched(row: int, point: int, width: int, rng: np.random.Generator) -> bool:
    """Whether the row is past the change at point: a sigmoid over width rows (width 1: abrupt)."""
    if width <= 1:
        return row >= point
    return bool(rng.random() < 1 / (1 + np.exp(-4 * (row - point) / width)))


STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec("sea-abrupt", "abrupt", "fixed", 2, sea),
        StreamSpec("agrawal-abrupt", "abrupt", "fixed", 2, agrawal),
        StreamSpec("hyperplane-gradual", "gradual", "fixed", 2, hyperplane),
        StreamSpec("led-abrupt", "abrupt", "fixed", 10, led),
        StreamSpec("rbf-abrupt", "abrupt", "moving", 5, rbf),
        StreamSpec("blobs-gradual", "gradual", "moving", 3, shifted_blobs),
    )
}
GRADUAL_WIDTH = 1000


def change_points(rows: int, initial: int, count: int) -> list[int]:
    """count change points spread over the streamed part, the first well after the initial rows."""
    span = rows - initial
    return [initial + int(span * (k + 1) / (count + 2)) for k in range(count)]


def write_stream(spec: StreamSpec, out: Path, seed: int, rows: int, changes: int = 1) -> dict[str, Any]:
    """Write <name>.csv and <name>.json (the scenario) and return the scenario."""
    initial = int(rows * INITIAL_SHARE)
    points = change_points(rows, initial, changes)
    width = GRADUAL_WIDTH if spec.kind == "gradual" else 1
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{spec.name}.csv"
    labels: set[str] = set()
    with data.open("w", newline="") as f:
        writer: Any = None
        for i, (x, y) in enumerate(spec.build(seed, rows, points, width)):
            values = [float(v) for v in x.values()]
            if writer is None:
                writer = csv.writer(f)
                writer.writerow(["t", "id", *(f"x{j}" for j in range(len(values))), "label"])
            label = str(int(y)) if not isinstance(y, str) else y
            labels.add(label)
            writer.writerow([1_700_000_000 + i, f"row-{i}", *(f"{v:.5g}" for v in values), label])
    scenario = {
        "dataset": data.name,
        "label_column": "label",
        "exclude_columns": ["t", "id"],
        "initial_rows": initial,
        "drift_at_rows": points,
        "devices": DEVICES,
        "requests_per_s": REQUESTS_PER_S,
    }
    (out / f"{spec.name}.json").write_text(json.dumps(scenario, indent=2) + "\n")
    return {**scenario, "classes": len(labels)}


def main(argv: Sequence[str] | None = None) -> int:
    """Write every (or the chosen) stream and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=1, help="change points per stream")
    parser.add_argument("--only", nargs="*", choices=sorted(STREAMS), default=None)
    args = parser.parse_args(argv)
    for name in args.only or STREAMS:
        spec = STREAMS[name]
        scenario = write_stream(spec, args.out, args.seed, args.rows, args.changes)
        print(f"{name}: {spec.kind}, inputs {spec.inputs}, {scenario['classes']} classes, "
              f"{args.rows} rows, changes at {scenario['drift_at_rows']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
