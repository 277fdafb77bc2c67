"""Named datasets: seeded disjoint splits, the test split read once, fast offline failure."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from automl_app.data import datasets
from automl_app.data.fingerprint import fingerprint, leakage, row_hashes
from automl_app.errors import UsageError


def test_digits_splits_are_disjoint_seeded_and_capped():
    a = datasets.load("digits", seed=3, val_fraction=0.2, max_samples=500)
    b = datasets.load("digits", seed=3, val_fraction=0.2, max_samples=500)
    c = datasets.load("digits", seed=4, val_fraction=0.2, max_samples=500)
    assert len(a.x_train) == 500 and a.x_train.dtype == np.uint8
    assert a.x_train.shape[1:] == (8, 8, 1)
    assert not set(a.train_indices) & set(a.val_indices)
    np.testing.assert_array_equal(a.val_indices, b.val_indices)
    assert fingerprint(a.x_val) == fingerprint(b.x_val) != fingerprint(c.x_val)
    # the test split is a separate set of examples, read only on request
    assert a.test_reads == 0
    x_test, y_test = a.test()
    assert a.test_reads == 1 and len(x_test) == 359
    # digits has no byte-identical images across the fixed test split and train
    assert not row_hashes(x_test) & row_hashes(a.x_train)
    assert a.info.class_names == tuple(str(i) for i in range(10))


def test_leakage_counts_exact_duplicates():
    x = np.arange(5 * 4, dtype=np.uint8).reshape(5, 2, 2)
    assert leakage(x[:3], x[2:], x[1:2]) == {
        "test_in_train": 1,
        "test_examples": 3,
        "val_in_train": 1,
    }


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UsageError) as err:
        datasets.load("imagenet")
    assert "fashion_mnist" in str(err.value) and "digits" in str(err.value)


def test_fashion_mnist_offline_from_manual_dir(data_dir, tfds_dir, monkeypatch, capfd):
    monkeypatch.setenv("AUTOML_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    data = datasets.load("fashion_mnist", seed=1, max_samples=1000)
    out, err = capfd.readouterr()  # the first test of a session prepares it: TFDS stays quiet
    assert "Downloading and preparing" not in out + err and "Unknown size" not in out + err
    assert data.x_train.shape == (1000, 28, 28, 1) and len(data.x_val) == 6000
    assert data.info.class_names[0] == "t-shirt/top" and data.info.class_names[-1] == "ankle boot"
    assert not set(data.train_indices) & set(data.val_indices)
    x_test, _ = data.test()
    assert x_test.shape == (10000, 28, 28, 1)


@pytest.mark.parametrize("with_data_dir", [True, False])
def test_missing_files_without_network_fail_fast(tmp_path, with_data_dir):
    env = {k: v for k, v in os.environ.items() if k != "AUTOML_DATA_DIR"}
    env["TFDS_DATA_DIR"] = str(tmp_path / "tfds")
    if with_data_dir:
        env["AUTOML_DATA_DIR"] = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl_app.cli",
            "search",
            "image",
            "--dataset",
            "mnist",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    elapsed = time.time() - t0
    assert proc.returncode == 1, proc.stderr
    assert "train-images-idx3-ubyte.gz" in proc.stderr
    assert "AUTOML_DATA_DIR" in proc.stderr or str(tmp_path / "empty") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert not (tmp_path / "run").exists(), "a data failure must not leave a run directory"


def test_load_image_files_keeps_order_size_and_names_bad_files(tmp_path):
    """The multi-input loader's decoder: data/images through the training stages, not PIL."""
    from PIL import Image

    from automl_app.data import images
    from automl_app.errors import DataError

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 9, 3), dtype=np.uint8) for _ in range(3)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
    Image.fromarray(arrays[0]).resize((18, 12)).save(tmp_path / "big.bmp")
    x = images.load_image_files(paths)  # size: the first image's, no resize: exact pixels
    assert x.dtype == np.uint8 and x.shape == (3, 6, 9, 3)
    np.testing.assert_array_equal(x, np.stack(arrays))
    seen = []
    x = images.load_image_files(
        [*paths, tmp_path / "big.bmp"], size=(6, 9), channels=1,
        check_memory=lambda n, shape: seen.append((n, shape)),
    )  # fmt: skip
    assert x.shape == (4, 6, 9, 1) and seen == [(4, (6, 9, 1))]
    gray = np.asarray(Image.fromarray(arrays[1]).convert("L"), dtype=np.float32)
    assert np.abs(x[1, ..., 0] - gray).max() <= 1.0  # same luma weights as PIL's "L"
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"bad\.png"):
        images.load_image_files([paths[0], tmp_path / "bad.png"])
    with pytest.raises(DataError, match=r"missing\.png' \(from a column\) does not exist"):
        images.load_image_files([tmp_path / "missing.png"], source="a column")


@pytest.mark.parametrize("verbose", [False, True])
def test_preparing_from_manual_dir_prints_no_tfds_download_line(tmp_path, monkeypatch, capfd,
                                                                  verbose):  # fmt: skip
    """TFDS prints "Downloading and preparing dataset Unknown size …" with print() even when it
    reads local files; quiet unless --verbose. A stand-in builder prints TFDS's real lines."""
    from types import SimpleNamespace

    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import dataset_builder

    class Builder:
        url_infos = {"https://example.invalid/raw.gz": SimpleNamespace(filename="raw.gz")}
        info = SimpleNamespace(download_size="Unknown size", dataset_size="Unknown size")
        name, data_dir = "toy", str(tmp_path / "tfds")

        def is_prepared(self):
            return False

        def download_and_prepare(self, download_config=None):
            assert download_config.manual_dir == str(tmp_path / "toy")
            self.info = SimpleNamespace(download_size=1, dataset_size=2)
            dataset_builder.DatasetBuilder._log_download_bytes(self)
            dataset_builder.DatasetBuilder._log_download_done(self)

    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "raw.gz").write_bytes(b"x")
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: Builder())
    datasets.tfds_builder("toy", verbose=verbose)
    out, err = capfd.readouterr()
    assert ("Downloading and preparing" in out) is verbose, out
    assert ("downloaded and prepared" in out) is verbose, out
