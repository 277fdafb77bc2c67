"""One image-folder path for every engine: scan → blacklist → content-hash split → tf.io decode.

`prepare_folder` decides which files are used and in which split (the same rule for KerasTuner,
AutoKeras and train-scratch, independent of --image-size and of the seed); `load_arrays` decodes
files through the training stages (stages.load_uint8) for engines that take numpy arrays;
`folder_image_data` is both, as datasets.ImageData. A file that fails anyway is skipped and named,
never ending the run: by `load_arrays`, or by a guard.SkipGuard given to stages.build.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.data import folders, scan
from automl_app.data.datasets import DatasetInfo, ImageData
from automl_app.data.guard import SkipGuard
from automl_app.errors import DataError, UsageError

__all__ = [
    "FolderSplit",
    "SkipGuard",
    "folder_image_data",
    "load_arrays",
    "load_image_files",
    "prepare_folder",
    "raw_sample",
    "skipped_lines",
]

BALANCE = ("none", "oversample")


@dataclass
class FolderSplit:
    """Which files each split uses, and why the others are left out."""

    root: str
    class_names: list[str]
    train: list[folders.ImageFile]
    val: list[folders.ImageFile]
    test: list[folders.ImageFile]
    scan: scan.ScanResult
    blacklisted: list[tuple[str, str]]
    leakage_removed: list[str]
    layout: str
    hashes: dict[str, str] = field(default_factory=dict, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[folders.ImageFile]:
        """The files of 'train', 'val' or 'test'."""
        if name not in ("train", "val", "test"):
            raise UsageError(f"split must be one of train, val, test. Received: {name!r}")
        return getattr(self, name)

    def labelled(self, files: Sequence[folders.ImageFile]) -> tuple[list[str], list[int]]:
        """(paths, class ids) of `files`, for stages.build and load_arrays."""
        index = {c: i for i, c in enumerate(self.class_names)}
        return [f.path for f in files], [index[f.label] for f in files]

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def fingerprint(self) -> str:
        """Hash of each split's membership (relative path, label, content hash), oversampling
        ignored: the same folder and settings give the same fingerprint on any machine."""
        h = hashlib.sha256()
        for name in ("train", "val", "test"):
            rows = sorted(
                {
                    (os.path.relpath(f.path, self.root), f.label, self.hashes.get(f.path, ""))
                    for f in self.split(name)
                }
            )
            for rel, label, digest in rows:
                h.update(f"{name}\t{Path(rel).as_posix()}\t{label}\t{digest}\n".encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        """The one line every engine prints: files scanned, bad ones, duplicates, split sizes."""
        reasons = self.scan.reasons()
        shown = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        extra = sum(len(d.paths) - 1 for d in self.scan.duplicates)
        c = self.counts()
        leak = f", {len(self.leakage_removed)} removed as leakage" if self.leakage_removed else ""
        return (
            f"scan: {len(self.scan.files)} files, {len(self.blacklisted)} bad "
            f"({shown + '; ' if shown else ''}blacklisted), {extra} duplicates{leak}; "
            f"split train={c['train']} val={c['val']} test={c['test']}"
        )

    def blacklist_lines(self) -> list[str]:
        """One line per blacklisted file: `bad: PATH: reason (decoder's words)`."""
        details = {f.path: f.detail for f in self.scan.bad}
        return [
            f"bad: {path}: {reason}" + (f" ({details[path]})" if details.get(path) else "")
            for path, reason in self.blacklisted
        ]

    def record(self) -> dict[str, Any]:
        """What run.json keeps: enough to rebuild these splits and check them (fingerprint)."""
        return {
            "data_dir": self.root,
            "layout": self.layout,
            "classes": list(self.class_names),
            "counts": self.counts(),
            "settings": dict(self.settings),
            "scan": self.scan.summary(),
            "summary": self.summary(),
            "blacklisted": [{"path": p, "reason": r} for p, r in self.blacklisted],
            "duplicates": [asdict(d) for d in self.scan.duplicates],
            "leakage_removed": list(self.leakage_removed),
            "ignored_files": len(self.ignored),
            "fingerprint": self.fingerprint(),
        }


def _assign(listing: folders.FolderListing, hashes: dict[str, str], good, val_f, test_f):
    """Content-hash split; a DIR/{train,val,test} layout keeps its folders, and a split folder
    that is missing (e.g. no val/) is carved out of train/ by the same hash rule."""
    if listing.layout != "splits":
        return folders.assign_splits(good, hashes, val_fraction=val_f, test_fraction=test_f)
    given = {f.split for f in listing.files}
    if {"val", "test"} <= given:
        return list(good)
    unsplit = [folders.ImageFile(f.path, f.label) if f.split == "train" else f for f in good]
    return folders.assign_splits(
        unsplit,
        hashes,
        val_fraction=0.0 if "val" in given else val_f,
        test_fraction=0.0 if "test" in given else test_f,
    )


def prepare_folder(
    data_dir: str | os.PathLike,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = folders.DEFAULT_TEST_FRACTION,
    max_samples: int | None = None,
    seed: int = 0,
    max_pixels: int = scan.DEFAULT_MAX_PIXELS,
    cache_path: str | os.PathLike | None = None,
    balance: str = "none",
) -> FolderSplit:
    """List → scan (cached) → drop bad files → content-hash split → leakage removal →
    max_samples (the lowest content hashes, so deterministic) → optional oversampling.

    Nothing here depends on --image-size or the seed (recorded only): every engine and every
    later command gets the same files in the same splits.
    """
    if balance not in BALANCE:
        raise UsageError(f"balance must be one of {', '.join(BALANCE)}. Received: {balance!r}")
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 1):
        raise UsageError(f"--max-samples must be a positive integer. Received: {max_samples!r}")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise UsageError(f"--max-pixels must be a positive integer. Received: {max_pixels!r}")
    listing = folders.list_folder(data_dir)
    result = scan.scan(
        [f.path for f in listing.files],
        root=data_dir,
        max_pixels=max_pixels,
        cache_path=cache_path or scan.default_cache_path(data_dir),
    )
    by_path = {r.path: r for r in result.files}
    good = [f for f in listing.files if by_path[f.path].ok]
    blacklisted = [(r.path, str(r.reason)) for r in result.files if not r.ok]
    hashes = {f.path: str(by_path[f.path].sha256) for f in listing.files}
    split = _assign(listing, hashes, good, val_fraction, test_fraction)
    train = [f for f in split if f.split == "train"]
    train_hashes = {hashes[f.path] for f in train}
    leaked = [f.path for f in split if f.split != "train" and hashes[f.path] in train_hashes]
    val = [f for f in split if f.split == "val" and f.path not in leaked]
    test = [f for f in split if f.split == "test" and f.path not in leaked]
    if max_samples:
        train = sorted(train, key=lambda f: hashes[f.path])[:max_samples]
        train = sorted(train, key=lambda f: f.path)
    if not train:
        raise DataError(
            f"no usable training images under {str(data_dir)!r} after the scan "
            f"({len(blacklisted)} bad files); run `automl scan-images {data_dir}` to see why"
        )
    if balance == "oversample":
        train = folders.oversample(train)
    settings = {
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "max_samples": max_samples,
        "max_pixels": max_pixels,
        "balance": balance,
        "seed": seed,
    }
    return FolderSplit(
        root=str(data_dir),
        class_names=listing.class_names,
        train=train,
        val=val,
        test=test,
        scan=result,
        blacklisted=blacklisted,
        leakage_removed=leaked,
        layout=listing.layout,
        hashes={f.path: hashes[f.path] for f in good},
        settings=settings,
        ignored=listing.ignored,
    )


def load_arrays(
    files: Sequence[folders.ImageFile],
    class_names: Sequence[str],
    *,
    image_size: int,
    channels: int = 3,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Files → (x uint8 [N,S,S,C], y int64 [N], skipped [(path, reason)]) through the training
    stages (read → decode → resize_with_pad, no scaling). A file that fails is skipped, named."""
    from automl_app.data import stages, tabular
    from automl_app.tf_env import tf

    _check_image_args(image_size, channels)
    index = {c: i for i, c in enumerate(class_names)}
    n = len(files)
    x = np.zeros((n, image_size, image_size, channels), np.uint8)
    y = np.asarray([index[f.label] for f in files], dtype=np.int64)
    if n == 0:
        return x, y, []
    tabular.check_memory(x.nbytes, f"decoding {n} images of {image_size}x{image_size}x{channels}")
    t = tf()
    paths = [f.path for f in files]
    ds = t.data.Dataset.from_tensor_slices((np.arange(n, dtype=np.int64), paths))
    ds = ds.map(
        lambda i, p: (i, stages.load_uint8(p, size=image_size, channels=channels)),
        num_parallel_calls=t.data.AUTOTUNE,
        deterministic=True,
    )
    ds = stages.skip_failures(ds).batch(batch_size).prefetch(t.data.AUTOTUNE)
    done = np.zeros(n, dtype=bool)
    with stages.quiet_decoder_warnings():
        for idx, images in ds.as_numpy_iterator():
            x[idx] = images
            done[idx] = True
    if done.all():
        return x, y, []
    skipped = [
        (paths[i], scan.load_failure(paths[i], image_size) or "failed to load")
        for i in np.flatnonzero(~done)
    ]
    return x[done], y[done], skipped


