"""Experiment management over run directories: list, select, evaluate, reproduce, track.

Plain functions (the Python API behind `automl runs|select|evaluate|reproduce|tensorboard` and
`--mlflow`); they read the run directory contract of DESIGN.md and write back into it. Models are
rebuilt with the run's own hypermodel and KerasTuner's saved hyperparameters and checkpoint;
exports go through export.export_best (reload-and-compare), statistics through SciPy.
TensorFlow, KerasTuner and MLflow are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import report, runs
from automl_app.errors import AutomlError, DataError, UsageError

Say = Callable[[str], None]
SEARCH_COMMANDS = ("search image",)
ALIASES = {"latency_ms": "latency_ms_b1", "latency": "latency_ms_b1"}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_COND = re.compile(r"^\s*([A-Za-z_][\w/]*)\s*(>=|<=|==|!=|>|<|=)\s*(.+?)\s*$")
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- runs


def find_runs(root: str | os.PathLike = "runs") -> list[Path]:
    """Run directories (those holding run.json) at or up to two levels below `root`."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{str(root)!r} is not a directory; pass the folder holding your runs")
    found = [root] if (root / runs.MANIFEST).is_file() else []
    for pattern in (f"*/{runs.MANIFEST}", f"*/*/{runs.MANIFEST}"):
        found += [p.parent for p in sorted(root.glob(pattern))]
    return found


