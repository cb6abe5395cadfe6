"""The variant table a person reads after `edgeloop train`: every variant's size, metric, drop, latency and verdict."""

from __future__ import annotations

from collections.abc import Mapping

from edgeloop.core.manifest import PRECISIONS, ModelManifest
from edgeloop.training.variants import variant_file

COLUMNS = ("precision", "file", "bytes", "{metric}", "drop", "p50 µs", "verdict")
SELECTED_MARK = "<- selected"
NOT_SHIPPED = "(not shipped)"


def variant_table(manifest: ModelManifest, skipped: Mapping[str, str], failure: str | None = None) -> str:
    """One row per precision (built, rejected or skipped), then the gate's decision in one line."""
    gate = manifest.gate
    header = [c.format(metric=gate.metric) for c in COLUMNS]
    rows = [_row(manifest, p, skipped) for p in PRECISIONS if p in manifest.metrics or p in skipped]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = [_line(r, widths) for r in [header, *rows]]
    return "\n".join([*lines, _verdict(manifest, failure)]) + "\n"


def _row(manifest: ModelManifest, precision: str, skipped: Mapping[str, str]) -> list[str]:
    """One variant's cells; a skipped precision has only its reason."""
    if precision in skipped:
        return [precision, "-", "-", "-", "-", "-", f"skipped: {skipped[precision]}"]
    gate, values = manifest.gate, manifest.metrics[precision]
    shipped = {a.precision: a.file for a in manifest.artifacts}
    drop = round(manifest.metrics[gate.reference][gate.metric] - values[gate.metric], 6) + 0.0  # no "-0.0000"
    return [
        precision,
        shipped.get(precision, NOT_SHIPPED),
        f"{int(values['bytes']):,}" if "bytes" in values else "-",
        f"{values[gate.metric]:.4f}",
        "ref" if precision == gate.reference else f"{drop:.4f}",
        f"{values['latency_us_p50']:.1f}" if "latency_us_p50" in values else "-",
        _verdict_cell(manifest, precision),
    ]


def _verdict_cell(manifest: ModelManifest, precision: str) -> str:
    """pass / rejected: why, and the selected marker."""
    reason = manifest.gate.rejected.get(precision)
    verdict = f"rejected: {reason}" if reason else "pass"
    return f"{verdict} {SELECTED_MARK}" if variant_file(precision) == manifest.selected else verdict


def _line(cells: list[str], widths: list[int]) -> str:
    """Text columns left-aligned, number columns right-aligned, the verdict last and unpadded."""
    numeric = (2, 3, 4, 5)
    padded = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))]
    return "  ".join([*padded, cells[-1]]).rstrip()


def _verdict(manifest: ModelManifest, failure: str | None) -> str:
    """The gate's decision: what it compared, whether the model may ship, and what ships."""
    gate = manifest.gate
    rule = f"gate: {gate.metric} drop <= {gate.bound:.4f} vs {gate.reference}"
    if gate.minimum is not None:
        rule += f", {gate.reference} {gate.metric} >= {gate.minimum:.4f}"
    if not gate.passed:
        return f"{rule}: FAILED ({failure or 'see gate.rejected'}); not deployable"
    return f"{rule}: passed; selected {manifest.selected} ({manifest.selected_artifact.precision})"
