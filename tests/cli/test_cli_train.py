"""`edgeloop train` forwards its options to the training entry point and maps its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeloop.cli.main import main
from edgeloop.core.manifest import ModelManifest


def test_train_forwards_options_and_writes_model_and_manifest(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    assert main(["train", "--model-dir", str(model_dir), "--max-iter", "40", "--hidden", "16"]) == 0
    manifest = ModelManifest.from_json((model_dir / "manifest.json").read_bytes())
    assert manifest.lineage.hyperparameters["max_iter"] == "40"
    assert (model_dir / manifest.selected).is_file()


def test_train_out_prints_the_variant_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "model"
    assert main(["train", "--out", str(model_dir), "--max-iter", "40", "--hidden", "16"]) == 0
    manifest = ModelManifest.from_json((model_dir / "manifest.json").read_bytes())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["precision", "file", "bytes", "accuracy", "drop", "p50", "µs", "verdict"]
    assert [line.split()[0] for line in lines[1:4]] == ["fp32", "int8-dynamic", "int8-static"]
    (selected,) = [line for line in lines if line.endswith("<- selected")]
    assert selected.split()[:2] == [manifest.selected_artifact.precision, manifest.selected]
    assert f"{manifest.holdout_accuracy:.4f}" in selected.split()
    assert lines[4].startswith("gate: accuracy drop <= 0.0100 vs fp32: passed; selected ")
    assert len(lines) == 5


def test_train_with_nan_data_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "data.csv").write_text("a,b,label\n1,2,0\nnan,3,1\n4,5,0\n5,6,1\n")
    model_dir = tmp_path / "model"
    code = main(
        ["train", "--model-dir", str(model_dir), "--dataset", "csv", "--train", str(channel), "--model-name", "tab"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "NaN" in err[0]
    assert not (model_dir / "manifest.json").exists()
    assert not (model_dir / "model.onnx").exists()


def test_options_for_other_commands_are_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--max-iter", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --max-iter 3" in capsys.readouterr().err


def test_train_help_names_the_command_and_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: edgeloop train ")
    assert "python -m edgeloop.training" not in text
    assert "one of mlp, trees, linear, auto (default mlp)" in text
    assert "one of accuracy, macro_f1 (default accuracy)" in text
    assert "builtin:digits, builtin:breast_cancer" in text
    assert "family trees only (default 50)" in text  # --n-estimators


def test_the_module_entry_point_keeps_its_own_name(capsys: pytest.CaptureFixture[str]) -> None:
    from edgeloop.training.conventions import parse_arguments

    with pytest.raises(SystemExit):
        parse_arguments(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m edgeloop.training ")


def test_an_unknown_train_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--max-iterations", "3"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "unrecognized arguments: --max-iterations 3" in line
