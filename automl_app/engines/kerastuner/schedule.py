"""`--time-budget` as a schedule: explore cheaply, then refit the chosen configuration.

A budget is spent the way multi-fidelity methods spend it, with the libraries' own algorithms:
1. explore: the tuner (the space's defaults first) trains every trial on a seeded subset of the
   training split (SUBSET_FRACTION of it, at least SUBSET_MIN examples), with the chosen pruner
   (`--prune asha`: Optuna's SuccessiveHalvingPruner promotes the promising trials to more epochs)
   or Hyperband's own brackets. TrialGuard gives a configuration dearer than the first trial (the
   defaults) fewer epochs, so trials are compared at the time the refit will pay for them, and
   shrinks or skips a trial that cannot finish before the phase ends, which is at EXPLORE_SHARE
   of the budget. When the first trial shows that fewer than MIN_EXPLORE_TRIALS trials would fit
   the phase, it ends there and that trial's model goes on into the final phase (no promote).
2. promote (engines/kerastuner/promote.py, PROMOTE_SHARE of the budget): the best few
   configurations again on the explore subset for the epochs their refit will have, in equal
   shares of time; validation picks one.
3. final: the winner goes on training (or the best trial is trained again from scratch when
   nothing was promoted) on the whole training split until the reserve, with a cosine learning
   rate over the time left and a weight average. Validation decides between this refit and the
   best trial's own model; both are recorded.
A reserve (RESERVE_SHARE of the budget) is kept for evaluation, export and the report, so the
whole command ends near the budget. run.json `phases` lists each phase: trials, fidelity, seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl_app.tuning.budget import Deadline
from automl_app.tuning.guard import CostModel

Say = Callable[[str], None]

EXPLORE_SHARE = 0.25  # of the budget left after the reserve
PROMOTE_SHARE = 0.2  # PROMOTE_K candidates judged again at the refit's epochs (promote.py)
RESERVE_SHARE = 0.08  # evaluation, export, report
RESERVE_MIN_S, RESERVE_MAX_S = 12.0, 60.0
RESERVE_MAX_SHARE = 0.25  # a small budget still leaves three quarters to search
# The least budget (config.MIN_TIME_BUDGET_S, checked before anything runs): the one whose
# reserve is the whole RESERVE_MIN_S; below it the export would eat the search's time.
MIN_BUDGET_S = RESERVE_MIN_S / RESERVE_MAX_SHARE
SUBSET_MIN = 5000  # never explore on fewer training examples than this (or all of them)
SUBSET_FRACTION = 0.25
MAX_REFIT_EPOCHS = 100
# The explore phase ends after its first trial when fewer trials than this would fit it: the
# rest of the budget trains that trial's model (the defaults, unless --no-defaults-first) rather
# than promoting among fewer candidates than promote judges (PROMOTE_K). Measured at 10 min on
# Fashion-MNIST on slow 2-core CPUs: where 2 trials fit, the search ended 0.53 points below the
# defaults trained for the same time (its explore and promote phases cost ~4 epochs); where 3 and
# 4 fit it ended +0.5, +0.06 and −1.16 from them, so 3 still searches.
MIN_EXPLORE_TRIALS = 3
SAFETY = 1.1  # epochs are planned 10% longer than predicted: a busy machine varies


@dataclass(frozen=True)
class BudgetSchedule:
    """When each phase ends and how much data exploring sees."""

    deadline: Deadline  # the whole budget
    explore: Deadline  # the end of the explore phase
    reserve_s: float  # kept for evaluation, export and the report
    subset: int | None  # training examples while exploring (None: all of them)
    n_train: int
    promote_s: float = 0.0  # the promote phase, shared by its candidates

    def refit_deadline(self) -> Deadline:
        return Deadline(at=self.deadline.at - self.reserve_s, seconds=self.deadline.seconds)

    def describe(self, epochs: int, prune: str, equal_time: bool = False) -> str:
        data = (
            f"{self.subset:,} of {self.n_train:,} training examples"
            if self.subset
            else f"all {self.n_train:,} training examples"
        )
        left = self.explore.remaining()
        explore = (
            f"explore for {left:.0f}s"
            if left >= 0.5
            else "no time left to explore after loading the data (one trial still runs)"
        )
        return (
            f"budget {self.deadline.seconds:.0f}s: {explore} on "
            f"{data} (up to {epochs} epochs a trial"
            + (", fewer for configurations dearer than the first" if equal_time else "")
            + (f", prune {prune}" if prune != "none" else "")
            + ")"
            + (
                f", then train the best few again on them for their refit's epochs "
                f"(up to {self.promote_s:.0f}s together) and go on with the one that validates best "
                "on all of them"
                if self.promote_s
                else ", then refit the best on all of them"
            )
            + f"; up to {self.reserve_s:.0f}s kept for evaluation and export"
        )


def reserve_seconds(total: float) -> float:
    """Seconds of a `total`-second budget kept for what follows the trials (evaluation, export,
    report): RESERVE_SHARE of it, at least RESERVE_MIN_S, at most RESERVE_MAX_S and a quarter."""
    return min(max(RESERVE_SHARE * total, RESERVE_MIN_S), RESERVE_MAX_S, RESERVE_MAX_SHARE * total)


# What follows the final refit, in validation passes of its model: the TTA check (8: the plain
# pass, the mirror's two, the shifts' five) and the test split (about 2 validation splits' worth,
# up to five passes each with the shifts); the export traces the model about as often as a fit's
# start-up (FINISH_STARTUPS). The planned reserve (RESERVE_SHARE) is a guess made before anything was measured: on Fashion-MNIST
# at 10 minutes it kept 48 s where evaluation, export and report then took 3–4 s (run.json
# search_seconds against the wall), i.e. two refit epochs idle.
FINISH_PASSES = 18
FINISH_STARTUPS = 2
FINISH_SAFETY = 1.25  # a busy machine varies
# Budgeted 10-minute runs here stalled 35-55 s inside TensorFlow at random points (3 of 7 runs):
# freeing a used tf.data iterator joined its autotuner thread (py-spy), which the space's
# pipelines no longer start (models/hypermodel.batches). At 25 s this margin kept the planned
# 48 s whole where the finish then took 16 s (TTA check 4.7 s, test 9.3 s, export 1.7 s; run at
# 9d4f4b2, no collection over 0.6 s): each 10-minute search ended 26-32 s early. What is left
# covers a short stall; the command may still end 5% past its budget (30 s at 10 minutes).
STALL_MARGIN_S = 5.0


def finish_reserve(schedule: BudgetSchedule, cost: CostModel, macs: int, n_val: int) -> float:
    """Seconds the final refit leaves for evaluation, export and the report, from what the
    search measured (its validation passes and start-ups), with FINISH_SAFETY, plus
    STALL_MARGIN_S: at least RESERVE_MIN_S, at most the planned reserve (kept whole when no
    validation was measured)."""
    val_s = cost.val_seconds(macs, n_val)
    if not val_s:
        return schedule.reserve_s
    predicted = FINISH_PASSES * val_s + FINISH_STARTUPS * cost.startup()
    return min(schedule.reserve_s, max(RESERVE_MIN_S, FINISH_SAFETY * predicted + STALL_MARGIN_S))


def collect_garbage() -> float:
    """Free the explore trials' and promote losers' models now; the seconds it took.

    They sit in reference cycles only the collector frees, and freeing TensorFlow's traced
    functions is slow (the command's last collection took 14.6 s, measured with gc.callbacks).
    Budgeted bench runs stalled 35–65 s at random points (4 runs in two sessions: promote, after
    the final refit, export; py-spy showed the main thread blocked inside TensorFlow while
    tracing), past the reserve; a collection at the collector's own moment is the likely cause.
    Before the final refit its wall-clock schedule absorbs the time."""
    import gc

    t0 = time.time()
    gc.collect()
    return round(time.time() - t0, 2)


def trials_deadline(deadline: Deadline) -> Deadline:
    """When a parallel search's trials must end: the whole budget's deadline less a reserve for
    what the launching command does after them (reload the tuner, load the best model, evaluate,
    export). That work is of the kind this command's start-up was (TensorFlow, the data), so the
    seconds the start-up took are added to the usual reserve: a loaded machine keeps more. At
    most RESERVE_MAX_SHARE of the budget."""
    started = deadline.elapsed()
    reserve = min(reserve_seconds(deadline.seconds) + started, RESERVE_MAX_SHARE * deadline.seconds)
    return Deadline(at=deadline.at - reserve, seconds=deadline.seconds - reserve)


def plan_schedule(deadline: Deadline, n_train: int) -> BudgetSchedule:
    """The phases of a budget that starts now (`deadline` is the whole budget's)."""
    total = max(deadline.remaining(), 0.0)
    reserve = reserve_seconds(total)
    explore_s = EXPLORE_SHARE * (total - reserve)
    subset = max(SUBSET_MIN, int(SUBSET_FRACTION * n_train))
    return BudgetSchedule(
        deadline=deadline,
        explore=Deadline(at=time.time() + explore_s, seconds=explore_s),
        reserve_s=reserve,
        subset=subset if subset < n_train else None,
        n_train=n_train,
        promote_s=PROMOTE_SHARE * (total - reserve),
    )


def subset_indices(n: int, size: int | None, seed: int) -> np.ndarray | None:
    """A seeded, sorted subset of range(n) (None: all of it)."""
    if size is None or size >= n:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def explore_fit_args(fit_args: dict[str, Any], data: Any, idx: np.ndarray | None) -> dict:
    """fit_args (tf.data for a space, arrays for a user hypermodel) restricted to `idx`."""
    if idx is None:
        return fit_args
    out = dict(fit_args)
    if "y_train" in fit_args:
        out["train"], out["y_train"] = fit_args["train"][idx], fit_args["y_train"][idx]
        return out
    from automl_app.tf_env import tf

    t = tf()
    out["train"] = t.data.Dataset.from_tensor_slices((data.x_train[idx], data.y_train[idx])).cache()
    return out


def val_metrics(hypermodel: Any, model: Any, fit_args: dict[str, Any]) -> dict[str, float]:
    """val_loss, val_accuracy, val_auc and val_macro_f1 of `model` on the validation split."""
    from automl_app.evaluate import classification_metrics

    if "y_val" in fit_args:
        probs = model.predict(fit_args["val"], verbose=0, batch_size=1024)
        y = np.asarray(fit_args["y_val"])
    else:
        from automl_app.models.hypermodel import VAL_BATCH, batches

        val = fit_args["val"]
        probs = model.predict(batches(val, VAL_BATCH, shuffle=False, seed=None), verbose=0)
        y = np.concatenate([np.asarray(b) for _, b in val.batch(4096).as_numpy_iterator()])
    y, probs = y.reshape(-1).astype(int), np.asarray(probs)
    metrics = classification_metrics(y, probs)
    return {
        "val_accuracy": metrics["accuracy"],
        "val_loss": metrics["loss"],
        **_ranking_metrics(y, probs),
    }


def _ranking_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """val_auc and val_macro_f1 as training/metrics.py's SparseAUC and SparseMacroF1 define them
    (one-vs-rest AUC and F1 of the arg-max, averaged over classes), so a refit is compared with
    its trials under those objectives too. scikit-learn's exact AUC, not Keras's 200 thresholds."""
    from sklearn.metrics import f1_score, roc_auc_score

    k = probs.shape[1]
    f1 = f1_score(y, probs.argmax(axis=1), labels=list(range(k)), average="macro", zero_division=0)
    out = {"val_macro_f1": float(f1)}
    present = [c for c in range(k) if 0 < np.sum(y == c) < len(y)]
    if present:  # AUC needs both outcomes for a class; classes absent from the split are left out
        onehot = (y[:, None] == np.asarray(present)[None, :]).astype(int)
        out["val_auc"] = float(roc_auc_score(onehot, probs[:, present], average="macro"))
    return out


def _clearly_worse(refit: dict[str, float], trial_score: float, objective: Any, n_val: int) -> bool:
    """The refit loses to the search's best trial by more than validation noise."""
    name = objective.name
    if name not in refit or trial_score is None:
        return False
    value = refit[name]
    if not math.isfinite(value):
        return True
    if name == "val_accuracy":
        p = min(max(trial_score, 0.01), 0.99)
        return value < trial_score - 2 * math.sqrt(p * (1 - p) / max(n_val, 1))
    worse = objective.better_than(trial_score, value)
    return worse and abs(value - trial_score) > 0.05 * abs(trial_score)


def _plan_steps(cost: CostModel, model: Any, hp: Any, key: str, n_train: int, left: float):
    """(steps to train, steps per epoch, predicted seconds per epoch) for the time `left`."""
    from automl_app.models.cost import forward_macs

    batch = int(hp.values.get("batch_size") or 32)
    per_epoch = cost.epoch_seconds(forward_macs(model), batch, n_train, 0, key=key)
    steps_per_epoch = max(1, -(-n_train // batch))
    if not per_epoch:
        return 0, steps_per_epoch, None
    fraction = min(left / (SAFETY * per_epoch), MAX_REFIT_EPOCHS)
    return int(fraction * steps_per_epoch), steps_per_epoch, per_epoch


def refit(
    tuner: Any,
    best_trial: Any,
    fit_args: dict[str, Any],
    schedule: BudgetSchedule,
    cost: CostModel,
    trial_examples: int,
    say: Say,
    start: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """The final phase: the chosen configuration on all training examples for the time left.

    `start` (promote.Promoted) is the promote phase's winner: its model goes on training from
    where it stopped, at the rate it was promoted at; otherwise the best trial is built afresh.

    A space's refit (tf.data) trains until the reserve with a cosine learning rate over wall-clock
    time (training/schedules.DeadlineCosine), so it decays to zero exactly when its time is up
    whatever the machine's speed, keeping an average of its weights (EMA) that validation then
    weighs against the last weights. A user hypermodel's refit (numpy arrays) trains the whole
    epochs its measured epoch time fits. Returns (the model to export, or None to keep the best
    trial's, and the phase record).
    """
    import keras

    from automl_app.models.cost import forward_macs
    from automl_app.tuning.budget import deadline_callback

    t0 = time.time()
    hypermodel = tuner.hypermodel
    hp = best_trial.hyperparameters.copy()
    n_train = schedule.n_train
    phase: dict[str, Any] = {"phase": "final", "trials": 1, "data": "train", "seconds": 0.0}
    model = start.model if start is not None else hypermodel.build(hp)
    done_steps = start.steps if start is not None else 0
    phase["start"] = f"continued from {start.source}" if start is not None else "from scratch"
    macs = forward_macs(model)
    val_s = cost.val_seconds(macs, n_val(fit_args))
    phase["reserve_s"] = kept = round(finish_reserve(schedule, cost, macs, n_val(fit_args)), 1)
    stop = Deadline(at=schedule.deadline.at - kept, seconds=schedule.deadline.seconds)
    left = stop.remaining() - cost.startup() - val_s
    key = str(best_trial.trial_id)
    steps, per_epoch_steps, per_epoch = _plan_steps(cost, model, hp, key, n_train, left)
    arrays = "y_train" in fit_args  # a user hypermodel's numpy arrays: whole epochs only
    if arrays:
        steps = (steps // per_epoch_steps) * per_epoch_steps
    epochs = -(-steps // per_epoch_steps) if steps else 0
    planned = round(steps / per_epoch_steps, 2)
    trained = int(best_trial.best_step or 0) + 1
    batch = int(hp.values.get("batch_size") or 32)
    phase["fidelity"] = {"train_examples": n_train, "epochs": planned}
    if start is None and (steps < 1 or steps * batch < trained * trial_examples):
        why = (
            f"{max(left, 0):.0f}s left, one epoch on all {n_train:,} examples takes about "
            f"{per_epoch:.0f}s"
            if per_epoch
            else "no epoch of the search was measured to predict one"
        )
        say(f"final: skipped ({why}); the best trial's own model is exported")
        return None, {**phase, "trials": 0, "skipped": why, "seconds": round(time.time() - t0, 2)}
    timed = (
        None if arrays else timed_schedule(model, stop, val_s, per_epoch, planned, per_epoch_steps)
    )
    schedule_name = "cosine over time" if timed else hp.values.get("lr_schedule", "constant")
    capped = planned >= MAX_REFIT_EPOCHS
    say(
        f"final: trial {best_trial.trial_id}'s configuration on all {n_train:,} training examples "
        + (
            "(going on from its "
            + ("promoted weights) " if start.source == "promote" else "trial's weights) ")
            if start is not None
            else ""
        )
        + (
            f"until {timed.end_at - time.time():.0f}s from now (about {planned:g} epochs, at most "
            f"{MAX_REFIT_EPOCHS}; a cosine learning rate over that time, reaching 0 at its end; "
            f"weights averaged; {kept:.0f}s kept for evaluation and export, from the measured "
            "validation passes and a margin for stalls)"
            if timed
            else f"for {planned:g} epochs ({schedule_name} learning rate over them), about "
            f"{planned * per_epoch:.0f}s of the {stop.remaining():.0f}s left"
        )
        + (
            f"; capped at {MAX_REFIT_EPOCHS} epochs: {n_train:,} examples converge in fewer, "
            f"so about {max(left - planned * per_epoch, 0):.0f}s are left unused"
            if capped
            else ""
        )
    )
    guard, hypermodel.trial_guard = getattr(hypermodel, "trial_guard", None), None
    args = (fit_args["train"], fit_args["y_train"]) if arrays else (fit_args["train"],)
    kwargs: dict[str, Any] = {"epochs": epochs, "verbose": 0}
    callbacks = [keras.callbacks.TerminateOnNaN(), deadline_callback(stop)]
    if timed:
        # whole epochs of repeated data, as many as the cap: the time schedule ends the fit
        kwargs.update(epochs=MAX_REFIT_EPOCHS + 1, steps_per_epoch=per_epoch_steps)
        callbacks += [timed, last_weights_class()()]
    elif not arrays:
        kwargs["steps_per_epoch"] = -(-steps // epochs)
    t_fit = time.time()
    try:
        history = hypermodel.fit(hp, model, *args, callbacks=callbacks, **kwargs)
    finally:
        hypermodel.trial_guard = guard
    phase["fit_seconds"] = round(time.time() - t_fit, 2)
    ran = len((getattr(history, "history", None) or {}).get("loss", []))
    t_val = time.time()
    objective = tuner.oracle.objective
    metrics = val_metrics(hypermodel, model, fit_args)
    if timed:
        metrics, phase["weights"] = average_or_last(
            hypermodel, model, fit_args, metrics, callbacks[-1].weights, objective
        )
    phase["val_seconds"] = round(time.time() - t_val, 2)
    worse = _clearly_worse(metrics, best_trial.score, objective, n_val(fit_args))
    ran_steps = timed.steps if timed else ran * kwargs.get("steps_per_epoch", per_epoch_steps)
    ran_epochs = round(ran_steps / per_epoch_steps, 2)
    phase.update(
        {
            "fidelity": {
                "train_examples": n_train,
                "epochs": ran_epochs,  # this phase's, after the promoted steps when it went on
                "planned_epochs": planned,
            },
            "promoted_steps": done_steps,
            "lr_schedule": schedule_name,
            "trial_id": best_trial.trial_id,
            **{k: round(v, 6) for k, v in metrics.items()},
            "kept": not worse,
            "seconds": round(time.time() - t0, 2),
        }
    )
    name = objective.name
    summary = f"{name}={metrics[name]:.4f}" if name in metrics else ""
    if worse:
        say(
            f"final: {summary} after {ran_epochs:g} epochs is worse than trial "
            f"{best_trial.trial_id}'s {best_trial.score:.4f}; its own model is exported"
        )
        return None, phase
    weights = f", {phase['weights']} weights" if timed else ""
    say(
        f"final: {summary} after {ran_epochs:g} epochs in {phase['seconds']:.0f}s "
        f"(the exported model{weights})"
    )
    clean = hypermodel.build(hp)  # the weights without the optimizer's state and schedule
    clean.set_weights(model.get_weights())
    return clean, phase


EMA_MOMENTUM = 0.99  # averages about the last 100 steps; a refit runs thousands


def enable_weight_average(model: Any) -> bool:
    """Turn on the compiled optimizer's weight average (EMA), before its first step creates the
    average's variables; fit() swaps the average in once, at its end. False (nothing changed)
    where the optimizer's learning rate is not a plain variable (a user's schedule): the refit
    then keeps the user's recipe."""
    optimizer = getattr(model, "optimizer", None)
    # Keras has no public way to tell a float rate (a variable) from a schedule object.
    rate = getattr(optimizer, "_learning_rate", None)
    if optimizer is None or not hasattr(rate, "assign"):
        return False
    optimizer.use_ema, optimizer.ema_momentum = True, EMA_MOMENTUM
    optimizer.ema_overwrite_frequency = None
    return True


def timed_schedule(
    model: Any,
    stop: Any,
    val_s: float,
    per_epoch: float | None,
    planned: float,
    per_epoch_steps: int,
):
    """The refit's DeadlineCosine ending at the reserve (less the validation passes), or when
    MAX_REFIT_EPOCHS are done (predicted, or counted: whichever comes first); it also turns on
    the optimizer's weight average (EMA). None where the optimizer's learning rate is not a plain
    variable (a user's schedule)."""
    from automl_app.training.schedules import DeadlineCosine

    if not enable_weight_average(model):
        return None
    end_at = stop.at - 2 * val_s  # two validation passes: the average and the last weights
    if per_epoch and planned >= MAX_REFIT_EPOCHS:
        end_at = min(end_at, time.time() + MAX_REFIT_EPOCHS * per_epoch)
    return DeadlineCosine(end_at, max_steps=MAX_REFIT_EPOCHS * per_epoch_steps)


def last_weights_class() -> type:
    import keras

    class LastWeights(keras.callbacks.Callback):
        """Keeps the model's weights at each epoch's end: fit() replaces them with the EMA after
        its last epoch, and the refit compares both on validation."""

        def __init__(self) -> None:
            super().__init__()
            self.weights: list | None = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.weights = self.model.get_weights()

    return LastWeights


def average_or_last(
    hypermodel: Any,
    model: Any,
    fit_args: dict[str, Any],
    averaged: dict[str, float],
    last: list | None,
    objective: Any,
) -> tuple[dict[str, float], str]:
    """Keep the weight average or the last weights, whichever validates better (the model is
    left holding the kept ones). Batch-norm statistics are the last ones in both."""
    if not last or not n_val(fit_args):
        return averaged, "averaged"
    average = model.get_weights()
    model.set_weights(last)
    plain = val_metrics(hypermodel, model, fit_args)
    name = objective.name
    if name not in averaged or name not in plain:
        model.set_weights(average)
        return averaged, "averaged"
    if objective.better_than(plain[name], averaged[name]):
        return plain, "last"
    model.set_weights(average)
    return averaged, "averaged"


def n_val(fit_args: dict[str, Any]) -> int:
    val = fit_args.get("val")
    if val is None:
        return 0
    return len(val) if "y_val" in fit_args else int(val.cardinality())
