"""`--prune median|asha|none`: Optuna's pruners deciding, epoch by epoch, inside KerasTuner trials.

KerasTuner prunes only inside Hyperband; Optuna prunes but has no Keras hypermodels. Here a Keras
callback reports the objective after every epoch to the KerasTuner oracle (`update_trial`, one
observation per epoch, so the per-epoch curve lives in KerasTuner's own `trial.json`) and asks an
Optuna pruner whether to stop. The pruner's study is a mirror derived from those curves, so a
resumed search (or a worker joining later) rebuilds the same pruning state from the trials alone.

A pruned trial stays `COMPLETED` for KerasTuner (its best epoch still counts) and carries one extra
metric, `pruned_at_epoch` (1-based number of epochs it trained), which `pruned_info()` reads back
for the trial table. Works with the random, grid, bayesian and tpe oracles, locally and through
KerasTuner's gRPC oracle client; not with Hyperband, which prunes by itself.

Wiring: `class MyTuner(PruningTunerMixin, keras_tuner.RandomSearch)` and
`tuner.search(..., callbacks=[PruningCallback("median", min_epochs=2)])` (or call
`bind_callbacks()` from your own `run_trial`). Imports Keras/KerasTuner/Optuna at module level:
import lazily, never from the CLI's parsing path.
"""

from __future__ import annotations

import glob
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from automl_app.errors import UsageError
from automl_app.tf_env import tf as _tf

_tf()

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import optuna  # noqa: E402
from keras_tuner.engine.trial import TrialStatus  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

__all__ = [
    "PRUNED_METRIC",
    "PRUNERS",
    "PruningCallback",
    "PruningTunerMixin",
    "bind_callbacks",
    "make_pruner",
    "objective_curve",
    "pruned_epoch",
    "pruned_info",
]

PRUNED_METRIC = "pruned_at_epoch"
PRUNERS = ("median", "asha", "none")


def make_pruner(
    name: str, *, min_epochs: int = 1, n_startup_trials: int = 3, reduction_factor: int = 3
) -> optuna.pruners.BasePruner:
    """The Optuna pruner behind `--prune NAME`.

    median: MedianPruner; prunes a trial whose best value so far is worse than the median of the
        completed trials at the same epoch, once `n_startup_trials` trials have completed.
    asha: SuccessiveHalvingPruner with rungs at min_epochs × reduction_factor**k epochs.
    none: never prunes (the curve is still recorded).
    """
    if name not in PRUNERS:
        raise UsageError(f"`--prune` must be one of {', '.join(PRUNERS)}. Received: prune={name!r}")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, int(min_epochs)), reduction_factor=reduction_factor
        )
    return optuna.pruners.NopPruner()


def objective_curve(trial: Any, objective_name: str) -> dict[int, float]:
    """{epoch (1-based): objective value} from a KerasTuner trial's metric history."""
    if not trial.metrics.exists(objective_name):
        return {}
    return {
        int(obs.step) + 1: float(obs.mean()) for obs in trial.metrics.get_history(objective_name)
    }


def pruned_epoch(trial: Any) -> int | None:
    """The epoch a trial was pruned after (1-based), or None if it was not pruned."""
    if not trial.metrics.exists(PRUNED_METRIC):
        return None
    return int(trial.metrics.get_best_value(PRUNED_METRIC))


def _all_trials(oracle: Any) -> list[Any]:
    """Every trial the oracle knows, local oracle or gRPC OracleClient alike, in id order."""
    if hasattr(oracle, "trials"):
        trials = list(oracle.trials.values())
    else:  # OracleClient: get_best_trials pads with the non-completed trials.
        trials = oracle.get_best_trials(1_000_000)
    return sorted(trials, key=lambda t: str(t.trial_id))