def load_image_files(
    paths: Sequence[str | os.PathLike],
    *,
    size: tuple[int, int] | None = None,
    channels: int = 3,
    check_memory: Callable[[int, tuple[int, int, int]], None] | None = None,
    source: str | None = None,
) -> np.ndarray:
    """Image files listed by the user (e.g. a table's image column) → uint8 [N,H,W,C], in order.

    The training decoder (stages.read → decode, tf.io: JPEG, PNG, GIF frame 0, BMP, WebP), then
    a stretch to `size` = (height, width) when given, else the first image's size; channels=1
    converts to grayscale. Rows stay aligned with the other columns, so nothing is skipped: a
    missing or undecodable file is a DataError naming it (and why; `source` says where the path
    came from). `check_memory(n, shape)` is called before the array is allocated.
    """
    from automl_app.data import stages
    from automl_app.tf_env import tf

    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3. Received: {channels!r}")
    paths = [str(p) for p in paths]
    where = f" (from {source})" if source else ""
    if not paths:
        return np.zeros((0, *(size or (1, 1)), channels), np.uint8)
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"image file {p!r}{where} does not exist")
    t = tf()
    if size is None:
        with stages.quiet_decoder_warnings():
            try:
                first = stages.decode(stages.read(t.constant(paths[0])))
            except Exception:
                reason = scan.load_failure(paths[0]) or "failed to load"
                raise DataError(
                    f"image file {paths[0]!r}{where} cannot be decoded: {reason}"
                ) from None
        size = (int(first.shape[0]), int(first.shape[1]))
    height, width = int(size[0]), int(size[1])
    if check_memory is not None:
        check_memory(len(paths), (height, width, channels))
    n = len(paths)
    out = np.zeros((n, height, width, channels), np.uint8)

    def load(i, path):
        image = stages.resize(stages.decode(stages.read(path)), height, width)
        if channels == 1:
            image = t.image.rgb_to_grayscale(image)
        return i, stages.to_uint8(image)

    ds = t.data.Dataset.from_tensor_slices((np.arange(n, dtype=np.int64), paths))
    ds = ds.map(load, num_parallel_calls=t.data.AUTOTUNE, deterministic=True)
    ds = stages.skip_failures(ds).batch(64).prefetch(t.data.AUTOTUNE)
    done = np.zeros(n, dtype=bool)
    with stages.quiet_decoder_warnings():
        for idx, images in ds.as_numpy_iterator():
            out[idx] = images
            done[idx] = True
    if not done.all():
        bad = [paths[i] for i in np.flatnonzero(~done)]
        reason = scan.load_failure(bad[0]) or "failed to load"
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"image file {bad[0]!r}{where} cannot be decoded: {reason}{more}")
    return out


