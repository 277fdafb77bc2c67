"""Tables → numpy columns for AutoKeras's structured-data and IO APIs.

A table is a CSV or Parquet file (read with pandas and pyarrow), or a pandas DataFrame given to the
Python API. AutoKeras 3.0.0 takes numpy only, and its StructuredDataInput one string array [N, C],
so every cell becomes text: numerical cells normalised ("nan" for missing, so its float cast works)
and the column types inferred with AutoKeras's own rule, which users can override. One rule for
what is missing, the same for every source: an empty cell, NaN/None, or one of MISSING (any case,
spaces around ignored). A DataFrame given to a search is kept as RUN_DIR/data.parquet
(`save_frame`), and run.json names that file, so later commands read it like any table.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl_app.errors import DataError, UsageError

if TYPE_CHECKING:  # pandas is imported inside functions: it costs a second at start-up
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
PARQUET_SUFFIXES = (".parquet", ".pq")
FRAME_FILE = "data.parquet"  # a DataFrame given to a search, kept in its run directory
# Not UTF-8: Excel's Western default, then latin-1 (which decodes any byte). Each read says so.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
SNIFF_WHEN = (";", "\t", "|")  # a first line with one of these and no comma: detect the delimiter
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))  # fmt: skip
_PEEK = 1 << 16
_BASE_DIR = "automl_base_dir"  # data.parquet's attrs: where relative file paths in it start


@dataclass
class Table:
    """A table as text cells ("" where a value is missing): what the column rules below read."""

    cells: pd.DataFrame  # every column str, RangeIndex
    source: str  # the file, or "<DataFrame 150x5 sha256:…>"
    base_dir: Path  # relative file paths in cells (search multi's image column) start here
    notes: list[str] = field(default_factory=list)  # e.g. "read as cp1252, not UTF-8"

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.cells.columns]

    def __len__(self) -> int:
        return len(self.cells)

    def index(self, name: str) -> int:
        """A column's position (a name that is not in the table is a DataError naming it)."""
        if name not in self.columns:
            raise DataError(
                f"column {name!r} is not in {self.source}. Columns: {', '.join(self.columns)}"
            )
        return self.columns.index(name)

    def column(self, name: str, rows: np.ndarray | None = None) -> pd.Series:
        """One column's cells (all rows, or `rows`), as a str Series indexed 0..n-1."""
        s = self.cells.iloc[:, self.index(name)]
        return (s if rows is None else s.iloc[rows]).reset_index(drop=True)


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


# ---------------------------------------------------------------------------------------------
# reading: files and frames


