"""`--tuner tpe`: a KerasTuner Oracle whose proposals come from Optuna's TPESampler.

KerasTuner has no TPE and Optuna has no Keras hypermodels, so the Oracle below asks an Optuna study
for each new trial's values (ask/tell, define-by-run, so conditional hyperparameters are asked only
when their parent values make them active) and leaves everything else — trial files, retries,
`max_trials`, failures, the gRPC chief in distributed mode — to KerasTuner.

The study is never saved: it is rebuilt from `self.trials` (KerasTuner's own `trial.json` files)
before every proposal, so a reloaded or resumed search has no second source of truth, and proposal
number *i* depends only on (seed, i, the trials so far): a resumed run proposes what an
uninterrupted run would have.

Imports Keras, KerasTuner and Optuna at module level: import this module lazily (inside the search
workflow), never from the CLI's parsing path.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from automl_app.tf_env import tf as _tf

_tf()  # TensorFlow first, quietly, before KerasTuner imports it loudly.

import keras_tuner  # noqa: E402
import optuna  # noqa: E402
from keras_tuner.engine import hyperparameters as hp_module  # noqa: E402
from keras_tuner.engine.trial import TrialStatus  # noqa: E402
from optuna.distributions import (  # noqa: E402
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState  # noqa: E402

from automl_app.tuning.pruning import objective_curve, pruned_epoch  # noqa: E402

__all__ = ["TPEOracle", "optuna_distribution", "optuna_param_names", "build_study"]


def optuna_distribution(hp: hp_module.HyperParameter) -> BaseDistribution | None:
    """The Optuna distribution that samples the same values as a KerasTuner hyperparameter.

    `Fixed` has none (its value is used as is). Ranges whose `step` is a multiplier (log or
    reverse_log sampling with a step) become categorical over KerasTuner's own value list;
    `reverse_log` without a step has no Optuna counterpart and is sampled linearly.
    """
    if isinstance(hp, hp_module.Fixed):
        return None
    if isinstance(hp, hp_module.Boolean):
        return CategoricalDistribution([False, True])
    if isinstance(hp, hp_module.Choice):
        return CategoricalDistribution(list(hp.values))
    if isinstance(hp, hp_module.Int):
        if hp.sampling != "linear" and hp.step is not None:
            return CategoricalDistribution(sorted({int(v) for v in hp.values}))
        if hp.sampling == "log":
            return IntDistribution(hp.min_value, hp.max_value, log=True)
        step = hp.step or 1
        high = hp.min_value + ((hp.max_value - hp.min_value) // step) * step
        return IntDistribution(hp.min_value, high, step=step)
    if isinstance(hp, hp_module.Float):
        if hp.sampling != "linear" and hp.step is not None:
            return CategoricalDistribution(sorted({float(v) for v in hp.values}))
        if hp.sampling == "log":
            return FloatDistribution(hp.min_value, hp.max_value, log=True)
        if hp.step is None:
            return FloatDistribution(hp.min_value, hp.max_value)
        n_steps = int((hp.max_value - hp.min_value) // hp.step + 1e-9)
        high = hp.min_value + n_steps * hp.step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return FloatDistribution(hp.min_value, high, step=hp.step)
    raise keras_tuner.errors.FatalTypeError(
        "`--tuner tpe` supports Choice, Int, Float, Boolean and Fixed hyperparameters. "
        f"Received: {hp!r}"
    )


def optuna_param_names(space: list[hp_module.HyperParameter]) -> list[str]:
    """One Optuna parameter name per entry of a KerasTuner space.

    KerasTuner allows one name under several conditions (e.g. `units` for two model types); Optuna
    needs one distribution per name, so later entries get `name#2`, `name#3`, ….
    """
    seen: dict[str, int] = {}
    names = []
    for hp in space:
        seen[hp.name] = seen.get(hp.name, 0) + 1
        names.append(hp.name if seen[hp.name] == 1 else f"{hp.name}#{seen[hp.name]}")
    return names


def _suggest(trial: optuna.trial.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _to_params(
    hps: hp_module.HyperParameters, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """A KerasTuner trial's active values as Optuna params (values outside the space dropped)."""
    probe = hps.copy()
    probe.values = dict(values)
    names = optuna_param_names(probe.space)
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    used: set[str] = set()
    for hp, pname in zip(probe.space, names, strict=True):
        if hp.name in used or hp.name not in values or not probe.is_active(hp):
            continue
        used.add(hp.name)
        dist = optuna_distribution(hp)
        if dist is None:
            continue
        value = values[hp.name]
        try:
            contained = dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            contained = False
        if contained:
            params[pname] = value
            dists[pname] = dist
    return params, dists


