"""`automl evaluate`: an exported SavedModel through its `serve` endpoint on a split of the
run's own data (or another dataset/folder); scikit-learn's report.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.errors import DataError, UsageError
from automl_app.evaluate import regression_metrics

Say = Callable[[str], None]
SPLITS = ("train", "val", "test")


def _saved_model_and_manifest(source: Path) -> tuple[Path, dict | None, list[str] | None]:
    """(SavedModel dir, run manifest or None, labels or None) for a run dir or a SavedModel."""
    manifest = None
    if (source / runs.MANIFEST).is_file():
        manifest = runs.load_manifest(source)
        sm = source / "best" / "saved_model"
        labels_path = source / "best" / "labels.json"
    elif (source / "saved_model.pb").is_file():
        sm = source
        labels_path = source.parent / "labels.json"
        if not labels_path.is_file():
            labels_path = source.parent / f"{source.name}.labels.json"
        if (source.parent.parent / runs.MANIFEST).is_file():
            manifest = runs.load_manifest(source.parent.parent)
    else:
        raise UsageError(
            f"{str(source)!r} is neither a run directory (run.json) nor a SavedModel "
            "(saved_model.pb)"
        )
    if not (sm / "saved_model.pb").is_file():
        raise UsageError(f"{str(source)!r} has no exported model ({sm} missing); did it finish?")
    labels = json.loads(labels_path.read_text()) if labels_path.is_file() else None
    return sm, manifest, labels


def _folder_split(data_dir: str, split: str, manifest: Mapping[str, Any] | None):
    """(files, class names) of one split of an image folder, split exactly as the run split it
    (the shared rule of data/images.py, with the settings the run recorded)."""
    from automl_app.data import folders, source

    if split == "all":
        listing = folders.list_folder(data_dir)
        return listing.files, listing.class_names
    if manifest is not None and (manifest.get("data") or {}).get("folder"):
        fs = source.rebuild_folder_split(manifest, data_dir)
    else:
        from automl_app.data import images

        fs = images.prepare_folder(data_dir)
    files = fs.split(split)
    if not files:
        raise DataError(f"--data-dir {data_dir!r} has no {split!r} images")
    return files, list(fs.class_names)


def _predict_folder(serve, files) -> np.ndarray:
    """Serve each image as uint8 [1,H,W,3] (any size: the export resizes inside)."""
    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    outs = []
    for f in files:
        img = stages.decode(stages.read(t.constant(f.path)))
        outs.append(np.asarray(serve(img[None, ...]))[0])
    return np.stack(outs)


def evaluate_export(
    source: str | os.PathLike,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    say: Say = print,
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Load the exported SavedModel (the serving path), predict a split, write the sklearn report.

    `source` is a run directory (its best/saved_model) or a SavedModel directory. Data: a named
    dataset (by default the run's own, with its seed and validation fraction) or an image folder.
    Writes classification_report.{txt,json} and confusion_matrix.{json,png} to `out` (default
    RUN_DIR/report/evaluate/<data>-<split>/); regressors get MAE, RMSE and R² instead.
    """
    from automl_app import evaluate
    from automl_app.tf_env import tf

    source = Path(source)
    if split not in (*SPLITS, "all"):
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, all. Received: {split!r}")
    if dataset and data_dir:
        raise UsageError("--dataset and --data-dir are exclusive: pick one")
    sm, manifest, labels = _saved_model_and_manifest(source)
    mdata = (manifest or {}).get("data") or {}
    mcfg = (manifest or {}).get("config") or {}
    table_run = _table_run(manifest, dataset, data_dir)
    if not table_run and not dataset and not data_dir:
        folder = mdata.get("folder") or {}
        data_dir = folder.get("data_dir") or mdata.get("data_dir")
        named = mdata.get("dataset") if isinstance(mdata.get("dataset"), str) else None
        dataset = None if data_dir else named
    if not table_run and not dataset and not data_dir:
        raise UsageError(
            f"{str(source)!r} records no dataset: pass --dataset NAME or --data-dir DIR"
        )
    t = tf()
    loaded = t.saved_model.load(str(sm))
    if not hasattr(loaded, "serve"):
        raise UsageError(f"{sm} has no `serve` endpoint (not exported by automl)")
    if table_run:
        probs, y, names, what = _predict_rows(loaded.serve, manifest, split)
    elif dataset:
        from automl_app.data import datasets

        dcfg = mcfg.get("data") if isinstance(mcfg.get("data"), dict) else {}
        same = dcfg.get("dataset") == dataset
        data = datasets.load(
            dataset,
            seed=dcfg.get("seed", 0) if same else 0,
            val_fraction=dcfg.get("val_fraction", 0.1) if same else 0.1,
            max_samples=dcfg.get("max_samples") if same else None,
        )
        if split == "test":
            x, y = data.test()
        elif split == "val":
            x, y = data.x_val, data.y_val
        elif split == "train":
            x, y = data.x_train, data.y_train
        else:
            xt, yt = data.test()
            x = np.concatenate([data.x_train, data.x_val, xt])
            y = np.concatenate([data.y_train, data.y_val, yt])
        names = list(data.info.class_names)
        x = _as_serve_channels(loaded.serve, x)
        probs = np.concatenate(
            [np.asarray(loaded.serve(t.constant(x[i : i + 1024]))) for i in range(0, len(x), 1024)]
        )
        what = dataset
    else:
        files, names = _folder_split(str(data_dir), split, manifest)
        probs = _predict_folder(loaded.serve, files)
        y = np.asarray([names.index(f.label) for f in files])
        what = Path(str(data_dir)).name
    if names and labels is not None and list(labels) != list(names):
        raise DataError(
            f"the model's labels {labels[:5]}… differ from the data's classes {names[:5]}…; "
            "evaluate it on data with the same classes"
        )
    out = (
        Path(out)
        if out
        else (
            (
                source
                if manifest is not None and source.is_dir() and (source / runs.MANIFEST).is_file()
                else sm.parent
            )
            / "report"
            / "evaluate"
            / f"{what}-{split}"
        )
    )
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1 or probs.shape[1] == 1:
        metrics = regression_metrics(y, probs.reshape(-1))
        runs.atomic_write_json(out / "regression_report.json", metrics)
        say(
            f"{what} {split}: MAE {metrics['mae']:.4f}, RMSE {metrics['rmse']:.4f}, R² {metrics['r2']:.4f}"
        )
    else:
        metrics = evaluate.write_classification_report(y, probs, names, out)
        say(
            f"{what} {split}: accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, macro "
            f"F1 {metrics['macro_f1']:.4f} on {metrics['examples']} examples; report in {out}"
        )
    result = {
        "saved_model": str(sm),
        "data": what,
        "split": split,
        "metrics": metrics,
        "out": str(out),
    }
    runs.atomic_write_json(out / "evaluation.json", result)
    return result


