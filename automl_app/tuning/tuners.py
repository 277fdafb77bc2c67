"""KerasTuner tuners by name, with a thin mixin that records and prints every trial.

The search algorithms are KerasTuner's own; the mixin only observes trial begin/end to write
RUN_DIR/trials.csv (+ trials.jsonl) and print one line per finished trial.
"""

from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from automl_app import runs
from automl_app.errors import SearchError, UsageError
from automl_app.models.hypermodel import describe
from automl_app.tuning import TUNER_NAMES as TUNERS

PROJECT = "tuner"  # RUN_DIR/tuner is KerasTuner's own project directory
FIRST_COLUMNS = [
    "trial_id",
    "status",
    "objective",
    "epochs",
    "seconds",
    "seconds_per_epoch",
    "params",
]


class TrialStats(keras.callbacks.Callback):
    """Collects parameter count and epoch times of one trial into a shared dict.

    KerasTuner deep-copies callbacks for every execution; the copy keeps the same store.
    """

    def __init__(self, store: dict[str, Any]):
        super().__init__()
        self.store = store

    def __deepcopy__(self, memo):
        return TrialStats(self.store)

    def on_train_begin(self, logs=None):
        self.store.setdefault("epoch_seconds", [])

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.store["epoch_seconds"].append(time.perf_counter() - self._t0)
        self.store["params"] = int(self.model.count_params())  # built by now, even Sequential


class RecordingMixin:
    """Observes trials: writes the trial table and calls `on_line` with a one-line summary."""

    def _setup_recording(
        self, run_dir: Path, on_line: Callable[[str], None], total: int | None
    ) -> None:
        self._run_dir = Path(run_dir)
        self._on_line = on_line
        self._total = total
        self._current: dict[str, Any] = {}
        self._rows = _load_rows(self._run_dir)
        self.first_failure: str | None = None

    def run_trial(self, trial, *args, **kwargs):
        kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [TrialStats(self._current)]
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_begin(self, trial):
        self._current.clear()
        self._current["t0"] = time.perf_counter()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        try:
            super().on_trial_end(trial)
        finally:
            self._record(trial)

    def _record(self, trial) -> None:
        seconds = time.perf_counter() - self._current.get("t0", time.perf_counter())
        epoch_s = self._current.get("epoch_seconds", [])
        obj = self.oracle.objective
        status = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}.get(
            str(trial.status), str(trial.status).lower()
        )
        error = None
        if status == "failed":
            error = _last_line(trial.message)
            if self.first_failure is None:
                self.first_failure = trial.message or error
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": status,
            "objective": None if trial.score is None else float(trial.score),
            "epochs": len(epoch_s),
            "seconds": round(seconds, 3),
            "seconds_per_epoch": round(sum(epoch_s) / len(epoch_s), 3) if epoch_s else None,
            "params": self._current.get("params"),
            "error": error,
        }
        # Every metric at the trial's best step: the epoch whose checkpoint KerasTuner keeps.
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if trial.metrics.exists(name):
                row[name] = _value_at_best_step(trial, name)
        row.update({f"hp_{k}": v for k, v in trial.hyperparameters.values.items()})
        self._rows[trial.trial_id] = row
        save_rows(self._run_dir, self._rows)
        best = self._best_score()
        n = len(self._rows)
        total = f"/{self._total}" if self._total else ""
        score = "—" if trial.score is None else f"{trial.score:.4f}"
        best_txt = "—" if best is None else f"{best:.4f}"
        line = (
            f"trial {trial.trial_id} ({n}{total}) [{status}] {describe(trial.hyperparameters.values)} | "
            f"{obj.name}={score} | {seconds:.1f}s | best {best_txt}"
        )
        if error:
            line += f" | error: {error}"
        self._on_line(line)

    def _best_score(self) -> float | None:
        scores = [
            r["objective"]
            for r in self._rows.values()
            if r.get("status") == "completed" and r.get("objective") not in (None, "")
        ]
        if not scores:
            return None
        scores = [float(s) for s in scores]
        return max(scores) if self.oracle.objective.direction == "max" else min(scores)


