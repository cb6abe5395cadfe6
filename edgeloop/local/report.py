"""report.html beside summary.json: one self-contained page (inline SVG and CSS, no fetches) to read after a run.

Every section reads only the summary and says "not recorded in this run" when its part is missing, so the plain
`edgeloop demo` summary (no timeline) renders as well as a scenario's. A small inline script records any error
on the page and checks that each chart drew something; the browser test reads what it set.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeloop.core.errors import UsageError
from edgeloop.local.report_curve import budget_curve_section
from edgeloop.local.sim.cost import MESSAGE_UNIT_BYTES, Metered, UplinkUsage, estimate

REPORT_FILE = "report.html"
NOT_RECORDED = "not recorded in this run"
VERSION_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C564B", "#1B1B1B")
"""Okabe-Ito, readable for the common colour-vision deficiencies; versions cycle through it in order."""
EVENT_COLOURS = {
    "drift": "#D55E00",
    "retrain": "#009E73",
    "rollout_start": "#0072B2",
    "rollout_end": "#56B4E9",
    "decision": "#8a8a8a",
    "restart": "#CC79A7",
    "outage_start": "#7a5c00",
    "outage_end": "#7a5c00",
}
EDGE_COLOUR, RAW_COLOUR = "#0072B2", "#B5B5B5"
WIDTH, PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 960, 72, 24, 56, 44
LABEL_ROWS, LABEL_GAP_PX = 3, 96
"""Event labels stack in up to three rows above a chart; a label that fits in none keeps only its tooltip."""


def write_report(out: Path, summary: Mapping[str, Any]) -> Path:
    """Write DIR/report.html atomically, beside summary.json."""
    page = render_report(summary)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=out, prefix=f".{REPORT_FILE}.")
    except OSError as exc:
        raise UsageError("--out", f"cannot write {out / REPORT_FILE}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(temp, out / REPORT_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return out / REPORT_FILE


def render_report(summary: Mapping[str, Any]) -> str:
    """The whole page for one run's summary."""
    timeline = summary.get("timeline") or {}
    palette = _palette(timeline)
    sections = [
        _header(summary),
        _accuracy_section(summary, timeline, palette),
        _rings_section(timeline, palette),
        _buffer_section(timeline),
        _uplink_section(summary, timeline),
        *([budget_curve_section(summary["budget_curve"])] if summary.get("budget_curve") else []),
        _rollouts_section(summary.get("rollouts") or []),
        _reliability_section(summary),
        _devices_section(summary.get("devices") or []),
    ]
    return _page(_title(summary), "\n".join(sections))


