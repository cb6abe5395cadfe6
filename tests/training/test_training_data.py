"""Datasets: the user CSV path end to end, and every kind of bad data refused by name, leaving no model."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from edgeloop.core.errors import ConfigError, TrainingDataError
from edgeloop.core.manifest import ModelManifest
from edgeloop.training import TrainingConfig, load_dataset, main, train
from edgeloop.training.config import DIGITS


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


@pytest.mark.parametrize(
    ("name", "shape", "first_label", "first_feature"),
    [
        ("digits", (1797, 64), "0", "pixel_0"),
        ("breast_cancer", (569, 30), "malignant", "mean radius"),
        ("wine", (178, 13), "class_0", "alcohol"),
        ("iris", (150, 4), "setosa", "sepal length (cm)"),
    ],
)
def test_every_builtin_dataset_loads_with_its_names_and_a_stable_hash(
    name: str, shape: tuple[int, int], first_label: str, first_feature: str
) -> None:
    dataset = load_dataset(f"builtin:{name}", None, "label")
    assert dataset.features.shape == shape
    assert (dataset.labels[0], dataset.feature_names[0]) == (first_label, first_feature)
    assert dataset.uri == f"builtin:{name}"
    assert dataset.sha256 == load_dataset(f"builtin:{name}", None, "label").sha256


def test_a_builtin_dataset_trains_under_its_own_model_name(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path / "model"), "--data", "builtin:breast_cancer", "--max-iter", "60"], {}) == 0
    manifest = ModelManifest.from_json((tmp_path / "model" / "manifest.json").read_text())
    assert manifest.model_name == "breast-cancer"
    assert manifest.labels == ("malignant", "benign")
    assert manifest.input.width == 30


def _frame() -> dict[str, list[object]]:
    rng = np.random.default_rng(3)
    rows = [(float(x), float(y), "big" if x + y > 0 else "small") for x, y in rng.normal(size=(40, 2))]
    return {"x": [r[0] for r in rows], "y": [r[1] for r in rows], "size": [r[2] for r in rows]}


def _parquet(tmp_path: Path, columns: dict[str, list[object]], name: str = "data.parquet") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    channel = tmp_path / "train"
    channel.mkdir(exist_ok=True)
    table = pa.table({k: v for k, v in columns.items() if k != "empty"})
    pq.write_table(table.slice(0, 0) if "empty" in columns else table, channel / name)
    return channel


def test_a_parquet_file_loads_with_its_hash_columns_and_labels(tmp_path: Path) -> None:
    channel = _parquet(tmp_path, _frame())
    dataset = load_dataset("parquet", channel, "size")
    assert dataset.feature_names == ("x", "y")
    assert dataset.labels == ("big", "small")
    assert dataset.features.dtype == np.float32
    assert dataset.features.shape == (40, 2)
    assert dataset.sha256 == hashlib.sha256((channel / "data.parquet").read_bytes()).hexdigest()
    assert dataset.uri.endswith("/train/data.parquet")


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"x": [1.0, None, 3.0], "y": [1, 2, 3], "size": ["a", "b", "a"]}, r"^features: 1 value\(s\) are NaN"),
        ({"x": ["1", "2", "3"], "y": [1, 2, 3], "size": ["a", "b", "a"]}, r"^data.parquet column 'x': has type string"),
        ({"x": [1.0, 2.0, 3.0], "y": [1, 2, 3], "kind": ["a", "b", "a"]}, r"^data.parquet header: has no label column"),
        ({"x": [1.0, 2.0, 3.0], "y": [1, 2, 3], "size": ["a", None, "a"]}, r"^data.parquet row 1: has an empty label"),
        ({"x": [1.0], "y": [1], "size": ["a"], "empty": []}, r"^rows: file://.*data.parquet has no data rows$"),
    ],
)
def test_bad_parquet_is_refused_by_name(tmp_path: Path, columns: dict[str, list[object]], message: str) -> None:
    channel = _parquet(tmp_path, columns)
    with pytest.raises(TrainingDataError, match=message):
        load_dataset("parquet", channel, "size")


def test_parquet_without_pyarrow_names_the_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    channel = _parquet(tmp_path, _frame())
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"^dataset: data.parquet: reading Parquet needs pyarrow"):
        load_dataset("parquet", channel, "size")


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    channel = tmp_path / "train"
    channel.mkdir(parents=True, exist_ok=True)
    np.savez(channel / "data.npz", **arrays)  # type: ignore[arg-type]
    return channel


def test_an_npz_file_loads_features_labels_and_names_by_convention(tmp_path: Path) -> None:
    features = np.arange(24, dtype=np.float64).reshape(6, 4)
    channel = _npz(tmp_path, features=features, label=np.array([1, 0, 1, 0, 1, 0]),
                   feature_names=np.array(["a", "b", "c", "d"]))  # fmt: skip
    dataset = load_dataset("npz:data.npz", channel, "label")
    assert dataset.feature_names == ("a", "b", "c", "d")
    assert dataset.labels == ("0", "1")
    assert dataset.targets.tolist() == [1, 0, 1, 0, 1, 0]
    assert dataset.features.dtype == np.float32
    assert dataset.sha256 == hashlib.sha256((channel / "data.npz").read_bytes()).hexdigest()
    unnamed = load_dataset("npz", _npz(tmp_path / "other", features=features, y=np.array(list("ababab"))), "y")
    assert unnamed.feature_names == ("feature_0", "feature_1", "feature_2", "feature_3")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.ones((4, 2))}, r"^data.npz arrays: have no 'label' array; arrays: \['features'\]$"),
        ({"label": np.ones(4)}, r"^data.npz arrays: have no 'features' array"),
        ({"features": np.ones(4), "label": np.ones(4)}, r"^data.npz features: must be a 2-D numeric array"),
        ({"features": np.ones((4, 2)), "label": np.ones(3)}, r"^data.npz label: must be 1-D with one label per row"),
        ({"features": np.ones((2, 2)), "label": np.ones(2), "feature_names": np.array(["a"])},
         r"^data.npz feature_names: must be 2 strings"),
        ({"features": np.full((4, 2), np.nan), "label": np.array([0, 1, 0, 1])}, r"^features: 8 value\(s\) are NaN"),
        ({"features": np.array([[1, 2]], dtype=object), "label": np.ones(1)}, r"^data.npz: is not a readable NPZ"),
    ],
)  # fmt: skip
def test_bad_npz_is_refused_by_name(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(TrainingDataError, match=message):
        load_dataset("npz", _npz(tmp_path, **arrays), "label")


def test_a_declared_schema_orders_the_features(tmp_path: Path) -> None:
    channel = _channel(tmp_path, "a,label,b,c\n1,x,2,3\n4,y,5,6\n")
    dataset = load_dataset("csv", channel, "label", features=("c", "a", "b"))
    assert dataset.feature_names == ("c", "a", "b")
    assert dataset.features.tolist() == [[3, 1, 2], [6, 4, 5]]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (("a", "b", "c", "d"), r"^data.csv columns: lack declared feature\(s\) \['d'\]; columns: \['a', 'b', 'c'\]$"),
        (("a", "b"), r"^data.csv columns: hold column\(s\) \['c'\] that are not declared features$"),
    ],
)
def test_data_that_does_not_match_the_declared_schema_is_refused_and_writes_nothing(
    tmp_path: Path, declared: tuple[str, ...], message: str
) -> None:
    channel = _channel(tmp_path, "a,b,c,label\n" + "\n".join(f"{i},{i},{i},{i % 2}" for i in range(20)))
    with pytest.raises(TrainingDataError, match=message):
        train(_config(tmp_path, channel, features=declared))
    assert not (tmp_path / "model").exists()


def test_a_parquet_file_given_by_path_trains_with_the_declared_schema(tmp_path: Path) -> None:
    path = _parquet(tmp_path, _frame()) / "data.parquet"
    argv = ["--out", str(tmp_path / "model"), "--data", str(path), "--label-column", "size", "--model-name", "sizes"]
    assert main([*argv, "--features", "y,x", "--hidden", "4", "--max-iter", "50"], {}) == 0
    manifest = ModelManifest.from_json((tmp_path / "model" / "manifest.json").read_text())
    assert manifest.input.features == ("y", "x")
    assert manifest.lineage.dataset == path.resolve().as_uri()
    assert manifest.lineage.dataset_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest.lineage.hyperparameters["features"] == "y,x"
    assert manifest.labels == ("big", "small")
