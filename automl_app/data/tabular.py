"""Tables → numpy columns for AutoKeras's structured-data and IO APIs.

AutoKeras 3.0.0 takes numpy only, and its StructuredDataInput one string array [N, C]. data/tables.py
reads the table (a CSV or Parquet file, or a pandas DataFrame); here numerical cells are normalised
(the repr of each float, "nan" for missing, so AutoKeras's float cast works) and column types are
inferred with AutoKeras's own rule, which users can override. One rule for what is missing, the
same for every source: an empty cell, NaN/None, or one of MISSING (any case, spaces around
ignored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl_app.data import tables
from automl_app.data.tables import Table, as_series, as_text, is_number_column
from automl_app.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd

COLUMN_TYPES = ("numerical", "categorical")
TASKS = ("auto", "classification", "regression")
MISSING = frozenset({"", "na", "nan", "null", "none", "?"})
# AutoKeras: a numeric column is categorical when distinct values / rows < 5%.
CATEGORICAL_RATIO = 0.05
# A numeric target with at most this many distinct integer values is a class label under task=auto.
MAX_AUTO_CLASSES = 20
# numpy string arrays store 4 bytes per character at the longest cell's width; AutoKeras copies
# the arrays a few times (analysis, pipeline transform, train+val concatenation).
COPIES = 3


@dataclass
class TabularData:
    """Feature matrix and target ready for StructuredDataClassifier/Regressor."""

    x: np.ndarray  # [N, C] str
    y: np.ndarray  # [N] int class ids (classification) or float32 (regression)
    column_names: list[str]
    column_types: dict[str, str]
    task: str
    class_names: list[str] | None = None
    target: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_memory(needed_bytes: int, what: str, *, available: int | None = None) -> None:
    """Stop before materialising arrays that would not fit in memory; suggest --max-samples."""
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except Exception:  # psutil missing or unsupported platform: cannot tell, go ahead
            return
    if needed_bytes > available:
        raise DataError(
            f"{what} needs about {_human(needed_bytes)} ({needed_bytes} bytes) in memory for "
            f"AutoKeras, but only {_human(available)} is available; pass --max-samples to use "
            f"fewer examples"
        )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def estimate_table_bytes(source: Any, max_samples: int | None = None) -> int:
    """Upper estimate of the numpy string arrays built from a table (before reading a file)."""
    if tables.is_frame(source):
        n, est = len(source), int(source.memory_usage(deep=True, index=False).sum()) * COPIES
    else:
        path = Path(source)
        size, n = path.stat().st_size, 0
        if path.suffix.lower() in tables.PARQUET_SUFFIXES:
            try:
                import pyarrow.parquet as pq

                meta = pq.ParquetFile(path).metadata
                n = meta.num_rows
                size = max(size, sum(meta.row_group(i).total_byte_size
                                     for i in range(meta.num_row_groups)))  # fmt: skip
            except Exception:  # not Parquet after all: read_table says so
                pass
        else:
            with open(path, "rb") as fh:
                n = sum(b.count(b"\n") for b in iter(lambda: fh.read(1 << 20), b"")) - 1
        # UCS-4 (4 bytes/char) and padding to the widest cell: budget 8 bytes per file byte.
        est = size * 8 * COPIES
    if max_samples is not None and n > 0:
        est = int(est * min(1.0, max_samples / n))
    return est


def open_table(source: Any, *, max_samples: int | None = None) -> Table:
    """A file path or a DataFrame → tables.Table, after checking the arrays will fit in memory."""
    if tables.is_frame(source) or Path(source).is_file():  # a missing file: read_table names it
        what = f"loading {tables.describe(source)}"
        check_memory(estimate_table_bytes(source, max_samples), what)
    return tables.read_cells(source)


def _missing(s: pd.Series) -> np.ndarray:
    """NaN/None, or text that is one of MISSING (any case, spaces around ignored)."""
    if is_number_column(s):
        return s.isna().to_numpy(dtype=bool)
    text = s.astype(str).str.strip().str.lower()
    return (s.isna() | text.isin(MISSING)).to_numpy(dtype=bool)


def _numbers(s: pd.Series) -> np.ndarray:
    """float64 per cell; NaN where the cell is not a number (pandas' parser, spaces ignored)."""
    import pandas as pd

    if not is_number_column(s):
        s = pd.to_numeric(s.astype(str).str.strip(), errors="coerce")
    return np.asarray(s.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)


def infer_column_type(cells: Sequence[str] | pd.Series) -> str:
    """'categorical' if any present cell is not a number or few distinct values; else numerical."""
    s = as_series(cells)
    values = _numbers(s)[~_missing(s)]
    if values.size == 0:
        return "numerical"
    if np.isnan(values).any():
        return "categorical"
    if len(np.unique(values)) / values.size < CATEGORICAL_RATIO:
        return "categorical"
    return "numerical"


def validate_column_types(
    column_types: Mapping[str, str] | None, columns: Sequence[str], source: str
) -> dict[str, str]:
    """User overrides: known column names and 'numerical'|'categorical' only (exit 2 otherwise)."""
    out: dict[str, str] = {}
    for name, kind in (column_types or {}).items():
        if kind not in COLUMN_TYPES:
            raise UsageError(
                f"column type must be one of {', '.join(COLUMN_TYPES)}. Received: {name}={kind!r}"
            )
        if name not in columns:
            raise UsageError(
                f"column type given for {name!r}, which is not a feature column of {source}. "
                f"Feature columns: {', '.join(columns)}"
            )
        out[name] = kind
    return out


def parse_column_types(items: Sequence[str]) -> dict[str, str]:
    """CLI form `NAME=numerical` / `NAME=categorical` (repeatable option) → dict."""
    out = {}
    for item in items:
        name, sep, kind = item.partition("=")
        if not sep or not name:
            raise UsageError(
                f"--column-type must look like NAME=numerical or NAME=categorical. "
                f"Received: {item!r}"
            )
        out[name.strip()] = kind.strip()
    return out


def encode_target(cells: Sequence[str] | pd.Series, task: str, target: str, source: str):
    """Target cells → (task, y, class_names). task 'auto' picks regression for real numbers."""
    if task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}. Received: task={task!r}")
    s = as_series(cells)
    missing = np.flatnonzero(_missing(s))
    if missing.size:
        raise DataError(
            f"target column {target!r} of {source} has {missing.size} missing values "
            f"(first at data row {missing[0] + 1}); drop those rows first"
        )
    values = _numbers(s)
    numeric = not np.isnan(values).any()
    if task == "auto":
        distinct = np.unique(values) if numeric else np.zeros(0)
        is_label = not numeric or (
            len(distinct) <= MAX_AUTO_CLASSES
            and bool(np.all(np.isfinite(distinct) & (distinct == np.floor(distinct))))
        )
        task = "classification" if is_label else "regression"
    if task == "regression":
        if not numeric:
            bad = s.iloc[int(np.flatnonzero(np.isnan(values))[0])]
            raise DataError(
                f"regression needs a numeric target, but column {target!r} of {source} holds "
                f"{bad!r}"
            )
        return task, values.astype(np.float32), None
    labels = np.char.strip(as_text(s)).tolist()
    if numeric:
        number = dict(zip(labels, values.tolist(), strict=True))
        names = sorted(set(labels), key=lambda n: (number[n], n))
    else:
        names = sorted(set(labels))
    if len(names) < 2:
        raise DataError(
            f"classification needs at least 2 classes, but column {target!r} of {source} has "
            f"only {names!r}"
        )
    index = {n: i for i, n in enumerate(names)}
    return task, np.asarray([index[c] for c in labels], dtype=np.int64), names


