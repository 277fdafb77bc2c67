"""Search options of the tuning engine, end to end on tiny data (digits, 1-3 epochs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.runs import trial_result_id

from automl_app.cli import cli
from automl_app.engines.kerastuner.schedule import MIN_EXPLORE_TRIALS

TINY = [
    "search",
    "image",
    "--space",
    "fcn",
    "--set",
    "num_layers=2",
    "--set",
    "layer_size=512",
    "--max-samples",
    "300",
    "--seed",
    "0",
]


def search(tmp_path: Path, *args: str, name: str = "run"):
    run = tmp_path / name
    res = CliRunner().invoke(cli, [*TINY, "--run-dir", str(run), *args], prog_name="automl")
    return res, run


def rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_enqueued_configurations_run_first(tmp_path):
    extra = tmp_path / "more.yaml"
    extra.write_text("- {optimizer: rmsprop, learning_rate: 0.0005}\n")
    res, run = search(
        tmp_path,
        "--max-trials",
        "3",
        "--epochs",
        "1",
        "--enqueue",
        '{"learning_rate": 0.003, "optimizer": "adam"}',
        "--enqueue",
        str(extra),
        "--no-defaults-first",  # every search starts at the defaults (issue 13) unless told not to
    )
    assert res.exit_code == 0, res.output
    r = rows(run)
    assert (r[0]["hp_optimizer"], float(r[0]["hp_learning_rate"])) == ("adam", 0.003)
    assert (r[1]["hp_optimizer"], float(r[1]["hp_learning_rate"])) == ("rmsprop", 0.0005)
    assert len(r) == 3


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--enqueue", '{"units": 3}'], "not in the search space"),
        (["--enqueue", "[1, 2]"], "--enqueue takes a JSON/YAML mapping"),
        (["--time-budget", "10x"], "`--time-budget` must look like 90s, 10m or 2h"),
        (["--objective", "val_top5"], "--objective must be one of val_accuracy"),
        (["--tuner", "hyperband", "--prune", "median"], "Hyperband prunes by itself"),
        (["--min-batch-size", "4096"], "removes every batch_size"),
        (["--tpe-startup", "3"], "--tpe-startup applies to --tuner tpe only"),
        (["--resume"], "does not exist"),
    ],
)
def test_option_errors_exit_2(tmp_path, args, fragment):
    res, _ = search(tmp_path, *args)
    assert res.exit_code == 2, res.output
    assert fragment in res.output


@pytest.mark.slow
def test_lr_find_saves_plot_and_seeds_first_trial(tmp_path):
    res, run = search(tmp_path, "--lr-find", "--max-trials", "2", "--epochs", "1")
    assert res.exit_code == 0, res.output
    assert (run / "report" / "lr_find.png").stat().st_size > 1000
    found = json.loads((run / "report" / "lr_find.json").read_text())
    assert float(rows(run)[0]["hp_learning_rate"]) == pytest.approx(
        found["enqueued_learning_rate"], rel=1e-6
    )
    assert 1e-4 <= found["enqueued_learning_rate"] <= 1.0  # clipped to the space's range


@pytest.mark.slow
@pytest.mark.timing
def test_time_budget_stops_and_still_exports(tmp_path):
    # 90 s, not the least budget (48 s): on a slow or busy 2-core machine the start-up takes
    # ~10 s of it and a trial ~3 s (mostly tracing), so a 7 s explore phase finished one trial
    # and left promote nothing to choose between (CI, 2026-12-06); ~17 s fit four or five, more
    # than schedule.MIN_EXPLORE_TRIALS (3). The refit stops at its 100-epoch cap on these 300
    # examples, so the larger budget costs the test ~25 s.
    res, run = search(tmp_path, "--time-budget", "90s", "--max-trials", "100", "--epochs", "2")
    assert res.exit_code == 0, res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["stop_reason"] == "time_budget"
    assert manifest["search"]["time_budget_s"] == 90
    assert 1 <= manifest["trials"]["completed"] < 100
    assert (run / "best" / "saved_model" / "saved_model.pb").exists()
    final = manifest["phases"][-1]
    if "skipped" not in final:  # the refit decays over its time and weighs the weight average
        assert final["lr_schedule"] == "cosine over time", final
        assert final["weights"] in ("averaged", "last"), final
        assert "a cosine learning rate over that time" in res.output
    # the best few were judged again at the refit's epochs; the winner went on, and is the
    # trial the run names as best (its configuration is the exported one)
    promote = {p["phase"]: p for p in manifest["phases"]}["promote"]
    assert len(promote["candidates"]) >= 2 and promote["winner"] in {
        c["trial_id"] for c in promote["candidates"]
    }
    assert all(c["epochs"] >= 2 for c in promote["candidates"]), promote
    # each candidate trains within its part of the phase's time left, its validation through
    # the views taken out of it (a deadline, checked every 4 batches: a small overrun)
    for c in promote["candidates"]:
        assert c["seconds"] <= c["allowed_seconds"] + 2.0, promote
    if "skipped" not in final and final["kept"]:
        assert final["start"] == "continued from promote"
        assert manifest["best_trial"]["trial_id"] == promote["winner"] == final["trial_id"]
    assert f"promote: trial {promote['winner']} goes on to the final refit" in res.output


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.parametrize("source", ["dataset", "folder"])
def test_where_too_few_trials_fit_the_first_goes_on_training(tmp_path, source):
    # 5,000 epochs cannot finish in the least budget's explore phase on any machine: the first
    # trial runs to the phase's end, so no second one fits, and none is started
    data = []
    if source == "folder":  # photos of several sizes and some bad files, decoded by the scan
        from support.images import make_folder

        make_folder(tmp_path / "photos")
        data = ["--data-dir", str(tmp_path / "photos"), "--image-size", "32"]
    res, run = search(
        tmp_path, *data, "--time-budget", "48s", "--max-trials", "100", "--epochs", "5000"
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["trials"]["completed"] == 1 and manifest["stop_reason"] == "time_budget"
    explore, final = manifest["phases"][0], manifest["phases"][-1]
    assert [p["phase"] for p in manifest["phases"]] == ["explore", "final"]
    assert f"fewer than the {MIN_EXPLORE_TRIALS} a comparison needs" in explore["ended"]
    assert "this machine cannot search in this budget" in res.output
    if "skipped" not in final:
        assert final["start"] == "continued from its trial" and final["promoted_steps"] > 0
        assert "(going on from its trial's weights)" in res.output
    assert (run / "best" / "saved_model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_objective_val_loss_is_minimised_and_columns_recorded(tmp_path):
    res, run = search(
        tmp_path,
        "--objective",
        "val_loss",
        "--max-trials",
        "3",
        "--epochs",
        "2",
        "--keep-checkpoints",
        "1",
        "--min-batch-size",
        "64",
    )
    assert res.exit_code == 0, res.output
    assert "objective val_loss (min)" in res.output
    r = rows(run)
    best = json.loads((run / "run.json").read_text())["best_trial"]
    assert best["score"] == pytest.approx(min(float(x["objective"]) for x in r))
    for x in r:
        assert float(x["seconds_per_epoch"]) > 0 and float(x["samples_per_s"]) > 0
        assert int(x["params"]) > 0 and float(x["latency_ms_b1"]) > 0
        assert float(x["latency_ms_b256"]) > 0 and int(x["hp_batch_size"]) >= 64
    ckpts = list((run / "tuner").glob("trial_*/checkpoint.weights.h5"))
    assert len(ckpts) == 1 and ckpts[0].parent.name == f"trial_{best['trial_id']}"


TERRIBLE = """
model: fcn
hyperparameters:
  optimizer:     {type: fixed, value: sgd}
  learning_rate: {type: choice, values: [0.05, 40.0]}
  num_layers:    {type: fixed, value: 2}
  layer_size:    {type: choice, values: [64, 128, 256]}
  batch_size:    {type: fixed, value: 32}
