"""Datasets: the user CSV path end to end, and every kind of bad data refused by name, leaving no model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from edgeloop.core.errors import ConfigError, TrainingDataError
from edgeloop.core.manifest import ModelManifest
from edgeloop.training import TrainingConfig, load_dataset, main, train
from edgeloop.training.data import DIGITS


def _separable_csv(rows_per_class: int = 20, label_column: str = "species") -> str:
    """Three well separated clusters in four features, labelled by name."""
    rng = np.random.default_rng(7)
    lines = [f"f1,f2,{label_column},f3,f4"]
    for offset, name in enumerate(("eel", "cat", "dog")):
        for row in rng.normal(loc=offset * 5.0, scale=0.5, size=(rows_per_class, 4)):
            lines.append(f"{row[0]:.3f},{row[1]:.3f},{name},{row[2]:.3f},{row[3]:.3f}")
    return "\n".join(lines) + "\n"


def _channel(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    channel = tmp_path / "train"
    channel.mkdir(exist_ok=True)
    (channel / name).write_text(text)
    return channel


def _config(tmp_path: Path, channel: Path | None, **overrides: object) -> TrainingConfig:
    values: dict[str, object] = {
        "model_dir": tmp_path / "model",
        "model_name": "species",
        "output_data_dir": tmp_path / "output",
        "dataset": "csv",
        "train_dir": channel,
        "label_column": "label",
        "hidden": (8,),
        "max_iter": 50,
        **overrides,
    }
    return TrainingConfig(**values)  # type: ignore[arg-type]


def test_a_csv_in_the_train_channel_trains_end_to_end(tmp_path: Path) -> None:
    text = _separable_csv()
    channel = _channel(tmp_path, text)
    env = {
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        "SM_INPUT_CONFIG_DIR": str(tmp_path / "config"),
        "SM_HPS": '{"label_column": "species", "model_name": "species", "hidden": "8", "max_iter": "300"}',
    }

    assert main(["--dataset", "csv"], env) == 0

    manifest = ModelManifest.from_json((tmp_path / "model" / "manifest.json").read_text())
    assert manifest.input.features == ("f1", "f2", "f3", "f4")
    assert manifest.labels == ("cat", "dog", "eel")
    assert manifest.lineage.dataset == (channel / "data.csv").resolve().as_uri()
    assert manifest.lineage.dataset_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert manifest.lineage.hyperparameters["label_column"] == "species"
    assert manifest.holdout_accuracy == 1.0, "three clusters ten sigma apart"
    session = onnxruntime.InferenceSession(str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, _ = session.run(None, {"input": np.asarray(manifest.golden.inputs, dtype=np.float32)})
    assert labels.tolist() == list(manifest.golden.labels)
    assert len(manifest.golden.labels) == 8
    assert {manifest.labels[i] for i in manifest.golden.labels} == {"cat", "dog", "eel"}


def test_csv_rows_parse_into_float32_features_and_label_indices(tmp_path: Path) -> None:
    channel = _channel(tmp_path, "a,label,b\n1,10,2\n3,2,4\n5,10,6\n")
    dataset = load_dataset("csv", channel, "label")
    assert dataset.labels == ("2", "10"), "numeric labels sort as numbers"
    assert dataset.targets.tolist() == [1, 0, 1]
    assert dataset.features.dtype == np.float32
    assert dataset.features.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert dataset.feature_names == ("a", "b")


def test_csv_named_file_is_chosen_among_several(tmp_path: Path) -> None:
    channel = _channel(tmp_path, "a,b,label\n1,2,x\n3,4,y\n", name="one.csv")
    _channel(tmp_path, "a,b,c,label\n1,2,3,x\n4,5,6,y\n", name="two.csv")
    assert load_dataset("csv:two.csv", channel, "label").feature_names == ("a", "b", "c")
    with pytest.raises(ConfigError, match=r"expected exactly one \*\.csv .* found \['one.csv', 'two.csv'\]"):
        load_dataset("csv", channel, "label")
    with pytest.raises(ConfigError, match=r"'three\.csv' is not a \.csv file in"):
        load_dataset("csv:three.csv", channel, "label")


def test_csv_without_a_channel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="reads the training channel, but none is set"):
        load_dataset("csv", None, "label")


def test_digits_is_hashed_over_its_arrays_and_stable() -> None:
    first = load_dataset(DIGITS, None, "label")
    second = load_dataset(DIGITS, None, "label")
    assert first.sha256 == second.sha256
    assert first.features.shape == (1797, 64)
    assert first.features.dtype == np.float32
    assert first.uri == DIGITS


def test_an_unknown_dataset_spec_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^dataset: 'builtin:mnist' is not a dataset; expected one of"):
        load_dataset("builtin:mnist", None, "label")


def _rows(n: int, classes: tuple[str, ...] = ("a", "b")) -> list[str]:
    return [f"{i},{i * 2},{classes[i % len(classes)]}" for i in range(n)]


BAD_CSVS = {
    "nan": (
        "\n".join(["x,y,label", *_rows(10), "nan,1,a"]),
        r"^features: 1 value\(s\) are NaN or infinite, first at row 10 column 'x' \(nan\)$",
    ),
    "inf": (
        "\n".join(["x,y,label", "1,-inf,a", *_rows(10)]),
        r"^features: 1 value\(s\) are NaN or infinite, first at row 0 column 'y' \(-inf\)$",
    ),
    "one class": (
        "\n".join(["x,y,label", *_rows(10, classes=("a",))]),
        r"^labels: only one class \['a'\]; a classifier needs two or more$",
    ),
    "ragged row": (
        "\n".join(["x,y,label", *_rows(4), "1,2", *_rows(4)]),
        r"^data.csv line 6: has 2 values; the header has 3$",
    ),
    "non-numeric": (
        "\n".join(["x,y,label", *_rows(3), "1,tall,b"]),
        r"^data.csv line 5: column 'y' holds 'tall', which is not a number$",
    ),
    "missing label column": (
        "\n".join(["x,y,class", *_rows(10)]),
        r"^data.csv header: has no label column 'label'; columns: \['x', 'y', 'class'\]$",
    ),
    "one feature": (
        "\n".join(["x,label", *[f"{i},{'ab'[i % 2]}" for i in range(10)]]),
        r"^features: 1 feature column\(s\); need >= 2$",
    ),
    "too few rows": (
        "\n".join(["x,y,label", *_rows(6, classes=("a", "b", "c"))]),
        r"^rows: 6 rows are too few for a 0.2 holdout over 3 classes",
    ),
    "class with one row": (
        "\n".join(["x,y,label", *_rows(10), "5,5,lonely"]),
        r"^labels: class 'lonely' has 1 row\(s\); each class needs >= 2$",
    ),
    "empty label": (
        "\n".join(["x,y,label", *_rows(4), "1,2, "]),
        r"^data.csv line 6: has an empty label in column 'label'$",
    ),
    "duplicate column": (
        "\n".join(["x,x,label", *_rows(4)]),
        r"^data.csv header: repeats column name\(s\) \['x'\]$",
    ),
    "header only": ("x,y,label\n", r"^rows: file://.*/data.csv has no data rows$"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_data_is_refused_by_name_and_leaves_no_model(tmp_path: Path, case: str) -> None:
    text, message = BAD_CSVS[case]
    model_dir = tmp_path / "model"
    model_dir.mkdir()  # SageMaker creates /opt/ml/model before the entry point runs
    with pytest.raises(TrainingDataError, match=message):
        train(_config(tmp_path, _channel(tmp_path, text)))
    assert list(model_dir.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "output", "train"]


def test_a_failed_run_keeps_the_previous_model_untouched(tmp_path: Path) -> None:
    channel = _channel(tmp_path, _separable_csv(label_column="label"))
    first = train(_config(tmp_path, channel))
    before = {p.name: p.read_bytes() for p in first.model_path.parent.iterdir()}
    (channel / "data.csv").write_text("x,y,label\n" + "\n".join(_rows(10, classes=("a",))))
    with pytest.raises(TrainingDataError, match="only one class"):
        train(_config(tmp_path, channel))
    assert {p.name: p.read_bytes() for p in first.model_path.parent.iterdir()} == before
