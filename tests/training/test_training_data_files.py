"""load_file: a user's own file read where it lies, in file order, every refusal naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeloop.core.errors import TrainingDataError
from edgeloop.training.data import load_file

HEADER = "t,id,x0,x1,label"
ROWS = [f"{1_700_000_000 + i},row-{i},{i % 7 * 0.5},{i % 3},{i % 2}" for i in range(12)]


def _write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_csv_keeps_file_order_and_leaves_out_excluded_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n")
    dataset = load_file(path, "label", ("t", "id"))
    assert dataset.feature_names == ("x0", "x1")
    assert dataset.features[:, 0].tolist() == [i % 7 * 0.5 for i in range(12)], "file order, never shuffled"
    assert dataset.targets.tolist() == [i % 2 for i in range(12)]
    assert dataset.labels == ("0", "1")


@pytest.mark.parametrize(
    ("lines", "exclude", "message"),
    [
        ([], (), r"^s.csv: is empty"),
        ([HEADER], ("t", "id"), r"^s.csv: has no data rows$"),
        ([HEADER, *ROWS], ("t",), r"^s.csv line 2: column 'id' holds 'row-0', which is not a number$"),
        ([HEADER, *ROWS], ("t", "ts"), r"^s.csv header: has no column 'ts' to exclude"),
        ([HEADER.replace("label", "y"), *ROWS], ("t", "id"), r"^s.csv header: has no label column 'label'"),
        ([HEADER, *ROWS[:4], "1,row-4,0.5,1", *ROWS[5:]], ("t", "id"), r"^s.csv line 6: has 4 values; the header"),
        ([HEADER, *ROWS[:2], "1,row-2,abc,1,0"], ("t", "id"), r"^s.csv line 4: column 'x0' holds 'abc'"),
        ([HEADER, *ROWS[:2], "1,row-2,nan,1,0"], ("t", "id"), r"^s.csv line 4: column 'x0' holds 'nan', which is not"),
        ([HEADER, *ROWS[:2], "1,row-2,1e300,1,0"], ("t", "id"), r"^s.csv line 4: column 'x0' holds '1e300'"),
        ([HEADER, *ROWS[:2], "", "1,row-2,1,,0"], ("t", "id"), r"^s.csv line 5: column 'x1' holds ''"),
        ([HEADER, "1,a,1,2,0", "2,b,1,2,0"], ("t", "id"), r"^s.csv labels: only one class"),
        ([HEADER, "1,a,1,2,0", "2," + "b" * 200_000 + ",1,2,1"], ("t", "id"), r"^s.csv line 3: is not valid CSV"),
    ],
)
def test_bad_files_are_refused_naming_file_line_and_column(
    tmp_path: Path, lines: list[str], exclude: tuple[str, ...], message: str
) -> None:
    path = _write(tmp_path, "\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(TrainingDataError, match=message):
        load_file(path, "label", exclude)


def test_a_missing_or_unknown_kind_of_file_is_refused_by_path(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match=r"missing.csv: does not exist"):
        load_file(tmp_path / "missing.csv", "label")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(TrainingDataError, match=r"dir.csv: does not exist or is not a file"):
        load_file(tmp_path / "dir.csv", "label")
    with pytest.raises(TrainingDataError, match=r"s.txt: is not a .csv, .parquet, .npz file"):
        load_file(_write(tmp_path, "x", "s.txt"), "label")
    path = tmp_path / "b.csv"
    path.write_bytes(b"x,label\n\xff,1\n")
    with pytest.raises(TrainingDataError, match=r"^b.csv: is not UTF-8 text"):
        load_file(path, "label")


def test_parquet_and_npz_honour_exclusions_and_name_the_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"ts": ["a", "b", "c", "d"], "x": [1.0, 2.0, 3.0, 4.0], "y": [1, 2, 3, 4],
                             "label": ["p", "q", "p", "q"]}), tmp_path / "s.parquet")  # fmt: skip
    assert load_file(tmp_path / "s.parquet", "label", ("ts",)).feature_names == ("x", "y")
    with pytest.raises(TrainingDataError, match=r"^s.parquet column 'ts': has type string"):
        load_file(tmp_path / "s.parquet", "label")
    features = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, np.inf, 8.0], [9.0, 1.0, 1.0]])
    np.savez(tmp_path / "s.npz", features=features, label=np.array([0, 1, 0, 1]),
             feature_names=np.array(["id", "a", "b"]))  # fmt: skip
    with pytest.raises(TrainingDataError, match=r"^s.npz row 2: column 'a' holds inf, which is not a finite number$"):
        load_file(tmp_path / "s.npz", "label", ("id",))
    with pytest.raises(TrainingDataError, match=r"^s.npz header: has no column 'ts' to exclude"):
        load_file(tmp_path / "s.npz", "label", ("ts",))
    np.savez(tmp_path / "ok.npz", features=features[[0, 1, 3]], label=np.array([0, 1, 1]),
             feature_names=np.array(["id", "a", "b"]))  # fmt: skip
    dataset = load_file(tmp_path / "ok.npz", "label", ("id",))
    assert dataset.feature_names == ("a", "b")
    assert dataset.features.tolist() == [[1.0, 2.0], [4.0, 5.0], [1.0, 1.0]]


TOKENS = [
    "",
    "0",
    "1",
    "-2.5",
    "nan",
    "inf",
    "-inf",
    "1e300",
    "1_0",
    "abc",
    " 3 ",
    '"',
    '""',
    ",",
    "\n",
    "\r",
    "\x00",
    "label",
    "é",
    "\ufeff",
    "a,b",
    '"x\ny"',
    "0x10",
    "1e-50",
]
"""Cells a CSV parser must survive: numbers, non-numbers, quotes, separators, line ends, NUL, a BOM."""


def _fuzz_inputs(count: int) -> list[bytes]:
    """Seeded stand-in for hypothesis (not installed here): random bytes, random text, and token grids."""
    rng = np.random.default_rng(15)
    out: list[bytes] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            out.append(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
        elif kind == 1:
            out.append("".join(chr(int(c)) for c in rng.integers(1, 0x2FF, int(rng.integers(0, 200)))).encode())
        else:
            width = int(rng.integers(1, 5))
            header = ",".join(["a", "b", "label"][: max(1, width - 1)] + (["label"] if width > 3 else []))
            lines = [header] + [
                ",".join(TOKENS[int(t)] for t in rng.integers(0, len(TOKENS), int(rng.integers(0, 5))))
                for _ in range(int(rng.integers(0, 8)))
            ]
            out.append("\n".join(lines).encode())
    return out


@pytest.mark.parametrize("data", _fuzz_inputs(600))
def test_any_bytes_as_a_csv_give_a_dataset_or_the_projects_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        dataset = load_file(path, "label", ())
    except TrainingDataError as exc:
        refusal = str(exc)
    else:
        assert len(dataset.targets) == len(dataset.features) > 0
        assert np.isfinite(dataset.features).all()
        return
    assert refusal.startswith("fuzz.csv"), "every refusal names the file"


def test_the_fuzz_inputs_reach_both_outcomes(tmp_path: Path) -> None:
    """The fuzz above exercises the parser, not only its first check: some inputs load, most are refused."""
    loaded = refused = 0
    valid = [b"a,b,label\n1,2,x\n3,4,y\n", b"a,b,label\n1,2,x\n3,4,y\n5,nan,x\n"]
    for i, data in enumerate(valid + _fuzz_inputs(60)):
        path = tmp_path / f"f{i}.csv"
        path.write_bytes(data)
        try:
            load_file(path, "label", ())
            loaded += 1
        except TrainingDataError:
            refused += 1
    assert loaded >= 1
    assert refused >= 30
