"""The budget curve: generated drift streams through the whole loop at several sample budgets.

Each stream (benchmarks/streams.py: river's SEA, Agrawal, hyperplane, LED, RBF and Gaussian blobs; abrupt and
gradual, inputs fixed and moving, binary and multiclass) is written for each seed, then run through
`edgeloop.local.loop.run_scenario` once per budget, the budget being the device's sampleBudgetShare (sample
bytes at most that share of the raw-equivalent bytes served; every other policy at its default). Per stream,
seed and budget it prints:

- delay: rows from the first change point to the detection (`detection_delay_rows`), and false alarms;
- recovered vs oracle: the accuracy of what the loop shipped after the change, against the same family
  cross-fitted on the post-change rows' true labels (the loop summary's own figures);
- bytes / raw: sample bytes uploaded (compressed, as they cross the wire) over raw streaming's bytes;
- labelled samples, retrains, and the run's own check (ok, or what it refused).

A run whose own check fails is recorded with the reason and its figures, not stopped. report.html in --out
plots recovered accuracy against the budget per stream (the mean over seeds). The last line is one JSON object:
runs, checks_passed, streams, budgets, max_bytes_ratio (per budget), mean_gap_to_oracle (per budget, points),
budget_at_1_50 (the largest budget whose every run stayed at or under 1/50 of raw bytes; null if none).

    python benchmarks/loop.py [--quick] [--out DIR] [--budgets 0.01,0.02,0.05,0.1] [--seeds 11,23]
                              [--rows 12000] [--changes 1] [--only sea-abrupt rbf-abrupt]

--quick: two streams (one with inputs fixed, one moving), one seed, 6,000 rows, budgets 2% and 5%.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import emit
from streams import STREAMS, write_stream

from edgeloop.cli.demo import load_scenario
from edgeloop.core.errors import EdgeloopError
from edgeloop.local import loop as loop_module
from edgeloop.local import scoring
from edgeloop.local.report import write_report

KEYS = ("runs", "checks_passed", "streams", "budgets", "max_bytes_ratio", "mean_gap_to_oracle", "budget_at_1_50")
QUICK_STREAMS = ("sea-abrupt", "rbf-abrupt")
FIELDS = ("drift_detected_at_row", "detection_delay_rows", "false_alarms", "retrains", "recovered_accuracy",
          "oracle_accuracy", "labelled", "sample_bytes_uploaded", "raw_equivalent_bytes")  # fmt: skip
"""The loop summary's fields the table reads; one a run's summary lacks reads as None (not measured)."""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags; --quick keeps the run under a few minutes on 2 cores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="two streams, one seed, 6,000 rows, two budgets")
    parser.add_argument("--out", type=Path, default=None, help="where streams, runs and report.html go")
    parser.add_argument("--budgets", default="0.01,0.02,0.05,0.1", help="sample budgets, shares of raw bytes")
    parser.add_argument("--seeds", default="11,23", help="stream seeds, comma-separated")
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--changes", type=int, default=1, help="change points per stream")
    parser.add_argument("--only", nargs="*", choices=sorted(STREAMS), default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.budgets, args.seeds, args.rows = "0.02,0.05", "11", 6000
        args.only = args.only or list(QUICK_STREAMS)
    return args


def run_one(scenario_path: Path, budget: float, out: Path) -> dict[str, Any]:
    """One stream at one budget: the loop summary's figures and the run's own verdict."""
    scenario = load_scenario(str(scenario_path))
    device_config = {**scenario.device_config, "sampleBudgetShare": budget}
    scenario = dataclasses.replace(scenario, device_config=device_config)
    verdict: list[str] = []
    check = scoring.check_loop  # run_scenario's own check, by the name it calls

    def recorded(scenario: Any, summary: dict[str, Any]) -> None:
        try:
            check(scenario, summary)
        except EdgeloopError as exc:  # the figures are the point here: keep the verdict, not the exception
            verdict.append(str(exc))

    scoring.check_loop = recorded  # the run's own check, recorded instead of raised
    started = time.monotonic()
    try:
        summary = loop_module.run_scenario(scenario, out, lambda message: None)
    except EdgeloopError as exc:  # a run that could not finish: no figures, the reason in the table
        summary, verdict = {}, [str(exc)]
    finally:
        scoring.check_loop = check
    loop = summary.get("loop") or {}
    row: dict[str, Any] = {key: loop.get(key) for key in FIELDS}
    raw = row["raw_equivalent_bytes"] or 0
    row["bytes_ratio"] = round(row["sample_bytes_uploaded"] / raw, 5) if raw and row["sample_bytes_uploaded"] else None
    row["check"] = verdict[0].split(": ", 1)[-1] if verdict else "ok"
    row["wall_s"] = round(time.monotonic() - started, 1)
    row["summary"] = summary
    return row


def curve_points(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per stream and budget, the mean over seeds of each figure (None where no seed measured it)."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["stream"], row["budget"]), []).append(row)
    points = []
    for (stream, budget), members in groups.items():
        point: dict[str, Any] = {"stream": stream, "budget": budget}
        for key in ("recovered_accuracy", "oracle_accuracy", "bytes_ratio", "detection_delay_rows", "false_alarms"):
            values = [float(m[key]) for m in members if m.get(key) is not None]
            point[key] = round(sum(values) / len(values), 4) if values else None
        points.append(point)
    return points


def result(rows: Sequence[Mapping[str, Any]], budgets: Sequence[float]) -> dict[str, Any]:
    """The last line: the curve's figures per budget."""
    by_budget = {b: [r for r in rows if r["budget"] == b] for b in budgets}
    ratios = {b: max((r["bytes_ratio"] or 0.0 for r in rs), default=None) for b, rs in by_budget.items()}
    gaps = {}
    for b, rs in by_budget.items():
        measured = [r["oracle_accuracy"] - r["recovered_accuracy"] for r in rs
                    if r.get("oracle_accuracy") is not None and r.get("recovered_accuracy") is not None]  # fmt: skip
        gaps[str(b)] = round(100 * sum(measured) / len(measured), 2) if measured else None
    under = [b for b, ratio in ratios.items() if ratio is not None and ratio <= 1 / 50]
    return {
        "runs": len(rows),
        "checks_passed": sum(1 for r in rows if r["check"] == "ok"),
        "streams": sorted({r["stream"] for r in rows}),
        "budgets": list(budgets),
        "max_bytes_ratio": {str(b): ratio for b, ratio in ratios.items()},
        "mean_gap_to_oracle": gaps,
        "budget_at_1_50": max(under) if under else None,
    }


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * float(value):.1f}" if percent else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the streams, run each at each budget, print the table, write report.html, then the JSON line."""
    args = parse(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.only or list(STREAMS)
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-loop-") as scratch:
        out = args.out or Path(scratch)
        rows: list[dict[str, Any]] = []
        head = ("stream", "seed", "budget", "detected@row", "delay", "false", "retrains", "recovered", "oracle",
                "bytes/raw", "labelled", "check")  # fmt: skip
        print(" | ".join(head), flush=True)
        for name in names:
            for seed in seeds:
                folder = out / "streams" / f"seed-{seed}"
                write_stream(STREAMS[name], folder, seed, args.rows, args.changes)
                for budget in budgets:
                    run = run_one(folder / f"{name}.json", budget, out / "runs" / f"{name}-{seed}-{budget:g}")
                    rows.append({"stream": name, "seed": seed, "budget": budget, **run})
                    cells = (name, seed, f"{budget:.0%}" if budget >= 0.01 else f"{budget:.1%}",
                             _cell(run["drift_detected_at_row"]), _cell(run["detection_delay_rows"]),
                             _cell(run["false_alarms"]), _cell(run["retrains"]),
                             _cell(run["recovered_accuracy"], True), _cell(run["oracle_accuracy"], True),
                             _cell(run["bytes_ratio"], True), _cell(run["labelled"]), run["check"])  # fmt: skip
                    print(" | ".join(str(c) for c in cells), flush=True)
        if rows:
            last = rows[-1]["summary"]
            write_report(out, {**last, "budget_curve": curve_points(rows)})
            (out / "budget_curve.json").write_text(json.dumps(curve_points(rows), indent=2) + "\n")
            if args.out:
                print(f"report with the budget curve: {out / 'report.html'}", flush=True)
    emit(result(rows, budgets), KEYS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
