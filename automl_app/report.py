"""Plots (PNG) and one self-contained `report/index.html` for any run directory.

Reads only what the run directory holds (DESIGN.md: run.json, trials.csv, tuner/, tensorboard/,
report/), so it works on searches, scratch training and AutoKeras runs alike and degrades to a
note when something is absent (a column, per-epoch curves, a classification report). The trial
table is replayed into an in-memory Optuna study so Optuna draws the history, parallel-coordinate
and intermediate-value plots and computes parameter importances (fANOVA); nothing here is
hand-written statistics. Heavy modules (matplotlib, Optuna, TensorBoard) are imported lazily.

    from automl_app import report
    info = report.write_report("runs/digits-…")   # {"index": …, "plots": {...}, "skipped": {...}}
"""

from __future__ import annotations

import base64
import contextlib
import glob
import html
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.errors import UsageError

Say = Callable[[str], None]
REPORT_DIR = "report"
INDEX = "index.html"
# Every plot the report knows, in the order index.html shows them.
PLOTS = (
    "history",
    "parallel_coordinates",
    "intermediate_values",
    "importance",
    "epoch_time_vs_batch_size",
    "confusion_matrix",
    "per_class",
    "lr_schedule",
    "reproduce",
)
LEADER_METRICS = (
    "objective",
    "val_accuracy",
    "val_loss",
    "epochs",
    "seconds",
    "seconds_per_epoch",
    "params",
    "latency_ms_b1",
    "latency_ms_b256",
    "samples_per_s",
)
_MIN_WORDS = ("loss", "error", "mae", "mse", "rmse", "latency", "seconds", "params")


class Skip(Exception):
    """A plot that cannot be drawn for this run; the message says why (shown in the report)."""


# --------------------------------------------------------------------------- reading the run


def convert(value: Any) -> Any:
    """A trials.csv cell → None, int, float or the string itself."""
    if value is None or isinstance(value, (int, float)):
        return value
    s = str(value).strip()
    if s == "":
        return None
    for kind in (int, float):
        try:
            return kind(s)
        except ValueError:
            pass
    if s in ("True", "False"):
        return s == "True"
    return s