def with_cost(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary with a cost section, when it has none and its timeline can be priced (a copy, never in place)."""
    cost = cost_section(summary)
    return {**summary, "cost": cost} if cost is not None else dict(summary)


def cost_section(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """summary.json's cost section: the one it has, else one priced from its timeline, else None."""
    if summary.get("cost"):
        return dict(summary["cost"])
    usage = usage_from_timeline(summary.get("timeline") or {}, summary)
    return None if usage is None else estimate(usage).to_dict()


def usage_from_timeline(timeline: Mapping[str, Any], summary: Mapping[str, Any]) -> UplinkUsage | None:
    """The fleet's billed usage from the timeline's last (cumulative) point, or None without one."""
    points = timeline.get("points") or []
    if not points or float(points[-1].get("t_s", 0)) <= 0 or "sent_messages_incl_shadow" not in points[-1]:
        return None
    last = points[-1]
    devices = max((sum((p.get("devices_by_version") or {}).values()) for p in points), default=0)
    devices = max(devices, max(int(p.get("online", 0)) for p in points), 1)
    messages = Metered.of_mean(
        int(last["sent_messages_incl_shadow"]), int(last.get("sent_bytes_incl_shadow", 0)), MESSAGE_UNIT_BYTES
    )
    shadow = int((summary.get("cloud") or {}).get("shadow_updates_accepted", 0))
    return UplinkUsage(
        devices=devices,
        duration_s=float(last["t_s"]),
        readings=int(last.get("raw_messages", 0)),
        messages=messages,
        shadow_updates=Metered(shadow, shadow),
        rules_triggered=messages,  # every uplink topic has a rule with one S3 action: one object per message
        s3_puts=messages.count,
        connected_minutes=_online_minutes(points),
    )


def _online_minutes(points: Sequence[Mapping[str, Any]]) -> float:
    """Device-minutes connected: each point's online count over the step that ends at it."""
    minutes, previous_t = 0.0, 0.0
    for point in points:
        t = float(point["t_s"])
        minutes += int(point.get("online", 0)) * (t - previous_t) / 60
        previous_t = t
    return minutes


# --- sections --------------------------------------------------------------------------------------------


def _header(summary: Mapping[str, Any]) -> str:
    """Scenario, model and the headline figures."""
    run, model = summary.get("run") or {}, summary.get("model") or {}
    loop, cost = summary.get("loop") or {}, cost_section(summary)
    tiles = [
        ("scenario", run.get("scenario") or "plain demo"),
        ("model", f"{model['name']} v{model.get('version', '?')}" if model.get("name") else None),
        ("holdout accuracy", _pct(model.get("holdout_accuracy"))),
        ("devices", _devices_count(summary)),
        ("rollouts", _rollout_counts(summary.get("rollouts") or [])),
        ("records lost", _records_lost(summary)),
        ("recovered accuracy", _pct(loop.get("recovered_accuracy"))),
        ("edge cost / device-month", _usd(cost["edge_usd_per_device_month"]) if cost else None),
        ("raw cost / device-month", _usd(cost["raw_usd_per_device_month"]) if cost else None),
        ("wall time", f"{run['wall_s']:.1f} s" if isinstance(run.get("wall_s"), int | float) else None),
    ]
    shown = "".join(
        f'<div class="tile"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>'
        for k, v in tiles
        if v not in (None, "")
    )
    return f'<header><h1>{_e(_title(summary))}</h1><div class="tiles">{shown}</div></header>'


def _accuracy_section(summary: Mapping[str, Any], timeline: Mapping[str, Any], palette: dict[str, str]) -> str:
    """Accuracy per model version over time, with the run's events marked."""
    points = timeline.get("points") or []
    series = {v: [(float(p["t_s"]), (p.get("accuracy") or {}).get(v)) for p in points] for v in palette}
    series = {v: s for v, s in series.items() if any(a is not None for _, a in s)}
    loop = summary.get("loop") or {}
    if not series:
        return _section("Accuracy timeline", "accuracy", _accuracy_without_timeline(loop, summary.get("devices") or []))
    frame = _Frame(_t_max(points), 1.0, height=300)
    body = [_polyline(frame, s, palette[v], width=2.2) for v, s in series.items()]
    svg = _chart("chart-accuracy", "accuracy per model version over time", frame, body, timeline, _pct_tick,
                 "accuracy on the stream", markers=True)  # fmt: skip
    entries = [(f"v{v}", palette[v]) for v in series] + _event_legend(timeline)
    legend = _legend(entries, outages=bool(_outages(timeline)))
    return _section("Accuracy timeline", "accuracy", svg + legend + _events_table(timeline.get("events") or []))


def _rings_section(timeline: Mapping[str, Any], palette: dict[str, str]) -> str:
    """How many devices run each version over time (stacked): the rings moving through a rollout."""
    points = timeline.get("points") or []
    if not any(p.get("devices_by_version") for p in points):
        return _section("Ring progression", "rings", _missing())
    total = max(sum((p.get("devices_by_version") or {}).values()) for p in points)
    frame = _Frame(_t_max(points), _nice_top(total))
    floor = [0.0] * len(points)
    body = []
    for version in palette:
        counts = [float((p.get("devices_by_version") or {}).get(version, 0)) for p in points]
        if any(counts):
            top = [f + c for f, c in zip(floor, counts, strict=True)]
            body.append(_band(frame, [float(p["t_s"]) for p in points], floor, top, palette[version]))
            floor = top
    svg = _chart("chart-rings", "devices per model version over time", frame, body, timeline, _int_tick,
                 "devices on version", markers=True)  # fmt: skip
    return _section("Ring progression", "rings", svg + _legend([(f"v{v}", palette[v]) for v in palette]))


def _buffer_section(timeline: Mapping[str, Any]) -> str:
    """Records waiting on the devices, and records produced against delivered, through the outages."""
    points = timeline.get("points") or []
    if not points or "buffered" not in points[0]:
        return _section("Buffer depth and delivery", "buffer", _missing())
    t_max, ts = _t_max(points), [float(p["t_s"]) for p in points]
    depth = [float(p.get("buffered", 0)) for p in points]
    frame = _Frame(t_max, _nice_top(max(depth)), height=190, top=16)
    area = _band(frame, ts, [0.0] * len(ts), depth, "#E69F00")
    buffer_svg = _chart("chart-buffer", "records buffered on the devices", frame, [area], timeline, _int_tick,
                        "records buffered")  # fmt: skip
    produced = [(t, p.get("produced")) for t, p in zip(ts, points, strict=True)]
    delivered = [(t, p.get("delivered")) for t, p in zip(ts, points, strict=True)]
    frame = _Frame(t_max, _nice_top(max(float(v or 0) for _, v in produced + delivered)), height=190, top=16)
    lines = [_polyline(frame, produced, "#8a8a8a", width=2, dash="6 4"), _polyline(frame, delivered, "#0072B2")]
    flow_svg = _chart("chart-delivery", "records produced and delivered", frame, lines, timeline, _int_tick,
                      "records (cumulative)")  # fmt: skip
    entries = [("buffered", "#E69F00"), ("produced", "#8a8a8a"), ("delivered", "#0072B2")]
    legend = _legend(entries, outages=bool(_outages(timeline)))
    return _section("Buffer depth and delivery", "buffer", buffer_svg + flow_svg + legend)


def _uplink_section(summary: Mapping[str, Any], timeline: Mapping[str, Any]) -> str:
    """What went up against streaming every reading, and what that costs a month."""
    counts = _uplink_counts(summary, timeline)
    parts = []
    if counts is None:
        parts.append(_missing("uplink bytes and messages"))
    else:
        edge_b, raw_b, edge_m, raw_m, scope = counts
        groups = [("bytes", edge_b, raw_b, _bytes), ("messages", edge_m, raw_m, _count)]
        parts.append(_bars("chart-uplink", "uplink against raw streaming", groups) + _legend(_edge_raw_legend()))
        parts.append(f'<p class="note">{_e(scope)}</p>')
    cost = cost_section(summary)
    if cost is None:
        parts.append(_missing("cost estimate"))
    else:
        edge, raw = float(cost["edge_usd_per_device_month"]), float(cost["raw_usd_per_device_month"])
        parts.append(_bars("chart-cost", "cost per device per month", [("USD / device-month", edge, raw, _usd)]))
        parts.append(_cost_tables(cost))
    return _section("Uplink and cost", "uplink", "".join(parts))


def _rollouts_section(rollouts: Sequence[Mapping[str, Any]]) -> str:
    """One row per rollout, then every decision the controller took."""
    if not rollouts:
        return _section("Rollout decisions", "rollouts", _missing())
    summary_rows = [
        [f"v{r.get('version')}", r.get("outcome"), " → ".join(r.get("rings_reached") or []) or "none",
         r.get("devices_on_version"), len(r.get("reverted_devices") or []), (r.get("registry") or {}).get("approval")]
        for r in rollouts
    ]  # fmt: skip
    first = min((d["at"] for r in rollouts for d in r.get("decisions") or [] if "at" in d), default=None)
    decisions = [
        [f"v{r.get('version')}", _ring_name(r, d.get("ring")), _decision_badge(d.get("decision")), d.get("reason"),
         _when(d.get("at"), first)]
        for r in rollouts for d in r.get("decisions") or []
    ]  # fmt: skip
    head = ["version", "outcome", "rings reached", "devices on version", "reverted", "approval"]
    body = _table(head, summary_rows) + _table(
        ["version", "ring", "decision", "reason", "time"], decisions, raw_cols={2}
    )
    return _section("Rollout decisions", "rollouts", body)


def _reliability_section(summary: Mapping[str, Any]) -> str:
    """Records produced, delivered, lost and duplicated; the buffer's worst depth and the time offline."""
    figures = summary.get("reliability") or {}
    if not figures and summary.get("records"):
        figures = {f"records_{k}" if not k.startswith("dup") else k: v for k, v in summary["records"].items()}
    if not figures:
        return _section("Reliability", "reliability", _missing())
    rows = [[k.replace("_", " "), _count(v) if isinstance(v, int | float) else v] for k, v in figures.items()]
    return _section("Reliability", "reliability", _table(["figure", "value"], rows))


def _devices_section(devices: Sequence[Mapping[str, Any]]) -> str:
    """The fleet at the end of the run, when the summary lists it."""
    if not devices:
        return ""
    rows = [
        [d.get("thing_name"), d.get("ring"), f"v{d.get('model_version')}", _count(d.get("inferences")),
         _count(d.get("results_delivered")), _pct(d.get("stream_accuracy"))]
        for d in devices
    ]  # fmt: skip
    head = ["device", "ring", "model", "inferences", "results delivered", "stream accuracy"]
    return _section("Devices", "devices", _table(head, rows))


# --- section helpers -------------------------------------------------------------------------------------


def _accuracy_without_timeline(loop: Mapping[str, Any], devices: Sequence[Mapping[str, Any]]) -> str:
    """The timeline missing: the loop's four accuracy figures, else each device's, else a placeholder."""
    if loop:
        names = ("pre_drift_accuracy", "post_drift_accuracy", "recovered_accuracy", "oracle_accuracy")
        figures = [(n.removesuffix("_accuracy").replace("_", " "), loop.get(n)) for n in names]
        when = (f"drift detected at {_clock(loop.get('drift_detected_at_s'))} simulated, retrain triggered at "
                f"{_clock(loop.get('retrain_triggered_at_s'))}")  # fmt: skip
        note = f"The timeline was {NOT_RECORDED}: the loop summary's figures ({when})."
    else:
        figures = [(str(d.get("thing_name")), d.get("stream_accuracy")) for d in devices]
        note = f"The timeline was {NOT_RECORDED}: each device's accuracy on the held-out stream."
    shown = [(label, float(v)) for label, v in figures if isinstance(v, int | float)]
    if not shown:
        return _missing()
    rows = "".join(_hbar_row(i, label, v, 1.0, _pct(v) or "", "#0072B2") for i, (label, v) in enumerate(shown))
    svg = _svg("chart-accuracy", "accuracy figures of this run", 40 * len(shown) + 16, f'<g class="data">{rows}</g>')
    return svg + f'<p class="note">{_e(note)}</p>'


def _uplink_counts(
    summary: Mapping[str, Any], timeline: Mapping[str, Any]
) -> tuple[float, float, float, float, str] | None:
    """(edge bytes, raw bytes, edge messages, raw messages, what they cover), from the timeline or the loop."""
    points = timeline.get("points") or []
    if points and "sent_bytes_incl_shadow" in points[-1]:
        last = points[-1]
        keys = ("sent_bytes_incl_shadow", "raw_bytes", "sent_messages_incl_shadow", "raw_messages")
        edge_b, raw_b, edge_m, raw_m = (float(last.get(k, 0)) for k in keys)
        return (
            edge_b,
            raw_b,
            edge_m,
            raw_m,
            "Everything the devices sent up over the run, against one message per reading.",
        )
    loop = summary.get("loop") or {}
    if "sample_bytes_uploaded" in loop:
        keys = ("sample_bytes_uploaded", "raw_equivalent_bytes", "sample_messages_uploaded", "raw_equivalent_messages")
        edge_b, raw_b, edge_m, raw_m = (float(loop.get(k, 0)) for k in keys)
        return edge_b, raw_b, edge_m, raw_m, "Sample uploads only (the loop summary), against one message per reading."
    return None


def _cost_tables(cost: Mapping[str, Any]) -> str:
    """Line items per device-month, then every assumption behind them."""
    edge = cost.get("edge_breakdown_usd_per_device_month") or {}
    raw = cost.get("raw_breakdown_usd_per_device_month") or {}
    items = list(dict.fromkeys([*edge, *raw]))
    parts = []
    if items:
        rows = [[i.replace("_", " "), _usd(edge.get(i)), _usd(raw.get(i))] for i in items]
        rows.append(["total", _usd(cost["edge_usd_per_device_month"]), _usd(cost["raw_usd_per_device_month"])])
        parts.append(_table(["line item (USD per device per month)", "edge", "raw streaming"], rows))
    even = cost.get("break_even") or {}
    if even.get("why"):
        parts.append(f'<h3>When the edge beats raw streaming</h3><p class="note">{_e(even["why"])}.</p>')
    assumptions = cost.get("assumptions") or {}
    parts.append('<h3>Pricing assumptions</h3><dl class="assumptions">' + _definition_list(assumptions) + "</dl>")
    return "".join(parts)


def _definition_list(mapping: Mapping[str, Any]) -> str:
    """Nested assumptions as a definition list; lists become bullet lists."""
    out = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            inner = "".join(f"<li><code>{_e(k)}</code> {_e(v)}</li>" for k, v in value.items())
        elif isinstance(value, list | tuple):
            inner = "".join(f"<li>{_e(v)}</li>" for v in value)
        else:
            out.append(f"<dt>{_e(key.replace('_', ' '))}</dt><dd>{_e(value)}</dd>")
            continue
        out.append(f"<dt>{_e(key.replace('_', ' '))}</dt><dd><ul>{inner}</ul></dd>")
    return "".join(out)


def _events_table(events: Sequence[Mapping[str, Any]]) -> str:
    """Every event in time order, for the labels the chart had no room for."""
    if not events:
        return ""
    rows = [
        [_clock(e.get("t_s")), _decision_badge(e.get("kind")),
         f"v{e['version']}" if e.get("version") is not None else "", e.get("text")]
        for e in sorted(events, key=lambda e: float(e.get("t_s", 0)))
    ]  # fmt: skip
    return (
        "<details><summary>All events</summary>"
        + _table(["time", "event", "version", "detail"], rows, raw_cols={1})
        + "</details>"
    )


# --- SVG -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """Scales from data (simulated seconds, a value) to SVG coordinates."""

    x_max: float
    y_max: float
    height: int = 260
    top: int = PAD_TOP
    """Room above the plot: event labels need PAD_TOP, a chart without them far less."""

    def x(self, t: float) -> float:
        """Horizontal position of time t."""
        return PAD_LEFT + (WIDTH - PAD_LEFT - PAD_RIGHT) * t / (self.x_max or 1)

    def y(self, v: float) -> float:
        """Vertical position of value v."""
        return self.height - PAD_BOTTOM - (self.height - PAD_BOTTOM - self.top) * v / (self.y_max or 1)


def _chart(chart_id: str, aria: str, frame: _Frame, body: Sequence[str], timeline: Mapping[str, Any],
           y_tick: Any, y_label: str, *, markers: bool = False) -> str:  # fmt: skip
    """Axes, grid, outage shading, the data, then (optionally) the event markers, as one SVG."""
    parts = [_outage_spans(frame, timeline), _axes(frame, y_tick, y_label), f'<g class="data">{"".join(body)}</g>']
    if markers:
        parts.append(_markers(frame, timeline.get("events") or []))
    return _svg(chart_id, aria, frame.height, "".join(parts))


def _svg(chart_id: str, aria: str, height: int, inner: str) -> str:
    """A responsive chart: fixed coordinates, scaled to the page's width by its viewBox."""
    return (f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{_e(aria)}" '
            f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">{inner}</svg>')  # fmt: skip


def _axes(frame: _Frame, y_tick: Any, y_label: str) -> str:
    """Horizontal grid with value labels, time ticks along the bottom, and both axis titles."""
    bottom, right = frame.y(0), WIDTH - PAD_RIGHT
    out = []
    for v in _ticks(frame.y_max):
        y = frame.y(v)
        out.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{PAD_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(y_tick(v))}</text>')
    minutes = frame.x_max >= 600
    for t in _ticks(frame.x_max / 60 if minutes else frame.x_max, count=8):
        x = frame.x(t * 60 if minutes else t)
        out.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom:.1f}" y2="{bottom + 5:.1f}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 18:.1f}" text-anchor="middle">{_e(_num(t))}</text>')
    out.append(f'<line class="axis" x1="{PAD_LEFT}" x2="{right}" y1="{bottom:.1f}" y2="{bottom:.1f}"/>')
    unit = "min" if minutes else "s"
    out.append(f'<text class="title" x="{(PAD_LEFT + right) / 2:.0f}" y="{frame.height - 6}" text-anchor="middle">'
               f"simulated time ({unit})</text>")  # fmt: skip
    mid = (frame.top + bottom) / 2
    out.append(
        f'<text class="title" transform="translate(16 {mid:.0f}) rotate(-90)" text-anchor="middle">{_e(y_label)}</text>'
    )
    return "".join(out)


