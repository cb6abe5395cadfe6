"""Training datasets: load the built-in digits or a user CSV, hash them for lineage, refuse bad data."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeloop.core.errors import ConfigError, TrainingDataError

DIGITS = "builtin:digits"
CSV = "csv"
DATASET_SPECS = (DIGITS, CSV, f"{CSV}:<file>.csv")
MIN_FEATURES = 2


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and label indices, plus what lineage needs to trace the model back to these bytes."""

    uri: str
    sha256: str
    features: np.ndarray
    """float32, shape [rows, len(feature_names)]: exactly what a device will send."""
    targets: np.ndarray
    """int64 indices into labels, so the ONNX `label` output indexes the manifest's labels."""
    feature_names: tuple[str, ...]
    labels: tuple[str, ...]


def load_dataset(spec: str, channel_dir: Path | None, label_column: str) -> Dataset:
    """Load and validate the dataset a spec names: builtin:digits, csv, or csv:<file>.csv in the channel."""
    check_spec(spec)
    dataset = _load_digits() if spec == DIGITS else _load_csv(_csv_path(spec, channel_dir), label_column)
    validate_dataset(dataset)
    return dataset


def check_spec(spec: str) -> str:
    """Refuse a dataset spec before any work is done: builtin:digits, csv or csv:<file>.csv."""
    if spec != DIGITS and spec != CSV and not spec.startswith(f"{CSV}:"):
        raise ConfigError("dataset", f"{spec!r} is not a dataset; expected one of {list(DATASET_SPECS)}")
    return spec


def _load_digits() -> Dataset:
    """The scikit-learn digits set, shipped with the package (never a fetch_* download)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = np.ascontiguousarray(bunch.data, dtype="<f8")
    target = np.ascontiguousarray(bunch.target, dtype="<i8")
    digest = hashlib.sha256(data.tobytes() + target.tobytes()).hexdigest()
    classes = np.unique(target)
    return Dataset(
        uri=DIGITS,
        sha256=digest,
        features=data.astype(np.float32),
        targets=np.searchsorted(classes, target).astype(np.int64),
        feature_names=tuple(f"pixel_{i}" for i in range(data.shape[1])),
        labels=tuple(str(c) for c in classes),
    )


def _csv_path(spec: str, channel_dir: Path | None) -> Path:
    """The one CSV file a spec names inside the channel directory."""
    if channel_dir is None:
        raise ConfigError("dataset", f"{spec!r} reads the training channel, but none is set (SM_CHANNEL_TRAIN)")
    if not channel_dir.is_dir():
        raise ConfigError("dataset", f"channel directory {str(channel_dir)!r} does not exist")
    name = spec.partition(":")[2]
    if name:
        path = channel_dir / name
        if "/" in name or path.suffix != ".csv" or not path.is_file():
            raise ConfigError("dataset", f"{name!r} is not a .csv file in {str(channel_dir)!r}")
        return path
    found = sorted(channel_dir.glob("*.csv"))
    if len(found) != 1:
        names = [p.name for p in found]
        raise ConfigError("dataset", f"expected exactly one *.csv in {str(channel_dir)!r}, found {names}")
    return found[0]


def _load_csv(path: Path, label_column: str) -> Dataset:
    """A header row, one label column, every other column a number."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(path.name, f"is not UTF-8 text ({exc.reason})") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        raise TrainingDataError(path.name, "is empty; expected a header row and data rows")
    header = [h.strip() for h in rows[0]]
    label_at = _label_index(header, label_column, path.name)
    feature_names = tuple(h for i, h in enumerate(header) if i != label_at)
    features, raw_labels = _parse_rows(rows[1:], header, label_at, path.name)
    labels, targets = _encode_labels(raw_labels)
    return Dataset(
        uri=path.resolve().as_uri(),
        sha256=hashlib.sha256(raw).hexdigest(),
        features=features,
        targets=targets,
        feature_names=feature_names,
        labels=labels,
    )