def _check_image_args(image_size: Any, channels: Any) -> None:
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise UsageError(f"--image-size must be a positive integer. Received: {image_size!r}")
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3. Received: {channels!r}")


def folder_image_data(
    data_dir: str | os.PathLike,
    *,
    image_size: int,
    channels: int = 3,
    val_fraction: float = 0.1,
    test_fraction: float = folders.DEFAULT_TEST_FRACTION,
    max_samples: int | None = None,
    seed: int = 0,
    max_pixels: int = scan.DEFAULT_MAX_PIXELS,
    cache_path: str | os.PathLike | None = None,
    balance: str = "none",
) -> ImageData:
    """An image folder as datasets.ImageData (uint8 [N,S,S,C], S = image_size), for searches.

    `meta["folder"]` is the FolderSplit (summary, blacklist, record, fingerprint) and
    `meta["skipped"]` the files that failed to decode after the scan passed them (val and train
    now; test added when `.test()` reads it).
    """
    _check_image_args(image_size, channels)
    split = prepare_folder(
        data_dir,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_samples=max_samples,
        seed=seed,
        max_pixels=max_pixels,
        cache_path=cache_path,
        balance=balance,
    )
    if not split.test:
        raise DataError(
            f"no test images under {str(data_dir)!r}: add more images (about "
            f"{test_fraction:.0%} of them are held out by content hash) or a test/ folder"
        )
    names = split.class_names
    size = {"image_size": image_size, "channels": channels}
    x_train, y_train, skipped = load_arrays(split.train, names, **size)
    x_val, y_val, skipped_val = load_arrays(split.val, names, **size)
    meta: dict[str, Any] = {
        "folder": split,
        "skipped": skipped + skipped_val,
        "ignored_files": len(split.ignored),
    }

    def load_test() -> tuple[np.ndarray, np.ndarray]:
        x, y, bad = load_arrays(split.test, names, **size)
        meta["skipped"] = meta["skipped"] + [b for b in bad if b not in meta["skipped"]]
        return x, y

    info = DatasetInfo(
        name=Path(data_dir).resolve().name,
        image_shape=(image_size, image_size, channels),
        class_names=tuple(names),
        source=f"image folder {data_dir} ({split.layout})",
    )
    return ImageData(
        info=info,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        _load_test=load_test,
        train_indices=np.arange(len(x_train)),
        val_indices=np.arange(len(x_val)),
        meta=meta,
    )


def raw_sample(paths: Sequence[str], limit: int = 4) -> np.ndarray:
    """A few decoded uint8 images [k,H,W,3] of one shape (the most common among the first 32
    files that decode), e.g. for an export's reload-and-compare check; failures are passed over."""
    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    groups: dict[tuple, list] = {}
    with stages.quiet_decoder_warnings():
        for path in list(paths)[:32]:
            try:
                img = stages.decode(stages.read(t.constant(str(path)))).numpy()
            except Exception:  # named elsewhere (scan, SkipGuard); a sample can do without it
                continue
            groups.setdefault(img.shape, []).append(img)
    if not groups:
        raise DataError(f"none of the first {min(len(paths), 32)} images decodes")
    return np.stack(max(groups.values(), key=len)[:limit])


def skipped_lines(skipped: Sequence[tuple[str, str]]) -> list[str]:
    """One line per file skipped at decode time: `skipped: PATH: reason`."""
    return [f"skipped: {path}: {reason}" for path, reason in skipped]
