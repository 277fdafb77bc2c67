"""Time budget: durations, the deadline callback, and why a search stopped (every oracle kind)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from automl_app.errors import UsageError
from automl_app.tuning import budget
from automl_app.tuning.budget import Deadline, attach_budget, parse_duration, stop_summary


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("45", 45), ("1.5h", 5400), (3, 3)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "", "-", "m10", "30s1m", "1h1h", "inf", "--5s"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError) as err:
        parse_duration(text)
    assert str(err.value) == f"`--time-budget` must look like 90s, 10m or 2h. Received: {text!r}"


@pytest.mark.parametrize("text", ["0s", "0", "-5s", "0m0s", 0, -3])
def test_parse_duration_says_a_budget_must_be_positive(text):
    with pytest.raises(UsageError) as err:
        parse_duration(text)
    assert (
        str(err.value) == f"`--time-budget` must be positive, e.g. 90s or 10m. Received: {text!r}"
    )


def test_the_least_budget_is_what_the_schedule_needs():
    """config checks the least budget without importing the engine; the schedule defines it."""
    from automl_app.config import MIN_TIME_BUDGET_S
    from automl_app.engines.kerastuner import schedule

    assert MIN_TIME_BUDGET_S == schedule.MIN_BUDGET_S
    assert schedule.RESERVE_MIN_S / schedule.RESERVE_MAX_SHARE == MIN_TIME_BUDGET_S
    plan = schedule.plan_schedule(Deadline.after(MIN_TIME_BUDGET_S), n_train=1000)
    assert plan.reserve_s == pytest.approx(schedule.RESERVE_MIN_S, abs=0.1)  # the whole reserve


def test_the_schedule_never_says_explore_for_a_negative_time():
    from automl_app.engines.kerastuner import schedule

    spent = Deadline(at=time.time() - 2, seconds=48)  # the data took the whole budget
    text = schedule.plan_schedule(spent, n_train=300).describe(3, "none")
    assert "-0s" not in text and "explore for" not in text
    assert "no time left to explore after loading the data" in text
    fresh = schedule.plan_schedule(Deadline.after(600), n_train=300).describe(3, "none")
    assert "explore for 13" in fresh  # 0.25 of (600 - 48) s
    together = (
        "then train the best few again on them for their refit's epochs (up to 110s together)"
    )
    assert together in fresh  # 0.2 of it


def test_a_parallel_search_keeps_its_start_up_time_as_reserve():
    """Its trials end before the budget by the usual reserve plus what the start-up took (the
    launching command evaluates and exports after them), at most a quarter of the budget."""
    from automl_app.engines.kerastuner import schedule

    fresh = schedule.trials_deadline(Deadline(at=time.time() + 600, seconds=600))
    assert fresh.seconds == pytest.approx(600 - 48, abs=0.1)  # 8 % of 600 s
    slow_start = schedule.trials_deadline(Deadline(at=time.time() + 80, seconds=90))
    assert slow_start.seconds == pytest.approx(90 - (12 + 10), abs=0.1)
    assert slow_start.at == pytest.approx(time.time() + 80 - 22, abs=0.5)
    capped = schedule.trials_deadline(Deadline(at=time.time() + 40, seconds=90))
    assert capped.seconds == pytest.approx(90 * (1 - schedule.RESERVE_MAX_SHARE), abs=0.1)


def test_the_budget_counts_from_the_commands_start():
    """The CLI marks its start before TensorFlow is imported; nothing marked: from now."""
    try:
        budget.mark_command_start(time.time() - 30)
        assert Deadline.after_command_start("90s").remaining() == pytest.approx(60, abs=1)
    finally:
        budget.mark_command_start(None)
    assert Deadline.after_command_start("90s").remaining() == pytest.approx(90, abs=1)


def test_the_cli_clears_its_start_mark_when_the_command_ends(tmp_path):
    from click.testing import CliRunner

    from automl_app.cli import cli

    assert CliRunner().invoke(cli, ["runs", str(tmp_path)]).exit_code == 0
    assert budget._COMMAND_START is None


def test_budget_module_stays_light():
    # The CLI validates --time-budget while parsing, before TensorFlow may be imported.
    code = "import sys; from automl_app.tuning import budget; print('keras' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.timing
def test_deadline():
    d = Deadline.after("2s")
    assert 1.5 < d.remaining() <= 2 and not d.expired() and d.seconds == 2
    assert Deadline(at=time.time() - 1).expired()


kt = pytest.importorskip("keras_tuner")
keras = pytest.importorskip("keras")


class SleepyModel(kt.HyperModel):
    """A stand-in for training: each epoch sleeps, callbacks run as in `fit()`."""

    def __init__(self, epoch_s=0.05, fail=False):
        super().__init__()
        self.epoch_s, self.fail = epoch_s, fail

    def build(self, hp):
        hp.Int("units", 1, 64)
        inputs = keras.Input((1,))
        return keras.Model(inputs, keras.layers.Dense(1)(inputs))

    def fit(self, hp, model, *args, callbacks=None, epochs=3, **kwargs):
        if self.fail:
            raise kt.errors.FailedTrialError(f"units={hp['units']} is broken")
        model.stop_training = False
        cbs = keras.callbacks.CallbackList(callbacks, model=model)
        cbs.on_train_begin()
        for epoch in range(kwargs.get("initial_epoch", 0), epochs):
            cbs.on_epoch_begin(epoch)
            time.sleep(self.epoch_s)
            cbs.on_train_batch_end(0)
            cbs.on_epoch_end(epoch, {"val_loss": 1.0 / (epoch + 1) + hp["units"] / 100})
            if model.stop_training:
                break
        cbs.on_train_end()
        return {"val_loss": 1.0 / (epoch + 1) + hp["units"] / 100}


class FastTuner(kt.Tuner):
    def _try_build(self, hp):  # skip KerasTuner's per-trial gc.collect() (slow on a busy CPU)
        return self._build_hypermodel(hp)


def _oracle(kind, max_trials):
    from automl_app.tuning.tpe import TPEOracle

    classes = {
        "random": kt.oracles.RandomSearchOracle,
        "grid": kt.oracles.GridSearchOracle,
        "bayesian": kt.oracles.BayesianOptimizationOracle,
        "tpe": TPEOracle,
    }
    return budget.with_budget(classes[kind])(objective="val_loss", max_trials=max_trials, seed=1)


def _tuner(oracle, tmp_path, name, model=None):
    model = model or SleepyModel()
    return FastTuner(oracle=oracle, hypermodel=model, directory=str(tmp_path), project_name=name)


def _record_starts(oracle):
    """When the oracle was asked for each trial it handed out to run (wraps the instance's
    create_trial; the time before the call: Bayesian optimisation fits its model after the budget
    check)."""
    starts, create = [], oracle.create_trial

    def create_trial(tuner_id):
        asked = time.time()
        trial = create(tuner_id)
        if trial.status == "RUNNING":
            starts.append(asked)
        return trial

    oracle.create_trial = create_trial
    return starts


@pytest.mark.parametrize("kind", ["random", "grid", "bayesian", "tpe"])
@pytest.mark.timing
def test_time_budget_stops_the_search(tmp_path, kind):
    oracle = _oracle(kind, max_trials=200)
    oracle.deadline = deadline = Deadline.after(1.5)
    tuner = _tuner(oracle, tmp_path, kind)
    starts = _record_starts(oracle)
    tuner.search(epochs=3, callbacks=[budget.deadline_callback(deadline)], verbose=0)
    assert oracle.stop_reason == "time_budget"
    assert 1 <= len(oracle.trials) < 200
    # No trial started that could not finish in time. Judged on the trials' own start times, not
    # the command's wall time: a busy CPU stalls the tuner's own work after the last trial (CI
    # once took 0.74 s there). A trial after the first starts only while its estimate (the
    # median of the finished ones, never below the shortest) fits before the deadline.
    durations = list(oracle._budget_durations().values())
    assert len(durations) == len(starts) and all(at < deadline.at for at in starts)
    assert all(at + min(durations) <= deadline.at for at in starts[1:])
    summary = stop_summary(oracle)
    assert summary["stop_reason"] == "time_budget" and summary["time_budget_s"] == 1.5
    assert summary["completed"] == len(oracle.trials)


@pytest.mark.timing
def test_deadline_callback_stops_the_running_trial(tmp_path):
    oracle = _oracle("random", max_trials=5)
    oracle.deadline = deadline = Deadline.after(0.5)
    tuner = _tuner(oracle, tmp_path, "cut", SleepyModel(epoch_s=0.05))
    start = time.time()
    tuner.search(epochs=200, callbacks=[budget.deadline_callback(deadline)], verbose=0)
    assert time.time() - start < 3  # 200 epochs would take 10 s
    assert oracle.stop_reason == "time_budget" and len(oracle.trials) == 1
    assert oracle.trials["0"].status == "COMPLETED"  # its best epoch still counts
    assert isinstance(budget.deadline_callback(deadline), budget.DeadlineCallback)


@pytest.mark.timing
def test_a_search_where_too_few_trials_fit_ends_after_its_first(tmp_path):
    # each trial sleeps 3 × 0.2 s: about 3 fit 2 s, fewer than min_trials (5)
    oracle = _oracle("random", max_trials=50)
    oracle.deadline = deadline = Deadline.after(2.0)
    oracle.min_trials = 5
    tuner = _tuner(oracle, tmp_path, "few", SleepyModel(epoch_s=0.2))
    tuner.search(epochs=3, callbacks=[budget.deadline_callback(deadline)], verbose=0)
    assert [t.status for t in oracle.trials.values()] == ["COMPLETED"]
    assert oracle.stop_reason == "time_budget"
    assert "fewer than the 5 a comparison needs" in oracle.stop_message
    assert stop_summary(oracle)["stop_message"] == oracle.stop_message

    # where enough fit (or nothing asks), the search goes on to the deadline as before: the time
    # left after the first trial is set from its wall time (room for 6 more like it)
    many = _oracle("random", max_trials=50)
    many.deadline = Deadline.after(60.0)
    many.min_trials = 5
    callback = budget.deadline_callback(many.deadline)
    _left_after_first(many, callback, lambda wall, trained: 6 * wall + 1.0)
    _tuner(many, tmp_path, "many", SleepyModel(epoch_s=0.02)).search(
        epochs=3, callbacks=[callback], verbose=0
    )
    assert len(many.trials) >= 5 and many.stop_message is None


def _left_after_first(oracle, callback, seconds):
    """When the second trial is asked for, move the deadline to `seconds(wall, trained)` from
    now, from what the first trial measured (its wall time, its epochs' time): a collection or
    a busy CPU inside the first trial then cannot decide a test. Returns [(wall, trained, left)]
    once it has happened."""
    left, create = [], oracle.create_trial

    def create_trial(tuner_id):
        if len(oracle.trials) == 1 and not left:
            ((first_id, wall),) = oracle._budget_durations().items()
            trained = (oracle.trial_fit_seconds or {}).get(first_id)
            left.append((wall, trained, seconds(wall, trained)))
            oracle.deadline = callback.deadline = Deadline.after(left[0][2])
        return create(tuner_id)

    oracle.create_trial = create_trial
    return left


class ColdStartModel(SleepyModel):
    """The first fit pays one-off work outside its epochs (as a first trial's data caching),
    and every fit is timed by a real TrialGuard, as in the explore phase."""

    def __init__(self, guard, one_off_s, **kwargs):
        super().__init__(**kwargs)
        self.guard, self.one_off_s = guard, one_off_s

    def fit(self, hp, model, *args, callbacks=None, epochs=3, **kwargs):
        time.sleep(self.one_off_s)  # in the trial, before its epochs (not in build: KerasTuner
        self.one_off_s = 0.0  # also builds once when the tuner is made)
        epochs = self.guard.plan(model, hp.values, 10, 0, epochs)
        callbacks = [*(callbacks or []), self.guard.callback(model)]
        return super().fit(hp, model, *args, callbacks=callbacks, epochs=epochs, **kwargs)


@pytest.mark.timing
def test_the_first_trials_one_off_work_does_not_end_the_comparison(tmp_path):
    # The first trial: 3 s of one-off work + 3 x 0.1 s epochs. When the second one is asked for,
    # the time left is set from what the first one measured (a collection or a busy CPU inside its
    # epochs must not decide the test): room for 3 trials by its epochs (x TRIAL_OVERHEAD for
    # the work around them), for fewer than 3 by its wall time.
    from automl_app.tuning.guard import TrialGuard

    epoch_s, one_off_s = 0.1, 3.0
    oracle = _oracle("random", max_trials=50)
    oracle.deadline = Deadline.after(60.0)
    oracle.min_trials = 3
    guard = TrialGuard(None, [].append, oracle)
    oracle.trial_fit_seconds = guard.cost.trial_seconds
    callback = budget.deadline_callback(oracle.deadline)
    left = _left_after_first(
        oracle, callback, lambda wall, trained: 2 * budget.TRIAL_OVERHEAD * trained + 1.0
    )
    model = ColdStartModel(guard, one_off_s, epoch_s=epoch_s)
    _tuner(oracle, tmp_path, "cold", model).search(epochs=3, callbacks=[callback], verbose=0)
    ((wall, trained, seconds_left),) = left
    assert trained <= wall - one_off_s  # the one-off work is not in the epochs' time
    assert 1 + seconds_left // wall < 3  # by its wall time, the comparison would have ended
    assert oracle.stop_message is None and oracle.stop_reason == "time_budget"
    assert len(oracle.trials) >= 2


def test_max_trials_and_space_exhausted(tmp_path):
    oracle = _oracle("random", max_trials=3)
    _tuner(oracle, tmp_path, "max").search(epochs=1, verbose=0)
    assert oracle.stop_reason == "max_trials" and len(oracle.trials) == 3

    grid = _oracle("grid", max_trials=50)
    model = SleepyModel(epoch_s=0)
    model.build = lambda hp: (hp.Choice("units", [1, 2]), SleepyModel.build(model, hp))[1]
    _tuner(grid, tmp_path, "grid", model).search(epochs=1, verbose=0)
    assert grid.stop_reason == "space_exhausted" and len(grid.trials) == 2


def test_consecutive_failures_end_the_search_cleanly(tmp_path):
    oracle = _oracle("random", max_trials=10)
    tuner = _tuner(oracle, tmp_path, "fail", SleepyModel(fail=True))
    tuner.search(epochs=1, verbose=0)  # KerasTuner alone would raise RuntimeError here
    assert oracle.stop_reason == "consecutive_failures"
    assert "is broken" in oracle.stop_message
    assert [t.status for t in oracle.trials.values()] == ["FAILED"] * 3
    reloaded = _oracle("random", max_trials=10)
    _tuner(reloaded, tmp_path, "fail", SleepyModel(fail=True))  # every trial file was saved
    assert [t.status for t in reloaded.trials.values()] == ["FAILED"] * 3


def test_attach_budget_to_hyperband_tuner(tmp_path):
    tuner = kt.Hyperband(
        hypermodel=SleepyModel(),
        objective="val_loss",
        max_epochs=9,
        factor=3,
        directory=str(tmp_path),
        project_name="hb",
    )
    deadline = Deadline.after(1.0)
    oracle = attach_budget(tuner.oracle, deadline)
    assert oracle is tuner.oracle and type(oracle).__name__ == "BudgetedHyperbandOracle"
    tuner.search(callbacks=[budget.deadline_callback(deadline)], verbose=0)
    assert oracle.stop_reason == "time_budget"
    assert attach_budget(object(), deadline) is not None  # a worker's gRPC client is left alone


@pytest.mark.slow
@pytest.mark.timing
def test_budget_with_real_training(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int32")

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(hp.Int("units", 2, 16), activation="relu"),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    oracle = budget.with_budget(kt.oracles.RandomSearchOracle)(
        objective="val_loss", max_trials=100, seed=0
    )
    oracle.deadline = deadline = Deadline.after(4)
    tuner = kt.Tuner(oracle=oracle, hypermodel=build, directory=str(tmp_path), project_name="r")
    tuner.search(
        x,
        y,
        validation_split=0.25,
        epochs=1000,
        batch_size=16,
        verbose=0,
        callbacks=[budget.deadline_callback(deadline)],
    )
    assert oracle.stop_reason == "time_budget"
    best = tuner.get_best_models(1)[0]
    assert best.predict(x[:3], verbose=0).shape == (3, 2)


# ---------------------------------------------------------------- defaults first (enqueue.py)


def _oracle_for(kind, tmp_path, queue, name):
    from automl_app.tuning.enqueue import attach_queue

    hps = kt.HyperParameters()
    hps.Int("units", 1, 64, default=7)
    hps.Choice("act", ["tanh", "relu"], default="relu")
    if kind == "hyperband":
        oracle = kt.oracles.HyperbandOracle(
            objective="val_loss", max_epochs=9, hyperparameters=hps, seed=3
        )
    else:
        oracle = kt.oracles.RandomSearchOracle(
            objective="val_loss", max_trials=5, hyperparameters=hps, seed=3
        )
    oracle._set_project_dir(str(tmp_path), name)
    return attach_queue(oracle, queue)


@pytest.mark.parametrize("kind", ["random", "hyperband"])
def test_defaults_run_first_with_random_and_hyperband(tmp_path, kind):
    from automl_app.tuning.enqueue import with_defaults_first

    oracle = _oracle_for(kind, tmp_path, with_defaults_first([{"units": 9}], True), kind)
    first = oracle.create_trial("t").hyperparameters.values
    assert (first["units"], first["act"]) == (7, "relu")
    if kind == "hyperband":  # in the first bracket's first round, like any random draw
        assert first["tuner/round"] == 0 and first["tuner/epochs"] >= 1
    second = oracle.create_trial("u").hyperparameters.values
    assert (second["units"], second["act"]) == (9, "relu")  # then --enqueue's configurations


def test_no_defaults_first_and_no_duplicate(tmp_path):
    from automl_app.tuning.enqueue import with_defaults_first

    assert with_defaults_first([{"a": 1}], False) == [{"a": 1}]
    # An enqueued configuration the defaults already cover is not run twice.
    oracle = _oracle_for("random", tmp_path, with_defaults_first([{"units": 7}], True), "dup")
    a = oracle.create_trial("t").hyperparameters.values
    b = oracle.create_trial("u").hyperparameters.values
    assert a == {"units": 7, "act": "relu"} and b != a


# ------------------------------------------------------- predicted cost (guard.py, cost.py)


def _dense(units: int, layers: int = 1):
    inputs = keras.Input((64,))
    x = inputs
    for _ in range(layers):
        x = keras.layers.Dense(units)(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_forward_macs_counts_dense_and_conv():
    from automl_app.models.cost import forward_macs

    assert forward_macs(_dense(32)) == 64 * 32 + 32 * 10  # the two Dense layers
    inputs = keras.Input((8, 8, 1))
    conv = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))
    assert forward_macs(conv) == 8 * 8 * 4 * 9 * 1


def test_cost_model_fits_overhead_and_compute():
    from automl_app.tuning.guard import CostModel

    cost = CostModel()
    assert cost.fit_seconds(1000, 32, 320, 0, 1) is None  # nothing measured yet
    # Two models measured: seconds per step = 0.01 + 1e-8 x MACs x batch
    for key, macs in (("a", 1_000), ("b", 100_000)):
        step = 0.01 + 1e-8 * macs * 32
        cost.observe(key, macs, 32, 0, {"step": [step], "startup": [0.5], "epoch": [1.0]})
    assert cost.step_seconds(10_000, 32) == pytest.approx(0.01 + 1e-8 * 10_000 * 32, rel=1e-6)
    # 10 steps per epoch x 2 epochs + start-up
    expected = 0.5 + 2 * 10 * (0.01 + 1e-8 * 10_000 * 32)
    assert cost.fit_seconds(10_000, 32, 320, 0, 2) == pytest.approx(expected, rel=1e-6)
    assert cost.step_seconds(5, 32, key="a") == pytest.approx(0.01 + 1e-8 * 1_000 * 32)


def test_guard_shrinks_then_skips_a_trial_that_cannot_finish():
    from automl_app.tuning.guard import TrialGuard

    lines: list[str] = []
    guard = TrialGuard(Deadline.after(10.0), lines.append)
    model = _dense(32)
    assert guard.plan(model, {"batch_size": 32}, 320, 0, 5) == 5  # nothing measured: it runs
    guard.cost.observe("0", 2368, 32, 0, {"step": [0.3], "startup": [0.0], "epoch": [3.0]})
    # 10 steps x 0.3 s = 3 s an epoch (x1.2 safety): 5 epochs do not fit in 10 s, 2 do
    assert guard.plan(model, {"batch_size": 32}, 320, 0, 5) == 2
    assert "shrunk to 2 epochs" in lines[-1]
    big = _dense(1024, layers=4)  # ~1000x the work per step
    with pytest.raises(kt.errors.FailedTrialError, match="^skipped: predicted"):
        guard.plan(big, {"batch_size": 32}, 320, 0, 1)
    assert "not started" in lines[-1]
    assert budget.skip_reason("Traceback ...\nFailedTrialError: skipped: predicted 9s") == (
        "skipped: predicted 9s"
    )
    assert budget.skip_reason("ValueError: boom") is None


def test_equal_time_gives_dearer_configurations_fewer_epochs():
    from automl_app.tuning.guard import TrialGuard

    lines: list[str] = []
    guard = TrialGuard(None, lines.append, equal_time=True)
    # The first trial (the defaults): 3 epochs of 10 steps at 0.1 s = 3 s.
    guard.cost.observe("0", 2368, 32, 0, {"step": [0.1], "epoch": [1.0, 1.0, 1.0]})
    assert guard.plan(_dense(32), {"batch_size": 32}, 320, 0, 3) == 3  # the same cost: all 3
    dear = _dense(256, layers=2)  # ~40x the work per step: one epoch, not three
    assert guard.plan(dear, {"batch_size": 32}, 320, 0, 3) == 1
    assert lines[-1].endswith("shrunk to 1 epoch, so trials compare at equal time")


def test_skipped_trials_do_not_count_as_failures(tmp_path):
    class Skips(SleepyModel):
        def fit(self, hp, model, *args, **kwargs):
            raise kt.errors.FailedTrialError("skipped: predicted 99s for one epoch, 3s left")

    oracle = _oracle("random", max_trials=5)
    _tuner(oracle, tmp_path, "skips", Skips()).search(epochs=1, verbose=0)
    assert oracle.stop_reason == "max_trials"  # five skips in a row are not 3 failures
    summary = stop_summary(oracle)
    assert summary["skipped"] == 5 and summary["failed"] == 0


def test_chance_check_and_fail_below():
    from automl_app.errors import SearchError
    from automl_app.evaluate import chance_check
    from automl_app.workflows import _check_fail_below

    y = np.array([0] * 60 + [1] * 20 + [2] * 20)
    c = chance_check(0.62, y, 3)
    assert c["basis"] == "majority class" and c["rate"] == 0.6 and c["within_noise"]
    assert not chance_check(0.9, y, 3)["within_noise"]
    assert chance_check(0.2, np.arange(1000) % 10, 10)["basis"] == "1/10 classes"
    _check_fail_below({"test": {"accuracy": 0.7}}, 0.5, "r")  # above: nothing happens
    with pytest.raises(SearchError, match="below --fail-below 0.8"):
        _check_fail_below({"test": {"accuracy": 0.7}}, 0.8, "r")


def _lose(oracle, tuner_id):
    """Take `tuner_id`'s trial back, as the chief does for a lost worker (chief.requeue)."""
    trial = oracle.ongoing_trials.pop(tuner_id)
    oracle._retry_queue.append(trial.trial_id)
    return trial


def test_lost_workers_trial_runs_again_after_max_trials_was_reached(tmp_path):
    # The last new trial went out (max_trials) before the chief took a lost worker's trial back:
    # the next worker to ask must still get it, or the chief waits for it forever.
    oracle = _oracle("random", max_trials=1)
    _tuner(oracle, tmp_path, "retry")
    oracle.create_trial("a")
    assert oracle.create_trial("b").status == "STOPPED" and oracle.stop_reason == "max_trials"
    held = _lose(oracle, "a")
    again = oracle.create_trial("c")
    assert again.status == "RUNNING" and again.trial_id == held.trial_id
    assert oracle.skip_retries() == []  # max_trials never skips a retry
    assert oracle.create_trial("d").status == "STOPPED"


def test_lost_workers_trial_is_skipped_past_the_time_budget(tmp_path):
    oracle = _oracle("random", max_trials=5)
    _tuner(oracle, tmp_path, "late")
    oracle.create_trial("a")
    held = _lose(oracle, "a")
    oracle.deadline = Deadline(at=time.time() - 1.0, seconds=1.0)
    assert oracle.create_trial("b").status == "STOPPED" and oracle.stop_reason == "time_budget"
    assert [t.trial_id for t in oracle.skip_retries()] == [held.trial_id]
    assert not oracle._retry_queue
    trial = oracle.trials[held.trial_id]
    assert trial.status == "FAILED" and budget.skip_reason(trial.message)
    summary = stop_summary(oracle)
    assert summary["skipped"] == 1 and summary["failed"] == 0


def test_the_final_refit_keeps_what_the_measured_passes_need_within_the_planned_reserve():
    """The reserve after the refit comes from the search's measured validation passes and
    start-ups: never more than planned, never less than RESERVE_MIN_S, all of it unmeasured."""
    from automl_app.engines.kerastuner import schedule
    from automl_app.tuning.guard import CostModel

    plan = schedule.plan_schedule(Deadline.after(600), n_train=54000)
    assert plan.reserve_s == pytest.approx(48, abs=0.5)
    cost = CostModel()
    assert schedule.finish_reserve(plan, cost, macs=10**6, n_val=6000) == plan.reserve_s

    def measured(val_pass_s: float, startup_s: float) -> float:
        cost = CostModel()
        cost.observe("0", 10**6, 128, 6000, {"val": [val_pass_s], "startup": [startup_s]})
        return schedule.finish_reserve(plan, cost, macs=10**6, n_val=6000)

    expected = (
        schedule.FINISH_SAFETY * (schedule.FINISH_PASSES * 0.2 + schedule.FINISH_STARTUPS * 1.0)
        + schedule.STALL_MARGIN_S
    )
    assert measured(0.2, 1.0) == pytest.approx(max(expected, schedule.RESERVE_MIN_S))
    assert expected < schedule.RESERVE_MIN_S + 1  # 1.25 × 5.6 s + 5 s: about the least reserve
    fm10 = (
        schedule.FINISH_SAFETY * (schedule.FINISH_PASSES * 1.2 + 2 * 3.0) + schedule.STALL_MARGIN_S
    )
    assert measured(1.2, 3.0) == pytest.approx(fm10)  # a 10-minute Fashion-MNIST search's passes
    assert schedule.RESERVE_MIN_S < fm10 < plan.reserve_s  # (the finish took 16 s of 48 kept)
    assert measured(10.0, 3.0) == plan.reserve_s  # a dear model keeps the whole plan
