"""Content hashes of splits and a leakage check (exact duplicates across splits)."""

from __future__ import annotations

import hashlib

import numpy as np


def fingerprint(x: np.ndarray, y: np.ndarray | None = None) -> str:
    """sha256 of a split's bytes (images then labels): same data ⇔ same fingerprint."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


def row_hashes(x: np.ndarray) -> set[bytes]:
    """One digest per example."""
    flat = np.ascontiguousarray(x).reshape(len(x), -1)
    return {hashlib.blake2b(row.tobytes(), digest_size=12).digest() for row in flat}


def leakage(x_train: np.ndarray, x_test: np.ndarray, x_val: np.ndarray | None = None) -> dict:
    """How many test (and validation) examples also appear, byte for byte, in train."""
    train = row_hashes(x_train)
    out = {"test_in_train": len(row_hashes(x_test) & train), "test_examples": int(len(x_test))}
    if x_val is not None:
        out["val_in_train"] = len(row_hashes(x_val) & train)
    return out
