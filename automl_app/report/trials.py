"""Reading a run directory: the trial table, KerasTuner's trial.json files, per-epoch curves.

Only what the run directory holds (DESIGN.md: run.json, trials.csv, tuner/, tensorboard/), so the
report works on every engine's runs and degrades to a note when something is absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_app import runs

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


def convert(value: Any) -> Any:
    """A trials.csv cell → None, int, float, bool or the string itself."""
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


def status_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """{'completed': n, 'pruned': n, 'failed': n, …}: pruned counted apart from completed."""
    out = {"completed": 0, "pruned": 0, "failed": 0}
    for r in rows:
        key = "pruned" if is_pruned(r) else str(r.get("status") or "unknown")
        out[key] = out.get(key, 0) + 1
    return out


def kerastuner_trials(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """{trial_id: trial.json} from KerasTuner's project folder(s) under RUN_DIR (the reader the
    Optuna mirror uses, runs.journal.kerastuner_states)."""
    from automl_app.runs.journal import kerastuner_states

    return kerastuner_states(run_dir)


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
