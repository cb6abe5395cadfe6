"""Error-stream change detectors: edgeloop's CUSUM (edgeloop.core.detectors) and its calibrated detector
(edgeloop.core.calibrated) against river's ADWIN, DDM, EDDM and Page-Hinkley on the same streams of 0/1 errors
(1 = the deployed model's answer was wrong).

(a) Synthetic Bernoulli error streams: error rate p0 before, p1 after a change point, many seeds, and as
    many streams with no change at all.
(b) Real error streams: a tree model trained on the first rows of each stream of benchmarks/streams.py,
    its errors along the rest of the stream, thinned to the share of rows the cloud gets labelled
    (each row kept with probability `rate`), in stream order.

(c) Small rises among confident answers (the shape of a concept change with fixed inputs, e.g. SEA's 0.07 to
    0.11): confidence uniform in [0.5, 1), a calibrated error rate averaging 0.07, and after the change a band
    of confident answers turns wrong often enough to lift the overall rate to about 0.11.

edgeloop's detector gets the model's holdout as its reference (errors and rows, as the manifest records
them), the calibrated one the holdout's reliability table (edgeloop.training.baseline.reliability) and each
sample's confidence; river's detectors learn the pre-change level from the stream itself, as they are built
to. Only (b) and (c) have confidences: in (a) the calibrated detector does not run.
Per detector: detection rate (streams with a change where it alarmed at or after the change, before the
end), mean and median delay in samples (and in stream rows for (b)), and false alarms per 10,000 samples
watched while nothing had changed (before the change, and all of a no-change stream).

    python benchmarks/detectors.py [--quick]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, parse_args
from streams import GRADUAL_WIDTH, INITIAL_SHARE, STREAMS, change_points

from edgeloop.core.calibrated import CalibratedDetector, initial_calibrated, observe_calibrated
from edgeloop.core.detectors import ErrorDetector, Observation, initial_state, observe
from edgeloop.core.manifest import Reliability
from edgeloop.training.baseline import reliability

HOLDOUT_SHARE = 0.2
"""The share of the initial rows held out, as the training job does: the reference of edgeloop's detector."""
SYNTH_HOLDOUT = 180
"""Holdout rows behind the synthetic streams' reference (a 900-row first model's holdout)."""
DETECTORS = ("edgeloop-cusum", "edgeloop-calibrated", "adwin", "ddm", "eddm", "page-hinkley")
RESULT_KEYS = ("detectors", "synthetic", "streams", "small_rises", "detected_per_stream", "wall_s")
LOOP_HOLDOUT = 360
"""Holdout rows of a first model trained on 1,800 rows (benchmarks/loop.py's streams): the small-rise reference."""


class Detector(Protocol):
    """One error stream's detector: feed it errors in order, get the positions (0-based) where it alarmed."""

    def run(self, errors: Sequence[bool]) -> list[int]: ...


class Ours:
    """edgeloop.core.detectors at its default policy, one sample per observe() (its finest grain)."""

    def __init__(self, reference_errors: int, reference_trials: int) -> None:
        self.policy = ErrorDetector()
        self.state = initial_state(self.policy, reference_errors, reference_trials)

    def run(self, errors: Sequence[bool]) -> list[int]:
        alarms = []
        for i, error in enumerate(errors):
            self.state, alarm = observe(self.state, (error,), self.policy)
            if alarm is not None:
                alarms.append(i)
        return alarms


class Calibrated:
    """edgeloop.core.calibrated at its default policy, judging each sample by its confidence band."""

    def __init__(self, table: Reliability) -> None:
        self.policy = CalibratedDetector()
        self.state = initial_calibrated(self.policy, table)

    def run_with(self, errors: Sequence[bool], confidences: Sequence[float]) -> list[int]:
        alarms = []
        for i, (error, confidence) in enumerate(zip(errors, confidences, strict=True)):
            self.state, alarm = observe_calibrated(self.state, (Observation(error, True, i, confidence),), self.policy)
            if alarm is not None:
                alarms.append(i)
        return alarms


