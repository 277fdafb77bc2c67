"""Folder listing (both layouts, any extension case), the content-hash split, oversampling."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from automl_app.data import folders
from automl_app.errors import DataError


def _touch(root: Path, rel: str, data: bytes | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if data is not None else rel.encode())
    return path


def test_class_layout_lists_supported_extensions_in_any_case(tmp_path):
    for rel in ["cat/a.jpg", "cat/b.JPEG", "cat/sub/c.Png", "dog/d.gif", "dog/e.BMP", "dog/f.webp"]:
        _touch(tmp_path, rel)
    _touch(tmp_path, "dog/readme.txt")
    _touch(tmp_path, "dog/.hidden.jpg")
    listing = folders.list_folder(tmp_path)
    assert listing.layout == "classes" and listing.class_names == ["cat", "dog"]
    names = sorted(Path(f.path).name for f in listing.files)
    assert names == ["a.jpg", "b.JPEG", "c.Png", "d.gif", "e.BMP", "f.webp"]
    assert all(f.split is None for f in listing.files)
    assert [Path(p).name for p in listing.ignored] == ["readme.txt"]


def test_split_layout(tmp_path):
    for rel in ["train/cat/a.jpg", "train/dog/b.jpg", "val/cat/c.jpg", "test/dog/d.jpg"]:
        _touch(tmp_path, rel)
    listing = folders.list_folder(tmp_path)
    assert listing.layout == "splits"
    assert {(Path(f.path).name, f.label, f.split) for f in listing.files} == {
        ("a.jpg", "cat", "train"),
        ("b.jpg", "dog", "train"),
        ("c.jpg", "cat", "val"),
        ("d.jpg", "dog", "test"),
    }


@pytest.mark.parametrize(
    "rels, message",
    [
        ([], "no images found"),
        (["cat/a.jpg", "cat/b.jpg"], "need at least two class folders"),
        (["train/cat/a.jpg", "train/dog/b.jpg", "val/bird/c.jpg"], "not in"),
    ],
)
def test_listing_errors_say_what_is_expected(tmp_path, rels, message):
    tmp_path.joinpath("train" if rels else "empty_class").mkdir(exist_ok=True)
    for rel in rels:
        _touch(tmp_path, rel)
    with pytest.raises(DataError, match=message):
        folders.list_folder(tmp_path)


def test_missing_directory():
    with pytest.raises(DataError, match="is not a directory"):
        folders.list_folder("/nonexistent/photos")


def _hashes(files):
    return {f.path: hashlib.sha256(Path(f.path).read_bytes()).hexdigest() for f in files}


def test_hash_split_is_deterministic_stable_and_keeps_duplicates_together(tmp_path):
    for i in range(200):
        _touch(tmp_path, f"{'cat' if i % 2 else 'dog'}/{i}.jpg", f"image {i}".encode())
    _touch(tmp_path, "cat/dup.jpg", b"image 4")  # same content as dog/4.jpg
    listing = folders.list_folder(tmp_path)
    split = folders.assign_splits(
        listing.files, _hashes(listing.files), val_fraction=0.2, test_fraction=0.1
    )
    where = {f.path: f.split for f in split}
    counts = {s: sum(v == s for v in where.values()) for s in ("train", "val", "test")}
    assert counts["val"] > 20 and counts["test"] > 8 and counts["train"] > 120
    assert where[str(tmp_path / "cat/dup.jpg")] == where[str(tmp_path / "dog/4.jpg")]
    for i in range(200, 260):  # the folder grows: no existing file changes split
        _touch(tmp_path, f"cat/{i}.jpg", f"image {i}".encode())
    grown = folders.list_folder(tmp_path)
    again = folders.assign_splits(
        grown.files, _hashes(grown.files), val_fraction=0.2, test_fraction=0.1
    )
    assert {f.path: f.split for f in again if f.path in where} == where
    with pytest.raises(DataError, match="val_fraction"):
        folders.assign_splits(split, {}, val_fraction=0.6, test_fraction=0.5)


def test_oversample_balances_classes_deterministically():
    files = [folders.ImageFile(f"a{i}", "a") for i in range(5)] + [
        folders.ImageFile(f"b{i}", "b") for i in range(2)
    ]
    out = folders.oversample(files)
    assert folders.class_counts(out) == {"a": 5, "b": 5}
    assert [f.path for f in out if f.label == "b"] == ["b0", "b1", "b0", "b1", "b0"]
    assert folders.oversample(files) == out
