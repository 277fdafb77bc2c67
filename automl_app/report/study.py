"""The trial table replayed into an in-memory Optuna study, and Optuna's parameter importances.

Optuna then draws the history, parallel-coordinate, intermediate-value and slice figures and
computes fANOVA importances: nothing here is hand-written statistics. Importances are only
computed from enough completed trials (MIN_COMPLETED_FOR_IMPORTANCE); with three trials fANOVA
spreads 1.0 evenly over the hyperparameters and the numbers look like a result when they are not.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from automl_app.report.base import Skip
from automl_app.report.trials import kerastuner_trials, load_trials, objective, trial_curves
from automl_app.runs.journal import frozen_trial, id_key, infer_distributions, norm_id

MIN_COMPLETED_FOR_IMPORTANCE = 10
MIN_VARIED_FOR_IMPORTANCE = 2


def build_study(run_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]] | None = None):
    """An in-memory Optuna study replaying the run's trial table (params, value, curves, state).

    Completed trials are COMPLETE, pruned ones PRUNED (with their curve), failed ones FAIL;
    `user_attrs['trial_id']` keeps KerasTuner's id.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = load_trials(run_dir) if rows is None else rows
    name, direction = objective(run_dir)
    states = kerastuner_trials(run_dir)
    dists = infer_distributions(rows, states)
    # trials.csv's "00" reads back as 0: match KerasTuner's ids whatever their padding
    states = {norm_id(k): v for k, v in states.items()}
    curves = {norm_id(k): v for k, v in trial_curves(run_dir, name).items()}
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    for row in sorted(rows, key=lambda r: id_key(r.get("trial_id"))):
        tid = norm_id(row.get("trial_id"))
        trial = frozen_trial(row, dists, states.get(tid), curves.get(tid, []))
        if trial is not None:
            study.add_trial(trial)
    return study


def completed(study) -> list:
    """The study's COMPLETE trials (the ones with an objective value)."""
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def varied_params(study) -> list[str]:
    """Hyperparameters that took more than one value among the completed trials, by name."""
    done = completed(study)
    names = {p for t in done for p in t.params}
    return sorted(k for k in names if len({repr(t.params.get(k)) for t in done}) > 1)


def importance_gate(study, min_completed: int = MIN_COMPLETED_FOR_IMPORTANCE) -> str | None:
    """None when importances mean something; otherwise the one sentence that says what is missing."""
    n = len(completed(study))
    if n < min_completed:
        more = min_completed - n
        return (
            f"Importance needs at least {min_completed} completed trials: {more} more "
            f"completed trial{'s' if more != 1 else ''} to go (this run has {n})."
        )
    varied = varied_params(study)
    if len(varied) < MIN_VARIED_FOR_IMPORTANCE:
        return (
            f"Importance needs at least {MIN_VARIED_FOR_IMPORTANCE} hyperparameters that took "
            f"more than one value (this run varied {len(varied)})."
        )
    return None


def importances(study, min_completed: int = MIN_COMPLETED_FOR_IMPORTANCE) -> dict[str, float]:
    """Parameter importances by Optuna's fANOVA evaluator (a random forest on the trials).

    Raises Skip (one sentence) below `min_completed` completed trials or two varying parameters.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    reason = importance_gate(study, min_completed)
    if reason:
        raise Skip(reason)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dict(
                optuna.importance.get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(seed=0), params=varied_params(study)
                )
            )
        except (ValueError, RuntimeError) as exc:
            raise Skip(f"Optuna could not compute importances: {exc}") from None


def top_params(study, imp: Mapping[str, float] | None, limit: int) -> tuple[list[str], list[str]]:
    """(shown, left out): the varied hyperparameters, most important first, at most `limit`.

    Without importances (too few trials) the order is by name; the caller says what was left out.
    """
    varied = varied_params(study)
    ranked = [p for p in (imp or {}) if p in varied] + [p for p in varied if p not in (imp or {})]
    return ranked[:limit], ranked[limit:]
