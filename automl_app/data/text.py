"""Text data → numpy string arrays for AutoKeras's TextClassifier/TextRegressor.

Two sources: a folder `DIR/<class>/*.txt` (one example per file, the folder name is the label) and
a table (CSV, Parquet or a pandas DataFrame, read by data/tables.py) with a text column and a
target column. AutoKeras wants a numpy unicode array (not object), which costs 4 bytes per
character of the *longest* text for every example, so the memory estimate uses the largest file
before anything is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.data import tabular
from automl_app.errors import DataError

TEXT_SUFFIXES = (".txt",)


@dataclass
class TextData:
    """Texts and targets ready for AutoKeras."""

    texts: np.ndarray  # [N] str
    y: np.ndarray  # [N] int class ids or float32 values
    task: str
    class_names: list[str] | None
    source: str
    notes: list[str] = field(default_factory=list)  # e.g. the CSV's encoding when not UTF-8


def estimate_text_bytes(n: int, max_chars: int) -> int:
    """Bytes of the unicode arrays AutoKeras works on (4 bytes/char, padded, a few copies)."""
    return int(n) * int(max_chars) * 4 * tabular.COPIES


def list_text_folder(data_dir: str | os.PathLike) -> tuple[list[Path], list[int], list[str]]:
    """Files and class ids of `DIR/<class>/*.txt`; class names sorted."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"text folder {str(root)!r} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for i, name in enumerate(classes):
        found = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
        )
        files.extend(found)
        labels.extend([i] * len(found))
    used = sorted({classes[i] for i in labels})
    if len(used) < 2:
        raise DataError(
            f"text folder {str(root)!r} needs at least 2 class folders with *.txt files "
            f"(DIR/<class>/*.txt); found {used or 'none'}"
        )
    return files, labels, classes


def load_text_folder(
    data_dir: str | os.PathLike, *, max_samples: int | None = None, seed: int = 0
) -> TextData:
    """Read `DIR/<class>/*.txt`; checks memory before reading the files."""
    files, labels, classes = list_text_folder(data_dir)
    keep = tabular.subsample(len(files), max_samples, seed)
    files = [files[i] for i in keep]
    labels = [labels[i] for i in keep]
    max_bytes = max((f.stat().st_size for f in files), default=0)
    tabular.check_memory(
        estimate_text_bytes(len(files), max_bytes), f"{len(files)} texts from {data_dir}"
    )
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    return TextData(
        texts=np.asarray(texts, dtype=str),
        y=np.asarray(labels, dtype=np.int64),
        task="classification",
        class_names=classes,
        source=str(data_dir),
    )


def load_text_csv(
    source: Any,
    text_column: str,
    target: str,
    *,
    task: str = "auto",
    max_samples: int | None = None,
    seed: int = 0,
) -> TextData:
    """A text column and a target column from a CSV or Parquet file, or a pandas DataFrame
    (task auto|classification|regression); a missing text is an empty string."""
    table = tabular.open_table(source, max_samples=max_samples)
    table.index(text_column)
    table.index(target)
    rows = tabular.subsample(len(table), max_samples, seed)
    texts = table.text(text_column, rows)
    task, y, names = tabular.encode_target(table.column(target, rows), task, target, table.source)
    return TextData(
        texts=texts, y=y, task=task, class_names=names, source=table.source, notes=table.notes
    )


def write_text_folder(root: str | os.PathLike, texts: Sequence[str], labels: Sequence[str]) -> Path:
    """Write `root/<label>/<i>.txt` (handy for tests and demos)."""
    root = Path(root)
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        d = root / str(label)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:05d}.txt").write_text(text, encoding="utf-8")
    return root
