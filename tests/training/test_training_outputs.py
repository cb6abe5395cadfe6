"""Publishing outputs: all files appear together or not at all; golden rows are chosen to be telling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeloop.core.errors import ConfigError
from edgeloop.training.model import golden_rows
from edgeloop.training.outputs import prepare_dirs, publish, write_atomic


def test_publish_into_a_missing_dir_creates_it_with_every_file(tmp_path: Path) -> None:
    paths = publish(tmp_path / "model", {"model.onnx": b"graph", "manifest.json": b"{}"})
    assert paths == {
        "model.onnx": tmp_path / "model" / "model.onnx",
        "manifest.json": tmp_path / "model" / "manifest.json",
    }
    assert (tmp_path / "model" / "model.onnx").read_bytes() == b"graph"
    assert (tmp_path / "model" / "manifest.json").read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "no staging folder is left behind"
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_publish_into_an_existing_dir_replaces_our_files_and_keeps_others(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(b"old")
    (model_dir / "notes.txt").write_bytes(b"user's")
    publish(model_dir, {"model.onnx": b"new", "manifest.json": b"{}"})
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == {
        "model.onnx": b"new",
        "manifest.json": b"{}",
        "notes.txt": b"user's",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failure_while_staging_leaves_the_model_dir_untouched(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        publish(model_dir, {"model.onnx": b"new", "missing/manifest.json": b"{}"})
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == {"model.onnx": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_write_atomic_leaves_only_the_final_file(tmp_path: Path) -> None:
    write_atomic(tmp_path / "metrics.json", b"1")
    write_atomic(tmp_path / "metrics.json", b"2")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"metrics.json": b"2"}


def test_prepare_dirs_creates_parents_and_refuses_a_file_as_model_dir(tmp_path: Path) -> None:
    prepare_dirs(tmp_path / "a" / "model", tmp_path / "b" / "out")
    assert (tmp_path / "a").is_dir()
    assert (tmp_path / "b" / "out").is_dir()
    assert not (tmp_path / "a" / "model").exists(), "the model dir appears only when the model does"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^model_dir: .* exists and is not a directory$"):
        prepare_dirs(tmp_path / "file", None)
    with pytest.raises(ConfigError, match=r"^output_data_dir: cannot write in .*/file/out'"):
        prepare_dirs(tmp_path / "model", tmp_path / "file" / "out")


def test_golden_rows_take_each_class_most_confident_row_first() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    confidence = np.array([0.99, 0.98, 0.97, 0.60, 0.90, 0.55])
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    assert golden_rows(labels, probabilities, 3).tolist() == [0, 4, 5]
    assert golden_rows(labels, probabilities, 5).tolist() == [0, 1, 3, 4, 5]
    assert golden_rows(labels, probabilities, 10).tolist() == [0, 1, 2, 3, 4, 5]