"""


@pytest.mark.slow
def test_median_pruning_stops_the_terrible_learning_rate(tmp_path):
    space = tmp_path / "terrible.yaml"
    space.write_text(TERRIBLE)
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--space",
            str(space),
            "--max-samples",
            "400",
            "--tuner",
            "tpe",
            "--max-trials",
            "8",
            "--epochs",
            "4",
            "--prune",
            "median",
            "--seed",
            "3",
            "--run-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    r = rows(run)
    pruned = [x for x in r if x["status"] == "pruned"]
    assert pruned, res.output
    assert all(float(x["hp_learning_rate"]) == 40.0 for x in pruned)
    assert all(int(x["pruned_at"]) < 4 for x in pruned)
    good = [x for x in r if float(x["hp_learning_rate"]) == 0.05]
    assert good and all(x["status"] == "completed" and int(x["epochs"]) == 4 for x in good)


def test_slow_epoch_warning_names_the_likely_cause():
    from automl_app.tuning.tuners import RecordingMixin

    class Fake(RecordingMixin):
        pass

    def warn(batch_size: int) -> list[str]:
        lines: list[str] = []
        fake = Fake()
        fake._on_line = lines.append
        fake._rows = {str(i): {"seconds_per_epoch": 1.0, "hp_batch_size": 64} for i in range(4)}
        slow = {"seconds_per_epoch": 9.0, "hp_batch_size": batch_size, "params": 123456}
        fake._rows["4"] = slow

        class Trial:
            trial_id = "4"

            class hyperparameters:  # noqa: N801
                values = {"batch_size": batch_size}

        fake._warn_if_slow(slow, Trial)
        return lines

    small = warn(16)
    assert small and "batch_size=16" in small[0] and "--min-batch-size" in small[0]
    large = warn(512)
    assert large and "the model is the likely cause (123456 parameters)" in large[0]


@pytest.mark.slow
def test_memory_does_not_grow_over_20_trials(tmp_path):
    import psutil

    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig

    proc = psutil.Process()
    rss: list[float] = []

    def on_line(line: str) -> None:
        if trial_result_id(line) is not None:  # one sample per finished trial
            rss.append(proc.memory_info().rss / 2**20)

    cfg = SearchConfig(
        data=DataConfig(dataset="digits", max_samples=200),
        space=SpaceConfig(space="fcn", overrides={"num_layers": 2, "batch_size": 64}),
        tuner=TunerConfig(tuner="random", max_trials=20, epochs=1, seed=0),
        run_dir=str(tmp_path / "run"),
    )
    workflows.search(cfg, say=on_line)
    assert len(rss) == 20
    growth = rss[-1] - rss[4]
    print(f"RSS growth between trial 5 and 20: {growth:.1f} MB")
    assert growth < 200, f"RSS grew {growth:.0f} MB between trial 5 and 20 ({rss})"


DIVERGING = """
model: fcn
hyperparameters:
  optimizer:     {type: fixed, value: sgd}
  learning_rate: {type: choice, values: [0.05, 1.0e+6]}
  num_layers:    {type: fixed, value: 2}
  layer_size:    {type: fixed, value: 64}
