"""The templates as CloudFormation will judge them (cfn-lint) and the app as users synthesize it (npx cdk synth)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_CLI = "aws-cdk@2"
CLI_TIMEOUT_S = 900
"""npx may download the CLI first (a few MB from the npm registry); synth itself takes seconds."""
ACCEPTED_WARNINGS = {
    "W3005": "CDK adds a DependsOn on a Lambda's role next to the GetAtt of the same role (its own ordering, "
    "for the role's policy); the redundancy is harmless and not ours to remove.",
}
"""cfn-lint warnings the templates may carry, each with the reason; every error fails."""
CLI_ONLY_RESOURCES = {"CDKMetadata"}
"""The CLI turns on version reporting, which adds this resource; in-process synth leaves it out."""


def _findings(template_path: Path, region: str) -> list[tuple[str, str, str]]:
    """(severity, rule id, message) of every cfn-lint match in one template."""
    return [
        (m.rule.severity, m.rule.id, f"{m.path_string}: {m.message}")
        for m in lint(template_path.read_text(), regions=[region])
    ]


def _templates(outdir: Path) -> list[Path]:
    templates = sorted(outdir.glob("*.template.json"))
    assert templates, f"no template in {outdir}"
    return templates


def _lint_clean(outdir: Path, region: str) -> None:
    for template in _templates(outdir):
        findings = _findings(template, region)
        assert [f for f in findings if f[0] == "error"] == [], template.name
        assert {rule for severity, rule, _ in findings if severity != "error"} <= set(ACCEPTED_WARNINGS), findings


def test_cfn_lint_reports_no_error_on_any_synthesized_template(synthesized: Any) -> None:
    _lint_clean(synthesized.outdir, synthesized.stack.config.region)


def test_cfn_lint_would_report_a_broken_template(tmp_path: Path, synthesized: Any) -> None:
    broken = json.loads(next(iter(_templates(synthesized.outdir))).read_text())
    bucket = next(r for r in broken["Resources"].values() if r["Type"] == "AWS::S3::Bucket")
    bucket["Properties"]["VersioningConfiguration"] = {"Status": "Sometimes"}
    (tmp_path / "Broken.template.json").write_text(json.dumps(broken))
    with pytest.raises(AssertionError, match=r"Broken\.template\.json"):
        _lint_clean(tmp_path, synthesized.stack.config.region)


def _cli_env() -> dict[str, str]:
    """The CLI runs cdk.json's `python3 infra/app.py`: put this interpreter's python3 first, drop credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def cli_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`npx cdk synth` offline, as the README runs it (with cdk-nag on, as cdk.json sets it)."""
    if shutil.which("npx") is None:
        pytest.skip("npx (Node.js) is not installed: the CDK CLI synth needs Node.js 20+ with npm")
    outdir = tmp_path_factory.mktemp("cli") / "cdk.out"
    done = subprocess.run(
        ["npx", "--yes", CDK_CLI, "synth", "-q", "-o", str(outdir)],
        cwd=REPO_ROOT,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return outdir


def test_the_cli_synthesizes_the_app_and_its_templates_lint_clean(cli_outdir: Path, synthesized: Any) -> None:
    _lint_clean(cli_outdir, synthesized.stack.config.region)


def test_the_cli_synthesizes_what_the_tests_check_with_the_same_asset_hashes(
    cli_outdir: Path, synthesized: Any
) -> None:
    [template] = _templates(cli_outdir)
    cli = json.loads(template.read_text())
    assert set(cli["Resources"]) - CLI_ONLY_RESOURCES == set(synthesized.template["Resources"])
    # Asset folders are named by the hash of their content: equal names mean byte-for-byte equal assets.
    assert {p.name for p in cli_outdir.glob("asset.*")} == {p.name for p in synthesized.outdir.glob("asset.*")}
