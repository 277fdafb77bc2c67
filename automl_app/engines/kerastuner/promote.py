"""`--time-budget`'s middle phase: judge the best few trials at the refit's number of epochs.

The explore phase ranks configurations after one to three epochs on a quarter of the training
split, where augmentation, dropout and smoothing only cost: its order among the leaders is mostly
noise, and it cannot see overfitting, which is what decides a refit of 20 to 50 epochs. Measured
on Fashion-MNIST (seed 1): two leaders within 0.002 after the explore phase ended 0.9249 and
0.9354 after 20 epochs; trained 55 s each on all 54,000 examples at their rate they still ranked
the wrong way (0.920 vs 0.914), trained 12 epochs on the 13,500-example subset with the rate
decaying to zero they ranked the right way (0.908 vs 0.913: the first overfit, 0.948 train
accuracy). Overfitting follows the passes over the data, not the examples seen.

So the better half of the distinct configurations explored (2 to PROMOTE_K of them) are each
trained again on the explore phase's subset for as many epochs as the refit will give them (as
many as fit a PROMOTE_K-th of PROMOTE_SHARE of the budget), the learning rate decaying to zero
over that share, with the refit's weight average (EMA); validation decides. This is successive
halving's last rung, run at the fidelity (epochs) the refit will have rather than at more
examples.

The winner is not started again: its model goes on into the final refit on all training examples,
at its tuned rate again under a fresh cosine (a warm restart), so the time it spent here is part
of its training. The losers' time is what judging costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from automl_app.engines.kerastuner.schedule import (
    BudgetSchedule,
    Say,
    enable_weight_average,
    n_val,
    val_metrics,
)
from automl_app.tuning.guard import CostModel

PROMOTE_K = 3  # candidates judged again at the refit's epochs
MIN_EPOCHS = 2.0  # a candidate whose share fits fewer epochs on the subset is not judged
# Validation through the views (`--tta auto`: the plain pass, the mirror's 2, the shifts' 5)
# is part of a candidate's share, with this safety: at 10 minutes it took 4.5-10.7 s a
# candidate, and training was allowed 1.25x its share besides, so the phase ran 171 s of its
# 137 s (seed 3 at 99b21ef): two epochs of the final refit.
VAL_SAFETY = 1.5
SLACK = 1.25  # a busy machine runs slower than measured: MIN_EPOCHS get this much time at least


@dataclass
class Promoted:
    """The promote phase's winner, carried into the final refit."""

    trial: Any
    model: Any
    steps: int  # batches trained in the promote phase
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = "promote"  # what trained it: the promote phase, or the trial itself


