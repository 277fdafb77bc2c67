"""KerasTuner tuners by name, with thin mixins that record every trial and add our options.

The search algorithms are KerasTuner's own (random, grid, bayesian, hyperband) or an Optuna TPE
oracle inside KerasTuner (tpe.py). Around them: pruning (pruning.py), a time budget (budget.py),
enqueued configurations (enqueue.py), and RecordingMixin, which writes RUN_DIR/trials.csv,
measures speed and latency, keeps only the best checkpoints and prints one line per trial.
"""

from __future__ import annotations

import contextlib
import io
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from automl_app import interrupts
from automl_app.errors import SearchError, UsageError
from automl_app.models.hypermodel import describe
from automl_app.runs.trials import FIRST_COLUMNS, load_rows, save_rows, trials_lock  # noqa: F401
from automl_app.tuning import TUNER_NAMES as TUNERS
from automl_app.tuning import budget
from automl_app.tuning.enqueue import attach_queue, with_defaults_first
from automl_app.tuning.progress import SearchProgress, curve_of
from automl_app.tuning.pruning import PruningCallback, PruningTunerMixin, pruned_epoch

PROJECT = "tuner"  # RUN_DIR/tuner is KerasTuner's own project directory
SLOW_EPOCH_FACTOR = 4.0


def infer_direction(objective: str, direction: str | None = None) -> str:
    """`val_loss` → min, `val_accuracy` → max; `--direction` overrides; unknown names need it."""
    if direction is not None:
        if direction not in ("min", "max"):
            raise UsageError(f"--direction must be one of min, max. Received: {direction!r}")
        return direction
    name = objective.lower()
    if any(k in name for k in ("loss", "error", "mae", "mse", "rmse", "latency")):
        return "min"
    if any(k in name for k in ("acc", "auc", "precision", "recall", "f1", "r2")):
        return "max"
    raise UsageError(
        f"cannot tell whether --objective {objective!r} should be minimised or "
        "maximised: pass --direction min or --direction max"
    )


def measure_latency(model, repeats: int = 3) -> dict[str, float]:
    """Prediction latency in ms per image at batch 1 and batch 256 (median of `repeats`)."""
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        return {}
    out = {}
    for batch in (1, 256):
        x = np.zeros((batch, *shape), dtype="float32")
        model(x, training=False)  # warm-up / trace
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x, training=False)
            times.append(time.perf_counter() - t0)
        out[f"latency_ms_b{batch}"] = round(1000 * statistics.median(times) / batch, 4)
    return out


