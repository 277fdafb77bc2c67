"""A run's image data source, the same for every engine and every command that reads a run.

`load_image_data(cfg.data)` gives a named dataset (TFDS or embedded) or an image folder (scan →
blacklist → content-hash split → tf.io decode and resize_with_pad to --image-size) as ImageData;
`data_record` is what run.json keeps to rebuild exactly the same splits later (select,
reproduce, evaluate), and `check_rebuilt` compares fingerprints when they are rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl_app.data import datasets
from automl_app.data.datasets import ImageData
from automl_app.errors import DataError, UsageError

DEFAULT_FOLDER_IMAGE_SIZE = 64


def _get(data_cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(data_cfg, Mapping):
        return data_cfg.get(key, default)
    return getattr(data_cfg, key, default)


def precheck(data_cfg: Any) -> None:
    """What can be checked before a run directory is written: the folder exists, the named
    dataset is known and its offline files are present."""
    data_dir = _get(data_cfg, "data_dir")
    if data_dir:
        if not Path(data_dir).is_dir():
            raise DataError(f"--data-dir {str(data_dir)!r} is not a directory")
        return
    name = _get(data_cfg, "dataset", datasets.DEFAULT_DATASET)
    if name not in datasets.IMAGE_DATASETS:
        raise UsageError(
            f"--dataset must be one of {', '.join(datasets.IMAGE_DATASETS)} (or pass --data-dir "
            f"for an image folder). Received: --dataset {name!r}"
        )
    if name in datasets.RAW_FILES:
        datasets.precheck_offline(name)


def folder_image_size(data_cfg: Any) -> int:
    return int(_get(data_cfg, "image_size") or DEFAULT_FOLDER_IMAGE_SIZE)


def load_image_data(data_cfg: Any, *, verbose: bool = False) -> ImageData:
    """The run's data: an image folder (`data_dir`) or a named dataset, same splits every time."""
    data_dir = _get(data_cfg, "data_dir")
    seed = int(_get(data_cfg, "seed", 0) or 0)
    val_fraction = float(_get(data_cfg, "val_fraction", 0.1))
    max_samples = _get(data_cfg, "max_samples")
    if data_dir:
        from automl_app.data import images

        return images.folder_image_data(
            data_dir,
            image_size=folder_image_size(data_cfg),
            val_fraction=val_fraction,
            max_samples=max_samples,
            seed=seed,
        )
    return datasets.load(
        _get(data_cfg, "dataset", datasets.DEFAULT_DATASET),
        seed=seed,
        val_fraction=val_fraction,
        max_samples=max_samples,
        verbose=verbose,
    )


def folder_split(data: ImageData) -> Any:
    """The image folder's FolderSplit (scan, blacklist, splits), or None for a named dataset."""
    return (data.meta or {}).get("folder")


def describe(data: ImageData) -> list[str]:
    """The lines every engine prints about its data (the scan's "N bad" and each bad file)."""
    info = data.info
    lines = []
    split = folder_split(data)
    if split is not None:
        from automl_app.data.images import skipped_lines

        lines.append(split.summary())
        lines.extend(split.blacklist_lines())
        lines.extend(skipped_lines(data.meta.get("skipped") or []))
    lines.append(
        f"data: {info.name} ({info.source}) train={len(data.x_train)} val={len(data.x_val)} "
        f"classes={info.num_classes} image={'x'.join(map(str, info.image_shape))}"
    )
    return lines


def data_record(data: ImageData) -> dict[str, Any]:
    """run.json's `data`: enough to rebuild and check the same splits."""
    from automl_app.data.fingerprint import fingerprint

    info = data.info
    record: dict[str, Any] = {
        "dataset": info.name,
        "source": info.source,
        "image_shape": list(info.image_shape),
        "class_names": list(info.class_names),
        "scale": info.scale,
        "train_examples": len(data.x_train),
        "val_examples": len(data.x_val),
        "fingerprint": {
            "train": fingerprint(data.x_train, data.y_train),
            "val": fingerprint(data.x_val, data.y_val),
        },
    }
    split = folder_split(data)
    if split is not None:
        record["folder"] = split.record()
        record["fingerprint"]["split"] = split.fingerprint()
    return record


def check_rebuilt(data: ImageData, manifest: Mapping[str, Any], where: str) -> None:
    """A command that rebuilds a run's data must get the run's own splits (fingerprints)."""
    from automl_app.data.fingerprint import fingerprint

    saved = (manifest.get("data") or {}).get("fingerprint") or {}
    if saved.get("train") and fingerprint(data.x_train, data.y_train) != saved["train"]:
        raise DataError(
            f"{where} no longer gives the run's training split (fingerprint differs); the data "
            "changed since the run"
        )


