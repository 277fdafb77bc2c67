"""The report's PNGs (matplotlib, Agg), kept because people paste them into chats and slides.

Optuna draws the study plots; the rest are small matplotlib figures. Every figure is written
with runs.atomic_save_figure, and a plot that does not apply raises Skip with the reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.report.base import Skip
from automl_app.report.study import completed, top_params
from automl_app.report.trials import columns

PARALLEL_PNG_PARAMS = 8  # axes beyond this overlap at any size a chat window shows


def abbreviate(name: str, width: int = 16) -> str:
    """`dropout_rate_layer_2` → `dropout…layer_2`: both ends stay, which is what tells them apart."""
    if len(name) <= width:
        return name
    keep = (width - 1) // 2
    return f"{name[:keep]}…{name[-(width - 1 - keep) :]}"


def axis_labels(objective_name: str, shown: Sequence[str]) -> list[str]:
    """Parallel-coordinate axis labels: the objective, then the params as Optuna orders them.

    Optuna cuts names at 17 characters ('dropout_rate_laye...'), which makes layer_0 and
    layer_1 the same label; abbreviating the full name in the middle keeps them apart.
    """
    return [objective_name, *(abbreviate(p) for p in sorted(shown))]


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


def plot_history(
    study, path: Path, objective_name: str, chance: Mapping[str, Any] | None = None
) -> Path:
    """Objective per trial with the best value so far (Optuna's plot) and the chance line."""
    if not completed(study):
        raise Skip("no completed trial")
    with _figure_context():
        from optuna.visualization.matplotlib import plot_optimization_history

        ax = plot_optimization_history(study, target_name=objective_name)
        if chance and "accuracy" in objective_name:
            ax.axhline(chance["rate"], ls="--", c="gray", label=f"chance ({chance['basis']})")
            ax.legend(loc="best")
        ax.set_title(f"{objective_name} per trial, best so far")
        return _save(ax.figure, path)


def plot_parallel(
    study,
    path: Path,
    objective_name: str,
    imp: Mapping[str, float] | None = None,
    limit: int = PARALLEL_PNG_PARAMS,
) -> Path:
    """Each completed trial as one line through its most important hyperparameters (Optuna's).

    At most `limit` axes, labels abbreviated and rotated, width growing with the axes: twelve
    full-length labels side by side overlap into one unreadable block.
    """
    done = completed(study)
    if len(done) < 2 or not any(t.params for t in done):
        raise Skip("needs at least 2 completed trials with hyperparameters")
    shown, left_out = top_params(study, imp, limit)
    if not shown:
        raise Skip("no hyperparameter took more than one value")
    with _figure_context():
        from optuna.visualization.matplotlib import plot_parallel_coordinate

        ax = plot_parallel_coordinate(study, params=shown, target_name=objective_name)
        ax.figure.set_size_inches(max(7.0, 1.25 * (len(shown) + 1) + 1.5), 4.5)
        ax.set_xticks(ax.get_xticks(), axis_labels(objective_name, shown), rotation=30, ha="right")
        by = "importance" if imp else "name"
        more = f"; {len(left_out)} more left out" if left_out else ""
        ax.set_title(f"Hyperparameters and {objective_name} (top {len(shown)} by {by}{more})")
        return _save(ax.figure, path)


def plot_intermediate(study, path: Path, objective_name: str) -> Path:
    """Objective per epoch for every trial (Optuna's plot), pruned trials marked with ×."""
    import optuna

    trials = [t for t in study.get_trials() if t.intermediate_values]
    if not trials:
        raise Skip("no per-epoch values in tuner/trial_*/trial.json or tensorboard/")
    with _figure_context():
        from matplotlib.ticker import MaxNLocator
        from optuna.visualization.matplotlib import plot_intermediate_values

        ax = plot_intermediate_values(study)
        pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
        for t in pruned:
            step = max(t.intermediate_values)
            ax.scatter([step], [t.intermediate_values[step]], marker="x", s=80, c="black")
        if pruned:
            ax.scatter([], [], marker="x", c="black", label="pruned here")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(bbox_to_anchor=(1.05, 1), loc="upper left", borderaxespad=0.0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(objective_name)
        ax.set_title(f"{objective_name} per epoch ({len(pruned)} pruned)")
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


def per_class_scores(report_json: Path) -> dict[str, dict[str, float]]:
    """{class: {precision, recall, f1-score, support}} from scikit-learn's report JSON."""
    if not report_json.is_file():
        raise Skip(f"no {report_json.name} (the run did not finish its evaluation)")
    rep = json.loads(report_json.read_text(encoding="utf-8"))
    classes = {k: v for k, v in rep.items() if isinstance(v, dict) and "avg" not in k}
    if not classes:
        raise Skip(f"{report_json.name} has no per-class entries")
    return classes


def plot_per_class(report_json: Path, path: Path) -> Path:
    """Precision, recall and F1 per class from scikit-learn's classification_report.json."""
    rep = per_class_scores(report_json)
    classes = list(rep)
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
    # The recipe (schema 2 keeps it under `recipe`; older scratch runs under `config`).
    cfg = manifest.get("recipe") or manifest.get("config") or {}
    counts = (manifest.get("data") or {}).get("counts") or {}
    if manifest.get("command") != "train-scratch" or not cfg.get("schedule"):
        raise Skip("not a train-scratch run (no learning-rate schedule)")
    # Sideways import (report → training), kept lazy: the schedule is only drawn for old
    # scratch runs whose run.json lacks the per-epoch rate.
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


def plot_epoch_history(
    manifest: Mapping[str, Any], path: Path, chance: Mapping[str, Any] | None = None
) -> Path:
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
        if chance and any("accuracy" in k for k in hist):
            axes[1].axhline(chance["rate"], ls="--", c="gray", label=f"chance ({chance['basis']})")
        for ax, t in zip(axes, ("loss", "metrics"), strict=True):
            ax.set_xlabel("epoch")
            ax.set_title(t)
            if ax.get_legend_handles_labels()[0]:
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
