"""report.html: self-contained, every section drawn or marked missing, and rendered by a real headless Chromium."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import load_event

from edgeloop.local.report import NOT_RECORDED, REPORT_FILE, cost_section, render_report, write_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Screenshots land here (git-ignored) so CI can keep them."""
CHROMIUM_TIMEOUT_S = 60
WINDOW_WIDTH = 1280


def full_summary() -> dict[str, Any]:
    """A scenario summary with every section: drift, retrain, a v2 rollout, an outage and a restart."""
    step, points, produced, delivered, buffered = 30.0, [], 0, 0, 0
    uplink_b = uplink_m = raw_b = raw_m = 0
    for i in range(121):
        t = i * step
        offline = 1980 <= t < 2400
        produced += 50
        buffered = buffered + 50 if offline else max(0, buffered - 150)
        delivered = produced - buffered
        raw_b, raw_m = raw_b + 50 * 560, raw_m + 50
        uplink_b, uplink_m = (uplink_b, uplink_m) if offline else (uplink_b + 2600 + 900 * (buffered > 0), uplink_m + 5)
        on_v2 = 0 if t < 1500 else 1 if t < 1620 else 5
        v1_acc = 0.96 if t < 960 else 0.70
        points.append(
            {
                "t_s": t, "online": 0 if offline else 5, "buffered": buffered, "produced": produced,
                "delivered": delivered, "sent_bytes_incl_shadow": uplink_b, "sent_messages_incl_shadow": uplink_m,
                "raw_bytes": raw_b, "raw_messages": raw_m,
                "accuracy": {"1": v1_acc if on_v2 < 5 else None, "2": 0.955 if on_v2 else None},
                "devices_by_version": {"1": 5 - on_v2, "2": on_v2},
            }
        )  # fmt: skip
    events = [
        {"t_s": 900.0, "kind": "drift", "text": "shift on 60% of devices", "version": None},
        {"t_s": 960.0, "kind": "decision", "text": "fleet drift 0.31 over 0.2", "version": 1},
        {"t_s": 1260.0, "kind": "retrain", "text": "140 labels; drift for 300 s", "version": 2},
        {"t_s": 1500.0, "kind": "rollout_start", "text": "v2 to canary", "version": 2},
        {"t_s": 1680.0, "kind": "rollout_end", "text": "v2 completed", "version": 2},
        {"t_s": 1980.0, "kind": "outage_start", "text": "uplink down <all devices>", "version": None},
        {"t_s": 2400.0, "kind": "outage_end", "text": "uplink back", "version": None},
        {"t_s": 2700.0, "kind": "restart", "text": "edgeloop-device-003 restarted", "version": 2},
    ]
    drift = load_event("summary_drift")
    summary = {key: drift[key] for key in ("loop", "rollouts", "run")}  # the runner's figures, none of its timeline
    summary["timeline"] = {"step_s": step, "points": points, "events": events}
    summary["reliability"] = {
        "records_produced": produced, "records_delivered": delivered, "records_lost": 0, "duplicates_received": 12,
        "duplicates_ingested": 0, "max_buffer_depth": 700, "outage_s": 400.0,
    }  # fmt: skip
    summary["rollouts"][1]["decisions"].append(
        {"at": 1796125700.0, "ring": 1, "decision": "halt", "reason": "error_rate 0.5 > 0.02 <script>alert(1)</script>"}
    )
    return summary


# --- the HTML itself -----------------------------------------------------------------------------------------


@pytest.fixture(params=["full", "summary_demo", "summary_drift", "summary_fleet"])
def summary(request: pytest.FixtureRequest) -> dict[str, Any]:
    return full_summary() if request.param == "full" else load_event(request.param)


def test_report_is_self_contained(summary: dict[str, Any]) -> None:
    page = render_report(summary)
    fetches = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert fetches == []
    for loader in ("<link", "@import", "@font-face", "<iframe", "<object", "<embed"):
        assert loader not in page
    assert "default-src 'none'" in page  # the browser refuses any fetch a later change might add


def test_every_chart_has_an_svg_with_data(summary: dict[str, Any]) -> None:
    page = render_report(summary)
    charts = re.findall(r'<svg class="chart" id="([\w-]+)".*?<g class="data">(.*?)</g>', page, re.DOTALL)
    assert charts, "no charts at all"
    for chart_id, data in charts:
        assert re.search(r"<(path|polygon|rect)[^>]+(d|points|width)=\"[^\"]*\d", data), f"{chart_id} is empty"