def _frozen_trial(
    trial: keras_tuner.engine.trial.Trial,
    hps: hp_module.HyperParameters,
    objective_name: str,
) -> optuna.trial.FrozenTrial:
    """KerasTuner trial → Optuna FrozenTrial (COMPLETE, PRUNED, FAIL or RUNNING)."""
    params, dists = _to_params(hps, trial.hyperparameters.values)
    curve = objective_curve(trial, objective_name)
    state, value = TrialState.RUNNING, None
    if trial.status == TrialStatus.COMPLETED:
        score = trial.score
        if pruned_epoch(trial) is not None:
            state = TrialState.PRUNED
            if not curve and score is not None and not math.isnan(score):
                curve = {int(trial.best_step or 0) + 1: float(score)}
        elif score is None or math.isnan(float(score)):
            state = TrialState.FAIL
        else:
            state, value = TrialState.COMPLETE, float(score)
    elif trial.status == TrialStatus.FAILED:
        state = TrialState.FAIL
    curve = {k: v for k, v in curve.items() if not math.isnan(v)}
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions=dists,
        intermediate_values=curve,
        user_attrs={"keras_tuner_trial_id": trial.trial_id},
    )


def build_study(
    oracle: keras_tuner.Oracle, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    """An in-memory Optuna study holding one trial per KerasTuner trial, in start order."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if oracle.objective.direction == "max" else "minimize"
    study = optuna.create_study(
        direction=direction, sampler=sampler, pruner=optuna.pruners.NopPruner()
    )
    order = [tid for tid in oracle.start_order if tid in oracle.trials]
    order += sorted(set(oracle.trials) - set(order))
    hps = oracle.get_space()
    for tid in order:
        study.add_trial(_frozen_trial(oracle.trials[tid], hps, oracle.objective.name))
    return study


class TPEOracle(keras_tuner.Oracle):
    """Tree-structured Parzen Estimator proposals (Optuna) inside KerasTuner's trial machinery.

    Args:
        objective, max_trials, seed, hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as for `keras_tuner.Oracle`.
        n_startup_trials: random proposals before TPE takes over (Optuna's default is 10).
        sampler_kwargs: extra `optuna.samplers.TPESampler` arguments, e.g.
            `{"multivariate": True, "group": True}` or `{"constant_liar": True}` for parallel
            workers (running trials then count as pessimistic results).
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int | None = 10,
        seed: int | None = None,
        hyperparameters: hp_module.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        n_startup_trials: int = 10,
        sampler_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if int(n_startup_trials) < 0:
            raise ValueError(
                f"`n_startup_trials` must be an integer >= 0. Received: {n_startup_trials!r}"
            )
        self.n_startup_trials = int(n_startup_trials)
        self.sampler_kwargs = dict(sampler_kwargs or {})

    def _sampler(self, position: int, attempt: int) -> optuna.samplers.TPESampler:
        """A fresh sampler per proposal, seeded by (seed, position, attempt): resumable RNG."""
        seed = (int(self.seed) * 1_000_003 + position * 7_919 + attempt) % (2**31 - 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self.n_startup_trials, **self.sampler_kwargs
            )

    def _ask_values(self, study: optuna.Study) -> dict[str, Any]:
        """Define-by-run: walk the space in order, asking only for active hyperparameters."""
        hps = self.get_space()
        hps.values = {}
        names = optuna_param_names(hps.space)
        ask = study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for hp, pname in zip(hps.space, names, strict=True):
                if hp.name in hps.values or not hps.is_active(hp):
                    continue
                dist = optuna_distribution(hp)
                hps.values[hp.name] = hp.value if dist is None else _suggest(ask, pname, dist)
        return hps.values  # the asked trial is discarded with this throw-away study

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """Ask TPE for active values; retry on duplicates, then fall back to random, then stop."""
        position = len(self.trials)
        for attempt in range(self._max_collisions + 1):
            study = build_study(self, sampler=self._sampler(position, attempt))
            values = self._ask_values(study)
            if not self._duplicate(values):
                return {"status": TrialStatus.RUNNING, "values": values}
        values = self._random_values()
        if values is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        return {"status": TrialStatus.RUNNING, "values": values}

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["tpe"] = {
            "n_startup_trials": self.n_startup_trials,
            "sampler_kwargs": self.sampler_kwargs,
        }
        return state
