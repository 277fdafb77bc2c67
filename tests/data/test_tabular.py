"""Tables → numpy columns for AutoKeras: type inference, overrides, targets, memory check (no TF)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from automl_app.data import tables, tabular
from automl_app.errors import DataError, UsageError


def _write(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_iris_csv_loads_with_types_and_class_names(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = [[*(f"{v:.1f}" for v in r), iris.target_names[t]]
            for r, t in zip(iris.data, iris.target, strict=True)]  # fmt: skip
    path = _write(tmp_path / "iris.csv", ["a", "b", "c", "d", "species"], rows)
    data = tabular.load_csv(path, "species")
    assert data.x.shape == (150, 4) and data.x.dtype.kind == "U"
    assert data.task == "classification"
    assert data.class_names == ["setosa", "versicolor", "virginica"]
    assert data.y.dtype == np.int64 and set(data.y) == {0, 1, 2}
    assert set(data.column_types.values()) == {"numerical"}
    small = tabular.load_csv(path, "species", max_samples=30, seed=1)
    assert small.x.shape == (30, 4)


def test_inference_missing_values_and_overrides(tmp_path):
    rows = [[str(i * 1.5) if i % 10 else "", ["x", "y"][i % 2], str(i % 2), str(i * 0.3)]
            for i in range(60)]  # fmt: skip
    path = _write(tmp_path / "t.csv", ["num", "word", "flag", "target"], rows)
    data = tabular.load_csv(path, "target")
    assert data.task == "regression" and data.y.dtype == np.float32
    assert data.column_types == {"num": "numerical", "word": "categorical", "flag": "categorical"}
    assert data.x[0, 0] == "nan"  # missing numerical cell → "nan" (AutoKeras imputes 0)
    forced = tabular.load_csv(path, "target", column_types={"flag": "numerical"})
    assert forced.column_types["flag"] == "numerical"
    with pytest.raises(UsageError, match=r"must be one of numerical, categorical.*flag='cat'"):
        tabular.load_csv(path, "target", column_types={"flag": "cat"})
    with pytest.raises(UsageError, match="'nope', which is not a feature column"):
        tabular.load_csv(path, "target", column_types={"nope": "numerical"})
    with pytest.raises(DataError, match="declared numerical but holds 'x'"):
        tabular.load_csv(path, "target", column_types={"word": "numerical"})


def test_target_rules(tmp_path):
    assert tabular.encode_target(["1", "0", "2", "10"], "auto", "t", "f")[2] == [
        "0",
        "1",
        "2",
        "10",
    ]
    task, y, names = tabular.encode_target(["0.5", "1.25", "3"], "auto", "t", "f")
    assert task == "regression" and names is None
    with pytest.raises(DataError, match="numeric target.*'abc'"):
        tabular.encode_target(["1", "abc"], "regression", "t", "f.csv")
    with pytest.raises(DataError, match="at least 2 classes"):
        tabular.encode_target(["a", "a"], "classification", "t", "f.csv")
    with pytest.raises(DataError, match="missing values"):
        tabular.encode_target(["a", ""], "classification", "t", "f.csv")
    with pytest.raises(UsageError, match="task must be one of auto, classification, regression"):
        tabular.encode_target(["a"], "clf", "t", "f")


def test_file_errors_name_the_file_and_column(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        tabular.load_csv(tmp_path / "none.csv", "y")
    path = _write(tmp_path / "a.csv", ["p", "q"], [["1", "2"], ["3", "4"]])
    with pytest.raises(DataError, match=r"column 'y' is not in .*a.csv. Columns: p, q"):
        tabular.load_csv(path, "y")
    ragged = tmp_path / "r.csv"
    ragged.write_text("p,q\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match="line 3: 3 cells but the header has 2"):
        tables.read_table(ragged)
    short = tmp_path / "s.csv"  # a short row is read as pandas reads it: the rest is missing
    short.write_text("p,q\n1,2\n3\n")
    assert tables.read_table(short)["q"].tolist() == ["2", ""]


def test_memory_estimate_stops_with_bytes_and_max_samples(tmp_path):
    path = _write(tmp_path / "big.csv", ["a", "y"], [[str(i), str(i % 2)] for i in range(100)])
    need = tabular.estimate_table_bytes(path)
    assert need > path.stat().st_size
    assert tabular.estimate_table_bytes(path, max_samples=10) < need
    with pytest.raises(DataError, match=rf"\({need} bytes\).*--max-samples"):
        tabular.check_memory(need, f"loading {path}", available=10)
    tabular.check_memory(need, "ok", available=need)


def test_parse_column_types():
    assert tabular.parse_column_types(["a=numerical", "b = categorical"]) == {
        "a": "numerical",
        "b": "categorical",
    }
    with pytest.raises(UsageError, match="NAME=numerical or NAME=categorical. Received: 'a'"):
        tabular.parse_column_types(["a"])
