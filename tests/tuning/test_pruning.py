"""Pruning: bad learning-rate trials stop early, good ones run to the end, for every oracle."""

from __future__ import annotations

import numpy as np
import pytest

from automl_app.errors import UsageError
from automl_app.tuning.pruning import (
    PruningCallback,
    PruningTunerMixin,
    make_pruner,
    objective_curve,
    pruned_info,
)
from automl_app.tuning.tpe import TPEOracle

kt = pytest.importorskip("keras_tuner")
keras = pytest.importorskip("keras")

EPOCHS = 5
BAD = (50.0, 80.0)  # the deliberately terrible learning-rate region


def curve(lr: float, epoch: int) -> float:
    """Validation loss after `epoch` (0-based): good rates converge alike, bad ones diverge."""
    return lr * (epoch + 1) if lr in BAD else 1.0 / (epoch + 1)


class CurveModel(kt.HyperModel):
    """A stand-in for training: calls the callbacks as `fit()` would, in milliseconds."""

    def __init__(self, lrs):
        super().__init__()
        self.lrs = lrs

    def build(self, hp):
        hp.Choice("lr", self.lrs)
        hp.Choice("units", [8, 16])
        inputs = keras.Input((1,))
        return keras.Model(inputs, keras.layers.Dense(1)(inputs))

    def fit(self, hp, model, *args, callbacks=None, epochs=EPOCHS, **kwargs):
        model.stop_training = False
        cbs = keras.callbacks.CallbackList(callbacks, model=model)
        cbs.on_train_begin()
        best = np.inf
        for epoch in range(epochs):
            cbs.on_epoch_begin(epoch)
            loss = curve(hp["lr"], epoch)
            best = min(best, loss)
            cbs.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
            if model.stop_training:
                break
        cbs.on_train_end()
        return {"val_loss": best}


class ListOracle(kt.Oracle):
    """Proposes a fixed sequence, so a test knows which trial comes when."""

    def __init__(self, sequence, **kwargs):
        super().__init__(max_trials=len(sequence), **kwargs)
        self.sequence = sequence

    def populate_space(self, trial_id):
        return {"status": "RUNNING", "values": self.sequence[len(self.trials)]}


def _oracle(kind, seed=4):
    common = dict(objective="val_loss", seed=seed)
    if kind == "random":
        return kt.oracles.RandomSearchOracle(max_trials=9, **common)
    if kind == "grid":
        return kt.oracles.GridSearchOracle(max_trials=9, **common)
    if kind == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=9, num_initial_points=3, **common)
    return TPEOracle(max_trials=9, n_startup_trials=3, **common)


class FastTuner(PruningTunerMixin, kt.Tuner):
    def _try_build(self, hp):  # skip KerasTuner's per-trial gc.collect(): 0.2-0.4 s a trial here
        return self._build_hypermodel(hp)


def _tuner(oracle, tmp_path, name, lrs):
    return FastTuner(
        oracle=oracle, hypermodel=CurveModel(lrs), directory=str(tmp_path), project_name=name
    )


def _epochs_run(trial):
    return len(objective_curve(trial, "val_loss"))


@pytest.mark.parametrize("kind", ["random", "grid", "bayesian", "tpe"])
def test_median_prunes_bad_region_only(tmp_path, kind):
    lrs = [0.05, 50.0, 0.1, 80.0, 0.02, 0.01]  # grid walks them in this order
    oracle = _oracle(kind)
    tuner = _tuner(oracle, tmp_path, kind, lrs)
    tuner.search(callbacks=[PruningCallback("median", n_startup_trials=2)], verbose=0)
    pruned = pruned_info(tuner)
    assert pruned == pruned_info(tmp_path / kind)  # the same answer from the trial files alone
    trials = list(oracle.trials.values())
    bad = [t for t in trials if t.hyperparameters["lr"] in BAD]
    good = [t for t in trials if t.hyperparameters["lr"] not in BAD]
    assert good and all(_epochs_run(t) == EPOCHS for t in good)
    assert not set(pruned) & {t.trial_id for t in good}
    later_bad = [t for t in bad if t.trial_id > min(t.trial_id for t in good[:2])]
    assert later_bad, "the search should have met the bad region after two good trials"
    for t in bad:
        assert t.status == "COMPLETED"
        if t.trial_id in pruned:
            assert pruned[t.trial_id] == _epochs_run(t) < EPOCHS
    assert any(t.trial_id in pruned for t in later_bad)