def _value_at_best_step(trial, name: str) -> float | None:
    step = trial.best_step
    hist = trial.metrics.get_history(name)
    for obs in hist:
        if obs.step == step:
            return float(obs.value[0]) if isinstance(obs.value, list) else float(obs.value)
    return None


def _last_line(message: str | None) -> str:
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _load_rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    import json

    path = run_dir / runs.TRIALS_JSONL
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["trial_id"]] = r
    return rows


def save_rows(run_dir: Path, rows: dict[str, dict[str, Any]]) -> None:
    """Write trials.jsonl and trials.csv (one row per trial, every hp its own column)."""
    import json

    ordered = [rows[k] for k in sorted(rows)]
    runs.atomic_write_text(
        run_dir / runs.TRIALS_JSONL,
        "".join(json.dumps(r, default=runs._json_default) + "\n" for r in ordered),
    )
    runs.write_csv(run_dir / runs.TRIALS_CSV, ordered, first=FIRST_COLUMNS)


def _tuner_class(name: str):
    base = {
        "random": kt.RandomSearch,
        "grid": kt.GridSearch,
        "bayesian": kt.BayesianOptimization,
        "hyperband": kt.Hyperband,
    }[name]
    return type(f"Automl{base.__name__}", (RecordingMixin, base), {})


def make_tuner(
    name: str,
    hypermodel: kt.HyperModel,
    *,
    run_dir: Path,
    objective: str = "val_accuracy",
    max_trials: int = 10,
    epochs: int = 1,
    seed: int | None = None,
    max_failures: int = 3,
    on_line: Callable[[str], None] = print,
    overwrite: bool = False,
) -> kt.engine.tuner.Tuner:
    """A KerasTuner tuner over `hypermodel` whose project lives in RUN_DIR/tuner."""
    from keras_tuner.src import config as kt_config

    from automl_app.tf_env import is_verbose

    kt_config.DEBUG = is_verbose()  # KerasTuner prints every failed trial's traceback otherwise
    if name not in TUNERS:
        raise UsageError(f"--tuner must be one of {', '.join(TUNERS)}. Received: {name!r}")
    common = dict(
        objective=objective,
        seed=seed,
        directory=str(run_dir),
        project_name=PROJECT,
        overwrite=overwrite,
        max_consecutive_failed_trials=max_failures,
    )
    cls = _tuner_class(name)
    if name == "hyperband":
        tuner = cls(hypermodel, max_epochs=max(epochs, 2), factor=3, **common)
        tuner.oracle.max_trials = max_trials  # same meaning of --max-trials for every tuner
    else:
        tuner = cls(hypermodel, max_trials=max_trials, **common)
    tuner._setup_recording(run_dir, on_line, max_trials)
    return tuner


def run_search(
    tuner, train, val, *, epochs: int, tensorboard_dir: Path, y_train=None, y_val=None
) -> None:
    """tuner.search(...) with TensorBoard (HParams) logs; a failure limit shows the real error."""
    callbacks = [
        keras.callbacks.TensorBoard(
            log_dir=str(tensorboard_dir), write_graph=False, profile_batch=0
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    args = (train,) if y_train is None else (train, y_train)
    validation = val if y_val is None else (val, y_val)
    kwargs: dict[str, Any] = {"validation_data": validation, "callbacks": callbacks, "verbose": 0}
    if not isinstance(tuner, kt.Hyperband):
        kwargs["epochs"] = epochs
    try:
        tuner.search(*args, **copy.copy(kwargs))
    except RuntimeError as exc:
        if "consecutive failures" not in str(exc):
            raise
        first = getattr(tuner, "first_failure", None) or str(exc)
        raise SearchError(
            f"search stopped after {tuner.oracle.max_consecutive_failed_trials} failed trials in "
            f"a row; the first failure was: {_last_line(first)}"
        ) from None


def completed_trials(tuner) -> list:
    """Finished trials with a score, best first."""
    return [
        t for t in tuner.oracle.get_best_trials(len(tuner.oracle.trials)) if t.score is not None
    ]


def format_exc() -> str:
    return traceback.format_exc()