"""


@pytest.mark.slow
def test_diverged_trials_are_failed_and_the_search_goes_on(tmp_path):
    space = tmp_path / "diverging.yaml"
    space.write_text(DIVERGING)
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--space",
            str(space),
            "--tuner",
            "grid",
            "--max-trials",
            "2",
            "--epochs",
            "2",
            "--max-samples",
            "200",
            "--run-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    by_lr = {float(r["hp_learning_rate"]): r for r in rows(run)}
    assert by_lr[1e6]["status"] == "failed" and "diverged" in by_lr[1e6]["error"]
    assert by_lr[0.05]["status"] == "completed"


@pytest.mark.slow
def test_two_workers_complete_four_distinct_trials(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl_app.cli",
            *TINY,
            "--max-trials",
            "4",
            "--epochs",
            "1",
            "--workers",
            "2",
            "--run-dir",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    r = rows(run)
    assert sorted(x["trial_id"] for x in r) == ["0", "1", "2", "3"]
    assert all(x["status"] == "completed" for x in r)
    logs = sorted(p.name for p in (run / "workers").iterdir())
    assert "chief.log" in logs and len(logs) >= 3
    assert json.loads((run / "run.json").read_text())["search"]["workers"] == 2


MOSTLY_BROKEN = """
import keras


def build(hp):
    units = hp.Choice("units", [8, 16, 32, 64, 128])
    if units != 8:
        raise ValueError(f"units={units} is deliberately broken")
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