def is_frame(obj: Any) -> bool:
    """A pandas DataFrame (told without importing pandas when nothing has loaded it)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def describe(source: Any) -> str:
    """How messages name a table: its path, or `<DataFrame ROWSxCOLS>`."""
    if is_frame(source):
        return f"<DataFrame {source.shape[0]}x{source.shape[1]}>"
    return str(source)


def estimate_table_bytes(source: Any, max_samples: int | None = None) -> int:
    """Upper estimate of the numpy string arrays built from a table (before reading a file)."""
    if is_frame(source):
        n, est = len(source), int(source.memory_usage(deep=True, index=False).sum()) * COPIES
    else:
        path = Path(source)
        size, n = path.stat().st_size, 0
        if _is_parquet(path):
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


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV or Parquet file (by extension) → DataFrame with named, unique columns and rows.

    CSV cells stay text exactly as written (types and missing values are decided later, the same
    way for every source). A file that is not UTF-8 is read as cp1252, else latin-1, and
    `frame.attrs["notes"]` says so. Problems are one-line DataErrors naming the file.
    """
    path = Path(path)
    kind = "Parquet file" if _is_parquet(path) else "CSV file"
    if not path.is_file():
        raise DataError(f"{kind} {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"{kind} {str(path)!r} is empty (no header row)")
    frame = _read_parquet(path) if _is_parquet(path) else _read_csv(path)
    if len(frame) == 0:
        raise DataError(f"{kind} {str(path)!r} has a header but no rows")
    return frame


def read_header(source: Any) -> list[str]:
    """The column names only (checked like read_table's): options are checked before a run."""
    if is_frame(source):
        return _check_names(source.columns, describe(source))
    path = Path(source)
    if not path.is_file():
        raise DataError(f"table file {str(path)!r} does not exist")
    if _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as exc:
            raise DataError(f"Parquet file {str(path)!r} cannot be read: {_line(exc)}") from None
        names = [n for n in names if not re.fullmatch(r"__index_level_\d+__", n)]
        return _check_names(names, str(path))
    head = _read_csv(path, nrows=2)
    if len(head) == 0:
        raise DataError(f"CSV file {str(path)!r} has a header but no rows")
    return [str(c) for c in head.columns]


def _read_csv(path: Path, nrows: int | None = None) -> pd.DataFrame:
    """pandas' C parser on text cells; encodings tried in turn; the delimiter sniffed only when
    the first line has no comma but a semicolon, tab or bar (or the file is .tsv)."""
    import pandas as pd

    with open(path, "rb") as fh:
        head = fh.read(_PEEK)
    bom = next((enc for mark, enc in _BOMS if head.startswith(mark)), None)
    if bom is None and b"\x00" in head:
        raise DataError(
            f"CSV file {str(path)!r} is not text in a known encoding (it holds NUL bytes: a "
            f"binary file, or UTF-16 without a byte-order mark); save it as UTF-8 CSV"
        )
    encodings = (bom,) if bom else ("utf-8-sig", *FALLBACK_ENCODINGS)
    first = head.decode(encodings[0], errors="replace").lstrip("\ufeff").split("\n", 1)[0]
    sep: str | None = ","
    if path.suffix.lower() == ".tsv":
        sep = "\t"
    elif "," not in first and any(c in first for c in SNIFF_WHEN):
        sep = None  # csv.Sniffer inside pandas' python engine
    where = f"CSV file {str(path)!r}"
    for enc in encodings:
        try:
            raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, sep=sep,
                              engine="c" if sep else "python", encoding=enc, nrows=nrows)  # fmt: skip
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise DataError(f"{where} is empty (no header row)") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise DataError(_parser_message(path, exc)) from None
        break
    else:  # unreachable while latin-1 is a fallback; kept for a BOM that lies
        raise DataError(f"{where} cannot be decoded as {' or '.join(encodings)}; save it as UTF-8")
    names = _check_names(raw.iloc[0].tolist(), where)
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = names
    if enc not in ("utf-8-sig", bom):
        frame.attrs["notes"] = [f"{path.name} is not UTF-8; read it as {enc}"]
    return frame


def _parser_message(path: Path, exc: Exception) -> str:
    text = _line(exc).replace("Error tokenizing data. C error: ", "")
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"{path}, line {m[2]}: {m[3]} cells but the header has {m[1]}"
    return f"CSV file {str(path)!r} cannot be parsed: {text}"


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # pyarrow's errors: not Parquet, truncated, unsupported types
        raise DataError(f"Parquet file {str(path)!r} cannot be read: {_line(exc)}") from None
    frame.columns = _check_names(frame.columns, f"Parquet file {str(path)!r}")
    return frame.reset_index(drop=True)


def _check_names(names: Sequence[Any], where: str) -> list[str]:
    """Column names: stripped, present, unique, and not a row of data (a header-less file)."""
    out = [str(n).strip() for n in names]
    blank = [i + 1 for i, n in enumerate(out) if not n]
    if blank:
        raise DataError(f"{where}: column {blank[0]} has no name in the header row; name it "
                        f"(a saved index? write the table with index=False)")  # fmt: skip
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise DataError(f"{where}: duplicate column name(s) {', '.join(map(repr, dupes))}; "
                        f"column names must be unique")  # fmt: skip
    if all(not np.isnan(v) for v in _numbers(_series(out))):
        shown = ", ".join(out[:4]) + (", …" if len(out) > 4 else "")
        raise DataError(f"{where}: the first row ({shown}) looks like data, not column names; "
                        f"add a header row")  # fmt: skip
    return out