def load_trials(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """RUN_DIR/trials.csv as typed rows (empty list when the run has no trial table)."""
    path = Path(run_dir) / runs.TRIALS_CSV
    if not path.is_file():
        return []
    return [{k: convert(v) for k, v in row.items()} for row in runs.read_csv(path)]


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column names present in the trial table, in first-seen order."""
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def is_pruned(row: Mapping[str, Any]) -> bool:
    """A trial stopped early by `--prune` (status 'pruned' or a `pruned_at` epoch)."""
    return row.get("status") == "pruned" or row.get("pruned_at") not in (None, "")


def kerastuner_trials(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """{trial_id: trial.json} from KerasTuner's project folder(s) under RUN_DIR."""
    root = Path(run_dir)
    files = glob.glob(str(root / "tuner" / "trial_*" / "trial.json")) or glob.glob(
        str(root / "**" / "trial_*" / "trial.json"), recursive=True
    )
    out = {}
    for f in sorted(files):
        try:
            state = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        out[str(state.get("trial_id"))] = state
    return out


def objective(run_dir: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> tuple:
    """(objective name, 'max' | 'min'): KerasTuner's own direction from trial.json if present."""
    manifest = manifest if manifest is not None else runs.load_manifest(run_dir)
    name = ((manifest.get("config") or {}).get("tuner") or {}).get("objective") or "val_accuracy"
    for state in kerastuner_trials(run_dir).values():
        metric = (state.get("metrics") or {}).get("metrics", {}).get(name)
        if metric and metric.get("direction") in ("min", "max"):
            return name, metric["direction"]
    return name, direction_of(name)


def direction_of(column: str) -> str:
    """'min' for losses, errors, times and sizes; 'max' otherwise (KerasTuner's convention)."""
    return "min" if any(w in column.lower() for w in _MIN_WORDS) else "max"


def trial_curves(run_dir: str | os.PathLike, metric: str) -> dict[str, list[tuple[int, float]]]:
    """{trial_id: [(epoch 1-based, value), ...]} of one metric for every trial.

    KerasTuner's trial.json holds one observation per epoch when the pruning callback reports
    them; otherwise it keeps only the best epoch, and the per-epoch values come from the
    trial's TensorBoard logs (RUN_DIR/tensorboard/<trial>/execution*/), averaged over executions.
    """
    curves: dict[str, list[tuple[int, float]]] = {}
    for tid, state in kerastuner_trials(run_dir).items():
        hist = (state.get("metrics") or {}).get("metrics", {}).get(metric)
        if not hist:
            continue
        points = [(int(o["step"]) + 1, _mean(o["value"])) for o in hist.get("observations", [])]
        curves[tid] = sorted(points)
    tb = Path(run_dir) / "tensorboard"
    if tb.is_dir() and (not curves or max(len(c) for c in curves.values()) < 2):
        from_tb = _tensorboard_curves(tb, metric)
        if from_tb:
            curves.update(from_tb)
    return curves


def _mean(value: Any) -> float:
    vals = value if isinstance(value, list) else [value]
    return float(sum(vals) / len(vals))


def _tensorboard_curves(tb_dir: Path, metric: str) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch values of `metric` from Keras's TensorBoard callback logs, per trial folder."""
    from automl_app.tf_env import tf

    tf()  # TensorBoard's reader imports TensorFlow when present: do it once, quietly
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.util.tensor_util import make_ndarray
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        return {}
    sub, tag = ("validation", metric[4:]) if metric.startswith("val_") else ("train", metric)
    out: dict[str, list[tuple[int, float]]] = {}
    for trial_dir in sorted(p for p in tb_dir.iterdir() if p.is_dir()):
        per_epoch: dict[int, list[float]] = {}
        for exe in sorted(trial_dir.glob("execution*")):
            if not (exe / sub).is_dir():
                continue
            acc = EventAccumulator(str(exe / sub), size_guidance={"tensors": 0, "scalars": 0})
            acc.Reload()
            tags = acc.Tags()
            name = f"epoch_{tag}"
            if name in tags.get("tensors", []):
                events = [(e.step, float(make_ndarray(e.tensor_proto))) for e in acc.Tensors(name)]
            elif name in tags.get("scalars", []):
                events = [(e.step, float(e.value)) for e in acc.Scalars(name)]
            else:
                continue
            for step, value in events:
                per_epoch.setdefault(int(step) + 1, []).append(value)
        if per_epoch:
            out[trial_dir.name] = [(e, sum(v) / len(v)) for e, v in sorted(per_epoch.items())]
    return out


# --------------------------------------------------------------------------- Optuna replay


def _distribution(cfg: Mapping[str, Any]):
    """KerasTuner hyperparameter config → the Optuna distribution with the same range."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind, c = cfg.get("class_name"), cfg.get("config", {})
    log = c.get("sampling") == "log"
    if kind == "Choice":
        return CategoricalDistribution(list(c["values"]))
    if kind == "Boolean":
        return CategoricalDistribution([False, True])
    if kind == "Int":
        step = 1 if log or not c.get("step") else int(c["step"])
        return IntDistribution(int(c["min_value"]), int(c["max_value"]), log=log, step=step)
    if kind == "Float":
        return FloatDistribution(float(c["min_value"]), float(c["max_value"]), log=log)
    return None  # Fixed: not a parameter that varies


def _distributions(
    rows: Sequence[Mapping[str, Any]], states: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Optuna distributions for every hyperparameter: KerasTuner's space, else the table's values."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists: dict[str, Any] = {}
    for state in states.values():
        for cfg in (state.get("hyperparameters") or {}).get("space", []):
            name = cfg.get("config", {}).get("name")
            if name and name not in dists and not name.startswith("tuner/"):
                d = _distribution(cfg)
                if d is not None:
                    dists[name] = d
    for col in columns(rows):
        name = col[3:]
        if not col.startswith("hp_") or name in dists or name.startswith("tuner/"):
            continue
        values = [r[col] for r in rows if r.get(col) is not None]
        if not values:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            lo, hi = float(min(values)), float(max(values))
            if lo < hi:
                dists[name] = FloatDistribution(lo, hi)
        else:
            dists[name] = CategoricalDistribution(sorted({str(v) for v in values}))
    return dists


def build_study(run_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]] | None = None):
    """An in-memory Optuna study replaying the run's trial table (params, value, curves, state).

    Completed trials are COMPLETE, pruned ones PRUNED (with their curve), failed ones FAIL;
    `user_attrs['trial_id']` keeps KerasTuner's id.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = load_trials(run_dir) if rows is None else rows
    name, direction = objective(run_dir)
    states = kerastuner_trials(run_dir)
    dists = _distributions(rows, states)
    curves = trial_curves(run_dir, name)
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    for row in sorted(rows, key=lambda r: _id_key(r.get("trial_id"))):
        tid = str(row.get("trial_id"))
        hp_values = (states.get(tid, {}).get("hyperparameters") or {}).get("values") or {
            k[3:]: v for k, v in row.items() if k.startswith("hp_") and v is not None
        }
        params, used = {}, {}
        for k, v in hp_values.items():
            d = dists.get(k)
            if d is None or v is None:
                continue
            v = _fit_to(d, v)
            if v is not None:
                params[k], used[k] = v, d
        value = row.get("objective")
        if is_pruned(row):
            state = TrialState.PRUNED
        elif row.get("status") == "completed" and isinstance(value, (int, float)):
            state = TrialState.COMPLETE
        elif row.get("status") in ("failed", "completed"):
            state = TrialState.FAIL
        else:
            continue
        if state == TrialState.COMPLETE and not math.isfinite(float(value)):
            state = TrialState.FAIL
        inter = {int(e): float(v) for e, v in curves.get(tid, []) if math.isfinite(float(v))}
        study.add_trial(
            create_trial(
                state=state,
                value=float(value) if state == TrialState.COMPLETE else None,
                params=params,
                distributions=used,
                intermediate_values=inter,
                user_attrs={"trial_id": tid},
            )
        )
    return study


def _fit_to(dist, value: Any) -> Any:
    """A table value in the form its Optuna distribution accepts (None when it does not fit)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        if value in dist.choices:
            return value
        as_str = {str(c): c for c in dist.choices}
        return as_str.get(str(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not dist.low <= v <= dist.high:
        return None
    return int(round(v)) if type(dist).__name__ == "IntDistribution" else v


def _id_key(tid: Any) -> tuple:
    s = str(tid)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


def importances(study) -> dict[str, float]:
    """Parameter importances by Optuna's fANOVA evaluator (a random forest on the trials)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        raise Skip(f"needs at least 2 completed trials (have {len(complete)})")
    varied = {
        k
        for k in {p for t in complete for p in t.params}
        if len({repr(t.params.get(k)) for t in complete}) > 1
    }
    if not varied:
        raise Skip("no hyperparameter took more than one value")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dict(
                optuna.importance.get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(seed=0), params=sorted(varied)
                )
            )
        except (ValueError, RuntimeError) as exc:
            raise Skip(f"Optuna could not compute importances: {exc}") from None


# --------------------------------------------------------------------------- plots


@contextlib.contextmanager
def _figure_context():
    """Agg backend; Optuna's plots change global styles, so restore rcParams afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield plt
    plt.close("all")


def _save(fig, path: Path) -> Path:
    return runs.atomic_save_figure(fig, path, bbox_inches="tight")


def plot_history(study, path: Path, objective_name: str) -> Path:
    """Objective per trial with the best value so far (Optuna's optimization history)."""
    import optuna

    if not study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        raise Skip("no completed trial")
    with _figure_context():
        from optuna.visualization.matplotlib import plot_optimization_history

        ax = plot_optimization_history(study, target_name=objective_name)
        ax.set_title(f"{objective_name} per trial, best so far")
        return _save(ax.figure, path)


def plot_parallel(study, path: Path, objective_name: str) -> Path:
    """Each completed trial as one line through its hyperparameters (Optuna's plot)."""
    import optuna

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or not any(t.params for t in complete):
        raise Skip("needs at least 2 completed trials with hyperparameters")
    with _figure_context():
        from optuna.visualization.matplotlib import plot_parallel_coordinate

        ax = plot_parallel_coordinate(study, target_name=objective_name)
        ax.set_title(f"Hyperparameters and {objective_name}")
        return _save(ax.figure, path)


def plot_intermediate(study, path: Path, objective_name: str) -> Path:
    """Objective per epoch for every trial (Optuna's plot), pruned trials marked with ×."""
    import optuna

    trials = [t for t in study.get_trials() if t.intermediate_values]
    if not trials:
        raise Skip("no per-epoch values in tuner/trial_*/trial.json or tensorboard/")
    with _figure_context() as plt:
        from optuna.visualization.matplotlib import plot_intermediate_values

        ax = plot_intermediate_values(study)
        pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
        for t in pruned:
            step = max(t.intermediate_values)
            ax.scatter([step], [t.intermediate_values[step]], marker="x", s=80, c="black")
        if pruned:
            ax.scatter([], [], marker="x", c="black", label="pruned here")
            ax.legend(bbox_to_anchor=(1.05, 1), loc="upper left", borderaxespad=0.0)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(objective_name)
        ax.set_title(f"{objective_name} per epoch ({len(pruned)} pruned)")
        del plt
        return _save(ax.figure, path)


def plot_importance(values: Mapping[str, float], path: Path, objective_name: str) -> Path:
    """Horizontal bars of the fANOVA importances (computed by Optuna)."""
    with _figure_context() as plt:
        names = list(values)[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.5))
        ax.barh(names, [values[n] for n in names], color="tab:blue")
        ax.set_xlabel(f"importance for {objective_name} (Optuna fANOVA)")
        ax.set_title("Hyperparameter importance")
        return _save(fig, path)


def plot_epoch_time(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Seconds per epoch against batch size, coloured by parameter count."""
    pts = [
        r
        for r in rows
        if isinstance(r.get("hp_batch_size"), (int, float))
        and isinstance(r.get("seconds_per_epoch"), (int, float))
    ]
    if not pts:
        missing = [c for c in ("hp_batch_size", "seconds_per_epoch") if c not in columns(rows)]
        raise Skip(
            f"trials.csv has no {' or '.join(missing)} column" if missing else "no timed trial"
        )
    with _figure_context() as plt:
        fig, ax = plt.subplots(figsize=(6, 4))
        params = [r.get("params") if isinstance(r.get("params"), (int, float)) else 0 for r in pts]
        sc = ax.scatter(
            [r["hp_batch_size"] for r in pts],
            [r["seconds_per_epoch"] for r in pts],
            c=params,
            cmap="viridis",
            edgecolors="black",
        )
        fig.colorbar(sc, ax=ax, label="parameters")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("seconds per epoch")
        ax.set_title("Epoch time vs batch size")
        for r in pts:
            ax.annotate(
                str(r.get("trial_id")),
                (r["hp_batch_size"], r["seconds_per_epoch"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        return _save(fig, path)


def plot_per_class(report_json: Path, path: Path) -> Path:
    """Precision, recall and F1 per class from scikit-learn's classification_report.json."""
    if not report_json.is_file():
        raise Skip(f"no {report_json.name} (the run did not finish its evaluation)")
    rep = json.loads(report_json.read_text(encoding="utf-8"))
    classes = [k for k, v in rep.items() if isinstance(v, dict) and "avg" not in k]
    if not classes:
        raise Skip(f"{report_json.name} has no per-class entries")
    import numpy as np

    with _figure_context() as plt:
        x = np.arange(len(classes))
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(classes) + 2), 4))
        for i, m in enumerate(("precision", "recall", "f1-score")):
            ax.bar(x + (i - 1) * 0.27, [rep[c][m] for c in classes], width=0.27, label=m)
        ax.set_xticks(
            x,
            classes,
            rotation=30 if len(classes) > 6 else 0,
            ha="right" if len(classes) > 6 else "center",
        )
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        ax.set_title("Per-class precision, recall and F1 (test split)")
        ax.legend(loc="lower right")
        return _save(fig, path)


