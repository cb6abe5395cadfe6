"""report.html's budget curve: recovered accuracy (and the oracle's) against the sample budget, per stream.

benchmarks/loop.py runs drift streams at several budgets and hands the points to the report as the summary's
`budget_curve`: a list of {stream, budget, recovered_accuracy, oracle_accuracy, bytes_ratio, ...}; a run of its
own has none, and the section is left out.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

WIDTH, HEIGHT = 960, 300
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 180, 16, 44
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
"""Okabe-Ito: distinguishable with the common colour-vision deficiencies."""


def budget_curve_section(curve: Sequence[Mapping[str, Any]]) -> str:
    """The section: one solid line per stream (recovered), its oracle dashed, then the table of every point."""
    budgets = sorted({float(p["budget"]) for p in curve})
    streams = list(dict.fromkeys(str(p["stream"]) for p in curve))
    values = [float(p[k]) for p in curve for k in ("recovered_accuracy", "oracle_accuracy") if p.get(k) is not None]
    low = min([*values, 1.0]) if values else 0.0
    y_min = max(0.0, int(low * 10) / 10)

    def x(budget: float) -> float:
        index = budgets.index(budget)
        span = WIDTH - PAD_LEFT - PAD_RIGHT
        return PAD_LEFT + (span * index / (len(budgets) - 1) if len(budgets) > 1 else span / 2)

    def y(value: float) -> float:
        return HEIGHT - PAD_BOTTOM - (HEIGHT - PAD_BOTTOM - PAD_TOP) * (value - y_min) / ((1.0 - y_min) or 1.0)

    parts = []
    for tick in [y_min + i * (1.0 - y_min) / 4 for i in range(5)]:
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}"/><text class="tick" x="{PAD_LEFT - 8}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick:.0%}</text>')  # fmt: skip
    for budget in budgets:
        parts.append(f'<text class="tick" x="{x(budget):.1f}" y="{HEIGHT - PAD_BOTTOM + 18}" '
                     f'text-anchor="middle">{_e(_share(budget))}</text>')  # fmt: skip
    parts.append(f'<text class="title" x="{(PAD_LEFT + WIDTH - PAD_RIGHT) / 2:.0f}" y="{HEIGHT - 6}" '
                 'text-anchor="middle">sample budget (share of raw bytes)</text>')  # fmt: skip
    for i, stream in enumerate(streams):
        colour = COLOURS[i % len(COLOURS)]
        points = sorted((float(p["budget"]), p) for p in curve if str(p["stream"]) == stream)
        for key, dash in (("recovered_accuracy", ""), ("oracle_accuracy", ' stroke-dasharray="5 4"')):
            xy = [(x(b), y(float(p[key]))) for b, p in points if p.get(key) is not None]
            if xy:
                parts.append(f'<path d="{_path(xy)}" fill="none" stroke="{colour}" stroke-width="2.5"{dash}/>')
            if not dash:  # a dot per measured budget: a stream recovered at one budget only still shows
                parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>' for px, py in xy]
        legend_y = PAD_TOP + 18 * (i + 1)
        parts.append(f'<rect x="{WIDTH - PAD_RIGHT + 12}" y="{legend_y - 9}" width="12" height="10" fill="{colour}"/>'
                     f'<text class="tick" x="{WIDTH - PAD_RIGHT + 30}" y="{legend_y}">{_e(stream)}</text>')  # fmt: skip
    svg = (f'<svg class="chart" id="chart-budget" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="recovered accuracy against the sample budget" preserveAspectRatio="xMidYMid meet" '
           f'xmlns="http://www.w3.org/2000/svg"><g class="data">{"".join(parts)}</g></svg>')  # fmt: skip
    note = '<p class="note">Solid: recovered accuracy; dashed: the oracle (same family, post-drift labels).</p>'
    title = "<h2>Recovered accuracy against the sample budget</h2>"
    return f'<section id="budget">{title}{svg}{note}{_table(curve)}</section>'


def _path(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'L' if i else 'M'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(points))


def _table(curve: Sequence[Mapping[str, Any]]) -> str:
    head = ["stream", "budget", "recovered", "oracle", "detection delay (rows)", "false alarms", "bytes / raw"]
    rows = []
    for p in curve:
        rows.append([p.get("stream"), _share(float(p["budget"])), _pct(p.get("recovered_accuracy")),
                     _pct(p.get("oracle_accuracy")), _plain(p.get("detection_delay_rows")),
                     _plain(p.get("false_alarms")), _pct(p.get("bytes_ratio"), 2)])  # fmt: skip
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _share(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 else f"{value:.1%}"


def _pct(value: Any, digits: int = 1) -> str:
    return "not recorded" if value is None else f"{float(value):.{digits}%}"


def _plain(value: Any) -> str:
    if value is None:
        return "not recorded"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
