"""`edgeloop models ...` against SageMaker on moto: output and the registry's state after each command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support import FAKE_ONNX, manifest_for

from edgeloop.cli.main import main
from edgeloop.cli.models import build_model_trainer, model_trainer_arguments
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.core.errors import InvalidTransitionError, UsageError
from edgeloop.core.manifest import Gate
from edgeloop.core.registry import ApprovalStatus


@pytest.fixture
def registry(sagemaker: Any) -> SageMakerRegistry:
    """Two versions of digits: v1 Approved (gate passed), v2 whose gate failed, registered Rejected."""
    registry = SageMakerRegistry(sagemaker)
    registry.ensure_group("digits")
    child = manifest_for(FAKE_ONNX, accuracy=0.97)
    for job, manifest, approval in (
        ("edgeloop-digits-aaa", manifest_for(FAKE_ONNX, accuracy=0.96), ApprovalStatus.APPROVED),
        ("edgeloop-digits-bbb", replace(child, gate=Gate("accuracy", 0.01, 0.0, False, minimum=0.99)), "Rejected"),
        ("edgeloop-digits-ccc", replace(child, lineage=replace(child.lineage, parent_version=1)), "Pending"),
    ):
        registry.register(
            manifest,
            training_job=job,
            artifact_uri=f"s3://edgeloop-artifacts/models/digits/{job}/model.onnx",
            manifest_uri=f"s3://edgeloop-artifacts/models/digits/{job}/manifest.json",
            approval=ApprovalStatus(approval) if approval != "Pending" else ApprovalStatus.PENDING,
            signed=True,
        )
    return registry


def test_list_prints_every_version_with_status_accuracy_and_gate(
    registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--model", "digits"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["VERSION", "STATUS", "ACCURACY", "SIGNED", "PARENT", "TRAINING", "JOB", "GATE"]
    assert out[1].split()[:6] == ["1", "Approved", "0.9600", "yes", "-", "edgeloop-digits-aaa"]
    assert out[2].split()[:2] == ["2", "Rejected"]
    assert "FAILED: fp32 accuracy" in out[2]
    assert out[3].split()[:5] == ["3", "PendingManualApproval", "0.9700", "yes", "1"]


def test_list_of_a_model_without_versions_says_so(sagemaker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    SageMakerRegistry(sagemaker).ensure_group("wine")
    assert main(["models", "list", "--model", "wine"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(no versions registered yet)"


def test_list_json_is_machine_readable(registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["status"], r["deployable"]) for r in records] == [
        (1, "Approved", True),
        (2, "Rejected", False),
        (3, "PendingManualApproval", True),
    ]


def test_show_prints_metadata_lineage_and_the_manifest_uri(
    registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "show", "3"]) == 0
    out = capsys.readouterr().out
    assert "manifest_uri:         s3://edgeloop-artifacts/models/digits/edgeloop-digits-ccc/manifest.json" in out
    assert "signature_uri:        s3://edgeloop-artifacts/models/digits/edgeloop-digits-ccc/manifest.json.sig" in out
    assert "parent_version:       1" in out
    assert "component:            com.edgeloop.model.digits 3.0.0" in out


def test_approve_sets_the_status_and_records_the_reason(
    registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "approve", "3", "--reason", "canary site A looked fine"]) == 0
    assert capsys.readouterr().out.strip() == "digits v3: PendingManualApproval -> Approved"
    record = registry.get("digits", 3)
    assert (record.approval, record.approval_description) == (ApprovalStatus.APPROVED, "canary site A looked fine")
    assert record.parent_version == 1, "the metadata survives UpdateModelPackage"


def test_reject_sets_the_status(registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "reject", "1", "--reason", "drift on site B"]) == 0
    assert "Approved -> Rejected" in capsys.readouterr().out
    assert registry.get("digits", 1).approval is ApprovalStatus.REJECTED


def test_approving_a_version_whose_gate_failed_is_refused_and_changes_nothing(
    registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["models", "approve", "2", "--reason", "ship it anyway"])
    assert code == InvalidTransitionError.exit_code
    err = capsys.readouterr().err
    assert "digits v2 did not pass its accuracy gate" in err
    assert len(err.strip().splitlines()) == 1
    assert registry.get("digits", 2).approval is ApprovalStatus.REJECTED


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["models", "show", "9"], 4, "edgeloop-digits has no version 9"),
        (["models", "show", "0"], 2, "'0' is not a version number"),
        (["models", "approve", "3"], 2, "--reason"),
        (["models", "approve", "3", "--reason", "  "], 2, "--reason: must say why"),
        (["models", "list", "--model", "Bad_Name"], 2, "model_name"),
    ],
)
def test_bad_input_exits_with_the_errors_code_and_names_the_problem(
    registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    try:
        result = main(argv)
    except SystemExit as exc:  # argparse's own errors
        result = int(str(exc.code))
    assert result == code
    err = capsys.readouterr().err
    assert message in err


def test_the_endpoint_url_option_reaches_the_client(
    registry: SageMakerRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["models", "list", "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"])
    assert code == 5, "nothing listens on port 9, so the registry call fails as a RegistryError"
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_model_trainer_arguments_run_the_training_module_under_the_output_prefix(tmp_path: Path) -> None:
    arguments = model_trainer_arguments(
        model_name="digits",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/edgeloop-training:0.1.0",
        role="arn:aws:iam::123456789012:role/edgeloop-dev-training",
        output="s3://edgeloop-data/training-output/",
        instance_type="ml.m5.large",
        source_dir=tmp_path,
        hyperparameters=["max_iter=300", "hidden=32"],
    )
    assert arguments["source_code"] == {"source_dir": str(tmp_path), "command": "python -m edgeloop.training"}
    assert arguments["output_data_config"] == {"s3_output_path": "s3://edgeloop-data/training-output"}
    assert arguments["hyperparameters"] == {"max_iter": "300", "hidden": "32", "model_name": "digits"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"role": "edgeloop-training"}, "--role"),
        ({"output": "/tmp/out"}, "--output"),
        ({"instance_type": "m5.large"}, "--instance-type"),
        ({"hyperparameters": ["max_iter"]}, "--hyperparameter"),
    ],
)
def test_model_trainer_arguments_name_the_bad_option(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {
        "model_name": "digits",
        "image": "img",
        "role": "arn:aws:iam::123456789012:role/r",
        "output": "s3://b/training-output/",
        "instance_type": "ml.m5.large",
        "source_dir": tmp_path,
        "hyperparameters": [],
        **change,
    }
    with pytest.raises(UsageError) as info:
        model_trainer_arguments(**values)
    assert info.value.field == field


def test_train_remote_dry_run_prints_the_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["models", "train-remote", "--image", "img", "--role", "arn:aws:iam::1:role/r"]
    argv += ["--output", "s3://b/training-output/", "--source-dir", str(tmp_path), "--dry-run", "-p", "seed=3"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["hyperparameters"] == {"seed": "3", "model_name": "digits"}


def test_without_the_sagemaker_extra_train_remote_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sagemaker", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "sagemaker.train", None)
    with pytest.raises(UsageError, match=r"pip install 'edgeloop\[sagemaker\]'"):
        build_model_trainer({})