def _polyline(frame: _Frame, points: Iterable[tuple[float, Any]], colour: str, *, width: float = 2.5,
              dash: str | None = None) -> str:  # fmt: skip
    """A line through the points, broken where a value is missing (a version not running then)."""
    path, pen_down = [], False
    for t, v in points:
        if v is None:
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{frame.x(t):.1f},{frame.y(float(v)):.1f}")
        pen_down = True
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-linejoin="round" stroke-linecap="round"{dashed}/>')  # fmt: skip


def _band(frame: _Frame, ts: Sequence[float], low: Sequence[float], high: Sequence[float], colour: str) -> str:
    """A filled band between two lines (one layer of a stacked area)."""
    upper = [f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in zip(ts, high, strict=True)]
    lower = [f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in zip(reversed(ts), reversed(low), strict=True)]
    return (f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" fill-opacity="0.75" '
            f'stroke="{colour}" stroke-width="1"/>')  # fmt: skip


def _outage_spans(frame: _Frame, timeline: Mapping[str, Any]) -> str:
    """Shaded spans from each outage's start to its end (or the end of the run)."""
    top, bottom = frame.top, frame.y(0)
    rects = []
    for start, end, text in _outages(timeline):
        x0, x1 = frame.x(start), frame.x(min(end, frame.x_max))
        rects.append(f'<rect class="outage" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1.5):.1f}" '
                     f'height="{bottom - top:.1f}"><title>{_e(text)}</title></rect>')  # fmt: skip
    return "".join(rects)


