"""Named image datasets: TFDS ones (offline through `manual_dir`) and the embedded `digits`.

Data is read into memory once per search as raw uint8 arrays. The validation split is carved from
train with a seeded permutation; the test split is read only when `ImageData.test()` is called,
which the search does once, after tuning.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from automl_app.config import check_examples_per_class
from automl_app.errors import DataError, UsageError

# Named image-classification datasets we support, with their raw (uint8) shapes.
TFDS_IMAGE = {
    "fashion_mnist": (28, 28, 1),
    "mnist": (28, 28, 1),
    "kmnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "cifar100": (32, 32, 3),
}
EMBEDDED = {"digits": (8, 8, 1)}
IMAGE_DATASETS = tuple(sorted({**TFDS_IMAGE, **EMBEDDED}))
DEFAULT_DATASET = "digits"
DATA_DIR_ENV = "AUTOML_DATA_DIR"
# Raw file names TFDS expects, known without importing TensorFlow (for the fast offline check).
RAW_FILES = {
    "fashion_mnist": (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ),
    "mnist": (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ),
    "cifar10": ("cifar-10-binary.tar.gz",),
    "cifar100": ("cifar-100-binary.tar.gz",),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the run needs to know about the data."""

    name: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    source: str
    scale: str = "0_1"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class ImageData:
    """Train/validation arrays in memory; the test split loaded on demand, once."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    _load_test: Callable[[], tuple[np.ndarray, np.ndarray]]
    train_indices: np.ndarray
    val_indices: np.ndarray
    test_reads: int = 0
    meta: dict = field(default_factory=dict)

    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the test split (counted, so tests can assert it happens once)."""
        self.test_reads += 1
        return self._load_test()

    def as_datasets(self):
        """Unbatched, cached tf.data datasets of (uint8 image, label) for train and validation."""
        from automl_app.tf_env import tf

        t = tf()
        train = t.data.Dataset.from_tensor_slices((self.x_train, self.y_train)).cache()
        val = t.data.Dataset.from_tensor_slices((self.x_val, self.y_val)).cache()
        return train, val


def load(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    max_samples: int | None = None,
    verbose: bool = False,
) -> ImageData:
    """Load a named dataset, carve a seeded validation split, cap training examples."""
    if name not in IMAGE_DATASETS:
        raise UsageError(
            f"unknown dataset {name!r}: use one of {', '.join(IMAGE_DATASETS)}, or --data-dir for "
            "an image folder"
        )
    if not 0.0 < val_fraction < 0.9:
        raise UsageError(f"--val-fraction must be in (0, 0.9). Received: {val_fraction}")
    if name in EMBEDDED:
        x, y, x_test, y_test, names = _digits(seed)
        source = "scikit-learn load_digits (embedded)"
        load_test = lambda: (x_test, y_test)  # noqa: E731
    else:
        precheck_offline(name)
        builder = tfds_builder(name, verbose=verbose)
        x, y = _read_split(builder, "train")
        names = tuple(n.lower() for n in builder.info.features["label"].names)
        source = f"tfds:{name}:{builder.info.version}"
        load_test = lambda: _read_split(builder, "test")  # noqa: E731
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(1, int(round(len(x) * val_fraction)))
    val_idx = np.sort(order[:n_val])
    train_idx = order[n_val:]
    if max_samples is not None:
        if max_samples < 1:
            raise UsageError(f"--max-samples must be >= 1. Received: {max_samples}")
        train_idx = train_idx[:max_samples]
        check_examples_per_class(len(train_idx), len(names), max_samples)
    train_idx = np.sort(train_idx)
    shape = (TFDS_IMAGE | EMBEDDED)[name]
    info = DatasetInfo(name=name, image_shape=shape, class_names=tuple(names), source=source)
    return ImageData(
        info=info,
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_val=x[val_idx],
        y_val=y[val_idx],
        _load_test=load_test,
        train_indices=train_idx,
        val_indices=val_idx,
    )