def lr_curve(manifest: Mapping[str, Any]) -> tuple[list[float], list[float], str]:
    """(x in epochs, learning rate, source) for a scratch run: logged per epoch or its schedule."""
    hist = manifest.get("history") or {}
    for key in ("learning_rate", "lr"):
        if hist.get(key):
            vals = [float(v) for v in hist[key]]
            return list(range(1, len(vals) + 1)), vals, "logged per epoch"
    for key in ("lr_per_epoch", "learning_rates"):
        if manifest.get(key):
            vals = [float(v) for v in manifest[key]]
            return list(range(1, len(vals) + 1)), vals, "logged per epoch"
    cfg = manifest.get("config") or {}
    counts = (manifest.get("data") or {}).get("counts") or {}
    if manifest.get("command") != "train-scratch" or not cfg.get("schedule"):
        raise Skip("not a train-scratch run (no learning-rate schedule)")
    from automl_app.training.schedules import WarmupDecay, scaled_lr

    batch = int(cfg.get("batch_size") or 1)
    steps = max(1, math.ceil(int(counts.get("train") or batch) / batch))
    epochs = int(cfg.get("epochs") or 1)
    total = max(epochs * steps, 1)
    warm = min(int(round(float(cfg.get("warmup_epochs") or 0) * steps)), total)
    base = manifest.get("lr_used") or scaled_lr(float(cfg.get("lr_per_256") or 0.1), batch)
    sched = WarmupDecay(float(base), total_steps=total, warmup_steps=warm, schedule=cfg["schedule"])
    import numpy as np

    idx = np.arange(total)
    vals = [float(v) for v in np.asarray(sched(idx))]
    return [float(i) / steps for i in idx], vals, f"{cfg['schedule']} schedule, per step"