def _outages(timeline: Mapping[str, Any]) -> list[tuple[float, float, str]]:
    """(start, end, text) of each outage, pairing each start with the next end."""
    points = timeline.get("points") or []
    spans, open_at, text = [], None, ""
    for event in sorted(timeline.get("events") or [], key=lambda e: float(e.get("t_s", 0))):
        if event.get("kind") == "outage_start" and open_at is None:
            open_at, text = float(event["t_s"]), str(event.get("text") or "outage")
        elif event.get("kind") == "outage_end" and open_at is not None:
            spans.append((open_at, float(event["t_s"]), text))
            open_at = None
    if open_at is not None:
        spans.append((open_at, _t_max(points), text))
    return spans


def _markers(frame: _Frame, events: Sequence[Mapping[str, Any]]) -> str:
    """A dashed vertical line per event, labelled above the plot where a row has room."""
    row_ends = [-math.inf] * LABEL_ROWS
    out = []
    for event in sorted(events, key=lambda e: float(e.get("t_s", 0))):
        kind = str(event.get("kind", ""))
        if kind.startswith("outage"):
            continue  # drawn as shaded spans
        t = min(max(float(event.get("t_s", 0)), 0.0), frame.x_max)  # an event past the last point sits on the edge
        x, colour, text = frame.x(t), EVENT_COLOURS.get(kind, "#555"), _event_label(event)
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_TOP - 4}" y2="{frame.y(0):.1f}" '
                   f'stroke="{colour}"><title>{_e(event.get("text") or kind)}</title></line>')  # fmt: skip
        row = next((i for i, end in enumerate(row_ends) if x - end > LABEL_GAP_PX), None)
        if row is not None and kind != "decision":
            row_ends[row] = x
            y = PAD_TOP - 10 - 14 * (LABEL_ROWS - 1 - row)
            out.append(f'<text class="marker-label" x="{x + 3:.1f}" y="{y}" style="fill:{colour}">{_e(text)}</text>')
    return f'<g class="markers">{"".join(out)}</g>'


