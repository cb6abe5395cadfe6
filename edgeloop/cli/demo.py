"""`edgeloop demo`: run the closed loop on the embedded local stack and summarise it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from edgeloop.core.errors import UsageError
from edgeloop.local.demo_options import BAD_KINDS, MAX_DEVICES, SUMMARY_FILE, DemoOptions, check_output_dir, parse_kinds
from edgeloop.local.report import REPORT_FILE
from edgeloop.local.sim.scenario import BUILT_IN, BadKind, Scenario, built_in

# The local stack (moto, the broker, numpy, onnxruntime) and yaml are imported inside the commands that run
# them, so `edgeloop demo --help` answers without loading them (tests/cli/test_cli_main.py checks).


def _device_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_DEVICES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DEVICES}, got {value}")
    return value


def register(commands: Any) -> None:
    """Add the demo subcommand."""
    parser = commands.add_parser(
        "demo",
        help="train, register, deploy and run a simulated fleet on an embedded local stack",
        description="Runs the whole loop on this machine: moto in server mode as AWS, an embedded MQTT broker "
        "standing in for IoT Core, a Greengrass stand-in, and simulated devices running the real device code.",
    )
    parser.add_argument(
        "--devices", type=_device_count, default=5, help=f"simulated core devices, 1-{MAX_DEVICES} (default 5)"
    )
    parser.add_argument("--out", type=Path, default=Path("edgeloop-demo"), help="where summary.json goes")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument(
        "--inject-bad-model",
        nargs="*",
        choices=[kind.value for kind in BAD_KINDS],
        metavar="KIND",
        help=f"also roll out simulated bad candidates of these kinds ({', '.join(BAD_KINDS)}; none named: all "
        "four, in that order): each must be stopped (device verification or the canary's gates) and reverted, "
        "then a good one completes",
    )
    parser.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help=f"run a feedback-loop scenario instead: a built-in name ({', '.join(sorted(BUILT_IN))}) or a JSON/YAML "
        f"file (format: {Scenario.__module__.replace('.', '/')}.py); the summary gains a loop section",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="no progress or log lines on stderr")
    output.add_argument(
        "--json", action="store_true", help="print summary.json to stdout instead of the table (implies --quiet)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo, printing progress to stderr and the summary to stdout."""
    started = time.monotonic()
    quiet = args.quiet or args.json
    root, level = logging.getLogger(), logging.getLogger().level
    if quiet and not args.verbose:  # the simulated devices' expected warnings (outages, refused models) too;
        root.setLevel(logging.CRITICAL)  # a failed run still ends with its `error: ...` line
    try:
        return _run(args, started, quiet)
    finally:
        root.setLevel(level)