def plot_lr(manifest: Mapping[str, Any], path: Path) -> Path:
    """The learning rate over training (scratch runs only)."""
    x, y, source = lr_curve(manifest)
    with _figure_context() as plt:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(x, y, marker="." if len(x) < 50 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.set_title(f"Learning rate ({source})")
        return _save(fig, path)


def plot_epoch_history(manifest: Mapping[str, Any], path: Path) -> Path:
    """Per-epoch metrics of a single training run (scratch runs have no trials)."""
    hist = {k: v for k, v in (manifest.get("history") or {}).items() if k not in ("lr",)}
    hist.pop("learning_rate", None)
    if not hist:
        raise Skip("no trials.csv and no per-epoch history in run.json")
    with _figure_context() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for k, v in sorted(hist.items()):
            ax = axes[0] if "loss" in k else axes[1]
            ax.plot(range(1, len(v) + 1), v, marker=".", label=k)
        for ax, t in zip(axes, ("loss", "metrics"), strict=True):
            ax.set_xlabel("epoch")
            ax.set_title(t)
            ax.legend()
        return _save(fig, path)


def plot_reproduce(result: Mapping[str, Any], path: Path) -> Path:
    """Mean test metric per configuration with its 95% interval and each seed's score."""
    configs = result.get("configurations") or []
    if not configs:
        raise Skip("reproduce.json lists no configuration")
    with _figure_context() as plt:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, c in enumerate(configs):
            lo, hi = c["ci95"]
            ax.errorbar(
                [i], [c["mean"]], yerr=[[c["mean"] - lo], [hi - c["mean"]]], fmt="o", capsize=6
            )
            ax.scatter([i] * len(c["scores"]), c["scores"], c="gray", s=12, zorder=3)
        ax.set_xticks(range(len(configs)), [f"trial {c['trial_id']}" for c in configs])
        ax.set_ylabel(f"test {result.get('metric', 'accuracy')}")
        ax.set_title(f"Re-trained with {result.get('seeds')} seeds: mean and 95% interval")
        return _save(fig, path)


# --------------------------------------------------------------------------- leaderboard


def ranked(rows: Sequence[Mapping[str, Any]], direction: str) -> list[Mapping[str, Any]]:
    """Trials with an objective, best first; the rest (failed, running) after them."""
    scored = [r for r in rows if isinstance(r.get("objective"), (int, float))]
    scored.sort(key=lambda r: r["objective"], reverse=direction == "max")
    rest = [r for r in rows if r not in scored]
    return scored + rest


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def leaderboard_rows(
    rows: Sequence[Mapping[str, Any]], direction: str, top: int = 10
) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the leaderboard: metrics present in the table, then every hp."""
    cols = columns(rows)
    metrics = [c for c in LEADER_METRICS if c in cols]
    hps = [c for c in cols if c.startswith("hp_")]
    header = ["rank", "trial", "status", *metrics, *[h[3:] for h in hps]]
    body = []
    for i, r in enumerate(ranked(rows, direction)[:top], start=1):
        status = "pruned" if is_pruned(r) and r.get("status") != "pruned" else r.get("status")
        body.append(
            [str(i), str(r.get("trial_id")), str(status)]
            + [_fmt(r.get(c)) for c in metrics]
            + [_fmt(r.get(h)) for h in hps]
        )
    return header, body


def format_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """Aligned plain-text table."""
    body = [list(map(str, r)) for r in body]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def leaderboard(run_dir: str | os.PathLike, top: int = 10) -> str:
    """The terminal leaderboard: top trials with hyperparameters, objective, time, size, latency."""
    rows = load_trials(run_dir)
    if not rows:
        return "(no trials.csv: this run has no trials)"
    name, direction = objective(run_dir)
    header, body = leaderboard_rows(rows, direction, top)
    counts = _status_counts(rows)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return (
        f"top {len(body)} of {len(rows)} trials by {name} ({direction}); {summary}\n"
        + format_table(header, body)
    )


def _status_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out = {"completed": 0, "pruned": 0, "failed": 0}
    for r in rows:
        key = "pruned" if is_pruned(r) else str(r.get("status") or "unknown")
        out[key] = out.get(key, 0) + 1
    return out


# --------------------------------------------------------------------------- the report


def write_report(run_dir: str | os.PathLike, say: Say = print, top: int = 10) -> dict[str, Any]:
    """Refresh RUN_DIR/report/: trials.csv, every plot that applies, index.html; print the board.

    Returns {"index": path, "plots": {name: path}, "skipped": {name: reason}, "leaderboard": str}.
    A plot that cannot be drawn (no column, no curves) is listed as skipped, never an error.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {str(run_dir)!r} does not exist")
    manifest = runs.load_manifest(run_dir)
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    rows = load_trials(run_dir)
    name, direction = objective(run_dir, manifest)
    plots: dict[str, Path] = {}
    skipped: dict[str, str] = {}

    def attempt(plot: str, fn: Callable[[], Path]) -> None:
        try:
            plots[plot] = fn()
        except Skip as exc:
            skipped[plot] = str(exc)
        except Exception as exc:  # a plot must never break the run that asked for the report
            skipped[plot] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    imp: dict[str, float] = {}
    if rows:
        ordered = ranked(rows, direction)
        cols = columns(rows)
        lead = [c for c in ("trial_id", "status") if c in cols]
        runs.write_csv(out / runs.TRIALS_CSV, ordered, first=lead)
        study = build_study(run_dir, rows)
        attempt("history", lambda: plot_history(study, out / "history.png", name))
        attempt(
            "parallel_coordinates",
            lambda: plot_parallel(study, out / "parallel_coordinates.png", name),
        )
        attempt(
            "intermediate_values",
            lambda: plot_intermediate(study, out / "intermediate_values.png", name),
        )

        def _importance() -> Path:
            imp.update(importances(study))
            runs.atomic_write_json(out / "importance.json", imp)
            return plot_importance(imp, out / "importance.png", name)

        attempt("importance", _importance)
        attempt(
            "epoch_time_vs_batch_size",
            lambda: plot_epoch_time(rows, out / "epoch_time_vs_batch_size.png"),
        )
    else:
        attempt("history", lambda: plot_epoch_history(manifest, out / "history.png"))
        for p in ("parallel_coordinates", "intermediate_values", "importance"):
            skipped[p] = "no trials.csv (not a search)"
        skipped["epoch_time_vs_batch_size"] = "no trials.csv (not a search)"
    cm = out / "confusion_matrix.png"
    if cm.is_file():
        plots["confusion_matrix"] = cm  # written by evaluate.write_classification_report
    else:
        skipped["confusion_matrix"] = "no confusion_matrix.png (the run did not finish evaluation)"
    attempt(
        "per_class",
        lambda: plot_per_class(out / "classification_report.json", out / "per_class.png"),
    )
    attempt("lr_schedule", lambda: plot_lr(manifest, out / "lr_schedule.png"))
    repro = _read_json(out / "reproduce.json")
    if repro:
        attempt("reproduce", lambda: plot_reproduce(repro, out / "reproduce.png"))
    else:
        skipped["reproduce"] = "not run (automl reproduce RUN_DIR)"

    board = leaderboard(run_dir, top=top)
    index = _write_html(run_dir, manifest, rows, direction, name, plots, skipped, imp, repro, top)
    say(board)
    say(f"report: {index} ({len(plots)} plots; skipped: {', '.join(sorted(skipped)) or 'none'})")
    return {
        "index": str(index),
        "plots": {k: str(v) for k, v in plots.items()},
        "skipped": skipped,
        "leaderboard": board,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _html_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _summary(manifest: Mapping[str, Any]) -> list[tuple[str, Any]]:
    cfg = manifest.get("config") or {}
    data = manifest.get("data") or {}
    best = manifest.get("best_trial") or {}
    test = manifest.get("test") or manifest.get("test_metrics") or {}
    items = [
        ("command", manifest.get("command")),
        ("status", manifest.get("status")),
        ("started", manifest.get("started_at")),
        ("dataset", data.get("dataset") or data.get("data_dir") or cfg.get("data", {})),
        ("engine", manifest.get("engine")),
        ("tuner", (cfg.get("tuner") or {}).get("tuner") if isinstance(cfg, dict) else None),
        ("best trial", best.get("trial_id")),
        ("best objective", _fmt(best.get("score"))),
        ("test accuracy", _fmt(test.get("accuracy"))),
        ("test loss", _fmt(test.get("loss"))),
        ("wall seconds", manifest.get("wall_seconds")),
    ]
    return [(k, v) for k, v in items if v not in (None, "", {})]


def _write_html(
    run_dir: Path,
    manifest: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    direction: str,
    objective_name: str,
    plots: Mapping[str, Path],
    skipped: Mapping[str, str],
    imp: Mapping[str, float],
    repro: Mapping[str, Any] | None,
    top: int,
) -> Path:
    """One file: every plot inlined as base64 PNG; links only to files that exist."""
    out = run_dir / REPORT_DIR
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>automl report: {esc(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left}th{background:#eee}figure{display:inline-block;"
        "margin:1em;vertical-align:top}img{max-width:560px}pre{background:#f6f6f6;"
        "padding:1em;overflow:auto}</style></head><body>",
        f"<h1>Run {esc(run_dir.name)}</h1>",
        _html_table(["", ""], _summary(manifest)),
    ]
    links = [
        (f, f)
        for f in (runs.TRIALS_CSV, "classification_report.txt", "importance.json", "reproduce.json")
        if (out / f).is_file()
    ]
    if (run_dir / "best" / "model_card.json").is_file():
        links.append(("../best/model_card.json", "best/model_card.json"))
    if links:
        parts.append(
            "<p>Files: " + " · ".join(f"<a href='{esc(h)}'>{esc(t)}</a>" for h, t in links) + "</p>"
        )
    if rows:
        header, body = leaderboard_rows(rows, direction, top)
        parts.append(
            f"<h2>Leaderboard (top {len(body)} of {len(rows)} by {esc(objective_name)})</h2>"
        )
        parts.append(_html_table(header, body))
    if repro:
        parts.append("<h2>Reproducibility (re-trained with several seeds)</h2>")
        parts.append(f"<p><b>{esc(str(repro.get('verdict', '')))}</b></p>")
        parts.append(
            _html_table(
                ["trial", "mean", "std", "95% interval", "scores", "seconds/run"],
                [
                    [
                        c["trial_id"],
                        _fmt(c["mean"]),
                        _fmt(c["std"]),
                        f"{_fmt(c['ci95'][0])} … {_fmt(c['ci95'][1])}",
                        ", ".join(_fmt(s) for s in c["scores"]),
                        _fmt(c.get("seconds_per_run")),
                    ]
                    for c in repro.get("configurations", [])
                ],
            )
        )
    if imp:
        parts.append("<h2>Hyperparameter importance (Optuna fANOVA)</h2>")
        parts.append(
            _html_table(["hyperparameter", "importance"], [(k, _fmt(v)) for k, v in imp.items()])
        )
    parts.append("<h2>Plots</h2>")
    # Ours first, then any other PNG a command left in report/ (e.g. lr_find.png).
    shown = {n: Path(plots[n]) for n in PLOTS if n in plots}
    known = {p.resolve() for p in shown.values()}
    for extra in sorted(out.glob("*.png")):
        if extra.resolve() not in known and not extra.name.startswith("."):
            shown[extra.stem] = extra
    for name, png in shown.items():
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(
                f"<figure id='{name}'><img alt='{name}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(name)}.png</figcaption></figure>"
            )
    if skipped:
        parts.append("<h3>Not drawn</h3><ul>")
        parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in skipped.items()]
        parts.append("</ul>")
    txt = out / "classification_report.txt"
    if txt.is_file():
        parts.append("<h2>Classification report (test split)</h2>")
        parts.append(f"<pre>{esc(txt.read_text(encoding='utf-8'))}</pre>")
    parts.append("<h2>Manifest (run.json)</h2>")
    parts.append(f"<pre>{esc(json.dumps(manifest, indent=2, default=str))}</pre>")
    parts.append("</body></html>")
    return runs.atomic_write_text(out / INDEX, "\n".join(parts) + "\n")