def _label_index(header: list[str], label_column: str, where: str) -> int:
    """Position of the label column; duplicate or blank column names are refused."""
    if any(not h for h in header):
        raise TrainingDataError(f"{where} header", f"has an empty column name: {header}")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise TrainingDataError(f"{where} header", f"repeats column name(s) {duplicates}")
    if label_column not in header:
        raise TrainingDataError(f"{where} header", f"has no label column {label_column!r}; columns: {header}")
    return header.index(label_column)


def _parse_rows(rows: list[list[str]], header: list[str], label_at: int, where: str) -> tuple[np.ndarray, list[str]]:
    """Parse data rows into a float32 matrix and raw label strings, naming the first bad cell."""
    values: list[list[float]] = []
    labels: list[str] = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise TrainingDataError(f"{where} line {line}", f"has {len(row)} values; the header has {len(header)}")
        label = row[label_at].strip()
        if not label:
            raise TrainingDataError(f"{where} line {line}", f"has an empty label in column {header[label_at]!r}")
        labels.append(label)
        values.append([_number(cell, header[i], where, line) for i, cell in enumerate(row) if i != label_at])
    width = len(header) - 1
    return np.asarray(values, dtype=np.float32).reshape(len(values), width), labels


def _number(cell: str, column: str, where: str, line: int) -> float:
    """One feature cell as a float; 'nan'/'inf' parse here and are refused by validate_dataset."""
    try:
        return float(cell)
    except ValueError as exc:
        raise TrainingDataError(
            f"{where} line {line}", f"column {column!r} holds {cell!r}, which is not a number"
        ) from exc


def _encode_labels(raw: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted class values (numerically when they are all numbers) and each row's index among them."""
    classes = sorted(set(raw), key=_label_sort_key)
    index = {c: i for i, c in enumerate(classes)}
    return tuple(classes), np.asarray([index[x] for x in raw], dtype=np.int64)


def _label_sort_key(label: str) -> tuple[int, float, str]:
    try:
        number = float(label)
    except ValueError:
        return (1, 0.0, label)
    return (0, number, label) if math.isfinite(number) else (1, 0.0, label)


def validate_dataset(dataset: Dataset) -> None:
    """Refuse data that cannot give a trustworthy model, naming what is wrong and where."""
    features, targets = dataset.features, dataset.targets
    if len(features) == 0:
        raise TrainingDataError("rows", f"{dataset.uri} has no data rows")
    if features.ndim != 2 or features.shape[1] != len(dataset.feature_names):
        raise TrainingDataError("features", f"shape {features.shape} does not match the feature names")
    if features.shape[1] < MIN_FEATURES:
        raise TrainingDataError("features", f"{features.shape[1]} feature column(s); need >= {MIN_FEATURES}")
    if len(targets) != len(features):
        raise TrainingDataError("labels", f"{len(targets)} labels for {len(features)} rows")
    bad = ~np.isfinite(features)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise TrainingDataError(
            "features",
            f"{int(bad.sum())} value(s) are NaN or infinite, first at row {row} "
            f"column {dataset.feature_names[col]!r} ({features[row, col]})",
        )
    if len(dataset.labels) < 2:
        raise TrainingDataError("labels", f"only one class {list(dataset.labels)}; a classifier needs two or more")


def check_holdout(dataset: Dataset, holdout_fraction: float) -> None:
    """A stratified split needs every class twice and room for every class on both sides."""
    rows = len(dataset.targets)
    classes = len(dataset.labels)
    counts = np.bincount(dataset.targets, minlength=classes)
    rarest = int(counts.argmin())
    if counts[rarest] < 2:
        raise TrainingDataError(
            "labels", f"class {dataset.labels[rarest]!r} has {counts[rarest]} row(s); each class needs >= 2"
        )
    holdout = math.ceil(holdout_fraction * rows)
    if holdout < classes or rows - holdout < classes:
        raise TrainingDataError(
            "rows",
            f"{rows} rows are too few for a {holdout_fraction} holdout over {classes} classes "
            f"({holdout} holdout, {rows - holdout} training; each side needs >= {classes})",
        )