def pruned_info(source: Any) -> dict[str, int]:
    """{trial_id: epoch it was pruned after} for the completed trials that were pruned.

    `source` is a tuner, an oracle, or a KerasTuner project directory (the folder holding the
    `trial_*/trial.json` files, or its parent). Failed trials are left out: failed wins over pruned.
    """
    oracle = getattr(source, "oracle", source)
    if hasattr(oracle, "trials") or hasattr(oracle, "get_best_trials"):
        return {
            t.trial_id: pruned_epoch(t)
            for t in _all_trials(oracle)
            if t.status == TrialStatus.COMPLETED and pruned_epoch(t) is not None
        }
    root = os.fspath(source)
    files = glob.glob(os.path.join(root, "trial_*", "trial.json")) or glob.glob(
        os.path.join(root, "*", "trial_*", "trial.json")
    )
    out = {}
    for fname in sorted(files):
        with open(fname, encoding="utf-8") as fh:
            state = json.load(fh)
        history = state.get("metrics", {}).get("metrics", {}).get(PRUNED_METRIC)
        if state.get("status") != TrialStatus.COMPLETED or not history:
            continue
        values = [v for obs in history["observations"] for v in obs["value"]]
        out[state["trial_id"]] = int(min(values))
    return out


class _Mirror:
    """An in-memory Optuna study replaying the finished KerasTuner trials for one oracle."""

    def __init__(self, pruner: optuna.pruners.BasePruner, direction: str) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            direction="maximize" if direction == "max" else "minimize",
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=pruner,
        )
        self.finished: set[str] = set()
        self.live: dict[str, optuna.trial.Trial] = {}

    def _finish(self, ask: optuna.trial.Trial, trial: Any, objective_name: str) -> None:
        if trial.status != TrialStatus.COMPLETED or trial.score is None:
            self.study.tell(ask, state=TrialState.FAIL)
        elif pruned_epoch(trial) is not None:
            self.study.tell(ask, state=TrialState.PRUNED)
        else:
            score = float(trial.score)
            state = TrialState.FAIL if math.isnan(score) else TrialState.COMPLETE
            self.study.tell(ask, score if state == TrialState.COMPLETE else None, state=state)
        self.finished.add(trial.trial_id)

    def sync(self, oracle: Any, current: str) -> None:
        """Replay every finished trial not mirrored yet (reported steps and prune calls alike)."""
        name = oracle.objective.name
        for trial in _all_trials(oracle):
            tid = trial.trial_id
            if tid == current or tid in self.finished:
                continue
            if trial.status not in (TrialStatus.COMPLETED, TrialStatus.FAILED):
                continue
            ask = self.live.pop(tid, None)
            if ask is None:  # not run here: replay its curve so rung records match the original
                ask = self.study.ask()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for step, value in sorted(objective_curve(trial, name).items()):
                        ask.report(value, step)
                        ask.should_prune()
            self._finish(ask, trial, name)

    def start(self, trial_id: str) -> optuna.trial.Trial:
        if trial_id not in self.live:
            self.live[trial_id] = self.study.ask()
        return self.live[trial_id]


class _Shared:
    """State shared by every (deep-)copy of one PruningCallback: the mirror of one oracle."""

    def __init__(self) -> None:
        self.oracle_id: int | None = None
        self.mirror: _Mirror | None = None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return getattr(value, "ndim", 0) == 0