def _digits(seed: int):
    """scikit-learn's 8×8 digits as uint8 images (0..16 → 0..255), with a fixed 20% test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(12345).permutation(len(x))  # test split independent of --seed
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    names = tuple(str(i) for i in range(10))
    return x[train], y[train], x[test], y[test], names


def precheck_offline(name: str) -> None:
    """Fail before importing TensorFlow when the raw files are missing and there is no network."""
    root = Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()
    if name not in RAW_FILES or list(root.glob(f"{name}/*/dataset_info.json")):
        return
    mdir = manual_dir(name)
    missing = [f for f in RAW_FILES[name] if mdir is None or not (mdir / f).is_file()]
    if not missing or _online(["https://storage.googleapis.com/"]):
        return
    if mdir is None:
        raise DataError(
            f"dataset {name!r} is not prepared, there is no network, and {DATA_DIR_ENV} is not "
            f"set: put {', '.join(missing)} in $AUTOML_DATA_DIR/{name}/ and set {DATA_DIR_ENV}"
        )
    raise DataError(
        f"dataset {name!r} is not prepared and its raw files are missing from {mdir}: put "
        f"{', '.join(missing)} there, or go online"
    )


def manual_dir(name: str) -> Path | None:
    """$AUTOML_DATA_DIR/<name>, where the dataset's raw files are looked up (read only)."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser() / name if root else None


def tfds_builder(name: str, *, verbose: bool = False):
    """A prepared TFDS builder, never touching the network when the raw files are local.

    Raw files come from $AUTOML_DATA_DIR/<name>/ via TFDS's `manual_dir` (checksums still
    verified). Without them and without network this fails within seconds, naming the files.
    """
    from automl_app.tf_env import tf

    tf()
    import tensorflow_datasets as tfds

    if not verbose:
        tfds.disable_progress_bar()
    builder = tfds.builder(name, data_dir=os.environ.get("TFDS_DATA_DIR"))
    if builder.is_prepared():
        return builder
    files = {
        info.filename or Path(urlparse(u).path).name: u
        for u, info in (builder.url_infos or {}).items()
    }
    mdir = manual_dir(name)
    if mdir is not None:
        missing = [f for f in sorted(files) if not (mdir / f).is_file()]
        if not missing:
            t0 = time.time()
            with _tfds_prints(verbose):
                builder.download_and_prepare(
                    download_config=tfds.download.DownloadConfig(manual_dir=str(mdir))
                )
            if verbose:
                print(f"prepared {name} from {mdir} in {time.time() - t0:.1f}s")
            return builder
        if not _online(files.values()):
            raise DataError(
                f"dataset {name!r} is not prepared and its raw files are missing from {mdir}: "
                f"put {', '.join(missing)} there (from {_hosts(files.values())}), or go online"
            )
    elif not _online(files.values()):
        raise DataError(
            f"dataset {name!r} is not prepared, there is no network, and {DATA_DIR_ENV} is not "
            f"set: put {', '.join(sorted(files))} in $AUTOML_DATA_DIR/{name}/ and set "
            f"{DATA_DIR_ENV}"
        )
    if not verbose:  # TFDS's own line, hidden below, would say "Unknown size"
        print(f"downloading {name} from {_hosts(files.values())} (once: TFDS keeps a copy)")
    with _tfds_prints(verbose):
        builder.download_and_prepare()
    return builder


@contextlib.contextmanager
def _tfds_prints(verbose: bool) -> Iterator[None]:
    """Hide what TFDS prints to stdout while it prepares a dataset, unless --verbose.

    `download_and_prepare` prints "Downloading and preparing dataset Unknown size (download:
    Unknown size, …)" and "Dataset … downloaded and prepared to …" with print(), not through
    logging, even when it only reads local files through `manual_dir`: no log level hides them.
    """
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _hosts(urls) -> str:
    return ", ".join(sorted({urlparse(u).netloc for u in urls})) or "the dataset's homepage"


def _online(urls, timeout: float = 2.0) -> bool:
    """Can we open a TCP connection to every download host within `timeout` seconds?"""
    hosts = {urlparse(u).hostname for u in urls if urlparse(u).hostname}
    for host in hosts:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                pass
        except OSError:
            return False
    return bool(hosts)


def _read_split(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, batch_size=-1, as_supervised=True, shuffle_files=False)
    x, y = tfds.as_numpy(ds)
    return np.asarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int64)