def open_table(source: Any, *, max_samples: int | None = None) -> Table:
    """A file path or a DataFrame → Table of text cells; the memory check runs before reading."""
    if is_frame(source) or Path(source).is_file():  # a missing file: read_table names it
        check_memory(estimate_table_bytes(source, max_samples), f"loading {describe(source)}")
    if is_frame(source):
        if len(source) == 0:
            raise DataError(f"{describe(source)} has no rows")
        names = _check_names(source.columns, describe(source))
        cells = text_cells(source)
        cells.columns = names
        label = f"<DataFrame {len(cells)}x{len(names)} sha256:{frame_digest(cells)[:12]}>"
        return Table(cells, label, Path.cwd())
    path = Path(source)
    frame = read_table(path)
    cells = text_cells(frame) if _is_parquet(path) else frame
    base = Path(frame.attrs.get(_BASE_DIR) or path.parent)
    return Table(cells, str(path), base, notes=list(frame.attrs.get("notes", [])))


def text_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text: numbers in their shortest repr, bools True/False, missing → ""."""
    import pandas as pd

    cols = {}
    for j in range(frame.shape[1]):
        s = frame.iloc[:, j]
        text = s.astype(str)
        cols[j] = text.where(s.notna().to_numpy(), "").astype(str)
    out = pd.DataFrame(cols).reset_index(drop=True)
    out.columns = list(frame.columns)
    return out


def frame_digest(cells: pd.DataFrame) -> str:
    """sha256 of the column names and text cells (what the search reads), row order included."""
    import pandas as pd

    h = hashlib.sha256("\x1f".join(map(str, cells.columns)).encode())
    h.update(pd.util.hash_pandas_object(cells, index=False).to_numpy().tobytes())
    return h.hexdigest()


def save_frame(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Keep a DataFrame given to a search as Parquet (RUN_DIR/data.parquet), so later commands
    read the run's table like any file. Dtypes are kept; object columns (which may mix types
    pyarrow cannot store) are stored as their text cells, which is what the search reads. Relative
    paths in the frame keep pointing where they did (the current directory is recorded). An
    existing file (a resumed run) is left as it is."""
    import pandas as pd

    path = Path(path)
    if path.exists():
        return path
    out = frame.reset_index(drop=True)
    out.columns = _check_names(frame.columns, describe(frame))
    for j, dtype in enumerate(out.dtypes):
        if pd.api.types.is_object_dtype(dtype):
            s = out.iloc[:, j]
            out[out.columns[j]] = text_cells(s.to_frame()).iloc[:, 0].where(s.notna(), None)
    out.attrs = {_BASE_DIR: str(Path.cwd())}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.to_parquet(tmp, index=False, engine="pyarrow")
    except Exception:  # a dtype Parquet cannot hold: keep the text the search reads
        cells = text_cells(out)
        cells.attrs = out.attrs
        cells.to_parquet(tmp, index=False, engine="pyarrow")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# columns: types, targets, the feature matrix


def _series(cells: Sequence[str] | pd.Series) -> pd.Series:
    import pandas as pd

    if isinstance(cells, pd.Series):
        return cells.reset_index(drop=True)
    return pd.Series(list(cells), dtype=object)


def _missing(s: pd.Series) -> np.ndarray:
    text = s.astype(str).str.strip().str.lower()
    return (s.isna() | text.isin(MISSING)).to_numpy(dtype=bool)


def _numbers(s: pd.Series) -> np.ndarray:
    """float64 per cell; NaN where the cell is not a number (pandas' parser, spaces ignored)."""
    import pandas as pd

    parsed = pd.to_numeric(s.astype(str).str.strip(), errors="coerce")
    return np.asarray(parsed.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)


def infer_column_type(cells: Sequence[str] | pd.Series) -> str:
    """'categorical' if any present cell is not a number or few distinct values; else numerical."""
    s = _series(cells)
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
    s = _series(cells)
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
    labels = s.astype(str).str.strip().tolist()
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
            out_cols.append(cells.astype(str).str.strip().to_numpy(dtype=str))
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