def subsample(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    """Row indices: all rows, or a seeded random subset of max_samples in file order."""
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_samples, replace=False))


def feature_matrix(
    table: Table,
    columns: Sequence[str],
    column_types: Mapping[str, str] | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """Selected columns → string array [N, C] and the final column types (inferred + overrides)."""
    overrides = validate_column_types(column_types, columns, table.source)
    types: dict[str, str] = {}
    out_cols = []
    for name in columns:
        cells = table.column(name, rows)
        kind = overrides.get(name) or infer_column_type(cells)
        if kind == "numerical":
            values = _numbers(cells)
            bad = np.flatnonzero(np.isnan(values) & ~_missing(cells))
            if bad.size:
                raise DataError(
                    f"column {name!r} of {table.source} is declared numerical but holds "
                    f"{cells.iloc[int(bad[0])]!r}; declare it categorical"
                )
            out_cols.append(values.astype(str))  # repr of each float; "nan" where missing
        else:
            text = as_text(cells)
            out_cols.append(text if is_number_column(cells) else np.char.strip(text))
        types[name] = kind
    n = len(table) if rows is None else len(rows)
    x = np.asarray(out_cols, dtype=str).T if out_cols else np.zeros((n, 0), dtype=str)
    return x, types


def load_table(
    source: Any,
    target: str,
    *,
    task: str = "auto",
    columns: Sequence[str] | None = None,
    column_types: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
    max_samples: int | None = None,
    seed: int = 0,
) -> TabularData:
    """A CSV/Parquet path or a DataFrame → TabularData: every column but the target (and
    `exclude`) is a feature by default."""
    table = open_table(source, max_samples=max_samples)
    table.index(target)
    if columns is None:
        columns = [c for c in table.columns if c != target and c not in exclude]
    else:
        for c in columns:
            table.index(c)
    if not columns:
        raise DataError(f"{table.source} has no feature columns besides the target {target!r}")
    rows = subsample(len(table), max_samples, seed)
    x, types = feature_matrix(table, columns, column_types, rows)
    task, y, names = encode_target(table.column(target, rows), task, target, table.source)
    return TabularData(
        x=x,
        y=y,
        column_names=list(columns),
        column_types=types,
        task=task,
        class_names=names,
        target=target,
        source=table.source,
        notes=table.notes,
    )


load_csv = load_table  # the name `--csv` suggests; it reads Parquet and DataFrames as well


TEST_FRACTION = 0.2  # the held-out test share of a table or text search's rows


def holdout(
    y: np.ndarray,
    task: str,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float = TEST_FRACTION,
    max_train: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/val/test row indices; per class for classifiers, so every class keeps
    training rows (AutoKeras needs them) and the test set mirrors the class balance. The one
    rule: the table and text searches split with it and every command that reads their runs
    rebuilds the same split with it."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(y == c) for c in np.unique(y)]
        if task == "classification"
        else [np.arange(len(y))]
    )
    tr, va, te = [], [], []
    for g in groups:
        g = rng.permutation(g)
        n_test = int(round(len(g) * test_fraction))
        n_val = int(round(len(g) * val_fraction))
        if len(g) - n_test - n_val < 1:  # a rare class: keep one row for training
            n_val = max(0, min(n_val, len(g) - n_test - 1))
            n_test = max(0, min(n_test, len(g) - 1))
        te.append(g[:n_test])
        va.append(g[n_test : n_test + n_val])
        tr.append(g[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in (tr, va, te))
    if max_train is not None and len(train) > max_train:
        train = np.sort(rng.choice(train, size=max_train, replace=False))
    if len(test) == 0:
        raise DataError(f"too few rows ({len(y)}) to hold out a test split; use more data")
    return train, val, test


def rows_to_load(max_samples: int | None, val_fraction: float, test_fraction: float) -> int | None:
    """Rows to read so that `max_samples` training rows remain after the val/test hold-out."""
    if max_samples is None:
        return None
    return int(math.ceil(max_samples / (1.0 - test_fraction - val_fraction))) + 2
