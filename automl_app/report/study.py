"""The trial table replayed into an in-memory Optuna study, and Optuna's parameter importances.

Optuna then draws the history, parallel-coordinate, intermediate-value and slice figures and
computes fANOVA importances: nothing here is hand-written statistics. Importances are only
computed from enough completed trials (MIN_COMPLETED_FOR_IMPORTANCE); with three trials fANOVA
spreads 1.0 evenly over the hyperparameters and the numbers look like a result when they are not.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from automl_app.report.base import Skip
from automl_app.report.trials import (
    columns,
    is_pruned,
    kerastuner_trials,
    load_trials,
    objective,
    trial_curves,
)

MIN_COMPLETED_FOR_IMPORTANCE = 10
MIN_VARIED_FOR_IMPORTANCE = 2


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
    # trials.csv's "00" reads back as 0: match KerasTuner's ids whatever their padding
    states = {_norm_id(k): v for k, v in states.items()}
    curves = {_norm_id(k): v for k, v in trial_curves(run_dir, name).items()}
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    for row in sorted(rows, key=lambda r: _id_key(r.get("trial_id"))):
        tid = _norm_id(row.get("trial_id"))
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


def _norm_id(tid: Any) -> str:
    s = str(tid)
    return str(int(s)) if s.isdigit() else s


def _id_key(tid: Any) -> tuple:
    s = str(tid)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


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