class River:
    """A river drift detector at its defaults, fed 0/1."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.detector = make()

    def run(self, errors: Sequence[bool]) -> list[int]:
        alarms = []
        update = self.detector.update
        for i, error in enumerate(errors):
            update(int(error))
            if self.detector.drift_detected:
                alarms.append(i)
        return alarms


def _river_makers() -> dict[str, Callable[[], Any]]:
    try:
        from river import drift
        from river.drift import binary
    except ImportError as exc:  # a bench/dev dependency only
        raise SystemExit("benchmarks/detectors.py needs river: pip install -e '.[bench]'") from exc
    return {"adwin": drift.ADWIN, "ddm": binary.DDM, "eddm": binary.EDDM, "page-hinkley": drift.PageHinkley}


@dataclass
class Tally:
    """One detector's outcomes over many streams."""

    changes: int = 0
    detected: int = 0
    delays: list[int] = field(default_factory=list)
    delays_rows: list[int] = field(default_factory=list)
    quiet_samples: int = 0
    false_alarms: int = 0

    def add(self, alarms: list[int], change: int | None, length: int, rows_at: Sequence[int] | None = None) -> None:
        """Score one stream's alarms against its change (None: no change); rows_at maps samples to stream rows."""
        quiet_end = length if change is None else change
        self.quiet_samples += quiet_end
        self.false_alarms += sum(1 for a in alarms if a < quiet_end)
        if change is None:
            return
        self.changes += 1
        after = [a for a in alarms if a >= change]
        if after:
            self.detected += 1
            self.delays.append(after[0] - change)
            if rows_at is not None:
                self.delays_rows.append(rows_at[after[0]] - rows_at[change])

    def summary(self) -> dict[str, float | None]:
        """Detection rate, delays and false alarms per 10,000 quiet samples."""
        return {
            "detection_rate": round(self.detected / self.changes, 3) if self.changes else None,
            "mean_delay": round(statistics.fmean(self.delays), 1) if self.delays else None,
            "median_delay": statistics.median(self.delays) if self.delays else None,
            "mean_delay_rows": round(statistics.fmean(self.delays_rows), 1) if self.delays_rows else None,
            "median_delay_rows": statistics.median(self.delays_rows) if self.delays_rows else None,
            "false_alarms_per_10k": round(1e4 * self.false_alarms / self.quiet_samples, 2),
        }


def _detectors(reference: tuple[int, int], river: dict[str, Callable[[], Any]]) -> dict[str, Detector]:
    """A fresh set of detectors for one stream (the calibrated one runs apart: it needs confidences)."""
    return {"edgeloop-cusum": Ours(*reference), **{name: River(make) for name, make in river.items()}}


def _all_alarms(
    reference: tuple[int, int], table: Reliability, river: dict[str, Callable[[], Any]],
    errors: Sequence[bool], confidences: Sequence[float],
) -> dict[str, list[int]]:  # fmt: skip
    """Every detector's alarms on one stream with confidences."""
    alarms = {name: d.run(errors) for name, d in _detectors(reference, river).items()}
    return {**alarms, "edgeloop-calibrated": Calibrated(table).run_with(errors, confidences)}


def synthetic(quick: bool, river: dict[str, Callable[[], Any]]) -> dict[str, Tally]:
    """(a) Bernoulli error streams, with and without one rise."""
    tallies = {name: Tally() for name in DETECTORS if name != "edgeloop-calibrated"}
    seeds, length = (3, 1200) if quick else (15, 3000)
    for p0 in (0.05, 0.1, 0.2, 0.3):
        for rise in (0.0, 0.1, 0.2, 0.3):
            for change in (300, 1000):
                for seed in range(seeds):
                    rng = random.Random(f"{p0}-{rise}-{change}-{seed}")
                    errors = [rng.random() < (p0 if i < change else p0 + rise) for i in range(length)]
                    reference = (sum(rng.random() < p0 for _ in range(SYNTH_HOLDOUT)), SYNTH_HOLDOUT)
                    for name, detector in _detectors(reference, river).items():
                        tallies[name].add(detector.run(errors), change if rise else None, length)
    return tallies


SMALL_RISE = 0.04
"""The overall error-rate rise of (c): 0.07 to 0.11, as on SEA (benchmarks/loop.py's sea-abrupt)."""
RISE_BANDS = ((0.9, 1.0), (0.8, 1.0), (0.6, 0.8))
"""Where the rise lands: the most confident tenth, fifth... of answers (confidence uniform in [0.5, 1))."""