class TrialStats(keras.callbacks.Callback):
    """Collects parameter count, epoch times and latency of one trial into a shared dict.

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
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            # TerminateOnNaN stopped the epoch; the trial failed, it did not merely score low.
            raise kt.errors.FailedTrialError(
                f"loss became {float(loss)} in epoch {epoch + 1}: training diverged "
                "(learning rate too high?)"
            )

    def on_train_end(self, logs=None):
        try:
            self.store.update(measure_latency(self.model))
        except Exception:  # a user model with unusual inputs: latency stays empty
            pass


class RecordingMixin:
    """Observes trials: writes the trial table, keeps the best K checkpoints, prints a line."""

    def _setup_recording(
        self,
        run_dir: Path,
        on_line: Callable[[str], None],
        total: int | None,
        n_train: int | None = None,
        keep_checkpoints: int = 1,
    ) -> None:
        self._run_dir = Path(run_dir)
        self._on_line = on_line
        self._total = total
        self._n_train = n_train
        self._keep = max(1, int(keep_checkpoints))
        self._current: dict[str, Any] = {}
        self._rows = load_rows(self._run_dir)
        self.first_failure: str | None = None
        self._progress = SearchProgress(on_line, total)

    def run_trial(self, trial, *args, **kwargs):
        kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [
            TrialStats(self._current),
            self._progress.callback(trial.trial_id, self._current, self.oracle.objective.name),
        ]
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
            self._drop_checkpoints()
            release_memory()

    def recover_rows(self) -> list[str]:
        """Rows for trials the (reloaded) oracle ended but the trial table lacks; their ids.

        A worker writes its trial's row after reading the scored trial back from the chief:
        a chief killed between the trial's end and that read leaves the trial COMPLETED in
        oracle.json with no row (seen once in tests/distributed/test_faults_parallel.py), and a
        resumed search never runs it again. The row is rebuilt from the oracle's record (its
        metrics and hyperparameters; the timings were not kept)."""
        trials = getattr(self.oracle, "trials", None) or {}
        with trials_lock(self._run_dir):
            self._rows.update(load_rows(self._run_dir))
            missing = [
                t
                for t in trials.values()
                if str(t.status) in ("COMPLETED", "FAILED") and t.trial_id not in self._rows
            ]
            for trial in missing:
                self._current.clear()
                self._record_row(trial)
        return [t.trial_id for t in missing]

    def _record(self, trial) -> None:
        """Record under a file lock: parallel workers share one trial table."""
        trial = self.oracle.get_trial(trial.trial_id)  # scored by the (possibly remote) oracle
        with trials_lock(self._run_dir):
            self._rows.update(load_rows(self._run_dir))  # rows other workers wrote
            self._record_row(trial)

    def _record_row(self, trial) -> None:
        seconds = time.perf_counter() - self._current.get("t0", time.perf_counter())
        epoch_s = self._current.get("epoch_seconds", [])
        obj = self.oracle.objective
        status = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}.get(
            str(trial.status), str(trial.status).lower()
        )
        error = None
        if status == "failed":
            error = _last_line(trial.message)
            if budget.skip_reason(trial.message):  # the time budget refused it; never trained
                status, error = "skipped", budget.skip_reason(trial.message)
            elif self.first_failure is None:
                self.first_failure = trial.message or error
        pruned_at = pruned_epoch(trial)
        if status == "completed" and pruned_at is not None:
            status = "pruned"
        n_epochs = len(epoch_s)
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": status,
            "objective": None if trial.score is None else float(trial.score),
            "epochs": n_epochs,
            "seconds": round(seconds, 3),
            "seconds_per_epoch": round(sum(epoch_s) / n_epochs, 3) if n_epochs else None,
            "samples_per_s": (
                round(self._n_train * n_epochs / sum(epoch_s), 1)
                if n_epochs and self._n_train
                else None
            ),
            "params": self._current.get("params"),
            "latency_ms_b1": self._current.get("latency_ms_b1"),
            "latency_ms_b256": self._current.get("latency_ms_b256"),
            "pruned_at": pruned_at,
            "error": error,
            # first epoch vs the others: tracing/start-up overhead per trial (bench/trial_overhead)
            "first_epoch_s": round(epoch_s[0], 3) if epoch_s else None,
            "steady_epoch_s": round(statistics.median(epoch_s[1:]), 3) if n_epochs > 1 else None,
            "curve": curve_of(self._current),  # per-epoch objective: the Optuna journal's
        }
        # Every metric at the trial's best step: the epoch whose checkpoint KerasTuner keeps.
        for name in ("loss", "accuracy", "val_loss", "val_accuracy", obj.name):
            if trial.metrics.exists(name):
                row[name] = _value_at_best_step(trial, name)
        row.update({f"hp_{k}": v for k, v in trial.hyperparameters.values.items()})
        self._rows[trial.trial_id] = row
        save_rows(self._run_dir, self._rows)
        best = self._best_score()
        total = f"/{self._total}" if self._total else ""
        score = "—" if trial.score is None else f"{trial.score:.4f}"
        best_txt = "—" if best is None else f"{best:.4f}"
        tag = f"pruned@{pruned_at}" if status == "pruned" else status
        line = (
            f"trial {trial.trial_id} ({len(self._rows)}{total}) [{tag}] "
            f"{describe(trial.hyperparameters.values)} | {obj.name}={score} | "
            f"{seconds:.1f}s | best {best_txt}"
        )
        if error:
            line += f" | error: {error}"
        self._on_line(line)
        self._warn_if_slow(row, trial)
        self._progress.between_trials(
            self._rows, self.oracle.objective, getattr(self.oracle, "deadline", None)
        )

    def _warn_if_slow(self, row: dict[str, Any], trial) -> None:
        """A batch size that makes epochs 4× slower than the median deserves a warning."""
        times = [
            r["seconds_per_epoch"]
            for r in self._rows.values()
            if r.get("seconds_per_epoch") not in (None, "")
        ]
        mine = row.get("seconds_per_epoch")
        if mine is None or len(times) < 3:
            return
        median = statistics.median(float(t) for t in times)
        if mine > SLOW_EPOCH_FACTOR * median:
            bs = trial.hyperparameters.values.get("batch_size")
            sizes = [r.get("hp_batch_size") for r in self._rows.values() if r.get("hp_batch_size")]
            small = bs is not None and sizes and int(bs) < statistics.median(int(b) for b in sizes)
            cause = (
                f"batch_size={bs} is the likely cause (see --min-batch-size)"
                if small
                else f"the model is the likely cause ({row.get('params')} parameters)"
            )
            self._on_line(
                f"warning: trial {trial.trial_id} took {mine:.1f}s per epoch, "
                f"{mine / median:.1f}x the median ({median:.1f}s); {cause}"
            )

    def _best_score(self) -> float | None:
        scores = [
            float(r["objective"])
            for r in self._rows.values()
            if r.get("status") in ("completed", "pruned") and r.get("objective") not in (None, "")
        ]
        if not scores:
            return None
        return max(scores) if self.oracle.objective.direction == "max" else min(scores)

    def _drop_checkpoints(self) -> None:
        """Keep the weights of the best K trials only (KerasTuner keeps every trial's)."""
        from automl_app.tuning.pruning import _all_trials  # local oracle or gRPC client

        best = {t.trial_id for t in self.oracle.get_best_trials(self._keep)}
        for trial in _all_trials(self.oracle):
            if trial.trial_id in best or str(trial.status) == "RUNNING":
                continue
            ckpt = Path(self._get_checkpoint_fname(trial.trial_id))
            if ckpt.exists():
                ckpt.unlink()


def release_memory() -> None:
    """Between trials: drop Keras' global state, collect, and give freed heap back to the OS.

    TensorFlow's allocations fragment glibc's heap; without malloc_trim the resident size keeps
    growing over a long search. `drop_custom_gradients` removes the one real leak (below).
    """
    import ctypes
    import gc

    keras.backend.clear_session()
    drop_custom_gradients()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        pass


def drop_custom_gradients() -> int:
    """Forget the gradient functions `tf.custom_gradient` registered while tracing; returns how many.

    In graph mode (every `fit`) each `tf.custom_gradient` call registers `CustomGradient-<uid>` in
    TensorFlow's global gradient registry and never removes it. The entry's closure holds tensors
    of the traced FuncGraph, so every trained model's train/test graphs (~5 MB for a small dense
    net, ~17 MB per trial of ours) stay alive forever; clear_session and gc cannot free them.
    Between trials no traced function of a finished trial is traced again, so dropping them all
    is safe; functions traced later register fresh entries.
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):  # a future TensorFlow without this private registry
        return 0
    stale = [name for name in registry if str(name).startswith("CustomGradient-")]
    for name in stale:
        registry.pop(name, None)
    return len(stale)


def _value_at_best_step(trial, name: str) -> float | None:
    step = trial.best_step
    for obs in trial.metrics.get_history(name):
        if obs.step == step:
            return float(obs.value[0]) if isinstance(obs.value, list) else float(obs.value)
    return None


def _last_line(message: str | None) -> str:
    """A failed trial's error in one line; exhausted memory says "out of memory" first."""
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    line = lines[-1][:300] if lines else "unknown error"
    oom = re.search(r"OOM when allocating tensor with shape\[[^\]]*\]", message or "")
    if oom:
        return f"out of memory: {oom.group(0)} (a configuration too large for this machine)"
    if any(m in (message or "") for m in ("MemoryError", "std::bad_alloc", "ResourceExhausted")):
        return f"out of memory: {line}"[:300]
    return line


def _tuner_class(name: str):
    if name == "grid":  # KerasTuner's own GridSearch runs no new trials after a reload
        from automl_app.tuning.grid import ResumableGridSearch

        base = ResumableGridSearch
    else:
        base = {
            "random": kt.RandomSearch,
            "bayesian": kt.BayesianOptimization,
            "hyperband": kt.Hyperband,
            "tpe": kt.Tuner,
        }[name]
    mixins = (RecordingMixin,) if name == "hyperband" else (RecordingMixin, PruningTunerMixin)
    return type(f"Automl{base.__name__}", (*mixins, base), {})


def make_tuner(
    name: str,
    hypermodel: kt.HyperModel,
    *,
    run_dir: Path,
    objective: str = "val_accuracy",
    direction: str | None = None,
    max_trials: int = 10,
    epochs: int = 1,
    seed: int | None = None,
    max_failures: int = 3,
    on_line: Callable[[str], None] = print,
    overwrite: bool = False,
    deadline: budget.Deadline | None = None,
    enqueue: list[dict[str, Any]] | None = None,
    keep_checkpoints: int = 1,
    n_train: int | None = None,
    executions_per_trial: int = 1,
    tpe_startup: int | None = None,
    defaults_first: bool = True,
):
    """A KerasTuner tuner over `hypermodel` whose project lives in RUN_DIR/tuner.

    With overwrite=False an existing project is reloaded (resume) and `max_trials` may grow.
    The first trial is the space's defaults (`defaults_first`; grid search starts there anyway),
    then the `enqueue` configurations, then the tuner's own proposals.
    """
    from automl_app.tf_env import is_verbose
    from automl_app.tuning.compat import config as kt_config

    kt_config.DEBUG = is_verbose()  # KerasTuner prints every failed trial's traceback otherwise
    if name not in TUNERS:
        raise UsageError(f"--tuner must be one of {', '.join(TUNERS)}. Received: {name!r}")
    obj = kt.Objective(objective, infer_direction(objective, direction))
    common = dict(directory=str(run_dir), project_name=PROJECT, overwrite=overwrite)
    oracle_args = dict(objective=obj, seed=seed, max_consecutive_failed_trials=max_failures)
    cls = _tuner_class(name)
    # KerasTuner prints "Reloading Tuner from ..." on resume; we say it ourselves.
    quiet = contextlib.nullcontext() if is_verbose() else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        if name == "tpe":
            from automl_app.tuning.tpe import TPEOracle

            if tpe_startup is not None:  # else TPEOracle's default (Optuna's 10)
                oracle_args["n_startup_trials"] = tpe_startup
            oracle = TPEOracle(max_trials=max_trials, **oracle_args)
            tuner = cls(
                oracle=oracle,
                hypermodel=hypermodel,
                executions_per_trial=executions_per_trial,
                **common,
            )
        elif name == "hyperband":
            # Brackets repeat until --max-trials (or the budget): KerasTuner's default of one
            # Hyperband iteration would end a search after a handful of trials whatever
            # --max-trials says (2 trials for --epochs 2) and call it exhausted.
            tuner = cls(
                hypermodel,
                max_epochs=max(epochs, 2),
                factor=3,
                hyperband_iterations=None,
                **oracle_args,
                **common,
            )
        else:
            tuner = cls(
                hypermodel,
                max_trials=max_trials,
                executions_per_trial=executions_per_trial,
                **oracle_args,
                **common,
            )
    tuner.oracle.max_trials = max_trials  # same meaning everywhere; may grow on resume
    budget.attach_budget(tuner.oracle, deadline)
    first = defaults_first and name != "grid"  # the grid's first point is the defaults
    attach_queue(tuner.oracle, with_defaults_first(list(enqueue or []), first))
    tuner._setup_recording(
        run_dir, on_line, max_trials, n_train=n_train, keep_checkpoints=keep_checkpoints
    )
    return tuner


def forget_ended_retries(oracle: Any) -> list[str]:
    """Drop ended trials from a reloaded oracle's retry queue; returns their ids.

    KerasTuner's `end_trial` saves oracle.json before it removes the trial from `ongoing_trials`,
    and `reload()` queues every "ongoing" trial for a re-run: a process killed between the two
    would run a COMPLETED (or FAILED) trial again on resume. Only a trial still RUNNING, or an
    INVALID one KerasTuner retries on purpose, stays queued.
    """
    queue = getattr(oracle, "_retry_queue", None)
    if not queue:
        return []
    ended = [t for t in queue if str(oracle.trials[t].status) in ("COMPLETED", "FAILED")]
    if ended:
        oracle._retry_queue = [t for t in queue if t not in ended]
        oracle.save()
    return ended


def tidy_resumed(tuner) -> None:
    """What a resumed search (plain, or a parallel chief) does before it goes on: drop ended
    trials from the retry queue and write the rows an interrupted search ended without."""
    forget_ended_retries(tuner.oracle)
    if hasattr(tuner, "recover_rows"):  # AutoKeras's tuners keep no trial table
        tuner.recover_rows()


def plain_search(tuner, *fit_args: Any, **fit_kwargs: Any) -> None:
    """One process's `tuner.search`, on a resumed oracle made consistent first."""
    tidy_resumed(tuner)
    tuner.search(*fit_args, **fit_kwargs)


def run_search(
    tuner,
    train,
    val,
    *,
    epochs: int,
    tensorboard_dir: Path,
    y_train=None,
    y_val=None,
    prune: str = "none",
    min_epochs: int = 1,
    deadline: budget.Deadline | None = None,
    search: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """tuner.search(...) with TensorBoard (HParams) logs, pruning and the deadline.

    `search(tuner, *args, **kwargs)` runs the search (default `plain_search`); a parallel
    search's roles pass distributed.workers.search, so tuning never imports distributed.

    Returns the stop summary for run.json; a run of failed trials raises SearchError with the
    first failed trial's real error.
    """
    callbacks: list[Any] = [
        keras.callbacks.TensorBoard(
            log_dir=str(tensorboard_dir), write_graph=False, profile_batch=0
        ),
        keras.callbacks.TerminateOnNaN(),
        interrupts.keras_callback(),
    ]
    if prune != "none":
        if isinstance(tuner, kt.Hyperband):
            raise UsageError(
                "--prune works with random, grid, bayesian and tpe; Hyperband "
                "prunes by itself. Received: --tuner hyperband --prune " + prune
            )
        callbacks.append(PruningCallback(prune, min_epochs=min_epochs))
    if deadline is not None:
        callbacks.append(budget.deadline_callback(deadline))
    args = (train,) if y_train is None else (train, y_train)
    validation = val if y_val is None else (val, y_val)
    kwargs: dict[str, Any] = {"validation_data": validation, "callbacks": callbacks, "verbose": 0}
    if not isinstance(tuner, kt.Hyperband):
        kwargs["epochs"] = epochs
    # plain tuner.search, or (distributed.workers.search) a role of a parallel search
    (search or plain_search)(tuner, *args, **kwargs)
    summary = budget.stop_summary(tuner.oracle)
    if summary["stop_reason"] == "consecutive_failures":
        first = summary.get("stop_message") or getattr(tuner, "first_failure", None)
        summary["failure_message"] = (
            f"search stopped after {tuner.oracle.max_consecutive_failed_trials} failed trials in "
            f"a row; the first failure was: {_last_line(first)}"
        )
        if not completed_trials(tuner):  # nothing to evaluate: the run has failed
            raise SearchError(summary["failure_message"])
    return summary


def completed_trials(tuner) -> list:
    """Finished trials with a score, best first."""
    return [
        t for t in tuner.oracle.get_best_trials(len(tuner.oracle.trials)) if t.score is not None
    ]