def test_the_full_summary_draws_every_section() -> None:
    page = render_report(full_summary())
    for chart in ("accuracy", "rings", "buffer", "delivery", "uplink", "cost"):
        assert f'id="chart-{chart}"' in page
    assert NOT_RECORDED not in page
    for label in ("drift", "retrain v2", "rollout start v2", "rollout end v2", "restart v2"):
        assert f">{label}</text>" in page
    assert page.count('<rect class="outage"') == 4  # shaded on every chart over time
    for text in ("Pricing assumptions", "us-east-1", "iot-core/pricing", "$0.16"):
        assert text in page


def test_the_plain_demo_summary_says_what_it_lacks() -> None:
    page = render_report(load_event("summary_demo"))
    for section in ("accuracy", "rings", "buffer"):
        body = re.search(rf'<section id="{section}">(.*?)</section>', page, re.DOTALL)
        assert body is not None
        assert NOT_RECORDED in body.group(1), section
    for device in load_event("summary_demo")["devices"]:  # each device's stream accuracy instead of the timeline
        assert f"{device['stream_accuracy'] * 100:.1f}%" in page
    assert "cost estimate: " + NOT_RECORDED in page
    assert "edgeloop-device-005" in page  # the device table
    assert "ring canary passed" in page  # the decisions table


def test_a_stepped_fleet_summary_draws_every_section_from_what_the_runner_wrote() -> None:
    page = render_report(load_event("summary_fleet"))  # the bad-day scenario of tests/local/test_local_fleet.py
    for chart in ("accuracy", "rings", "buffer", "delivery", "uplink", "cost"):
        assert f'id="chart-{chart}"' in page
    assert NOT_RECORDED not in page
    assert page.count('<rect class="outage"') >= 3


def test_the_drift_summary_without_a_timeline_shows_the_loop_figures() -> None:
    summary = load_event("summary_drift")
    del summary["timeline"]  # as the runner wrote it before it kept one
    loop = summary["loop"]
    minutes, seconds = divmod(round(loop["drift_detected_at_s"]), 60)
    page = render_report(summary)
    for text in ('id="chart-accuracy"', "pre drift", f"drift detected at {minutes}:{seconds:02d}"):
        assert text in page
    for figure in ("pre_drift_accuracy", "post_drift_accuracy", "recovered_accuracy", "oracle_accuracy"):
        assert f"{loop[figure] * 100:.1f}%" in page, figure
    assert "Sample uploads only" in page


@pytest.mark.parametrize(
    "summary",
    [
        {},
        {"timeline": {"step_s": 30.0, "points": [], "events": []}},
        {"timeline": {"points": [{"t_s": 0.0, "online": 2}, {"t_s": 30.0, "online": 1}]}},
        {"timeline": {"points": [{"t_s": 30.0, "accuracy": {"1": None}}], "events": [{"t_s": 99.0, "kind": "odd"}]}},
        {"rollouts": [{"version": 1, "decisions": [{"ring": 7, "decision": "start"}]}], "run": {"wall_s": "?"}},
    ],
    ids=["empty", "empty-timeline", "online-only", "no-accuracy", "sparse-rollout"],
)
def test_a_sparse_summary_renders_with_placeholders(summary: dict[str, Any]) -> None:
    page = render_report(summary)
    assert page.startswith("<!DOCTYPE html>")
    assert NOT_RECORDED in page
    assert cost_section(summary) is None


def test_text_is_escaped() -> None:
    page = render_report(full_summary())
    assert "<script>alert(1)</script>" not in page
    assert html.escape("<script>alert(1)</script>") in page
    assert "uplink down &lt;all devices&gt;" in page


def test_cost_is_priced_from_the_timeline_when_the_summary_has_none() -> None:
    cost = cost_section(full_summary())
    assert cost is not None
    usage = cost["assumptions"]["usage"]
    assert (usage["devices"], usage["duration_s"], usage["readings"]) == (5, 3600.0, 121 * 50)
    assert usage["connected_minutes"] == pytest.approx(5 * (3600 - 420) / 60)
    assert 0 < cost["edge_usd_per_device_month"] < cost["raw_usd_per_device_month"]


def test_a_cost_the_summary_has_is_shown_as_is() -> None:
    summary = full_summary()
    summary["cost"] = {"edge_usd_per_device_month": 0.1234, "raw_usd_per_device_month": 9.87, "assumptions": {"x": 1}}
    assert cost_section(summary) == summary["cost"]
    page = render_report(summary)
    assert "$0.1234" in page
    assert "$9.8700" in page


