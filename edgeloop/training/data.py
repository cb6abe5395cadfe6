"""Training datasets: built-in sets or user CSV, Parquet or NPZ; hashed for lineage; bad data refused by name."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from edgeloop.core.errors import ConfigError, TrainingDataError
from edgeloop.training.config import BUILTIN_PREFIX, CSV, FILE_KINDS, NPZ, PARQUET, check_spec

NPZ_FEATURES = "features"
NPZ_FEATURE_NAMES = "feature_names"
"""NPZ convention: a 2-D `features` array, a 1-D label array named by the label column, optional names."""
MIN_FEATURES = 2
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Features travel as float32: a larger magnitude would become infinity on the device."""


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


def load_dataset(
    spec: str, channel_dir: Path | None, label_column: str, features: tuple[str, ...] | None = None
) -> Dataset:
    """Load and validate the dataset a spec names; `features`, when declared, is the schema the data must match."""
    kind = check_spec(spec)
    if kind == BUILTIN_PREFIX:
        dataset = _load_builtin(spec.removeprefix(BUILTIN_PREFIX))
    else:
        path = _data_path(spec, kind, channel_dir)
        dataset = _READERS[kind](path, label_column)
    if features is not None:
        dataset = match_schema(dataset, features, _where(dataset))
    validate_dataset(dataset)
    return dataset


def _load_builtin(name: str) -> Dataset:
    """A scikit-learn bundled set (load_*, shipped in the wheel; never a fetch_* download)."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    data = np.ascontiguousarray(bunch.data, dtype="<f8")
    target = np.ascontiguousarray(bunch.target, dtype="<i8")
    digest = hashlib.sha256(data.tobytes() + target.tobytes()).hexdigest()
    classes = np.unique(target)
    names = [f"pixel_{i}" for i in range(data.shape[1])] if name == "digits" else list(bunch.feature_names)
    return Dataset(
        uri=f"{BUILTIN_PREFIX}{name}",
        sha256=digest,
        features=data.astype(np.float32),
        targets=np.searchsorted(classes, target).astype(np.int64),
        feature_names=tuple(str(n) for n in names),
        labels=tuple(str(bunch.target_names[c]) for c in classes),
    )


def _data_path(spec: str, kind: str, channel_dir: Path | None) -> Path:
    """The one file of this kind a spec names inside the channel directory."""
    if channel_dir is None:
        raise ConfigError("dataset", f"{spec!r} reads the training channel, but none is set (SM_CHANNEL_TRAIN)")
    if not channel_dir.is_dir():
        raise ConfigError("dataset", f"channel directory {str(channel_dir)!r} does not exist")
    name = spec.partition(":")[2]
    if name:
        path = channel_dir / name
        if "/" in name or not path.is_file():
            raise ConfigError("dataset", f"{name!r} is not a .{kind} file in {str(channel_dir)!r}")
        return path
    found = sorted(channel_dir.glob(f"*.{kind}"))
    if len(found) != 1:
        names = [p.name for p in found]
        raise ConfigError("dataset", f"expected exactly one *.{kind} in {str(channel_dir)!r}, found {names}")
    return found[0]


def _where(dataset: Dataset) -> str:
    """How errors name a dataset: the file name for user data, the spec for a built-in one."""
    return dataset.uri.rsplit("/", 1)[-1]


def match_schema(dataset: Dataset, declared: tuple[str, ...], where: str) -> Dataset:
    """The data's feature columns must be exactly the declared ones; they are put in the declared order."""
    present = dataset.feature_names
    missing = [name for name in declared if name not in present]
    if missing:
        raise TrainingDataError(f"{where} columns", f"lack declared feature(s) {missing}; columns: {list(present)}")
    extra = [name for name in present if name not in declared]
    if extra:
        raise TrainingDataError(f"{where} columns", f"hold column(s) {extra} that are not declared features")
    order = [present.index(name) for name in declared]
    return Dataset(
        uri=dataset.uri,
        sha256=dataset.sha256,
        features=np.ascontiguousarray(dataset.features[:, order]),
        targets=dataset.targets,
        feature_names=declared,
        labels=dataset.labels,
    )