def _event_label(event: Mapping[str, Any]) -> str:
    """A short label: the kind, and the version it concerns."""
    kind = str(event.get("kind", "")).replace("_", " ")
    return f"{kind} v{event['version']}" if event.get("version") is not None else kind


def _bars(chart_id: str, aria: str, groups: Sequence[tuple[str, float, float, Any]]) -> str:
    """Edge against raw, one pair of horizontal bars per group, each group on its own scale."""
    rows, i = [], 0
    for label, edge, raw, fmt in groups:
        top = max(edge, raw) or 1
        ratio = f", 1/{raw / edge:,.0f} of raw" if edge > 0 and raw / edge >= 2 else ""
        rows.append(_hbar_row(i, f"{label}: edge", edge, top, f"{fmt(edge)}{ratio}", EDGE_COLOUR))
        rows.append(_hbar_row(i + 1, f"{label}: raw", raw, top, fmt(raw), RAW_COLOUR))
        i += 2
    return _svg(chart_id, aria, 40 * i + 16, f'<g class="data">{"".join(rows)}</g>')


def _hbar_row(index: int, label: str, value: float, top: float, text: str, colour: str) -> str:
    """One labelled horizontal bar (at least a sliver, so a tiny value still shows)."""
    left, span, y = 200, WIDTH - 200 - 220, 12 + 40 * index
    width = max(span * value / top, 2.0) if value > 0 else 0.0
    return (f'<text class="tick" x="{left - 10}" y="{y + 19}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{width:.1f}" height="26" rx="3" fill="{colour}"/>'
            f'<text class="value" x="{left + width + 8:.1f}" y="{y + 19}">{_e(text)}</text>')  # fmt: skip