@pytest.mark.slow
def test_failure_limit_stops_the_search_but_keeps_the_best_trial(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(MOSTLY_BROKEN)
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--hypermodel",
            f"{path}:build",
            "--tuner",
            "grid",
            "--max-trials",
            "5",
            "--max-failures",
            "2",
            "--epochs",
            "1",
            "--run-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "failed trials in a row; the first failure was: ValueError: units=16" in res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["stop_reason"] == "consecutive_failures"
    assert [r["status"] for r in rows(run)] == ["completed", "failed", "failed"]
    assert (run / "best" / "saved_model" / "saved_model.pb").exists()


def test_release_memory_frees_the_graphs_of_a_finished_fit():
    """The leak behind growing RSS: tf.custom_gradient entries keep every traced FuncGraph alive."""
    import gc

    import keras
    import numpy as np

    from automl_app.tuning.tuners import release_memory

    def live_graphs() -> int:
        gc.collect()
        return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())

    release_memory()
    before = live_graphs()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.zeros((32, 8), "float32"), np.zeros(32, "int32"), epochs=1, verbose=0)
    del model
    keras.backend.clear_session()
    assert live_graphs() > before  # without the fix the train graph survives clear_session
    release_memory()
    assert live_graphs() == before


def test_every_role_of_a_parallel_search_shares_the_launchers_deadline():
    import time

    from automl_app.config import SearchConfig, TunerConfig
    from automl_app.distributed.parallel import shared_deadline

    cfg = SearchConfig(tuner=TunerConfig(time_budget=60.0, workers=2))
    at = time.time() - 5  # the launcher started long ago: its deadline has already passed
    d = shared_deadline(cfg, {"deadline": {"at": at, "seconds": 60.0}})
    assert d.at == at and d.expired()
    fresh = shared_deadline(cfg, {})  # older run.json without a deadline: count from now
    assert 59 < fresh.remaining() <= 60
    assert shared_deadline(SearchConfig(), {"deadline": {"at": at}}) is None  # no budget


@pytest.mark.slow
def test_two_workers_stop_at_the_time_budget_and_export(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "automl_app.cli", *TINY, "--max-trials", "500"]
    argv += ["--epochs", "1", "--workers", "2", "--time-budget", "25s", "--run-dir", str(run)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["search"]["stop_reason"] == "time_budget"
    assert manifest["deadline"]["seconds"] == 25.0
    assert 0 < manifest["trials"]["completed"] < 500
    assert (run / "best" / "saved_model" / "saved_model.pb").exists()


def test_tpe_startup_reaches_optunas_sampler(tmp_path):
    res, run = search(tmp_path, "--tuner", "tpe", "--tpe-startup", "1", "--max-trials", "2")
    assert res.exit_code == 0, res.output
    oracle = json.loads((run / "tuner" / "oracle.json").read_text())
    assert oracle["tpe"]["n_startup_trials"] == 1
    assert json.loads((run / "run.json").read_text())["config"]["tuner"]["tpe_startup"] == 1


@pytest.mark.slow
def test_the_spaces_portfolio_runs_right_after_the_defaults(tmp_path):
    from automl_app import models, spaces

    (portfolio,) = spaces.load("cnn", known=models.known()).portfolio
    base = ["search", "image", "--max-samples", "200", "--seed", "0", "--epochs", "1"]
    run = tmp_path / "cnn"
    res = CliRunner().invoke(
        cli, [*base, "--max-trials", "2", "--run-dir", str(run)], prog_name="automl"
    )
    assert res.exit_code == 0, res.output
    assert "then its portfolio (block=residual" in res.output
    first, second = rows(run)
    assert first["hp_block"] == "plain"  # the defaults
    for name, value in portfolio.items():  # the rest of the entry at the space's defaults
        assert second[f"hp_{name}"] == str(value), name
    assert second["hp_filters"] == first["hp_filters"]
    for flags in (["--no-defaults-first"], ["--tuner", "grid"]):  # neither runs the portfolio
        out = tmp_path / flags[-1].strip("-")
        res = CliRunner().invoke(
            cli, [*base, "--max-trials", "1", *flags, "--run-dir", str(out)], prog_name="automl"
        )
        assert res.exit_code == 0, res.output
        assert "then its portfolio" not in res.output


def test_tta_shift_through_the_cli_exports_the_shifted_views(tmp_path):
    """--tta shift end to end: run.json, the model card and the test line name the view, and the
    exported SavedModel serves the five-view model."""
    res, run = search(tmp_path, "--max-trials", "1", "--epochs", "1", "--tta", "shift")
    assert res.exit_code == 0, res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["tta"] == {"mode": "shift", "chosen": "shift", "passes": 5,
                               "reason": "--tta shift"}  # fmt: skip
    card = json.loads((run / "best" / "model_card.json").read_text())
    assert card["test_time_augmentation"].startswith("shift: the mean over the image and its four")
    assert "shift test-time augmentation" in res.output
    assert (run / "best" / "saved_model").is_dir()