def rebuild_folder_split(manifest: Mapping[str, Any], data_dir: str | None = None) -> Any:
    """The FolderSplit of a finished folder run (any engine), rebuilt with the settings it
    recorded; on the run's own folder the split fingerprint must match."""
    from automl_app.data import images

    rec = (manifest.get("data") or {}).get("folder") or {}
    settings = dict(rec.get("settings") or {})
    own = rec.get("data_dir")
    target = data_dir or own
    if not target:
        raise UsageError("this run did not read an image folder: pass --data-dir DIR")
    keys = ("val_fraction", "test_fraction", "max_samples", "max_pixels", "balance", "seed")
    split = images.prepare_folder(target, **{k: settings[k] for k in keys if k in settings})
    same_folder = own and Path(own).resolve() == Path(target).resolve()
    if same_folder and rec.get("fingerprint") and split.fingerprint() != rec["fingerprint"]:
        raise DataError(
            f"{target} no longer gives the run's splits (fingerprint {split.fingerprint()} != "
            f"{rec['fingerprint']}): files were added, removed or changed since the run"
        )
    return split


def load_for_run(manifest: Mapping[str, Any], *, verbose: bool = False) -> ImageData:
    """The run's own image data (named dataset or folder, same splits), fingerprint-checked."""
    cfg = dict((manifest.get("config") or {}).get("data") or {})
    d = manifest.get("data") or {}
    if d.get("folder"):
        shape = d.get("image_shape") or [DEFAULT_FOLDER_IMAGE_SIZE]
        cfg = {**cfg, "data_dir": d["folder"]["data_dir"], "image_size": shape[0]}
    elif d.get("dataset"):
        cfg = {**cfg, "dataset": d["dataset"], "data_dir": None}
    data = load_image_data(cfg, verbose=verbose)
    check_rebuilt(data, manifest, f"{cfg.get('data_dir') or cfg.get('dataset')!r}")
    split = folder_split(data)
    rec = d.get("folder") or {}
    if split is not None and rec.get("fingerprint") and split.fingerprint() != rec["fingerprint"]:
        raise DataError(
            f"{rec.get('data_dir')} no longer gives the run's splits (fingerprint differs): files "
            "were added, removed or changed since the run"
        )
    return data


def env_data_dir() -> str | None:
    return os.environ.get(datasets.DATA_DIR_ENV)


TABLE_COMMANDS = ("search structured", "search text")


def is_table_run(manifest: Mapping[str, Any]) -> bool:
    """A table or text search (rows of a CSV/Parquet file or a text folder), not images."""
    return manifest.get("command") in TABLE_COMMANDS


def rows_for_run(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A structured or text run's own rows, split exactly as its search split them (the file
    and split settings run.json recorded, data.tabular.holdout), fingerprint-checked: a file
    that changed since the run is a one-line DataError. Returns {"x": {split: x}, "y": {...},
    "class_names", "task", "column_names", "source"}."""
    from automl_app.data import tabular, text
    from automl_app.data.fingerprint import fingerprint

    d = manifest.get("data") or {}
    cfg = (manifest.get("config") or {}).get("data") or {}
    split = d.get("split") or {}
    src = d.get("source") or cfg.get("csv") or cfg.get("data_dir")
    if not src:
        raise UsageError("run.json records no data source for this run (the search never read it)")
    if not Path(str(src)).exists():
        raise DataError(f"the run's data {str(src)!r} is gone; its rows cannot be rebuilt")
    seed = int(split.get("seed", cfg.get("seed", 0)) or 0)
    val_fraction = float(split.get("val_fraction", cfg.get("val_fraction", 0.1)))
    test_fraction = float(split.get("test_fraction", tabular.TEST_FRACTION))
    max_samples = split.get("max_samples", cfg.get("max_samples"))
    n_load = tabular.rows_to_load(max_samples, val_fraction, test_fraction)
    task = d.get("task") or "auto"
    columns: list[str] = []
    if manifest.get("command") == "search structured":
        data = tabular.load_table(src, d.get("target") or cfg.get("target"), task=task,
                                  column_types=cfg.get("column_types") or None,
                                  max_samples=n_load, seed=seed)  # fmt: skip
        x, columns = data.x, list(data.column_names)
    elif d.get("kind") == "text_folder":
        data = text.load_text_folder(src, max_samples=n_load, seed=seed)
        x = data.texts
    else:
        data = text.load_text_csv(src, d.get("text_column") or cfg.get("text_column"),
                                  d.get("target") or cfg.get("target"), task=task,
                                  max_samples=n_load, seed=seed)  # fmt: skip
        x = data.texts
    y = data.y
    tr, va, te = tabular.holdout(y, data.task, seed=seed, val_fraction=val_fraction,
                                 test_fraction=test_fraction, max_train=max_samples)  # fmt: skip
    saved = d.get("fingerprint") or {}
    for name, idx in (("train", tr), ("val", va)):
        if saved.get(name) and fingerprint(x[idx], y[idx]) != saved[name]:
            raise DataError(
                f"{str(src)!r} no longer gives the run's {name} split (fingerprint differs): "
                "the file changed since the run; evaluate on the data it was trained on"
            )
    digest = d.get("file_sha256")
    if digest and Path(str(src)).is_file() and file_sha256(src) != digest:
        raise DataError(f"{str(src)!r} changed since the run (its sha256 differs)")
    parts = {"train": tr, "val": va, "test": te}
    return {
        "x": {k: x[i] for k, i in parts.items()},
        "y": {k: y[i] for k, i in parts.items()},
        "class_names": list(data.class_names or []),
        "task": data.task,
        "column_names": columns,
        "source": str(src),
    }


def file_sha256(path: str | os.PathLike) -> str:
    """A data file's content digest (what a table run may record as `data.file_sha256`)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