def _answers(rng: np.random.Generator, n: int, band: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """n answers: confidences and whether each was wrong (0.07 on average, more where unsure), the band's raised."""
    confidence = rng.uniform(0.5, 1.0, n)
    rate = 0.28 * (1.0 - confidence)
    if band is not None:
        low, high = band
        rate = rate + np.where((confidence >= low) & (confidence < high), SMALL_RISE * 0.5 / (high - low), 0.0)
    return confidence, rng.random(n) < rate


def small_rises(quick: bool, river: dict[str, Callable[[], Any]]) -> dict[str, Tally]:
    """(c) A concept change among confident answers: the overall error rate goes from about 0.07 to 0.11."""
    tallies = {name: Tally() for name in DETECTORS}
    seeds, length, change = (4, 1500, 500) if quick else (20, 3000, 1000)
    for band in RISE_BANDS:
        for seed in range(seeds):
            rng = np.random.default_rng([seed, int(100 * band[0])])
            held_c, held_wrong = _answers(rng, LOOP_HOLDOUT, None)
            before_c, before = _answers(rng, change, None)
            after_c, after = _answers(rng, length - change, band)
            reference = (int(held_wrong.sum()), LOOP_HOLDOUT)
            errors = np.concatenate([before, after]).tolist()
            found = _all_alarms(reference, reliability(held_c, held_wrong), river, errors,
                                np.concatenate([before_c, after_c]).tolist())  # fmt: skip
            for name, alarms in found.items():
                tallies[name].add(alarms, change, length)
            quiet_c, quiet = _answers(rng, length, None)  # and as long a stream with no change
            found = _all_alarms(reference, reliability(held_c, held_wrong), river, quiet.tolist(), quiet_c.tolist())
            for name, alarms in found.items():
                tallies[name].add(alarms, None, length)
    return tallies


PerStream = dict[str, dict[str, float | None]]
"""Detection rate per stream and detector."""


def real_streams(quick: bool, river: dict[str, Callable[[], Any]]) -> tuple[dict[str, Tally], PerStream]:
    """(b) A model's errors along each development stream, thinned to a labelled share of its rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # a shared 2-core machine: OpenMP's threads fighting each other cost 30x
        return _real_streams(quick, river, HistGradientBoostingClassifier)


def _real_streams(
    quick: bool, river: dict[str, Callable[[], Any]], classifier: Any
) -> tuple[dict[str, Tally], PerStream]:
    """real_streams' body, under one thread."""
    tallies = {name: Tally() for name in DETECTORS}
    per_stream: PerStream = {}
    rows = 10_000 if quick else 40_000
    for name, spec in STREAMS.items():
        mine = {detector_name: Tally() for detector_name in DETECTORS}
        for seed in (11,) if quick else (11, 12):
            initial = int(rows * INITIAL_SHARE)
            [point] = change_points(rows, initial, 1)
            width = GRADUAL_WIDTH if spec.kind == "gradual" else 1
            pairs = list(spec.build(seed, rows, [point], width))
            x = np.array([[float(v) for v in features.values()] for features, _ in pairs])
            y = np.array([str(label) for _, label in pairs])
            held = int(initial * HOLDOUT_SHARE)
            model = classifier(random_state=seed).fit(x[held:initial], y[held:initial])
            reference = (int((model.predict(x[:held]) != y[:held]).sum()), held)
            table = reliability(model.predict_proba(x[:held]).max(axis=1), model.predict(x[:held]) != y[:held])
            wrong = model.predict(x[initial:]) != y[initial:]
            confidence = model.predict_proba(x[initial:]).max(axis=1)
            quiet_until = point - width // 2  # a gradual change has begun by its midpoint minus half its width
            for rate in (0.01, 0.03):
                for thin in range(2 if quick else 5):
                    keep = np.flatnonzero(np.random.default_rng(1000 * seed + thin).random(wrong.size) < rate)
                    errors = wrong[keep].tolist()
                    rows_at = (keep + initial).tolist()
                    change = int(np.searchsorted(keep + initial, quiet_until))
                    found = _all_alarms(reference, table, river, errors, confidence[keep].tolist())
                    for detector_name, alarms in found.items():
                        tallies[detector_name].add(alarms, change, len(errors), rows_at)
                        mine[detector_name].add(alarms, change, len(errors), rows_at)
            accuracy = 1 - wrong[: point - initial].mean(), 1 - wrong[point - initial + width :].mean()
            print(f"  {name} seed {seed}: model accuracy {accuracy[0]:.3f} before, {accuracy[1]:.3f} after the change")
        per_stream[name] = {d: t.summary()["detection_rate"] for d, t in mine.items()}
        print(f"  {name} detected: " + ", ".join(f"{d} {_f(r)}" for d, r in per_stream[name].items()))
    return tallies, per_stream


def _table(title: str, tallies: dict[str, Tally], rows: bool) -> dict[str, dict[str, float | None]]:
    """Print one table and return its figures."""
    print(f"\n{title}")
    head = f"{'detector':16} {'detected':>8} {'mean delay':>10} {'median':>8}"
    head += f" {'mean rows':>10} {'median rows':>11}" if rows else ""
    print(head + f" {'FA/10k samples':>15}")
    out = {}
    for name, tally in tallies.items():
        s = tally.summary()
        out[name] = s
        line = f"{name:16} {_f(s['detection_rate']):>8} {_f(s['mean_delay']):>10} {_f(s['median_delay']):>8}"
        line += f" {_f(s['mean_delay_rows']):>10} {_f(s['median_delay_rows']):>11}" if rows else ""
        print(line + f" {_f(s['false_alarms_per_10k']):>15}")
    return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run both suites, print the tables, emit the JSON line."""
    args = parse_args(__doc__.splitlines()[0], argv)
    river = _river_makers()
    started = time.perf_counter()
    policy = ErrorDetector()
    print(
        f"edgeloop-cusum: false_alarm {policy.false_alarm} within {policy.horizon} samples, h = {policy.threshold:.2f}"
    )
    synth = _table("(a) synthetic Bernoulli error streams", synthetic(args.quick, river), rows=False)
    small = _table(
        "(c) small rises among confident answers (0.07 to ~0.11)", small_rises(args.quick, river), rows=False
    )
    print("\n(b) model error streams from benchmarks/streams.py, thinned to 1% and 3% of rows")
    tallies, per_stream = real_streams(args.quick, river)
    real = _table("(b) thinned model error streams", tallies, rows=True)
    wall = round(time.perf_counter() - started, 1)
    result = {"detectors": list(DETECTORS), "synthetic": synth, "streams": real, "small_rises": small,
              "detected_per_stream": per_stream}  # fmt: skip
    emit({**result, "wall_s": wall}, RESULT_KEYS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