def test_the_cost_section_says_when_the_edge_beats_raw_streaming() -> None:
    cost = cost_section(full_summary())
    assert cost is not None
    even = cost["break_even"]
    assert even["requests_per_s_per_device"] < even["run_requests_per_s_per_device"]  # 50 readings a step: edge wins
    page = render_report(full_summary())
    assert "When the edge beats raw streaming" in page
    assert html.escape(str(even["why"])) in page


def curve() -> list[dict[str, Any]]:
    return [
        {"stream": s, "budget": b, "recovered_accuracy": r, "oracle_accuracy": 0.9, "bytes_ratio": b / 2,
         "detection_delay_rows": 300, "false_alarms": 0}
        for s, base in (("sea-abrupt", 0.8), ("led-abrupt", 0.6))
        for b, r in ((0.01, base), (0.05, base + 0.05), (0.1, base + 0.08))
    ]  # fmt: skip


def test_a_budget_curve_is_drawn_per_stream_with_its_oracle() -> None:
    page = render_report({**full_summary(), "budget_curve": curve()})
    section = page[page.index('<section id="budget">') :]
    section = section[: section.index("</section>")]
    assert section.count('stroke-dasharray="5 4"') == 2  # one oracle line per stream
    assert section.count("<path") == 4
    assert section.count("<circle") == 6  # a dot per recovered point
    for label in ("sea-abrupt", "led-abrupt", "1%", "5%", "10%", "85.0%"):
        assert label in section
    row = "<tr><td>led-abrupt</td><td>10%</td><td>68.0%</td><td>90.0%</td><td>300</td><td>0</td><td>5.00%</td>"
    assert row in section


def test_a_run_without_a_curve_has_no_budget_section() -> None:
    assert '<section id="budget">' not in render_report(full_summary())


def test_write_report_writes_atomically_beside_the_summary(tmp_path: Path) -> None:
    path = write_report(tmp_path / "out", load_event("summary_demo"))
    assert path == tmp_path / "out" / REPORT_FILE
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == [REPORT_FILE]


def test_write_report_names_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="--out"):
        write_report(blocker / "out", load_event("summary_demo"))


# --- in a real browser ---------------------------------------------------------------------------------------


def _chromium() -> str | None:
    """Debian's chromium (installed by .ci/run), or another Chromium on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throwaway profile, console messages logged to stderr."""
    command = [binary, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
               "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
               *args]  # fmt: skip
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, env=env, check=False)


@pytest.fixture
def chromium() -> str:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium)")
    return binary


def _rendered(binary: str, page: Path, profile: Path) -> tuple[dict[str, str], list[str]]:
    """What the page's own script recorded on <html> once loaded, and every console line Chromium logged."""
    dumped = _run_chromium(binary, profile, f"--window-size={WINDOW_WIDTH},900", "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dumped.stdout)
    assert root, dumped.stdout[:500]
    console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0))), console


@pytest.mark.parametrize("name", ["full", "summary_demo", "summary_fleet"])
def test_chromium_renders_every_chart_without_console_errors(chromium: str, name: str, tmp_path: Path) -> None:
    summary = full_summary() if name == "full" else load_event(name)
    page = write_report(tmp_path, summary)
    charts = render_report(summary).count('<svg class="chart"')

    attributes, console = _rendered(chromium, page, tmp_path / "profile-dom")
    assert attributes.get("data-errors") is None, attributes["data-errors"]
    assert attributes.get("data-charts") == str(charts)
    assert attributes.get("data-rendered") == str(charts), "a chart's data drew nothing (zero bounding box)"
    assert console == [], console

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"report-{name}.png"
    screenshot.unlink(missing_ok=True)
    height = min(int(attributes["data-height"]) + 8, 16_000)  # the whole page, however long
    shot = _run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={screenshot}",
                         f"--window-size={WINDOW_WIDTH},{height}", "--hide-scrollbars", page.as_uri())  # fmt: skip
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000
    print(f"report screenshot: {screenshot}")


def test_the_browser_check_can_fail(chromium: str, tmp_path: Path) -> None:
    broken = '<img src="https://example.invalid/x.png"><svg class="chart" id="chart-empty"><g class="data"></g></svg>'
    page = render_report(load_event("summary_demo")).replace("</main>", broken + "</main>")
    (tmp_path / REPORT_FILE).write_text(page)
    attributes, console = _rendered(chromium, tmp_path / REPORT_FILE, tmp_path / "profile")
    assert "blocked fetch: https://example.invalid/x.png" in attributes["data-errors"]
    assert "chart drew nothing: chart-empty" in attributes["data-errors"]
    assert int(attributes["data-rendered"]) == int(attributes["data-charts"]) - 1
    assert any("Content Security Policy" in line for line in console), console