def run_summary(run_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> dict:
    """One line of `automl runs`: what ran, on what, how it went."""
    run_dir = Path(run_dir)
    m = runs.load_manifest(run_dir)
    cfg = m.get("config") or {}
    data = m.get("data") or {}
    rows = report.load_trials(run_dir)
    counts = report._status_counts(rows) if rows else {}
    best = (m.get("best_trial") or {}).get("score")
    if best is None and rows:
        _, direction = report.objective(run_dir, m)
        ranked = report.ranked(rows, direction)
        best = ranked[0].get("objective") if ranked else None
    test = m.get("test") or m.get("test_metrics") or {}
    tuner = (cfg.get("tuner") or {}).get("tuner") if isinstance(cfg.get("tuner"), dict) else None
    dataset = (
        data.get("dataset") or (cfg.get("data") or {}).get("dataset")
        if isinstance(cfg.get("data"), dict)
        else data.get("dataset")
    )
    dataset = dataset or data.get("data_dir") or cfg.get("dataset") or "—"
    return {
        "name": str(run_dir.relative_to(root)) if root and run_dir != Path(root) else run_dir.name,
        "path": str(run_dir),
        "command": m.get("command"),
        "dataset": dataset,
        "engine": "/".join(str(x) for x in (m.get("engine"), tuner) if x) or "—",
        "trials": (
            f"{counts.get('completed', 0)}/{counts.get('pruned', 0)}/{counts.get('failed', 0)}"
            if rows
            else "—"
        ),
        "best": best,
        "test_accuracy": test.get("accuracy"),
        "wall_seconds": m.get("wall_seconds"),
        "status": m.get("status"),
        "started_at": m.get("started_at"),
    }


def list_runs(root: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """Summaries of every run under `root`, oldest first."""
    out = []
    for d in find_runs(root):
        try:
            out.append(run_summary(d, root))
        except (AutomlError, json.JSONDecodeError, OSError) as exc:
            out.append({"name": d.name, "path": str(d), "status": f"unreadable: {exc}"})
    return sorted(out, key=lambda r: (str(r.get("started_at") or ""), r["name"]))


def format_runs(rows: Sequence[Mapping[str, Any]]) -> str:
    """The `automl runs` table (trials = completed/pruned/failed)."""
    header = [
        "name",
        "command",
        "dataset",
        "engine",
        "trials c/p/f",
        "best",
        "test acc",
        "wall s",
        "status",
    ]
    keys = [
        "name",
        "command",
        "dataset",
        "engine",
        "trials",
        "best",
        "test_accuracy",
        "wall_seconds",
        "status",
    ]
    body = [[report._fmt(r.get(k)) for k in keys] for r in rows]
    return report.format_table(header, body)


# --------------------------------------------------------------------------- conditions


def parse_where(where: str | None) -> list[tuple[str, str, Any]]:
    """`val_accuracy>=0.9, params<1e6` (also joined by `and`) → [(column, op, value), ...]."""
    if not where or not where.strip():
        return []
    out = []
    for part in re.split(r"\s*(?:,|\band\b|&&)\s*", where.strip()):
        m = _COND.match(part)
        if not m:
            raise UsageError(
                f"--where must look like COLUMN OP VALUE (OP one of >=, <=, >, <, ==, !=), "
                f"joined by ',' or 'and'. Received: {part!r}"
            )
        col, op, raw = m.groups()
        out.append(
            (ALIASES.get(col, col) if col in ALIASES else col, op, report.convert(raw.strip("'\"")))
        )
    return out


def _resolve_column(col: str, available: Sequence[str], what: str) -> str:
    """A column that exists (latency_ms → latency_ms_b1), or a UsageError listing the real ones."""
    if col in available:
        return col
    alias = ALIASES.get(col)
    if alias and alias in available:
        return alias
    if f"hp_{col}" in available:
        return f"hp_{col}"
    raise UsageError(
        f"{what} column {col!r} is not in trials.csv (not measured for this run); available: "
        + ", ".join(available)
    )


def passes(row: Mapping[str, Any], conditions: Sequence[tuple[str, str, Any]]) -> bool:
    """Whether a trial row meets every condition (a missing value fails it)."""
    for col, op, value in conditions:
        have = row.get(col)
        if have is None:
            return False
        if isinstance(value, (int, float)) != isinstance(have, (int, float)):
            have, value = str(have), str(value)
        try:
            if not _OPS[op](have, value):
                return False
        except TypeError:
            return False
    return True


def filter_trials(
    rows: Sequence[Mapping[str, Any]], where: str | None, by: str
) -> tuple[list[Mapping[str, Any]], str, list[tuple[str, str, Any]]]:
    """Finished trials meeting `where`, sorted by `by` (ascending); also the resolved names."""
    cols = report.columns(rows)
    conds = [(_resolve_column(c, cols, "--where"), op, v) for c, op, v in parse_where(where)]
    by_col = _resolve_column(by, cols, "--by")
    ok = [
        r
        for r in rows
        if r.get("status") == "completed" and not report.is_pruned(r) and passes(r, conds)
    ]
    ok = [r for r in ok if isinstance(r.get(by_col), (int, float))]
    ok.sort(key=lambda r: (r[by_col], -(r.get("objective") or 0)))
    return ok, by_col, conds


# --------------------------------------------------------------------------- rebuilding trials


def _search_manifest(run_dir: Path) -> dict[str, Any]:
    m = runs.load_manifest(run_dir)
    if m.get("command") not in SEARCH_COMMANDS or m.get("engine", "kerastuner") != "kerastuner":
        raise UsageError(
            f"{str(run_dir)!r} is a {m.get('command')!r} run ({m.get('engine')}); this works on "
            f"KerasTuner search runs ({', '.join(SEARCH_COMMANDS)})"
        )
    if not (m.get("data") or {}).get("image_shape"):
        raise UsageError(f"{str(run_dir)!r} has no data record yet (the search never started)")
    return m


def _hypermodel(manifest: Mapping[str, Any], seed: int | None):
    """The run's hypermodel, rebuilt from its saved config (space file or user hypermodel)."""
    from automl_app import models, spaces
    from automl_app.models.hypermodel import (
        SpaceHyperModel,
        UserHyperModel,
        load_user_hypermodel,
    )

    cfg = manifest["config"]
    data = manifest["data"]
    n_classes = len(data["class_names"])
    if cfg["space"].get("hypermodel"):
        return UserHyperModel(load_user_hypermodel(cfg["space"]["hypermodel"]), n_classes)
    source = (manifest.get("space") or {}).get("source")
    ref = source if source and Path(source).is_file() else cfg["space"].get("space") or "cnn"
    space = spaces.load(ref, known=models.known(), overrides=cfg["space"].get("overrides") or {})
    return SpaceHyperModel(space, tuple(data["image_shape"]), n_classes, seed=seed)


def trial_hyperparameters(run_dir: str | os.PathLike, trial_id: str):
    """KerasTuner's saved HyperParameters of one trial (tuner/trial_<id>/trial.json)."""
    import keras_tuner as kt

    path = Path(run_dir) / "tuner" / f"trial_{trial_id}" / "trial.json"
    if not path.is_file():
        raise UsageError(f"trial {trial_id!r} has no {path} (was it run in this directory?)")
    return kt.engine.trial.Trial.load(str(path)).hyperparameters


def load_trial_model(run_dir: str | os.PathLike, trial_id: str, manifest=None, data=None):
    """Trial `trial_id` as KerasTuner kept it: its hyperparameters and best-epoch weights.

    The checkpoint is loaded when the search kept it (`--keep-checkpoints`); otherwise the trial
    is retrained on the same split with the run's seed and tuned epochs, keeping the weights of
    its best epoch by the objective, as KerasTuner does. Returns (model, "checkpoint"|"retrained").
    """
    from automl_app.tf_env import tf

    tf()
    run_dir = Path(run_dir)
    manifest = manifest or _search_manifest(run_dir)
    hp = trial_hyperparameters(run_dir, trial_id)
    ckpt = run_dir / "tuner" / f"trial_{trial_id}" / "checkpoint.weights.h5"
    if ckpt.is_file():
        model = _hypermodel(manifest, seed=None).build(hp)
        with warnings.catch_warnings():  # Keras notes the optimizer state it does not restore
            warnings.simplefilter("ignore")
            model.load_weights(str(ckpt))
        return model, "checkpoint"
    import keras

    name, direction = report.objective(run_dir, manifest)
    epochs = _tuned_epochs(manifest, hp)
    keep_best = keras.callbacks.EarlyStopping(
        monitor=name, mode=direction, patience=epochs + 1, restore_best_weights=True
    )
    seed = int(manifest["config"]["tuner"].get("seed", 0))
    model, _ = _train(manifest, hp, data or _load_data(manifest), seed, epochs, [keep_best])
    return model, "retrained"


def _tuned_epochs(manifest: Mapping[str, Any], hp) -> int:
    """The epoch budget a trial was tuned at (Hyperband's `tuner/epochs`, else --epochs)."""
    return int(hp.values.get("tuner/epochs") or manifest["config"]["tuner"]["epochs"])


def _train(manifest: Mapping[str, Any], hp, data, seed: int, epochs: int, callbacks=()):
    """Build and fit one configuration exactly as the search's hypermodel does; (model, s)."""
    import keras

    keras.utils.set_random_seed(seed)
    hm = _hypermodel(manifest, seed=seed)
    model = hm.build(hp)
    if manifest["config"]["space"].get("hypermodel"):
        x, kw = data.x_train.astype("float32") / 255.0, {"y": data.y_train}
        val = (data.x_val.astype("float32") / 255.0, data.y_val)
    else:
        x, val = data.as_datasets()
        kw = {}
    t0 = time.perf_counter()
    hm.fit(
        hp, model, x, validation_data=val, epochs=epochs, verbose=0, callbacks=list(callbacks), **kw
    )
    return model, time.perf_counter() - t0


def _load_data(manifest: Mapping[str, Any]):
    """The run's dataset with the same seed, validation fraction and sample cap (same splits)."""
    from automl_app.data import datasets
    from automl_app.data.fingerprint import fingerprint

    d = manifest["config"]["data"]
    data = datasets.load(
        d["dataset"],
        seed=d.get("seed", 0),
        val_fraction=d.get("val_fraction", 0.1),
        max_samples=d.get("max_samples"),
    )
    saved = (manifest.get("data") or {}).get("fingerprint") or {}
    if saved.get("train") and fingerprint(data.x_train, data.y_train) != saved["train"]:
        raise DataError(
            f"dataset {d['dataset']!r} no longer gives the run's training split (fingerprint "
            "differs); the data changed since the search"
        )
    return data


def _spec(manifest: Mapping[str, Any]):
    from automl_app import export

    data = manifest["data"]
    return export.fixed_image_spec(*data["image_shape"], scale=data.get("scale", "0_1"))


def _probabilities(model, x_raw: np.ndarray, spec) -> np.ndarray:
    from automl_app.workflows import export_probabilities

    return export_probabilities(model, x_raw, spec)


# --------------------------------------------------------------------------- select


def select(
    run_dir: str | os.PathLike,
    where: str | None = None,
    by: str = "params",
    say: Say = print,
) -> dict[str, Any]:
    """Pick the trial minimising `by` among those meeting `where`; evaluate; export to selected/.

    The model is rebuilt from KerasTuner's saved hyperparameters and best-epoch checkpoint, its
    validation accuracy recomputed through the export's preprocessing (so the pick really meets
    the condition), evaluated once on the test split and exported with the checks of `best/`.
    """
    from automl_app import evaluate, export

    run_dir = Path(run_dir)
    manifest = _search_manifest(run_dir)
    rows = report.load_trials(run_dir)
    if not rows:
        raise UsageError(f"{str(run_dir)!r} has no trials.csv yet")
    ok, by_col, conds = filter_trials(rows, where, by)
    if not ok:
        raise UsageError(
            f"no completed trial meets --where {where!r} (of {len(rows)} trials); loosen it"
        )
    row = ok[0]
    tid = str(row["trial_id"])
    say(
        f"selected trial {tid}: {by_col}={report._fmt(row[by_col])} (lowest of {len(ok)} "
        f"passing {where or 'no condition'}); objective {report._fmt(row.get('objective'))}"
    )
    data = _load_data(manifest)
    model, how = load_trial_model(run_dir, tid, manifest, data)
    spec = _spec(manifest)
    names = list(manifest["data"]["class_names"])
    val_probs = _probabilities(model, data.x_val, spec)
    val = evaluate.classification_metrics(data.y_val, val_probs)
    checked = {"val_accuracy": val["accuracy"], "val_loss": val["loss"]}
    for col, op, value in conds:
        if col in checked and not _OPS[op](checked[col], value):
            raise AutomlError(
                f"trial {tid} rebuilt from its checkpoint gives {col}={checked[col]:.4f}, which "
                f"does not meet {col}{op}{value} (trials.csv says {row.get(col)}; model "
                f"{how}); not exported. Search with --keep-checkpoints N to keep every trial's "
                "weights"
            )
    x_test, y_test = data.test()
    out = run_dir / "selected"
    test = evaluate.write_classification_report(
        y_test, _probabilities(model, x_test, spec), names, out / "report"
    )
    card = {
        "dataset": manifest["data"]["dataset"],
        "class_names": names,
        "image_shape": manifest["data"]["image_shape"],
        "trial": tid,
        "selected_by": {"where": where, "by": by_col, "value": row[by_col], "passing": len(ok)},
        "hyperparameters": {k[3:]: v for k, v in row.items() if k.startswith("hp_")},
        "trial_row": dict(row),
        "val_recomputed": val,
        "weights": how,
        "test": test,
        "config": manifest.get("config"),
    }
    info = export.export_best(model, spec, x_test[:64], out, labels=names, card=card)
    result = {
        "trial_id": tid,
        "weights": how,
        "by": by_col,
        "value": row[by_col],
        "where": where,
        "val": val,
        "test": test,
        "export": info,
        "path": str(out),
    }
    runs.update(run_dir, selected=result)
    say(
        f"val accuracy {val['accuracy']:.4f} (recomputed), test accuracy {test['accuracy']:.4f} on "
        f"{test['examples']} examples; exported to {out / 'saved_model'}"
    )
    return result


# --------------------------------------------------------------------------- evaluate


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
    """(paths, class names) of one split of an image folder, split as train-scratch splits it."""
    from automl_app.data import folders

    listing = folders.list_folder(data_dir)
    files = listing.files
    if split != "all":
        cfg = (manifest or {}).get("config") or {}
        hashes = {
            f.path: hashlib.sha256(Path(f.path).read_bytes()).hexdigest()
            for f in files
            if f.split is None
        }
        files = folders.assign_splits(
            files,
            hashes,
            val_fraction=float(cfg.get("val_fraction", 0.1)),
            test_fraction=float(cfg.get("test_fraction", 0.1)),
        )
        files = [f for f in files if f.split == split]
    if not files:
        raise DataError(f"--data-dir {data_dir!r} has no {split!r} images")
    return files, listing.class_names


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
    if not dataset and not data_dir:
        dataset = mdata.get("dataset") if isinstance(mdata.get("dataset"), str) else None
        data_dir = None if dataset else mdata.get("data_dir")
    if not dataset and not data_dir:
        raise UsageError(
            f"{str(source)!r} records no dataset: pass --dataset NAME or --data-dir DIR"
        )
    t = tf()
    loaded = t.saved_model.load(str(sm))
    if not hasattr(loaded, "serve"):
        raise UsageError(f"{sm} has no `serve` endpoint (not exported by automl)")
    if dataset:
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
        probs = np.concatenate(
            [np.asarray(loaded.serve(t.constant(x[i : i + 1024]))) for i in range(0, len(x), 1024)]
        )
        what = dataset
    else:
        files, names = _folder_split(str(data_dir), split, manifest)
        probs = _predict_folder(loaded.serve, files)
        y = np.asarray([names.index(f.label) for f in files])
        what = Path(str(data_dir)).name
    if labels is not None and list(labels) != list(names):
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


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (scikit-learn)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
        "examples": int(len(y_true)),
    }


# --------------------------------------------------------------------------- reproduce


def interval95(scores: Sequence[float]) -> tuple[float, float]:
    """Student-t 95% interval of the mean (SciPy); a point when the scores do not vary."""
    from scipy import stats

    a = np.asarray(scores, dtype=np.float64)
    mean = float(a.mean())
    if len(a) < 2 or float(a.std(ddof=1)) == 0.0:
        return mean, mean
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=mean, scale=stats.sem(a))
    return float(lo), float(hi)