def _load_csv(path: Path, label_column: str, exclude: tuple[str, ...] = (), *, finite: bool = False) -> Dataset:
    """A header row, one label column, every other column (but the excluded ones) a number."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(path.name, f"is not UTF-8 text ({exc.reason})") from exc
    rows = _csv_rows(text, path.name)
    if not rows:
        raise TrainingDataError(path.name, "is empty; expected a header row and data rows")
    header = [h.strip() for h in rows[0][1]]
    label_at = _label_index(header, label_column, path.name)
    skip = {label_at, *(_column_index(header, name, path.name) for name in exclude)}
    feature_names = tuple(h for i, h in enumerate(header) if i not in skip)
    features, raw_labels = _parse_rows(rows[1:], header, label_at, skip, path.name, finite=finite)
    return _file_dataset(path, raw, features, feature_names, raw_labels)


def _csv_rows(text: str, where: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each ends on (a quoted field may span lines); bad CSV named by line."""
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row:
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise TrainingDataError(f"{where} line {max(1, reader.line_num)}", f"is not valid CSV ({exc})") from exc
    return rows


def _column_index(header: list[str], name: str, where: str) -> int:
    """Position of an excluded column, which must exist: a misspelt exclusion would make a timestamp a feature."""
    if name not in header:
        raise TrainingDataError(f"{where} header", f"has no column {name!r} to exclude; columns: {header}")
    return header.index(name)


def _file_dataset(
    path: Path, raw: bytes, features: np.ndarray, names: tuple[str, ...], raw_labels: list[str]
) -> Dataset:
    """A user file's dataset: its URI and the hash of its exact bytes, for lineage."""
    labels, targets = _encode_labels(raw_labels)
    return Dataset(
        uri=path.resolve().as_uri(),
        sha256=hashlib.sha256(raw).hexdigest(),
        features=features,
        targets=targets,
        feature_names=names,
        labels=labels,
    )


