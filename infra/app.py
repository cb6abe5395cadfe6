"""The CDK app: `npx cdk synth` runs this file (see cdk.json); tests call build_app() in-process."""

# ruff: noqa: E402 - the path fix below must run before anything imports `constructs`
from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    # Run as a script, Python puts infra/ first on sys.path, where infra/constructs would shadow the
    # `constructs` library; put the repository root there instead so `edgeloop` and `infra` import.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO_ROOT / "infra"]
    sys.path.insert(0, str(_REPO_ROOT))

import logging
import os
import tempfile
from collections.abc import Mapping

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from edgeloop.core.errors import EdgeloopError
from infra.config import StackConfig, check_known_keys
from infra.stacks.edgeloop_stack import EdgeloopStack

log = logging.getLogger(__name__)

FEATURE_FLAGS: Mapping[str, object] = {
    # Grant S3 log delivery by bucket policy, not the LogDeliveryWrite ACL that ACL-less buckets refuse.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}
"""CDK feature flags the stack relies on, set here so `cdk synth` and in-process builds agree."""


def build_app(
    *,
    staging_dir: Path,
    context: Mapping[str, object] | None = None,
    outdir: str | None = None,
) -> tuple[cdk.App, EdgeloopStack]:
    """Build the app and its one stack; assets are staged under staging_dir, which must outlive synth."""
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    check_known_keys(app.node.get_all_context())
    config = StackConfig.from_context(app.node.try_get_context)
    config.check_target(os.environ)
    stack = EdgeloopStack(app, "Edgeloop", config=config, staging_dir=staging_dir)
    if config.cdk_nag:
        # Also copy each acknowledgment (rule and reason) into the template's Metadata as an audit trail.
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    return app, stack


def main() -> int:
    """Synthesize into the CLI's output folder, staging assets in a temporary folder CDK copies from."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with tempfile.TemporaryDirectory(prefix="edgeloop-assets-") as staging:
            app, stack = build_app(staging_dir=Path(staging))
            app.synth()
    except EdgeloopError as exc:
        log.error("cannot synthesize edgeloop: %s", exc)
        return exc.exit_code
    log.info("synthesized %s into %s", stack.stack_name, app.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