def compare(
    a_id: str,
    a: Sequence[float],
    b_id: str,
    b: Sequence[float],
    *,
    higher_is_better: bool = True,
    seconds: Mapping[str, float] | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Welch's t-test (scipy.stats.ttest_ind, equal_var=False) and a verdict in plain words."""
    from scipy import stats

    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    res = stats.ttest_ind(a_arr, b_arr, equal_var=False)
    p = float(res.pvalue)
    if math.isnan(p):  # no variance on either side
        p = 1.0 if float(a_arr.mean()) == float(b_arr.mean()) else 0.0
    better, worse = (a_id, b_id)
    if (a_arr.mean() < b_arr.mean()) == higher_is_better:
        better, worse = b_id, a_id
    if p < alpha:
        verdict = f"configuration {better} is better than {worse}, p={p:.3g}"
        significant = True
    else:
        verdict = f"the difference is not significant at {alpha:g} (p={p:.2f}) — pick either"
        if seconds and a_id in seconds and b_id in seconds:
            fast = min((a_id, b_id), key=lambda k: seconds[k])
            slow = b_id if fast == a_id else a_id
            if seconds[fast] < seconds[slow]:
                verdict += f"; {fast} is faster"
        significant = False
    return {
        "test": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)",
        "a": a_id,
        "b": b_id,
        "t": None if math.isnan(float(res.statistic)) else float(res.statistic),
        "p": p,
        "alpha": alpha,
        "significant": significant,
        "better": better if significant else None,
        "verdict": verdict,
    }


