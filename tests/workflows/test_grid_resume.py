"""A reloaded grid search continues its grid (KerasTuner's own GridSearch stops instead).

Most tests use a tuner whose `run_trial` scores the values directly (no training), so a whole grid
runs in well under a second; one test trains a tiny Keras model through the real Tuner path.
"""

from __future__ import annotations

import json

import keras_tuner as kt
import numpy as np
import pytest

from automl_app.tuning.grid import ResumableGridSearch, ResumableGridSearchOracle, make_grid_tuner

OBJECTIVE = kt.Objective("score", "max")


def build(hp):
    hp.Choice("a", [1, 2, 3])
    hp.Choice("b", ["x", "y"])
    return None


def build_conditional(hp):
    kind = hp.Choice("kind", ["small", "big"])
    with hp.conditional_scope("kind", ["big"]):
        if kind == "big":
            hp.Choice("units", [8, 16])
    hp.Boolean("bn")
    return None


class Interrupted(BaseException):
    """Stands in for SIGKILL: not an Exception, so KerasTuner does not record the trial."""


def scoring(cls):
    """A tuner class that scores values without training and logs every run of a trial."""

    class Scoring(cls):
        runs: list[str] = []
        crash_at: int | None = None

        def run_trial(self, trial, *args, **kwargs):
            type(self).runs.append(trial.trial_id)
            if type(self).crash_at is not None and len(type(self).runs) == type(self).crash_at:
                raise Interrupted()
            values = trial.hyperparameters.values
            return {"score": float(len(json.dumps(values, sort_keys=True)))}

    return Scoring


def new_tuner(cls, directory, max_trials, builder=build):
    return cls(
        builder,
        objective=OBJECTIVE,
        max_trials=max_trials,
        directory=str(directory),
        project_name="tuner",
        overwrite=False,
    )


def walk(tuner) -> list[dict]:
    """Values of every trial in start order."""
    oracle = tuner.oracle
    return [oracle.trials[tid].hyperparameters.values for tid in oracle.start_order]


def statuses(tuner) -> list[str]:
    return [str(tuner.oracle.trials[t].status) for t in tuner.oracle.start_order]


def test_keras_tuner_grid_runs_no_new_trials_after_reload(tmp_path):
    """The bug we work around: still present in the pinned KerasTuner."""
    cls = scoring(kt.GridSearch)
    new_tuner(cls, tmp_path, 2).search(verbose=0)
    again = new_tuner(cls, tmp_path, 5)
    again.search(verbose=0)
    assert len(again.oracle.trials) == 2


def test_oracle_and_tuner_types(tmp_path):
    tuner = make_grid_tuner(build, objective=OBJECTIVE, directory=str(tmp_path), project_name="t")
    assert isinstance(tuner, kt.GridSearch)
    assert isinstance(tuner.oracle, ResumableGridSearchOracle)


@pytest.mark.parametrize("builder", [build, build_conditional], ids=["flat", "conditional"])
def test_reload_continues_in_the_order_of_an_uninterrupted_run(tmp_path, builder):
    cls = scoring(ResumableGridSearch)
    full = new_tuner(cls, tmp_path / "full", 5, builder)
    full.search(verbose=0)
    expected = walk(full)

    cls.runs = []
    new_tuner(cls, tmp_path / "resumed", 2, builder).search(verbose=0)
    resumed = new_tuner(cls, tmp_path / "resumed", 5, builder)
    resumed.search(verbose=0)
    assert walk(resumed) == expected
    assert len(cls.runs) == len(set(cls.runs)) == 5  # completed trials are not re-run
    assert set(statuses(resumed)) == {"COMPLETED"}


def test_trial_left_running_is_rerun_once(tmp_path):
    cls = scoring(ResumableGridSearch)
    full = new_tuner(cls, tmp_path / "full", 5)
    full.search(verbose=0)
    expected = walk(full)

    cls.runs, cls.crash_at = [], 3  # the third trial "dies" mid-run
    with pytest.raises(Interrupted):
        new_tuner(cls, tmp_path / "killed", 5).search(verbose=0)
    killed = cls.runs[-1]
    saved = json.loads(
        (tmp_path / "killed" / "tuner" / f"trial_{killed}" / "trial.json").read_text()
    )
    assert saved["status"] == "RUNNING"

    cls.crash_at = None
    resumed = new_tuner(cls, tmp_path / "killed", 5)
    resumed.search(verbose=0)
    assert walk(resumed) == expected
    assert cls.runs.count(killed) == 2  # the killed run and its one re-run
    assert sorted(t for t in set(cls.runs) if t != killed) == sorted(
        t for t in cls.runs if t != killed
    )
    assert set(statuses(resumed)) == {"COMPLETED"}


def test_orphan_running_trial_without_oracle_record_is_rerun(tmp_path):
    """A kill between trial.json and oracle.json leaves a RUNNING trial no queue knows about."""
    cls = scoring(ResumableGridSearch)
    cls.crash_at = 2
    with pytest.raises(Interrupted):
        new_tuner(cls, tmp_path, 4).search(verbose=0)
    oracle_json = tmp_path / "tuner" / "oracle.json"
    state = json.loads(oracle_json.read_text())
    orphan = state["start_order"].pop()
    state["ongoing_trials"] = {}
    oracle_json.write_text(json.dumps(state))

    cls.runs, cls.crash_at = [], None
    resumed = new_tuner(cls, tmp_path, 4)
    resumed.search(verbose=0)
    assert cls.runs[0] == orphan
    assert len(resumed.oracle.trials) == 4
    assert set(statuses(resumed)) == {"COMPLETED"}


def test_raising_max_trials_continues_until_the_grid_is_exhausted(tmp_path):
    cls = scoring(ResumableGridSearch)
    first = new_tuner(cls, tmp_path, 3)
    first.search(verbose=0)
    assert len(first.oracle.trials) == 3

    same = new_tuner(cls, tmp_path, 3)
    same.search(verbose=0)
    assert len(same.oracle.trials) == 3  # a finished run stays finished

    cls.runs = []
    more = new_tuner(cls, tmp_path, 20)  # the grid has 6 points
    more.search(verbose=0)
    assert len(more.oracle.trials) == 6
    assert len(cls.runs) == 3

    cls.runs = []
    exhausted = new_tuner(cls, tmp_path, 50)
    exhausted.search(verbose=0)
    assert cls.runs == []  # STOPPED: nothing left, nothing repeated
    values = [json.dumps(v, sort_keys=True) for v in walk(exhausted)]
    assert len(values) == len(set(values)) == 6


@pytest.mark.slow
def test_real_keras_grid_resume(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def model(hp):
        m = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(hp.Choice("units", [2, 4, 8]), "relu")]
            + [keras.layers.Dense(2, activation="softmax")]
        )
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    def tuner(max_trials):
        return make_grid_tuner(
            model,
            objective="val_accuracy",
            max_trials=max_trials,
            directory=str(tmp_path),
            project_name="tuner",
        )

    tuner(1).search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    resumed = tuner(5)
    resumed.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    units = [v["units"] for v in walk(resumed)]
    assert units == [2, 4, 8]
    assert set(statuses(resumed)) == {"COMPLETED"}
