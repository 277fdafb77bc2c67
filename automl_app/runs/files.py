"""Atomic files: every record of a run is written to a temporary name and renamed into place.

A crash or a full disk never leaves a half-written record: readers see the old file or the new
one. On a write error the temporary file is removed and the old file stays as it was.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to `path` via a temp file + rename (readers see old or new, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure as PNG via a temp file + rename, then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100, **savefig_kwargs)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """JSON flavour of atomic_write_text (sorted keys, numpy scalars converted)."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_replace_dir(tmp_dir: str | os.PathLike, final_dir: str | os.PathLike) -> Path:
    """Move a finished directory into place, replacing an older one (old kept until the swap)."""
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old-{os.getpid()}")
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final_dir


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], first: list[str]) -> Path:
    """Write rows as CSV atomically; `first` columns lead, the others follow sorted."""
    rows = list(rows)
    extra = sorted({k for r in rows for k in r} - set(first))
    cols = first + extra
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in cols})
    return atomic_write_text(path, buf.getvalue())


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"  # learning rates like 4.0554607e-03 keep their digits
    return v


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a trials.csv back (values stay strings; callers convert what they need)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
