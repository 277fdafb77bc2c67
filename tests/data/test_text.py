"""Text folder and text-CSV loaders for AutoKeras (no TF)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from automl_app.data import text
from automl_app.errors import DataError


def test_text_folder_labels_from_folder_names(tmp_path):
    texts = [f"doc {i} {'good' if i % 2 else 'bad'}" for i in range(10)]
    labels = ["pos" if i % 2 else "neg" for i in range(10)]
    root = text.write_text_folder(tmp_path / "docs", texts, labels)
    data = text.load_text_folder(root)
    assert data.class_names == ["neg", "pos"]
    assert data.texts.dtype.kind == "U" and len(data.texts) == 10
    assert all(("good" in t) == bool(y) for t, y in zip(data.texts, data.y, strict=True))
    assert len(text.load_text_folder(root, max_samples=4, seed=0).texts) == 4


def test_text_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        text.load_text_folder(tmp_path / "missing")
    text.write_text_folder(tmp_path / "one", ["a", "b"], ["only", "only"])
    with pytest.raises(DataError, match=r"at least 2 class folders .*DIR/<class>/\*.txt"):
        text.load_text_folder(tmp_path / "one")


def test_text_csv_classification_and_regression(tmp_path):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["body", "label", "score"])
        for i in range(12):
            w.writerow([f"text, with comma {i}", ["b", "a"][i % 2], i * 0.25])
    data = text.load_text_csv(path, "body", "label")
    assert data.task == "classification" and data.class_names == ["a", "b"]
    assert data.texts[0] == "text, with comma 0"
    reg = text.load_text_csv(path, "body", "score")
    assert reg.task == "regression" and reg.y.dtype == np.float32
    with pytest.raises(DataError, match="column 'nope'"):
        text.load_text_csv(path, "nope", "label")


def test_text_memory_estimate_uses_longest_text():
    assert text.estimate_text_bytes(1000, 50) == 1000 * 50 * 4 * 3
