"""Image folders as datasets: listing, a split that is stable by content, class balancing.

Layouts: `DIR/<class>/*` (split here by content hash) or `DIR/{train,val,test}/<class>/*`.
Splitting by a file's content hash (not its name or position) means adding files never moves an
existing file between splits, and exact duplicates always land in the same split.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from automl_app.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
# Held-out test share of an unsplit folder, the same for every engine (images.prepare_folder).
DEFAULT_TEST_FRACTION = 0.1


@dataclass(frozen=True)
class ImageFile:
    """One listed file: its path, class name and split ('train'/'val'/'test', None = unsplit)."""

    path: str
    label: str
    split: str | None = None


@dataclass
class FolderListing:
    """Files below an image folder, the sorted class names and which layout was found."""

    root: str
    files: list[ImageFile]
    class_names: list[str]
    layout: str  # "classes" or "splits"
    ignored: list[str] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the supported extensions (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files_below(class_dir: Path, label: str, split: str | None, ignored: list[str]):
    for root, dirs, names in os.walk(class_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            full = os.path.join(root, name)
            if is_image_name(name):
                yield ImageFile(full, label, split)
            elif not name.startswith("."):
                ignored.append(full)


def list_folder(data_dir: str | os.PathLike) -> FolderListing:
    """List `DIR/<class>/*` or `DIR/{train,val,test}/<class>/*` (files in nested folders too)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"--data-dir {str(root)!r} is not a directory")
    top = _subdirs(root)
    names = {p.name.lower() for p in top}
    ignored: list[str] = []
    files: list[ImageFile] = []
    if top and "train" in names and names <= set(SPLIT_NAMES):
        layout = "splits"
        for split_dir in top:
            split = SPLIT_NAMES[split_dir.name.lower()]
            for class_dir in _subdirs(split_dir):
                files.extend(_files_below(class_dir, class_dir.name, split, ignored))
        train_classes = {f.label for f in files if f.split == "train"}
        extra = sorted({f.label for f in files} - train_classes)
        if extra:
            raise DataError(
                f"classes {extra} appear in {root}/val or test but not in {root}/train; "
                "every class needs training images"
            )
    else:
        layout = "classes"
        for class_dir in top:
            files.extend(_files_below(class_dir, class_dir.name, None, ignored))
    class_names = sorted({f.label for f in files})
    if not files:
        raise DataError(
            f"no images found under {str(root)!r}; expected DIR/<class>/*.jpg or "
            f"DIR/{{train,val,test}}/<class>/* with extensions {', '.join(IMAGE_EXTENSIONS)}"
        )
    if len(class_names) < 2:
        raise DataError(
            f"found one class ({class_names[0]!r}) under {str(root)!r}; need at least two "
            "class folders"
        )
    return FolderListing(str(root), files, class_names, layout, ignored)


def hash_fraction(digest: str) -> float:
    """Map a hex content hash to [0, 1) (uniform for a good hash)."""
    return int(digest[:15], 16) / float(16**15)


def assign_splits(
    files: Sequence[ImageFile],
    hashes: Mapping[str, str],
    *,
    val_fraction: float,
    test_fraction: float,
) -> list[ImageFile]:
    """Give unsplit files a split from their content hash: stable as the folder grows."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            "val_fraction and test_fraction must be in [0, 1) with a sum below 1. Received: "
            f"val_fraction={val_fraction!r}, test_fraction={test_fraction!r}"
        )
    out = []
    for f in files:
        if f.split is not None:
            out.append(f)
            continue
        u = hash_fraction(hashes[f.path])
        split = (
            "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"
        )
        out.append(ImageFile(f.path, f.label, split))
    return out


def oversample(files: Sequence[ImageFile]) -> list[ImageFile]:
    """Repeat files of smaller classes (cycling in order) until every class has the largest count."""
    by_class: dict[str, list[ImageFile]] = {}
    for f in files:
        by_class.setdefault(f.label, []).append(f)
    if not by_class:
        return []
    target = max(len(v) for v in by_class.values())
    out: list[ImageFile] = []
    for label in sorted(by_class):
        group = by_class[label]
        out.extend(group[i % len(group)] for i in range(target))
    return out


def class_counts(files: Sequence[ImageFile]) -> dict[str, int]:
    """Files per class, for run.json."""
    return dict(sorted(Counter(f.label for f in files).items()))
