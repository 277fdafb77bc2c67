"""Atomic files: every record of a run is written to a temporary name and renamed into place.

A crash or a full disk never leaves a half-written record: readers see the old file or the new
one. On a write error the temporary file is removed and the old file stays as it was; a full disk
is one DiskFullError line that says so.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from automl_app.errors import DataError

_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(DataError, OSError):
    """No space (or quota) left while writing a record; the previous file is untouched."""


def disk_full(path: str | os.PathLike, exc: OSError, existed: bool = True) -> DiskFullError:
    """The one-line error for `exc` (ENOSPC/EDQUOT) while writing `path`."""
    kept = "the previous file is intact" if existed else "nothing was written"
    return DiskFullError(
        f"disk full writing {path}: {exc.strerror or exc}; {kept}. Free some space on that disk "
        "and run the command again"
    )


def previous_copy(path: str | os.PathLike) -> Path:
    """Where `atomic_write_text(..., keep_previous=True)` keeps the version it replaced."""
    path = Path(path)
    return path.with_name(f".{path.name}.prev")


def atomic_write_text(path: str | os.PathLike, text: str, *, keep_previous: bool = False) -> Path:
    """Write text to `path` via a temp file + rename (readers see old or new, never half).

    With keep_previous the replaced version stays as `previous_copy(path)` (a hard link, no copy),
    so a file damaged later by hand can be restored. A full disk raises DiskFullError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous and existed:
            _link_previous(path)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise disk_full(path, exc, existed) from None
        raise
    return path


def _link_previous(path: Path) -> None:
    prev = previous_copy(path)
    link = prev.with_name(f"{prev.name}.{os.getpid()}")
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, prev)
    except OSError:  # no hard links here (some network file systems): no previous copy
        link.unlink(missing_ok=True)


def atomic_save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure as PNG via a temp file + rename, then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100, **savefig_kwargs)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in _FULL:
            raise disk_full(path, exc, path.exists()) from None
        raise
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path: str | os.PathLike, data: Any, *, keep_previous: bool = False) -> Path:
    """JSON flavour of atomic_write_text (numpy scalars converted)."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    return atomic_write_text(path, text, keep_previous=keep_previous)


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
    return atomic_write_text(path, csv_text(rows, first))


def csv_text(rows: Iterable[Mapping[str, Any]], first: list[str]) -> str:
    """The CSV `write_csv` writes, as a string."""
    rows = list(rows)
    extra = sorted({k for r in rows for k in r} - set(first))
    cols = first + extra
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in cols})
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"  # learning rates like 4.0554607e-03 keep their digits
    return v
