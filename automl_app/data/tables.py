"""Tables read with pandas: CSV and Parquet files, and the Python API's DataFrames.

pandas' C parser reads CSV (quoting, newlines inside quotes, CRLF, a BOM); a file that is not UTF-8
is read as cp1252, else latin-1, and says so; the delimiter is sniffed only when the first line has
no comma. Parquet goes through pyarrow, chosen by the file's extension. A CSV's cells stay text
exactly as written; from Parquet or a DataFrame, int/float columns stay numbers and every other
column becomes text. data/tabular.py decides types and missing values, one rule for every source.
A DataFrame given to a search is kept as RUN_DIR/data.parquet (`save_frame`), so later commands
read the run's table like any file.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl_app.errors import DataError

if TYPE_CHECKING:  # pandas is imported inside functions: it costs a second at start-up
    import pandas as pd

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
    """A table as data/tabular.py's column rules read it: text cells ("" where a value is
    missing), and from Parquet or a DataFrame numeric columns as they are (NaN where missing)."""

    cells: pd.DataFrame  # str columns, or int/float ones; RangeIndex
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
        """One column's cells (all rows, or `rows`), indexed 0..n-1."""
        s = self.cells.iloc[:, self.index(name)]
        return (s if rows is None else s.iloc[rows]).reset_index(drop=True)

    def text(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """One column as a numpy str array ("" where missing): texts, file paths."""
        return as_text(self.column(name, rows))


def is_frame(obj: Any) -> bool:
    """A pandas DataFrame (told without importing pandas when nothing has loaded it)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def kind_word(source: Any) -> str:
    """What the data line calls a table: CSV, Parquet or DataFrame."""
    if is_frame(source):
        return "DataFrame"
    return "Parquet" if _is_parquet(Path(str(source))) else "CSV"


def describe(source: Any) -> str:
    """How messages name a table: its path, or `<DataFrame ROWSxCOLS>`."""
    if is_frame(source):
        return f"<DataFrame {source.shape[0]}x{source.shape[1]}>"
    return str(source)


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
                              engine="c" if sep else "python", encoding=enc,
                              nrows=nrows)  # fmt: skip
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
    hint = " (an unclosed quote?)" if "EOF" in text or "end of data" in text else ""
    return f"CSV file {str(path)!r} cannot be parsed: {text}{hint}"


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


def _all_numbers(names: list[str]) -> bool:
    import pandas as pd

    parsed = pd.to_numeric(pd.Series(names, dtype=object).str.strip(), errors="coerce")
    return bool(parsed.notna().all())


def _check_names(names: Sequence[Any], where: str) -> list[str]:
    """Column names: stripped, present, unique, and not a row of data (a header-less file)."""
    out = [str(n).strip() for n in names]
    blank = [i + 1 for i, n in enumerate(out) if not n]
    if blank:
        raise DataError(f"{where}: column {blank[0]} has no name in the header row; name it "
                        f"(a saved index? write the table with index=False)")  # fmt: skip
    dupes = sorted(n for n, k in Counter(out).items() if k > 1)
    if dupes:
        raise DataError(f"{where}: duplicate column name(s) {', '.join(map(repr, dupes))}; "
                        f"column names must be unique")  # fmt: skip
    if _all_numbers(out):
        shown = ", ".join(out[:4]) + (", …" if len(out) > 4 else "")
        raise DataError(f"{where}: the first row ({shown}) looks like data, not column names; "
                        f"add a header row")  # fmt: skip
    return out


def read_cells(source: Any) -> Table:
    """A file path or a DataFrame → Table (tabular.open_table checks memory first)."""
    if is_frame(source):
        if len(source) == 0:
            raise DataError(f"{describe(source)} has no rows")
        names = _check_names(source.columns, describe(source))
        cells = _cells(source)
        cells.columns = names
        label = f"<DataFrame {len(cells)}x{len(names)} sha256:{frame_digest(cells)[:12]}>"
        return Table(cells, label, Path.cwd())
    path = Path(source)
    frame = read_table(path)
    cells = _cells(frame) if _is_parquet(path) else frame
    base = Path(frame.attrs.get(_BASE_DIR) or path.parent)
    return Table(cells, str(path), base, notes=list(frame.attrs.get("notes", [])))


def is_number_column(s: pd.Series) -> bool:
    """int/float columns (numpy or nullable); bools, strings, categories and dates are text."""
    return s.dtype.kind in "iuf"


def as_series(cells: Sequence[str] | pd.Series) -> pd.Series:
    import pandas as pd

    if isinstance(cells, pd.Series):
        return cells.reset_index(drop=True)
    return pd.Series(list(cells), dtype=object)


def as_text(cells: Sequence[str] | pd.Series) -> np.ndarray:
    """Cells as a numpy str array: numbers in their shortest repr (what a CSV writer writes),
    bools True/False, "" where a value is missing (NaN, None)."""
    s = as_series(cells)
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf":  # numpy formats fast, in C
        values = s.to_numpy()
        out = values.astype(str)
        if s.dtype.kind == "f":
            out[np.isnan(values)] = ""
        return out
    return s.astype(str).where(s.notna().to_numpy(), "").to_numpy(dtype=str)


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """A DataFrame's columns as Table cells: numeric ones kept, every other one as text."""
    import pandas as pd

    cols = {}
    for j in range(frame.shape[1]):
        s = frame.iloc[:, j]
        cols[j] = s if is_number_column(s) else as_text(s)
    out = pd.DataFrame(cols, index=pd.RangeIndex(len(frame)))
    out.columns = list(frame.columns)
    return out


def frame_digest(cells: pd.DataFrame) -> str:
    """sha256 of the column names and the cells (what the search reads), row order included."""
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
            out[out.columns[j]] = pd.Series(as_text(s), dtype=object).where(s.notna(), None)
    out.attrs = {_BASE_DIR: str(Path.cwd())}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.to_parquet(tmp, index=False, engine="pyarrow")
    except Exception:  # a dtype Parquet cannot hold: keep what the search reads
        cells = _cells(out)
        cells.attrs = out.attrs
        cells.to_parquet(tmp, index=False, engine="pyarrow")
    os.replace(tmp, path)
    return path
