"""CSV files → numpy columns for AutoKeras's structured-data and IO APIs (no pandas needed).

AutoKeras 3.0.0 takes numpy arrays only. Feature columns become one string array [N, C] (what its
StructuredDataInput accepts), with numerical cells normalised ("nan" for missing, so its float cast
works) and the column types inferred with AutoKeras's own rule, which users can override.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.errors import DataError, UsageError

COLUMN_TYPES = ("numerical", "categorical")
TASKS = ("auto", "classification", "regression")
MISSING = {"", "na", "nan", "null", "none", "?"}
# AutoKeras: a numeric column is categorical when distinct values / rows < 5%.
CATEGORICAL_RATIO = 0.05
# A numeric target with at most this many distinct integer values is a class label under task=auto.
MAX_AUTO_CLASSES = 20
# numpy string arrays store 4 bytes per character at the longest cell's width; AutoKeras copies
# the arrays a few times (analysis, pipeline transform, train+val concatenation).
COPIES = 3


@dataclass
class Table:
    """A CSV read into memory: header and string cells, row-major."""

    path: Path
    columns: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        """One column's cells (a name that is not in the header is a DataError naming the file)."""
        return [r[self.index(name)] for r in self.rows]

    def index(self, name: str) -> int:
        if name not in self.columns:
            raise DataError(
                f"column {name!r} is not in {self.path}. Columns: {', '.join(self.columns)}"
            )
        return self.columns.index(name)


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


def estimate_csv_bytes(path: str | os.PathLike, max_samples: int | None = None) -> int:
    """Upper estimate of the numpy string arrays built from a CSV (before reading it)."""
    size = Path(path).stat().st_size
    # UCS-4 (4 bytes/char) and padding to the widest cell: budget 8 bytes per file byte.
    est = size * 8 * COPIES
    if max_samples is not None:
        with open(path, encoding="utf-8", errors="replace") as fh:
            n_lines = sum(1 for _ in fh) - 1
        if n_lines > 0:
            est = int(est * min(1.0, max_samples / n_lines))
    return est


def read_csv(path: str | os.PathLike, *, check: bool = True) -> Table:
    """Read a CSV with a header row; ragged rows and a missing file are DataErrors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist")
    if check:
        check_memory(estimate_csv_bytes(path), f"reading {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"CSV file {str(path)!r} is empty (no header row)") from None
        rows = []
        for i, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {i}: {len(row)} cells but the header has {len(header)}"
                )
            rows.append(row)
    if not rows:
        raise DataError(f"CSV file {str(path)!r} has a header but no rows")
    return Table(path=path, columns=[h.strip() for h in header], rows=rows)


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def _as_float(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value


def infer_column_type(cells: Sequence[str]) -> str:
    """'categorical' if any present cell is not a number or few distinct values; else numerical."""
    present = [c for c in cells if not _is_missing(c)]
    if not present:
        return "numerical"
    values = [_as_float(c) for c in present]
    if any(v is None for v in values):
        return "categorical"
    if len(set(values)) / len(values) < CATEGORICAL_RATIO:
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


def _normalise_numeric(cell: str) -> str:
    if _is_missing(cell):
        return "nan"
    value = _as_float(cell)
    return "nan" if value is None or math.isnan(value) else repr(value)


def encode_target(cells: Sequence[str], task: str, target: str, source: str):
    """Target cells → (task, y, class_names). task 'auto' picks regression for real numbers."""
    if task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}. Received: task={task!r}")
    missing = [i for i, c in enumerate(cells) if _is_missing(c)]
    if missing:
        raise DataError(
            f"target column {target!r} of {source} has {len(missing)} missing values "
            f"(first at data row {missing[0] + 1}); drop those rows first"
        )
    values = [_as_float(c) for c in cells]
    numeric = all(v is not None for v in values)
    if task == "auto":
        distinct = set(values) if numeric else set()
        is_label = not numeric or (
            len(distinct) <= MAX_AUTO_CLASSES and all(float(v).is_integer() for v in distinct)
        )
        task = "classification" if is_label else "regression"
    if task == "regression":
        if not numeric:
            bad = next(c for c, v in zip(cells, values, strict=True) if v is None)
            raise DataError(
                f"regression needs a numeric target, but column {target!r} of {source} holds "
                f"{bad!r}"
            )
        return task, np.asarray(values, dtype=np.float32), None
    labels = [c.strip() for c in cells]
    distinct_labels = set(labels)
    if numeric:
        names = sorted(distinct_labels, key=lambda s: (float(s), s))
    else:
        names = sorted(distinct_labels)
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
    source = str(table.path)
    overrides = validate_column_types(column_types, columns, source)
    idx = [table.index(c) for c in columns]
    sel = table.rows if rows is None else [table.rows[i] for i in rows]
    types: dict[str, str] = {}
    out_cols = []
    for name, j in zip(columns, idx, strict=True):
        cells = [r[j] for r in sel]
        kind = overrides.get(name) or infer_column_type(cells)
        if kind == "numerical":
            bad = next((c for c in cells if not _is_missing(c) and _as_float(c) is None), None)
            if bad is not None:
                raise DataError(
                    f"column {name!r} of {source} is declared numerical but holds {bad!r}; "
                    f"declare it categorical"
                )
            cells = [_normalise_numeric(c) for c in cells]
        else:
            cells = [c.strip() for c in cells]
        types[name] = kind
        out_cols.append(cells)
    x = np.asarray(out_cols, dtype=str).T if out_cols else np.zeros((len(sel), 0), dtype=str)
    return x, types


def load_csv(
    path: str | os.PathLike,
    target: str,
    *,
    task: str = "auto",
    columns: Sequence[str] | None = None,
    column_types: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
    max_samples: int | None = None,
    seed: int = 0,
) -> TabularData:
    """CSV → TabularData: every column but the target (and `exclude`) is a feature by default."""
    path = Path(path)
    if path.is_file():
        check_memory(estimate_csv_bytes(path, max_samples), f"loading {path}")
    table = read_csv(path, check=False)
    table.index(target)
    if columns is None:
        columns = [c for c in table.columns if c != target and c not in exclude]
    else:
        for c in columns:
            table.index(c)
    if not columns:
        raise DataError(f"{path} has no feature columns besides the target {target!r}")
    rows = subsample(len(table.rows), max_samples, seed)
    x, types = feature_matrix(table, columns, column_types, rows)
    y_cells = [table.rows[i][table.index(target)] for i in rows]
    task, y, names = encode_target(y_cells, task, target, str(path))
    return TabularData(
        x=x,
        y=y,
        column_names=list(columns),
        column_types=types,
        task=task,
        class_names=names,
        target=target,
        source=str(path),
    )