def continue_trial(
    tuner: Any, trial: Any, subset_args: dict[str, Any], say: Say
) -> Promoted | None:
    """The trial's own model (its best epoch's checkpoint) to go on training in the refit, when
    it is the explore phase's only finished trial (too few fit, or the phase ran out: there is
    nothing to promote): its epochs on the subset are part of the refit's training, not thrown
    away. None when its weights cannot be loaded (the refit then starts from scratch)."""
    try:
        model = tuner.load_model(trial)
    except Exception as exc:  # weights not kept or unreadable: a fresh start still works
        say(f"final: trial {trial.trial_id}'s weights could not be loaded ({exc}); from scratch")
        return None
    batch = int(trial.hyperparameters.values.get("batch_size") or 32)
    n_subset = int(subset_args["train"].cardinality())
    steps = (int(trial.best_step or 0) + 1) * max(1, -(-n_subset // batch))
    return Promoted(trial=trial, model=model, steps=steps, source="its trial")


def candidates(tuner: Any, k: int = PROMOTE_K, say: Say | None = None) -> tuple[list[Any], int]:
    """The best 4k distinct configurations explored, best first, and how many of them promote
    judges (`promote_count`: the first that fit the phase's time)."""
    scored = tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
    ranked = distinct(scored, len(scored))
    count = promote_count(len(ranked), k)
    distinct(scored, count, say)  # names the near twins passed over on the way to the first few
    return ranked[: 4 * k], count


def promote_count(explored: int, k: int = PROMOTE_K) -> int:
    """How many of `explored` distinct configurations are judged again: successive halving's
    rate (the better half), at least the 2 a choice needs, at most `k`. With 3 of 4 promoted,
    the third never won in the 10-minute Fashion-MNIST benches (explore 2.6-2.9 points behind
    the leader, promote 4-9 behind), and judging it cost about 35 s: 1.6 epochs of the final."""
    return max(2, min(k, explored // 2))


def distinct(trials: list[Any], k: int, say: Say | None = None) -> list[Any]:
    """The first `k` scored `trials` of which no two are one configuration: the same values, or
    the same but for continuous ones within NEAR of their range (a random draw at rate 0.0028
    beside the portfolio's 0.003 took one of three promote slots in the Fashion-MNIST bench and
    judged nothing new). A near twin is named in one line and the next trial takes its slot."""
    out: list[Any] = []
    for trial in trials:
        if trial.score is None:
            continue
        twin = next((t for t in out if _near(trial.hyperparameters, t.hyperparameters)), None)
        if twin is not None:
            if say is not None and twin.hyperparameters.values != trial.hyperparameters.values:
                say(
                    f"promote: trial {trial.trial_id} is trial {twin.trial_id} but for "
                    f"{_differences(trial.hyperparameters, twin.hyperparameters)}: judged once"
                )
            continue
        out.append(trial)
        if len(out) == k:
            break
    return out


NEAR = 0.1  # of a continuous hyperparameter's range (in log space where it is log-sampled)


def _near(a: Any, b: Any) -> bool:
    """Whether two configurations (KerasTuner HyperParameters) differ at most in continuous
    values closer than NEAR of their range."""
    va, vb = a.values, b.values
    if va.keys() != vb.keys():
        return False
    return all(va[n] == vb[n] or _position_gap(a, n, va[n], vb[n]) < NEAR for n in va)


def _position_gap(hps: Any, name: str, x: Any, y: Any) -> float:
    """|x − y| as a share of `name`'s range (1.0 when it is not a continuous Float range)."""
    import math

    from keras_tuner.engine.hyperparameters import Float

    hp = next((h for h in hps.space if h.name == name), None)
    if not isinstance(hp, Float):
        return 1.0
    lo, hi = float(hp.min_value), float(hp.max_value)
    try:
        if hp.sampling in ("log", "reverse_log") and lo > 0:
            return abs(math.log(float(x) / float(y))) / math.log(hi / lo)
        return abs(float(x) - float(y)) / (hi - lo)
    except (TypeError, ValueError, ZeroDivisionError):
        return 1.0


def _differences(a: Any, b: Any) -> str:
    """`name x vs y` for each value that differs."""
    return ", ".join(
        f"{n} {a.values[n]:.3g} vs {b.values[n]:.3g}"
        if isinstance(a.values[n], float)
        else f"{n} {a.values[n]} vs {b.values[n]}"
        for n in a.values
        if a.values[n] != b.values[n]
    )


def promote(
    tuner: Any,
    fit_args: dict[str, Any],
    subset_args: dict[str, Any],
    schedule: BudgetSchedule,
    cost: CostModel,
    say: Say,
    tta: str = "none",
) -> tuple[Promoted | None, dict[str, Any] | None]:
    """Train the leaders on the explore subset (`subset_args`) for the refit's epochs, equal
    time each; return the winner and the phase record, or (None, None) when there is nothing to
    choose between or no time to judge (a user hypermodel's arrays, one finished trial, or a
    share shorter than two epochs on the subset). With `tta` auto (or flip, shift) each candidate
    is judged as it would be exported: by the best of its plain and view-averaged validation (or
    the forced view's), so a configuration trained with flips or shifts is not judged without the
    test-time views it would get."""
    if "y_train" in fit_args or not n_val(fit_args) or schedule.promote_s <= 0:
        return None, None
    hypermodel = tuner.hypermodel
    n_subset = int(subset_args["train"].cardinality())
    leaders, count = candidates(tuner, say=say)
    # Each candidate's share is a PROMOTE_K-th of the phase, so where fewer are judged the
    # final refit gets the rest; where that share fits MIN_EPOCHS for fewer than 2 of the
    # leaders (a short budget: a 5-minute folder search), the phase is split among `count`.
    for share in sorted({schedule.promote_s / PROMOTE_K, schedule.promote_s / count}):
        fit = _fitting(hypermodel, leaders, count, share, schedule, cost, fit_args, n_subset, tta)
        if len(fit) >= 2:
            break
    if len(fit) < 2:
        if len(leaders) >= 2:
            say(
                f"promote: skipped ({len(fit)} of the best {len(leaders)} configurations fit "
                f"{MIN_EPOCHS:g} epochs on {n_subset:,} examples in {share:.0f}s); the best "
                "trial is refit"
            )
        return None, None
    planned_s = share * len(fit)
    t0 = time.time()
    objective = tuner.oracle.objective
    say(
        f"promote: the best {len(fit)} configurations again on the {n_subset:,} exploring "
        f"examples, each for the epochs its refit will have (as many as fit {share:.0f}s with "
        "its validation), the learning rate decaying to 0; validation picks the one the final "
        "refit goes on with"
    )
    best: Promoted | None = None
    rows = []
    ends = t0 + planned_s  # the phase's time, validation included
    for i, (trial, model, batch, planned, judging, least) in enumerate(fit):
        # an equal part of what is left: a candidate that ended early leaves its time to the
        # next; its validation through the views comes out of its part, and it gets at least
        # the time MIN_EPOCHS take on a slow machine (judged at fewer, it would not be judged
        # at the refit's fidelity)
        allowed = max((ends - time.time()) / (len(fit) - i) - judging, least)
        args = (hypermodel, trial, model, subset_args, n_subset, batch, planned, allowed)
        steps, seconds = _train(*args)
        t_val = time.time()
        metrics = val_metrics(hypermodel, model, fit_args)
        views = _view_metrics(tta, hypermodel, model, fit_args)
        val_s = time.time() - t_val
        epochs = round(steps / max(1, -(-n_subset // batch)), 2)
        value = _judged(tta, objective, metrics, views)
        rows.append(
            {
                "trial_id": trial.trial_id,
                "explore_score": trial.score,
                "epochs": epochs,
                "planned_epochs": round(planned, 2),
                "seconds": round(seconds, 2),
                "allowed_seconds": round(allowed, 2),  # its part of the phase's time left
                "val_seconds": round(val_s, 2),  # judging it (through its views where asked)
                **{k: round(v, 6) for k, v in metrics.items()},
                **{
                    f"{objective.name}_{kind}": round(m[objective.name], 6)
                    for kind, m in views.items()
                    if objective.name in m
                },
            }
        )
        say(
            f"promote: trial {trial.trial_id} (explore {trial.score:.4f}): {epochs:g} epochs in "
            f"{seconds:.0f}s, {objective.name}={value:.4f}"
            if value is not None
            else f"promote: trial {trial.trial_id}: no {objective.name}"
        )
        if value is not None and (
            best is None or objective.better_than(value, best.metrics[objective.name])
        ):
            best = Promoted(
                trial=trial, model=model, steps=steps, metrics={**metrics, objective.name: value}
            )
    if best is None:
        return None, None
    changed = best.trial.trial_id != fit[0][0].trial_id
    say(
        f"promote: trial {best.trial.trial_id} goes on to the final refit"
        + (f" (the explore phase ranked trial {fit[0][0].trial_id} first)" if changed else "")
    )
    phase = {
        "phase": "promote",
        "trials": len(fit),
        "data": "explore subset",
        "fidelity": {"train_examples": n_subset, "seconds_each": round(share, 2)},
        "planned_seconds": round(planned_s, 2),  # validation included
        "candidates": rows,
        "winner": best.trial.trial_id,
        "explore_winner": fit[0][0].trial_id,
        "seconds": round(time.time() - t0, 2),
    }
    return best, phase


def _fitting(hypermodel, leaders, count: int, share: float, schedule: BudgetSchedule,
             cost: CostModel, fit_args, n_subset: int, tta: str) -> list[tuple]:  # fmt: skip
    """The first `count` leaders that fit MIN_EPOCHS on the subset in `share` seconds beside
    their validation (a dearer one is passed over, as it could not be judged at the refit's
    fidelity), each as (trial, model, batch, planned epochs, judging seconds, least seconds)."""
    from automl_app.models.cost import forward_macs

    n_train = schedule.n_train
    refit_s = max(schedule.refit_deadline().remaining() - share * count, 0.0)
    fit: list[tuple] = []
    for trial in leaders:
        if len(fit) == count:
            break
        batch = int(trial.hyperparameters.values.get("batch_size") or 32)
        model = hypermodel.build(trial.hyperparameters.copy())
        macs = forward_macs(model)
        full = cost.epoch_seconds(macs, batch, n_train, 0, key=str(trial.trial_id))
        if not full:
            continue
        judging = VAL_SAFETY * _passes(tta, model) * cost.val_seconds(macs, n_val(fit_args))
        # the refit's epochs for this configuration, as many as fit the share on the subset
        # beside its validation
        subset_epoch = full * n_subset / n_train
        epochs = min(refit_s / full, (share - judging) / subset_epoch)
        if epochs >= MIN_EPOCHS:
            fit.append((trial, model, batch, epochs, judging, SLACK * MIN_EPOCHS * subset_epoch))
    return fit


def _view_metrics(tta: str, hypermodel, model, fit_args) -> dict[str, dict[str, float]]:
    """The candidate's validation metrics through each test-time view `tta` may export (auto:
    all of them; flip or shift: that one); empty when not asked or the model takes no images."""
    from automl_app.models.tta import with_tta

    kinds = _view_kinds(tta, model)
    return {k: val_metrics(hypermodel, with_tta(model, k), fit_args) for k in kinds}


def _judged(tta: str, objective, plain: dict[str, float], views: dict[str, dict[str, float]]):
    """The objective value the candidate would be exported with (tta: auto, flip, shift or
    none): the forced view's, or auto's best of the plain model and each view."""
    name = objective.name
    if tta in views:
        return views[tta].get(name)
    value = plain.get(name)
    for metrics in views.values():
        seen = metrics.get(name)
        if seen is not None and (value is None or objective.better_than(seen, value)):
            value = seen
    return value


def _view_kinds(tta: str, model: Any) -> tuple[str, ...]:
    """The test-time views a candidate is judged through (auto: all; flip, shift: that one;
    none, or a model that takes no images: none)."""
    from automl_app.engines.kerastuner.tta import VIEWS
    from automl_app.models.tta import can_augment

    if tta == "none" or not can_augment(model):
        return ()
    return tuple(VIEWS) if tta == "auto" else (tta,)


def _passes(tta: str, model: Any) -> int:
    """Validation passes judging a candidate takes: the plain one and each view's."""
    from automl_app.models.tta import PASSES

    return 1 + sum(PASSES[k] for k in _view_kinds(tta, model))


def _train(hypermodel, trial, model, args, n: int, batch: int, epochs: float, seconds: float):
    """Fit `model` on `args` for `epochs` or `seconds`, whichever ends first (the epochs were
    planned from measured epoch times to fit its share; a busy machine runs slower), the rate
    decaying to 0 over them, with the weight average: (steps, seconds). The optimizer's rate is
    set back to its tuned value after, for the refit's warm restart."""
    import keras

    from automl_app.engines.kerastuner.schedule import MAX_REFIT_EPOCHS
    from automl_app.training.schedules import DeadlineCosine

    enable_weight_average(model)
    per_epoch = max(1, -(-n // batch))
    cosine = DeadlineCosine(
        time.time() + max(seconds, 1.0), max_steps=max(int(epochs * per_epoch), 1)
    )
    guard, hypermodel.trial_guard = getattr(hypermodel, "trial_guard", None), None
    t0 = time.time()
    try:
        hypermodel.fit(
            trial.hyperparameters.copy(),
            model,
            args["train"],
            epochs=MAX_REFIT_EPOCHS + 1,
            steps_per_epoch=per_epoch,
            verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN(), cosine],
        )
    finally:
        hypermodel.trial_guard = guard
    model.optimizer.learning_rate = cosine.base
    return cosine.steps, time.time() - t0
