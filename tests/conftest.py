"""Shared test set-up: keep Keras and TFDS out of the home directory, hide TF noise.

Test modules build their own tiny data in tmp dirs (no binary fixtures, no downloads).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from support.matrix import matrix_data, matrix_runs, photos_folder  # noqa: F401  (shared fixtures)

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="automl-tests-"))
os.environ.setdefault("KERAS_HOME", str(_SESSION_TMP / "keras_home"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$AUTOML_DATA_DIR (CI sets it to ../shared/datasets); tests that need it skip without it."""
    path = Path(os.environ.get("AUTOML_DATA_DIR", SHARED_DATA))
    if not (path / "fashion_mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST raw files not found under {path}")
    return path


@pytest.fixture(scope="session")
def tfds_dir() -> Path:
    """One TFDS data directory for the whole session, so a dataset is prepared once."""
    path = _SESSION_TMP / "tensorflow_datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path
