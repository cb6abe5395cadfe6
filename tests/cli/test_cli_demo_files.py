"""`edgeloop demo --scenario FILE` on the user's own data: bad input exits 2 and writes nothing; good input runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeloop.cli.main import main

ROWS = 400


def _stream(folder: Path, rows: int = ROWS) -> Path:
    """A small SEA-like stream (label: x0 + x1 <= 1, flipped at row 250) with a timestamp and an id column."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (rows, 3))
    y = ((x[:, 0] + x[:, 1] <= 1.0) ^ (np.arange(rows) >= 250)).astype(int)
    lines = ["t,id,x0,x1,x2,label", *(f"{1000 + i},row-{i},{a:.4f},{b:.4f},{c:.4f},{label}"
                                      for i, ((a, b, c), label) in enumerate(zip(x, y, strict=True)))]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sea.csv").write_text("\n".join(lines) + "\n")
    return folder / "sea.csv"


def _scenario(folder: Path, **changes: Any) -> Path:
    data = {"dataset": "sea.csv", "label_column": "label", "exclude_columns": ["t", "id"], "initial_rows": 100,
            "drift_at_rows": [250], "devices": 2, "requests_per_s": 2.0, **changes}  # fmt: skip
    path = folder / "sea.json"
    path.write_text(json.dumps(data))
    return path


def _broken(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda f: (f / "sea.csv").unlink(), "sea.csv: does not exist"),
        (lambda f: _broken(f / "sea.csv", 7, "1006,row-5,0.1,zero,0.3,1"), "sea.csv line 7: column 'x1' holds 'zero'"),
        (lambda f: _broken(f / "sea.csv", 9, "1008,row-7,0.1,0.2,1"), "sea.csv line 9: has 5 values; the header has 6"),
        (lambda f: _broken(f / "sea.csv", 1, "t,id,x0,x1,x2,y"), "sea.csv header: has no label column 'label'"),
        (lambda f: _broken(f / "sea.csv", 1, "time,id,x0,x1,x2,label"), "has no column 't' to exclude"),
        (lambda f: (f / "sea.csv").write_text(""), "sea.csv: is empty"),
        (lambda f: _scenario(f, drift_at_rows=[ROWS - 1]), f"{ROWS - 1} is not before the last row"),
        (lambda f: _scenario(f, initial_rows=ROWS, drift_at_rows=[]), "leaves no rows to stream"),
        (lambda f: _scenario(f, family="forest"), "family: 'forest'"),
    ],
)
def test_bad_data_exits_2_naming_file_line_and_column_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil: Any, message: str
) -> None:
    folder = tmp_path / "streams"
    _stream(folder)
    _scenario(folder)
    spoil(folder)
    out = tmp_path / "out"
    assert main(["demo", "--quiet", "--scenario", str(folder / "sea.json"), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "nothing written"


@pytest.mark.slow
def test_a_csv_stream_runs_end_to_end_streaming_every_row_once(tmp_path: Path) -> None:
    folder = tmp_path / "streams"
    _stream(folder)
    scenario = _scenario(folder, drift_at_rows=[])  # 150 rows after a change are too few to see it: unscored
    out = tmp_path / "out"
    code = main(["demo", "--quiet", "--scenario", str(scenario), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reliability"]["requests"] == ROWS - 100, "every streamed row once"
    assert summary["run"]["simulated_s"] == 90.0, "300 rows at 60 per step on 2 devices: 3 steps"
    assert summary["reliability"]["records_lost"] == 0
    assert code == 0