def reproduce(
    run_dir: str | os.PathLike,
    top: int = 2,
    seeds: int = 3,
    say: Say = print,
    trials: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Retrain the top `top` configurations with `seeds` seeds each; compare the top two.

    Same splits (checked by fingerprint), same hypermodel, KerasTuner's saved hyperparameters, the
    tuned epoch budget (Hyperband's `tuner/epochs` when present). Every configuration gets the
    same seeds, so a difference comes from the configuration, not the draw. Test accuracy per run;
    mean ± std, 95% interval, Welch's t-test; saved to report/reproduce.json and the report.
    """
    from automl_app.tf_env import tf

    run_dir = Path(run_dir)
    if top < 1:
        raise UsageError(f"--top must be >= 1. Received: {top}")
    if seeds < 2:
        raise UsageError(f"--seeds must be >= 2 (a t-test needs two runs each). Received: {seeds}")
    manifest = _search_manifest(run_dir)
    rows = report.load_trials(run_dir)
    _, direction = report.objective(run_dir, manifest)
    if trials:
        by_id = {str(r["trial_id"]): r for r in rows}
        missing = [t for t in trials if str(t) not in by_id]
        if missing:
            raise UsageError(f"no trial {missing[0]!r} in trials.csv; have {', '.join(by_id)}")
        chosen = [by_id[str(t)] for t in trials]
    else:
        done = [r for r in rows if r.get("status") == "completed" and not report.is_pruned(r)]
        chosen = report.ranked(done, direction)[:top]
    if not chosen:
        raise UsageError(f"{str(run_dir)!r} has no completed trial to reproduce")
    tf()
    import keras

    data = _load_data(manifest)
    x_test, y_test = data.test()
    spec = _spec(manifest)
    base_seed = int(manifest["config"]["tuner"].get("seed", 0)) + 1000
    seed_list = [base_seed + i for i in range(seeds)]
    configs = []
    for row in chosen:
        tid = str(row["trial_id"])
        hp = trial_hyperparameters(run_dir, tid)
        epochs = _tuned_epochs(manifest, hp)
        scores, secs = [], []
        for seed in seed_list:
            model, seconds = _train(manifest, hp, data, seed, epochs)
            secs.append(seconds)
            probs = _probabilities(model, x_test, spec)
            scores.append(float(np.mean(np.argmax(probs, axis=1) == y_test)))
            say(f"trial {tid} seed {seed}: test accuracy {scores[-1]:.4f} ({secs[-1]:.1f}s)")
            keras.backend.clear_session()
        lo, hi = interval95(scores)
        configs.append(
            {
                "trial_id": tid,
                "hyperparameters": {
                    k: v for k, v in hp.values.items() if not k.startswith("tuner/")
                },
                "epochs": epochs,
                "scores": scores,
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores, ddof=1)),
                "ci95": [lo, hi],
                "seconds_per_run": float(np.mean(secs)),
                "tuned_objective": row.get("objective"),
            }
        )
        say(
            f"trial {tid}: test accuracy {configs[-1]['mean']:.4f} ± {configs[-1]['std']:.4f} "
            f"(95% interval {lo:.4f} … {hi:.4f}, {seeds} seeds, {epochs} epochs)"
        )
    result: dict[str, Any] = {
        "metric": "accuracy",
        "split": "test",
        "seeds": seeds,
        "seed_list": seed_list,
        "configurations": configs,
    }
    if len(configs) >= 2:
        a, b = configs[0], configs[1]
        cmp = compare(
            a["trial_id"],
            a["scores"],
            b["trial_id"],
            b["scores"],
            seconds={c["trial_id"]: c["seconds_per_run"] for c in configs},
        )
        result["comparison"] = cmp
        result["verdict"] = cmp["verdict"]
    else:
        result["verdict"] = "one configuration only: nothing to compare"
    runs.atomic_write_json(run_dir / report.REPORT_DIR / "reproduce.json", result)
    say(result["verdict"])
    report.write_report(run_dir, say=lambda _line: None)
    return result


# --------------------------------------------------------------------------- tracking


def tensorboard(run_dir: str | os.PathLike, port: int = 0, say: Say = print) -> tuple[str, Any]:
    """Start TensorBoard on RUN_DIR/tensorboard bound to 127.0.0.1; return (url, server).

    The server runs in a background thread of this process; port 0 picks a free port.
    """
    import socket

    logdir = Path(run_dir) / "tensorboard"
    if not logdir.is_dir():
        raise UsageError(f"{str(run_dir)!r} has no tensorboard/ folder (no logged training)")
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    from automl_app.tf_env import tf

    tf()
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)])
    url = tb.launch()
    say(f"TensorBoard for {logdir} at {url} (HParams tab compares trials)")
    return url, tb


def require_mlflow() -> Any:
    """The mlflow module, or a UsageError naming the extra to install (check before training)."""
    try:
        import mlflow
    except ImportError:
        raise UsageError(
            "--mlflow needs MLflow, which is not installed: pip install 'automl-app[mlflow]'"
        ) from None
    return mlflow


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{key}."))
        else:
            out[key] = v
    return out


def log_mlflow(
    run_dir: str | os.PathLike,
    uri: str,
    experiment: str | None = None,
    say: Say = print,
) -> str:
    """Log a finished run to MLflow: one parent run, one nested run per trial, the export.

    Trials carry their hyperparameters as params, status as a tag, and per-epoch metrics (from
    KerasTuner's trial.json or TensorBoard logs); the parent carries the config, test metrics,
    report/ and best/ as artifacts. Returns the parent run's id.
    """
    import logging

    mlflow = require_mlflow()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    run_dir = Path(run_dir)
    manifest = runs.load_manifest(run_dir)
    rows = report.load_trials(run_dir)
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps the file store behind an opt-in; a local folder is what was asked for.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    name = experiment or f"automl-{(manifest.get('data') or {}).get('dataset') or run_dir.name}"
    if mlflow.get_experiment_by_name(name) is None:
        location = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
            location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    curves: dict[str, dict[str, list]] = {}
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        for tid, pts in report.trial_curves(run_dir, metric).items():
            curves.setdefault(tid, {})[metric] = pts
    with mlflow.start_run(run_name=run_dir.name) as parent:
        params = {k: v for k, v in _flat(manifest.get("config") or {}).items() if v is not None}
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tags(
            {
                "command": manifest.get("command"),
                "status": manifest.get("status"),
                "run_dir": str(run_dir),
            }
        )
        test = manifest.get("test") or manifest.get("test_metrics") or {}
        mlflow.log_metrics(
            {f"test_{k}": float(v) for k, v in test.items() if isinstance(v, (int, float))}
        )
        for row in rows:
            tid = str(row.get("trial_id"))
            with mlflow.start_run(run_name=f"trial {tid}", nested=True):
                mlflow.log_params(
                    {k[3:]: v for k, v in row.items() if k.startswith("hp_") and v is not None}
                )
                status = "pruned" if report.is_pruned(row) else str(row.get("status"))
                mlflow.set_tags({"status": status, "trial_id": tid})
                if row.get("error"):
                    mlflow.set_tag("error", str(row["error"])[:500])
                for metric, pts in curves.get(tid, {}).items():
                    for epoch, value in pts:
                        if math.isfinite(value):
                            mlflow.log_metric(metric, value, step=int(epoch))
                final = {
                    k: float(row[k])
                    for k in report.LEADER_METRICS
                    if isinstance(row.get(k), (int, float)) and math.isfinite(float(row[k]))
                }
                if final:
                    mlflow.log_metrics({f"final_{k}": v for k, v in final.items()})
        for sub, dest in (("report", "report"), ("best", "best")):
            if (run_dir / sub).is_dir():
                mlflow.log_artifacts(str(run_dir / sub), artifact_path=dest)
        run_id = parent.info.run_id
    say(f"mlflow: logged {len(rows)} trials to {uri} (experiment {name!r}, run {run_id})")
    return run_id