def _table_run(
    manifest: Mapping[str, Any] | None, dataset: str | None, data_dir: str | None
) -> bool:
    """Whether this is a structured or text run (its own rows rebuilt from run.json); a data
    option, or a run kind evaluate cannot rebuild, is a one-line UsageError naming the kind."""
    from automl_app import report
    from automl_app.data import source

    if manifest is None:
        return False
    command = manifest.get("command")
    if command == "search multi":
        raise UsageError(
            "evaluate does not apply to a 'search multi' run (several named inputs and heads); "
            "its test metrics are in run.json and report/"
        )
    if not source.is_table_run(manifest):
        return False
    if dataset or data_dir:
        flag = "--dataset" if dataset else "--data-dir"
        raise UsageError(
            f"{flag} does not apply to a {command!r} run (it read {report.data_source(manifest)}); "
            "run `automl evaluate RUN_DIR` with no data option: its own rows are rebuilt from "
            "run.json"
        )
    return True


def _as_serve_channels(serve: Any, x: np.ndarray) -> np.ndarray:
    """Grayscale images for a `serve` that takes RGB (train-scratch's MobileNetV2 on digits or
    Fashion-MNIST is exported for 3 channels): repeat the channel, as training did."""
    try:
        args, _ = serve.concrete_functions[0].structured_input_signature
        channels = args[0].shape[-1]
    except (AttributeError, IndexError, TypeError):
        return x
    if x.ndim == 3:
        x = x[..., None]
    if channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def _predict_rows(serve: Any, manifest: Mapping[str, Any], split: str):
    """(outputs, targets, class names, data name) of a structured/text run's split through the
    SavedModel's `serve` (raw strings for text, one named column per input for tables)."""
    import re

    from automl_app.data import source
    from automl_app.tf_env import tf

    t = tf()
    rows = source.rows_for_run(manifest)
    if split == "all":
        x = np.concatenate([rows["x"][k] for k in SPLITS])
        y = np.concatenate([rows["y"][k] for k in SPLITS])
    else:
        x, y = rows["x"][split], rows["y"][split]
    if not len(x):
        raise DataError(f"the run's {split!r} split is empty")
    columns = rows["column_names"]
    outs = []
    for i in range(0, len(x), 1024):
        chunk = x[i : i + 1024]
        if not columns:
            outs.append(np.asarray(serve(t.constant(np.asarray(chunk).astype(str).reshape(-1)))))
            continue
        args, kwargs = serve.concrete_functions[0].structured_input_signature
        specs = args[0] if args else kwargs
        by_name = {re.sub(r"[^A-Za-z0-9_]", "_", str(c)).strip("_") or "input": j
                   for j, c in enumerate(columns)}  # fmt: skip
        feed = {}
        for name, spec in specs.items():
            j = by_name.get(name, by_name.get(name[2:] if name.startswith("c_") else name))
            if j is None:
                raise DataError(f"the export's input {name!r} is not a column of {rows['source']}")
            cells = np.asarray(chunk)[:, j]
            if spec.dtype == t.string:
                feed[name] = t.constant(cells.astype(str))
            else:
                feed[name] = t.constant(
                    np.asarray([_float(v) for v in cells], np.float32), dtype=spec.dtype
                )
        outs.append(np.asarray(serve(feed)))
    return np.concatenate(outs), y, rows["class_names"], Path(rows["source"]).name


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