class PruningCallback(keras.callbacks.Callback):
    """Report the objective each epoch to the oracle and stop the trial when the pruner says so.

    Args:
        pruner: "median", "asha" or "none".
        min_epochs: epochs every trial trains before it may be pruned (`--min-epochs`).
        n_startup_trials: completed trials the median pruner waits for.
        reduction_factor: ASHA's rung growth factor.

    The callback must know the running trial: pass it through `PruningTunerMixin` (or call
    `bind_callbacks(callbacks, tuner.oracle, trial)` in your `run_trial`).
    """

    def __init__(
        self,
        pruner: str = "median",
        min_epochs: int = 1,
        n_startup_trials: int = 3,
        reduction_factor: int = 3,
    ) -> None:
        super().__init__()
        if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 1:
            raise UsageError(f"`--min-epochs` must be an integer >= 1. Received: {min_epochs!r}")
        make_pruner(pruner)  # validates the name early, before any trial runs
        self.pruner = pruner
        self.min_epochs = min_epochs
        self.n_startup_trials = n_startup_trials
        self.reduction_factor = reduction_factor
        self.pruned_epoch: int | None = None
        self._shared = _Shared()
        self._oracle: Any = None
        self._trial: Any = None
        self._live: optuna.trial.Trial | None = None

    def _clone(self) -> PruningCallback:
        new = PruningCallback(
            self.pruner, self.min_epochs, self.n_startup_trials, self.reduction_factor
        )
        new._shared = self._shared
        new._oracle, new._trial = self._oracle, self._trial
        return new

    def __deepcopy__(self, memo: dict) -> PruningCallback:
        # KerasTuner deep-copies callbacks per trial; the oracle, trial and mirror are shared.
        return self._clone()

    def bind(self, oracle: Any, trial: Any) -> PruningCallback:
        """A copy of this callback that reports for `trial` to `oracle`."""
        if isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
            raise keras_tuner.errors.FatalValueError(
                "`--prune` works with the random, grid, bayesian and tpe tuners; Hyperband "
                "prunes by itself. Received: tuner='hyperband'"
            )
        new = self._clone()
        new._oracle, new._trial = oracle, trial
        return new

    def _mirror(self) -> _Mirror:
        if self._shared.mirror is None or self._shared.oracle_id != id(self._oracle):
            pruner = make_pruner(
                self.pruner,
                min_epochs=self.min_epochs,
                n_startup_trials=self.n_startup_trials,
                reduction_factor=self.reduction_factor,
            )
            self._shared.mirror = _Mirror(pruner, self._oracle.objective.direction)
            self._shared.oracle_id = id(self._oracle)
        return self._shared.mirror

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._oracle is None or self._trial is None:
            raise keras_tuner.errors.FatalValueError(
                "PruningCallback needs the running trial: build the tuner with "
                "PruningTunerMixin, or call bind_callbacks(callbacks, self.oracle, trial) in "
                "run_trial(). Received: an unbound PruningCallback"
            )
        mirror = self._mirror()
        mirror.sync(self._oracle, current=self._trial.trial_id)
        self._live = mirror.start(self._trial.trial_id)
        self.pruned_epoch = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        objective = self._oracle.objective
        if not objective.has_value(logs):
            raise keras_tuner.errors.FatalValueError(
                f"Pruning needs `{objective.name}` after every epoch (is validation data "
                f"given?). Received logs with keys: {sorted(logs)}"
            )
        value = float(objective.get_value(logs))
        metrics = {k: float(v) for k, v in logs.items() if _is_number(v)}
        metrics[objective.name] = value
        step = epoch + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._live.report(value, step)
            prune = self.pruner != "none" and step >= self.min_epochs and self._live.should_prune()
        if prune:
            metrics[PRUNED_METRIC] = float(step)
            self.pruned_epoch = step
        self._oracle.update_trial(self._trial.trial_id, metrics, step=epoch)
        if prune:
            self.model.stop_training = True


def bind_callbacks(callbacks: Iterable[Any] | None, oracle: Any, trial: Any) -> list[Any]:
    """Callbacks with every PruningCallback bound to the running trial (others unchanged)."""
    return [
        cb.bind(oracle, trial) if isinstance(cb, PruningCallback) else cb
        for cb in (callbacks or [])
    ]


class PruningTunerMixin:
    """Tuner mixin that hands PruningCallbacks the running trial before KerasTuner copies them.

    Put it before the KerasTuner tuner class: `class T(PruningTunerMixin, keras_tuner.GridSearch)`.
    """

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        if "callbacks" in kwargs:
            kwargs["callbacks"] = bind_callbacks(kwargs["callbacks"], self.oracle, trial)
        return super().run_trial(trial, *args, **kwargs)