def test_min_epochs_asha_and_none(tmp_path):
    seq = [{"lr": lr, "units": 8} for lr in (0.05, 0.1, 50.0, 0.02, 80.0)]
    tuner = _tuner(ListOracle(seq, objective="val_loss"), tmp_path, "asha", [0.05, 0.1, 0.02, *BAD])
    tuner.search(callbacks=[PruningCallback("asha", min_epochs=2)], verbose=0)
    pruned = pruned_info(tuner)
    assert pruned["2"] >= 2 and pruned["4"] >= 2  # nothing stops before --min-epochs
    assert "0" not in pruned  # the first trial sets the bar

    tuner = _tuner(ListOracle(seq, objective="val_loss"), tmp_path, "none", [0.05, 0.1, 0.02, *BAD])
    tuner.search(callbacks=[PruningCallback("none")], verbose=0)
    assert pruned_info(tuner) == {}
    assert all(_epochs_run(t) == EPOCHS for t in tuner.oracle.trials.values())


def test_resume_rebuilds_pruner_from_trial_histories(tmp_path):
    lrs = [0.05, 0.1, 0.02, 50.0]
    seq = [{"lr": lr, "units": 8} for lr in lrs]
    first = _tuner(ListOracle(seq[:3], objective="val_loss"), tmp_path, "r", lrs)
    first.search(callbacks=[PruningCallback("median", n_startup_trials=3)], verbose=0)
    assert pruned_info(first) == {}
    # A new process: fresh oracle, tuner and callback; only the trial files carry the history.
    again = _tuner(ListOracle(seq, objective="val_loss"), tmp_path, "r", lrs)
    again.search(callbacks=[PruningCallback("median", n_startup_trials=3)], verbose=0)
    assert len(again.oracle.trials) == 4
    assert pruned_info(again) == {"3": 1}


def test_pruner_arguments_are_checked():
    with pytest.raises(
        UsageError, match=r"must be one of median, asha, none. Received: prune='mean'"
    ):
        make_pruner("mean")
    with pytest.raises(UsageError, match="`--min-epochs` must be an integer >= 1. Received: 0"):
        PruningCallback("median", min_epochs=0)


@pytest.mark.slow
def test_real_training_prunes_a_diverging_learning_rate(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-0.5, 1, (160, 2)), rng.normal(0.5, 1, (160, 2))])
    x = x.astype("float32")
    y = np.repeat([0, 1], 160).astype("int32")
    order = rng.permutation(len(x))
    x, y = x[order], y[order]

    def build(hp):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((2,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(hp.Choice("lr", [0.1, 50.0])),
            loss="sparse_categorical_crossentropy",
        )
        return model

    seq = [{"lr": lr} for lr in (0.1, 0.1, 50.0, 0.1)]  # SGD at 50 diverges within an epoch
    cls = type("PrunedTuner", (PruningTunerMixin, kt.Tuner), {})
    tuner = cls(
        oracle=ListOracle(seq, objective="val_loss"),
        hypermodel=build,
        directory=str(tmp_path),
        project_name="real",
    )
    tuner.search(
        x,
        y,
        validation_split=0.25,
        epochs=4,
        batch_size=32,
        verbose=0,
        callbacks=[PruningCallback("median", n_startup_trials=2)],
    )
    runs = {t.trial_id: _epochs_run(t) for t in tuner.oracle.trials.values()}
    assert runs["0"] == runs["1"] == runs["3"] == 4
    assert pruned_info(tuner) == {"2": 1} and runs["2"] == 1