def _run(args: argparse.Namespace, started: float, quiet: bool) -> int:
    """The demo or the scenario, with progress lines unless quiet."""

    def progress(message: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    if args.scenario:
        check_output_dir(args.out)
        scenario = load_scenario(args.scenario)
        progress(f"scenario {scenario.name}: starting the local stack (moto, the broker, the Greengrass stand-in)")
        from edgeloop.local.loop import run_scenario

        summary = run_scenario(scenario, args.out, progress)
        print(json.dumps(summary, indent=2) if args.json else render_scenario(summary, args.out / SUMMARY_FILE))
        return 0
    options = DemoOptions(devices=args.devices, out=args.out, seed=args.seed, inject_bad_model=bad_kinds(args))
    progress("starting the local stack (moto server, MQTT broker, Greengrass stand-in)")
    from edgeloop.local.demo import run_demo

    summary = run_demo(options, progress)
    print(json.dumps(summary, indent=2) if args.json else render_summary(summary, args.out / SUMMARY_FILE))
    return 0


UPLOADED_KEY = (
    "key: loop.sample_*_uploaded = sample uploads only; summary.json uplink.messages/bytes = every results and "
    "samples message (shadow updates counted apart); timeline sent_*_incl_shadow = all of it, shadow included"
)
"""Three uplink figures answer three questions; the printed summary says which is which."""


def render_scenario(summary: dict[str, Any], path: Path) -> str:
    """The scenario's loop, reliability and cost sections, then where the files went."""
    shown = {key: summary[key] for key in ("loop", "reliability", "cost") if key in summary}
    if "cost" in shown:
        shown["cost"] = {k: v for k, v in shown["cost"].items() if k != "assumptions"}
    lines = [json.dumps(shown, indent=2), UPLOADED_KEY, f"{'rollout':<10}{'kind':<12}{'outcome':<11}rings reached"]
    for rollout in summary.get("rollouts", []):
        kind = rollout.get("bad_kind") or "honest"
        lines.append(f"{'v' + str(rollout['version']):<10}{kind:<12}{rollout['outcome']:<11}"
                     f"{' -> '.join(rollout['rings_reached'])}")  # fmt: skip
    lines.append(f"summary written to {path}, report to {path.parent / REPORT_FILE}")
    return "\n".join(lines)


def bad_kinds(args: argparse.Namespace) -> tuple[BadKind, ...]:
    """The kinds --inject-bad-model named: none when it is absent, all four when it names none."""
    if args.inject_bad_model is None:
        return ()
    return parse_kinds(args.inject_bad_model) or BAD_KINDS


def load_scenario(spec: str) -> Scenario:
    """A built-in scenario by name, or a JSON / YAML scenario file (errors name the file or the key); a relative
    dataset path in a file is resolved against the file's folder."""
    path = Path(spec)
    if not path.suffix:
        return built_in(spec)
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError("--scenario", f"cannot read {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise UsageError("--scenario", f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    return Scenario.from_dict(data, base_dir=path.parent)


def _p99(latency: dict[str, Any]) -> str:
    """p99 of the last report's window; '-' when that window held no requests (nothing to measure)."""
    return f"{latency['p99_ms']:.3f}" if latency.get("samples") else "-"


def render_summary(summary: dict[str, Any], path: Path) -> str:
    """A short human-readable account of the run."""
    model, records = summary["model"], summary["records"]
    lines = [
        f"model     {model['name']} v{model['version']}  sha256 {model['sha256'][:16]}…  "
        f"holdout accuracy {model['holdout_accuracy']:.4f}  ({model['approval']})",
        f"records   produced {records['produced']}  delivered {records['delivered']}  lost {records['lost']}  "
        f"duplicates ignored {records['duplicates_ignored']}  "
        f"(carrying {sum(d['results_delivered'] for d in summary['devices'])} results: one record per micro-batch)",
        "",
        f"{'device':<22}{'model':>7}{'inferences':>12}{'accuracy':>10}{'p99 ms':>9}{'buffer':>8}  {'state':<10}"
        "shadow document",
    ]
    for device in summary["devices"]:
        health = device["health"]
        accuracy = device["stream_accuracy"]
        lines.append(
            f"{device['thing_name']:<22}{'v' + str(health['model_version']):>7}{device['inferences']:>12}"
            f"{(f'{accuracy:.3f}' if accuracy is not None else '-'):>10}{_p99(health['latency']):>9}"
            f"{health['buffer_depth']:>8}  {health['model_state']:<10}revision {device['shadow_version']}"
        )
    lines += [
        "",
        f"{'rollout':<10}{'candidate':<12}{'outcome':<11}{'rings reached':<24}{'on version':>11}  "
        f"{'reverted devices':<22}stopped by",
    ]
    for rollout in summary["rollouts"]:
        lines.append(
            f"{'v' + str(rollout['version']):<10}{rollout.get('bad_kind') or 'honest':<12}{rollout['outcome']:<11}"
            f"{' -> '.join(rollout['rings_reached']):<24}{rollout['devices_on_version']:>11}  "
            f"{', '.join(rollout['reverted_devices']) or '-':<22}{rollout.get('stopped_by') or '-'}"
        )
    lines += ["", f"summary written to {path}, report to {path.parent / REPORT_FILE}"]
    return "\n".join(lines)
