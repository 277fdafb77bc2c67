"""TPEOracle: valid (conditional) proposals, seeded determinism, resume rebuilt from trial files."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("optuna")

from automl_app.tuning.tpe import (  # noqa: E402
    TPEOracle,
    build_study,
    optuna_distribution,
    optuna_param_names,
)

kt = pytest.importorskip("keras_tuner")
optuna = pytest.importorskip("optuna")


def _declare(hp):
    """A space with every hyperparameter type and a conditional branch."""
    hp.Choice("optimizer", ["sgd", "adam"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("momentum", 0.0, 0.9, step=0.1)
        hp.Boolean("nesterov")
    hp.Float("lr", 1e-4, 1.0, sampling="log")
    hp.Int("units", 8, 64, step=8)
    hp.Int("layers", 1, 16, step=2, sampling="log")
    hp.Fixed("activation", "relu")


class SpaceOnly(kt.HyperModel):
    def build(self, hp):
        _declare(hp)


class Synthetic(kt.Tuner):
    """Scores a configuration without training, so many trials take milliseconds."""

    fail_adam = False

    def run_trial(self, trial, *args, **kwargs):
        v = trial.hyperparameters.values
        self.runs = getattr(self, "runs", 0) + 1
        if self.fail_adam and v["optimizer"] == "adam":
            raise kt.errors.FailedTrialError("adam is not allowed here")
        return (math.log10(v["lr"]) + 2) ** 2 + (v["units"] - 32) ** 2 / 1000


def _search(tmp_path, name, max_trials, seed=1, fail_adam=False, **kw):
    oracle = TPEOracle(
        max_trials=max_trials, seed=seed, n_startup_trials=4, max_consecutive_failed_trials=None
    )
    tuner = Synthetic(
        oracle=oracle, hypermodel=SpaceOnly(), directory=str(tmp_path), project_name=name, **kw
    )
    tuner.fail_adam = fail_adam
    tuner.search(verbose=0)
    return tuner


def _values(oracle):
    return [oracle.trials[t].hyperparameters.values for t in oracle.start_order]


def test_distributions_match_keras_tuner_types():
    hp = kt.HyperParameters()
    _declare(hp)
    dists = {p.name: optuna_distribution(p) for p in hp.space}
    D = optuna.distributions
    assert dists["optimizer"] == D.CategoricalDistribution(["sgd", "adam"])
    assert dists["nesterov"] == D.CategoricalDistribution([False, True])
    assert dists["lr"] == D.FloatDistribution(1e-4, 1.0, log=True)
    assert dists["units"] == D.IntDistribution(8, 64, step=8)
    # log sampling with a step is a multiplier in KerasTuner: the value list, as categories
    assert dists["layers"] == D.CategoricalDistribution([1, 2, 4, 8, 16])
    assert isinstance(dists["momentum"], D.FloatDistribution) and dists["momentum"].step
    assert dists["activation"] is None
    hp2 = kt.HyperParameters()
    hp2.Choice("model", ["a", "b"])
    with hp2.conditional_scope("model", ["a"]):
        hp2.Int("units", 1, 4)
    with hp2.conditional_scope("model", ["b"]):
        hp2.Choice("units", [8, 16])
    assert optuna_param_names(hp2.space) == ["model", "units", "units#2"]


def test_proposals_are_valid_conditional_and_seeded(tmp_path):
    tuner = _search(tmp_path, "a", max_trials=12)
    values = _values(tuner.oracle)
    assert len(values) == 12 and tuner.runs == 12
    for v in values:
        assert v["optimizer"] in ("sgd", "adam")
        assert ("momentum" in v) == ("nesterov" in v) == (v["optimizer"] == "sgd")
        if "momentum" in v:
            assert 0.0 <= v["momentum"] <= 0.9 + 1e-9 and isinstance(v["nesterov"], bool)
        assert 1e-4 <= v["lr"] <= 1.0
        assert v["units"] in range(8, 65, 8) and v["layers"] in (1, 2, 4, 8, 16)
        assert v["activation"] == "relu"
    assert _values(_search(tmp_path, "b", max_trials=12).oracle) == values
    assert _values(_search(tmp_path, "c", max_trials=12, seed=2).oracle) != values


def test_reload_rebuilds_study_and_continues_like_an_uninterrupted_run(tmp_path):
    first = _search(tmp_path, "resumed", max_trials=6)
    assert first.runs == 6
    resumed = _search(tmp_path, "resumed", max_trials=10)
    assert resumed.runs == 4  # the 6 completed trials were not re-run
    study = build_study(resumed.oracle)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 10
    straight = _search(tmp_path, "straight", max_trials=10)
    assert _values(resumed.oracle) == _values(straight.oracle)


def test_failed_trials_are_told_fail_and_running_ones_rerun_once(tmp_path):
    tuner = _search(tmp_path, "f", max_trials=8, fail_adam=True)
    oracle = tuner.oracle
    failed = [t for t in oracle.trials.values() if t.status == "FAILED"]
    assert failed and all(t.hyperparameters.values["optimizer"] == "adam" for t in failed)
    states = {t.user_attrs["keras_tuner_trial_id"]: t.state for t in build_study(oracle).trials}
    assert {states[t.trial_id] for t in failed} == {optuna.trial.TrialState.FAIL}

    # A trial left RUNNING (the process died mid-trial): rebuilt as RUNNING, then re-run once.
    oracle.max_trials = 9
    in_flight = oracle.create_trial("tuner0")
    oracle.save()
    tuner.save()
    reloaded = TPEOracle(
        max_trials=9, seed=1, n_startup_trials=4, max_consecutive_failed_trials=None
    )
    again = Synthetic(
        oracle=reloaded, hypermodel=SpaceOnly(), directory=str(tmp_path), project_name="f"
    )
    assert build_study(reloaded).trials[-1].state == optuna.trial.TrialState.RUNNING
    again.search(verbose=0)
    assert again.runs == 1 and len(reloaded.trials) == 9
    assert reloaded.trials[in_flight.trial_id].status in ("COMPLETED", "FAILED")


def test_tpe_drives_a_real_keras_tuner(tmp_path):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(hp.Int("units", 2, 8, step=2), activation="relu"),
            ]
            + [keras.layers.Dense(2, activation="softmax")]
        )
        lr = hp.Float("lr", 1e-3, 1e-1, sampling="log")
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    oracle = TPEOracle(objective="val_accuracy", max_trials=3, seed=3)
    tuner = kt.Tuner(oracle=oracle, hypermodel=build, directory=str(tmp_path), project_name="k")
    tuner.search(x, y, validation_split=0.25, epochs=1, batch_size=32, verbose=0)
    assert [t.status for t in oracle.trials.values()] == ["COMPLETED"] * 3
    assert tuner.get_best_models(1)[0].predict(x[:2], verbose=0).shape == (2, 2)