def _load_parquet(path: Path, label_column: str, exclude: tuple[str, ...] = ()) -> Dataset:
    """One label column, every other column numeric; nulls become NaN and are refused like NaN."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(
            "dataset", f"{path.name}: reading Parquet needs pyarrow (pip install 'edgeloop[training]')"
        ) from exc
    raw = path.read_bytes()
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except pa.ArrowException as exc:
        raise TrainingDataError(path.name, f"is not a readable Parquet file ({exc})") from exc
    header = [str(name) for name in table.column_names]
    label_at = _label_index(header, label_column, path.name)
    skip = {label_at, *(_column_index(header, name, path.name) for name in exclude)}
    names = tuple(h for i, h in enumerate(header) if i not in skip)
    columns = [_parquet_numbers(table.column(name), name, path.name) for name in names]
    features = np.stack(columns, axis=1).astype(np.float32) if columns else np.empty((table.num_rows, 0), np.float32)
    labels = table.column(label_column).to_pylist()
    if any(label is None or not str(label).strip() for label in labels):
        row = next(i for i, label in enumerate(labels) if label is None or not str(label).strip())
        raise TrainingDataError(f"{path.name} row {row}", f"has an empty label in column {label_column!r}")
    return _file_dataset(path, raw, features, names, [str(label).strip() for label in labels])


def _parquet_numbers(column: Any, name: str, where: str) -> np.ndarray:
    """One numeric Parquet column as float64 (nulls as NaN); any other type is refused by name."""
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise TrainingDataError(f"{where} column {name!r}", f"has type {column.type}; features must be numbers")
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _load_npz(path: Path, label_column: str, exclude: tuple[str, ...] = ()) -> Dataset:
    """NPZ convention: `features` [rows, n], the label column's array [rows], optional `feature_names` [n]."""
    raw = path.read_bytes()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TrainingDataError(path.name, f"is not a readable NPZ of plain arrays ({exc})") from exc
    for key in (NPZ_FEATURES, label_column):
        if key not in arrays:
            raise TrainingDataError(f"{path.name} arrays", f"have no {key!r} array; arrays: {sorted(arrays)}")
    features, labels = arrays[NPZ_FEATURES], arrays[label_column]
    if features.ndim != 2 or features.dtype.kind not in "fiu":
        raise TrainingDataError(
            f"{path.name} {NPZ_FEATURES}", f"must be a 2-D numeric array, got {features.dtype} {features.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(features):
        raise TrainingDataError(
            f"{path.name} {label_column}",
            f"must be 1-D with one label per row ({len(features)}), got shape {labels.shape}",
        )
    names = _npz_names(arrays, features.shape[1], path.name)
    keep = [i for i in range(len(names)) if i not in {_column_index(list(names), n, path.name) for n in exclude}]
    return _file_dataset(
        path, raw, features[:, keep].astype(np.float32), tuple(names[i] for i in keep),
        [str(label).strip() for label in labels.tolist()],
    )  # fmt: skip


def _npz_names(arrays: dict[str, np.ndarray], width: int, where: str) -> tuple[str, ...]:
    """Feature names from `feature_names` when the file has them, else feature_0, feature_1, ..."""
    names = arrays.get(NPZ_FEATURE_NAMES)
    if names is None:
        return tuple(f"feature_{i}" for i in range(width))
    if names.ndim != 1 or len(names) != width or names.dtype.kind != "U":
        raise TrainingDataError(
            f"{where} {NPZ_FEATURE_NAMES}", f"must be {width} strings, got {names.dtype} {names.shape}"
        )
    return tuple(str(name) for name in names.tolist())


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


def _parse_rows(
    rows: list[tuple[int, list[str]]], header: list[str], label_at: int, skip: set[int], where: str, *, finite: bool
) -> tuple[np.ndarray, list[str]]:
    """Parse data rows into a float32 matrix and raw label strings, naming the first bad cell by line and column."""
    values: list[list[float]] = []
    labels: list[str] = []
    for line, row in rows:
        if len(row) != len(header):
            raise TrainingDataError(f"{where} line {line}", f"has {len(row)} values; the header has {len(header)}")
        label = row[label_at].strip()
        if not label:
            raise TrainingDataError(f"{where} line {line}", f"has an empty label in column {header[label_at]!r}")
        labels.append(label)
        values.append([_number(cell, header[i], where, line, finite) for i, cell in enumerate(row) if i not in skip])
    width = len(header) - len(skip)
    return np.asarray(values, dtype=np.float32).reshape(len(values), width), labels


def _number(cell: str, column: str, where: str, line: int, finite: bool) -> float:
    """One feature cell as a float; 'nan'/'inf' parse here and are refused by validate_dataset unless finite."""
    try:
        value = float(cell)
    except ValueError as exc:
        raise TrainingDataError(
            f"{where} line {line}", f"column {column!r} holds {cell!r}, which is not a number"
        ) from exc
    if finite and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
        raise TrainingDataError(
            f"{where} line {line}", f"column {column!r} holds {cell!r}, which is not a finite float32 number"
        )
    return value


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


_READERS: Mapping[str, Callable[[Path, str], Dataset]] = MappingProxyType(
    {CSV: _load_csv, PARQUET: _load_parquet, NPZ: _load_npz}
)


def load_file(path: Path, label_column: str, exclude_columns: tuple[str, ...] = ()) -> Dataset:
    """A CSV, Parquet or NPZ file read where it lies (no training channel): the local runner's own data.

    Rows keep file order. Every refusal is a TrainingDataError naming the file and, where there is one, the
    line (CSV, 1-based, the header is line 1) or data row (Parquet, NPZ, 0-based) and the column.
    """
    kind = path.suffix.lower().lstrip(".")
    if kind not in FILE_KINDS:
        raise TrainingDataError(str(path), f"is not a {', '.join('.' + k for k in FILE_KINDS)} file")
    if not path.is_file():
        raise TrainingDataError(str(path), "does not exist or is not a file")
    try:
        if kind == CSV:
            dataset = _load_csv(path, label_column, exclude_columns, finite=True)
        else:
            dataset = _READ_EXCLUDING[kind](path, label_column, exclude_columns)
    except OSError as exc:
        raise TrainingDataError(str(path), f"cannot be read ({exc.strerror or exc})") from exc
    if len(dataset.targets) == 0:
        raise TrainingDataError(path.name, "has no data rows")
    _check_finite(dataset, path.name)
    try:
        validate_dataset(dataset)
    except TrainingDataError as exc:
        raise TrainingDataError(f"{path.name} {exc.field}", exc.message) from exc
    return dataset


_READ_EXCLUDING: Mapping[str, Callable[[Path, str, tuple[str, ...]], Dataset]] = MappingProxyType(
    {PARQUET: _load_parquet, NPZ: _load_npz}
)


def _check_finite(dataset: Dataset, where: str) -> None:
    """The first NaN or infinite feature named by its 0-based data row and column (CSV refuses it while parsing)."""
    bad = ~np.isfinite(dataset.features)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise TrainingDataError(
            f"{where} row {row}",
            f"column {dataset.feature_names[col]!r} holds {dataset.features[row, col]}, which is not a finite number",
        )


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