# --- HTML ------------------------------------------------------------------------------------------------


def _section(title: str, anchor: str, body: str) -> str:
    """One titled card."""
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _missing(what: str = "") -> str:
    """The placeholder for a part the summary does not have."""
    prefix = f"{what}: " if what else ""
    return f'<p class="missing">{_e(prefix + NOT_RECORDED)}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, raw_cols: set[int] | None = None) -> str:
    """A plain table; cells are escaped unless their column holds markup made here."""
    raw_cols = raw_cols or set()
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if i in raw_cols else _e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="table"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _legend(entries: Sequence[tuple[str, str]], *, outages: bool = False) -> str:
    """Colour swatches under a chart, and the outage shading when the chart has some."""
    items = "".join(f'<span><span class="swatch" style="background:{c}"></span>{_e(t)}</span>' for t, c in entries)
    items += '<span><span class="swatch outage"></span>outage</span>' if outages else ""
    return f'<div class="legend">{items}</div>'


def _event_legend(timeline: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Legend entries for the event kinds this run has (outages are the shaded spans)."""
    kinds = dict.fromkeys(str(e.get("kind")) for e in timeline.get("events") or [])
    return [(k.replace("_", " "), EVENT_COLOURS.get(k, "#555")) for k in kinds if not k.startswith("outage")]


def _edge_raw_legend() -> list[tuple[str, str]]:
    """The two bars of every edge-against-raw chart."""
    return [("edge (this run)", EDGE_COLOUR), ("raw streaming, one message per reading", RAW_COLOUR)]


def _decision_badge(kind: Any) -> str:
    """A coloured badge for a decision or event kind (markup, its text escaped)."""
    text = str(kind or "")
    colour = {"halt": "#D55E00", "revert": "#D55E00", "abort": "#D55E00", "promote": "#009E73", "complete": "#009E73",
              "start": "#0072B2", "wait": "#8a8a8a"}.get(text, EVENT_COLOURS.get(text, "#555"))  # fmt: skip
    return f'<span class="badge" style="border-color:{colour};color:{colour}">{_e(text.replace("_", " "))}</span>'


def _page(title: str, body: str) -> str:
    """The document: a CSP that forbids every fetch, inline CSS, the checking script, the sections."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
<script>{_ERROR_SCRIPT}</script>
</head>
<body>
<main>
{body}
<footer>Written by edgeloop from summary.json. Self-contained: no scripts, fonts or images are fetched.</footer>
</main>
<script>{_CHECK_SCRIPT}</script>
</body>
</html>
"""


_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
"""Forbids every fetch: a chart or font that tried to load something would be blocked (and noted)."""
_CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --card:#fff; --bg:#f5f6f8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 48px; }
header h1 { font-size: 24px; margin: 4px 0 14px; letter-spacing: -0.01em; }
.tiles { display:grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.tile .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.tile .v { font-size:19px; font-weight:600; font-variant-numeric: tabular-nums; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 20px;
  margin-top:18px; }
h2 { font-size:18px; margin:0 0 10px; } h3 { font-size:15px; margin:18px 0 6px; }
svg.chart { width:100%; height:auto; display:block; margin:6px 0; }
svg .grid { stroke:#eceef2; } svg .axis { stroke:#9aa1ad; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill:var(--muted); }
svg text.title { font-size:12px; fill:#3b4252; } svg text.value { fill:var(--ink); font-weight:600; }
svg text.marker-label { font-size:11px; font-weight:600; }
svg .marker { stroke-width:1.3; stroke-dasharray:4 3; }
svg rect.outage { fill:#7a5c00; fill-opacity:.12; }
.legend { display:flex; flex-wrap:wrap; gap:6px 16px; align-items:center; color:var(--muted); font-size:13px; }
.swatch { display:inline-block; width:12px; height:12px; border-radius:3px; margin-right:6px; vertical-align:-1px; }
.swatch.outage { background:rgba(122,92,0,.22); margin-left:0; }
.missing { color:var(--muted); font-style:italic; margin:4px 0; }
.note { color:var(--muted); font-size:13px; margin:4px 0 10px; }
.table { overflow-x:auto; } table { border-collapse:collapse; width:100%; font-size:13.5px; margin:8px 0; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; background:#fafbfc; } tbody tr:nth-child(even) { background:#fbfbfd; }
td { font-variant-numeric: tabular-nums; }
.badge { display:inline-block; border:1px solid; border-radius:10px; padding:0 8px; font-size:12px;
  font-weight:600; }
dl.assumptions { display:grid; grid-template-columns: max-content 1fr; gap:4px 16px; font-size:13.5px; }
dl.assumptions dt { color:var(--muted); } dl.assumptions dd { margin:0; }
dl.assumptions ul { margin:0; padding-left:18px; }
details summary { cursor:pointer; color:var(--muted); margin-top:6px; }
footer { color:var(--muted); font-size:12px; margin-top:24px; text-align:center; }
"""
_ERROR_SCRIPT = """(function () {
  var root = document.documentElement, errors = [];
  function note(m) { errors.push(String(m)); root.setAttribute("data-errors", errors.join(" | ")); }
  window.addEventListener("error", function (e) {
    note(e.message || (e.target && (e.target.src || e.target.href)) || "error");
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) { note("blocked fetch: " + e.blockedURI); });
  var original = console.error;
  console.error = function () { note(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
})();"""
_CHECK_SCRIPT = """(function () {
  var root = document.documentElement, charts = document.querySelectorAll("svg.chart"), drawn = 0;
  charts.forEach(function (svg) {
    var data = svg.querySelector(".data"), box = data && data.getBBox();
    if (box && data.childElementCount > 0 && (box.width > 0 || box.height > 0)) {
      drawn += 1; svg.setAttribute("data-drawn", "1");
    } else { console.error("chart drew nothing: " + svg.id); }
  });
  root.setAttribute("data-charts", String(charts.length));
  root.setAttribute("data-rendered", String(drawn));
  root.setAttribute("data-height", String(Math.ceil(root.scrollHeight)));
})();"""


# --- formatting ------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text of any value (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _title(summary: Mapping[str, Any]) -> str:
    """The page's title: what ran."""
    scenario = (summary.get("run") or {}).get("scenario")
    return f"edgeloop run report: scenario {scenario}" if scenario else "edgeloop run report: demo"


def _palette(timeline: Mapping[str, Any]) -> dict[str, str]:
    """A colour per model version seen anywhere in the timeline, in version order."""
    seen: set[str] = set()
    for point in timeline.get("points") or []:
        seen |= set(point.get("accuracy") or {}) | set(point.get("devices_by_version") or {})
    ordered = sorted(seen, key=lambda v: (0, int(v), "") if str(v).isdigit() else (1, 0, str(v)))
    return {v: VERSION_COLOURS[i % len(VERSION_COLOURS)] for i, v in enumerate(ordered)}


def _t_max(points: Sequence[Mapping[str, Any]]) -> float:
    """The run's last simulated second on the timeline."""
    return max((float(p.get("t_s", 0)) for p in points), default=0.0) or 1.0


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to top."""
    if top <= 0:
        return [0.0]
    step = _step(top, count)
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def _step(top: float, count: int) -> float:
    """A 1-2-2.5-5 step giving about count ticks up to top."""
    raw = top / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw - 1e-12)


def _nice_top(value: float) -> float:
    """The axis top for a largest value: the next round tick above it."""
    if value <= 0:
        return 1.0
    step = _step(value, 5)
    return max(math.ceil(value / step - 1e-9) * step, step)


def _num(value: float) -> str:
    """A tick number without a needless .0."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _pct_tick(value: float) -> str:
    """An accuracy tick."""
    return f"{value * 100:.0f}%"


def _int_tick(value: float) -> str:
    """A count tick."""
    return _num(value)


def _pct(value: Any) -> str | None:
    """A share as a percentage, or None."""
    return f"{float(value) * 100:.1f}%" if isinstance(value, int | float) else None


def _usd(value: Any) -> str:
    """Dollars with enough decimals for sub-cent figures."""
    if not isinstance(value, int | float):
        return ""
    return f"${value:,.2f}" if abs(value) >= 10 else f"${value:,.4f}"


def _count(value: Any) -> str:
    """A count with thousands separators."""
    if not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _bytes(value: float) -> str:
    """Bytes in the largest sensible binary unit."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"


def _clock(t_s: Any) -> str:
    """Simulated seconds as m:ss (or h:mm:ss)."""
    if not isinstance(t_s, int | float):
        return "n/a"
    minutes, seconds = divmod(round(t_s), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _when(at: Any, first: Any) -> str:
    """A decision's wall time (UTC) and its offset from the run's first decision."""
    if not isinstance(at, int | float):
        return ""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
    return f"{stamp} (+{_clock(at - first)})" if isinstance(first, int | float) else stamp


def _ring_name(rollout: Mapping[str, Any], ring: Any) -> str:
    """The ring's name where the rollout reached it, else its index."""
    reached = rollout.get("rings_reached") or []
    return str(reached[ring]) if isinstance(ring, int) and 0 <= ring < len(reached) else f"ring {ring}"


def _devices_count(summary: Mapping[str, Any]) -> int | None:
    """Devices in the run, from the device list or the timeline."""
    if summary.get("devices"):
        return len(summary["devices"])
    points = (summary.get("timeline") or {}).get("points") or []
    return max((sum((p.get("devices_by_version") or {}).values()) for p in points), default=None) or None


def _rollout_counts(rollouts: Sequence[Mapping[str, Any]]) -> str | None:
    """'2 completed, 1 halted' style."""
    if not rollouts:
        return None
    outcomes: dict[str, int] = {}
    for rollout in rollouts:
        outcomes[str(rollout.get("outcome"))] = outcomes.get(str(rollout.get("outcome")), 0) + 1
    return ", ".join(f"{n} {o}" for o, n in outcomes.items())


def _records_lost(summary: Mapping[str, Any]) -> str | None:
    """Records lost, from reliability or the plain demo's records section."""
    for section, key in (("reliability", "records_lost"), ("records", "lost")):
        value = (summary.get(section) or {}).get(key)
        if isinstance(value, int):
            return _count(value)
    return None
