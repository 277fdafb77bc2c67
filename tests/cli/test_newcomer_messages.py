"""Issue 17, tried as a new user would: each bad input ends in one line that names the value and
what is allowed (exit 2 for usage, 1 for a file that cannot be used), and nothing is lost or left
behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.images import make_folder

from automl_app.cli import cli

FAST = ["search", "image", "--space", "fcn", "--max-trials", "1", "--epochs", "1"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="automl")


def error_line(res) -> str:
    """The one line the user reads (and nothing else, no traceback)."""
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0].removeprefix("Error: ")


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.txt").write_text("chapter 1")
    res = run(*FAST, "--run-dir", str(mine), "--overwrite")
    assert res.exit_code == 2
    assert error_line(res) == (
        f"--overwrite refuses to empty {str(mine)!r}: it holds files (thesis.txt) but no run "
        "(run.json missing); pass a new or empty --run-dir"
    )
    assert (mine / "thesis.txt").read_text() == "chapter 1"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


def test_overwrite_refuses_a_home_directory(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".profile").write_text("PATH=...")
    monkeypatch.setenv("HOME", str(home))
    res = run("train-scratch", "mobilenetv2", "--run-dir", str(home), "--overwrite")
    assert res.exit_code == 2
    assert "--overwrite refuses to empty" in error_line(res)
    assert (home / ".profile").read_text() == "PATH=..."


@pytest.mark.parametrize(
    "args, line",
    [
        (["--time-budget", "0s"], "`--time-budget` must be positive, e.g. 90s or 10m. Received: '0s'"),
        (["--time-budget", "-5m"], "`--time-budget` must be positive, e.g. 90s or 10m. Received: '-5m'"),
        (
            ["--time-budget", "1s"],
            "--time-budget 1s is too small: a search keeps at least 12s of its budget for "
            "evaluation and export, and at most a quarter, so the least budget is 48s (or leave "
            "--time-budget out and set --max-trials)",
        ),
        (
            ["--objective", "val_top5"],
            "--objective must be one of val_accuracy, val_loss, val_auc, val_macro_f1, accuracy, "
            "loss, auc, macro_f1 (what a --space model records). Received: 'val_top5'",
        ),
        (["--objective", "val_precision", "--direction", "max"], "Received: 'val_precision'"),
    ],
)  # fmt: skip
def test_refused_before_any_data_loads_or_directory_is_written(tmp_path, args, line):
    t0 = time.perf_counter()
    res = run(*FAST, "--run-dir", str(tmp_path / "r"), *args)
    assert res.exit_code == 2
    assert line in error_line(res)
    assert not (tmp_path / "r").exists()
    assert time.perf_counter() - t0 < 20  # no trial trained (one took a minute before)


@pytest.mark.parametrize(
    "objective", ["val_accuracy", "val_loss", "val_auc", "val_macro_f1", "accuracy", "loss"]
)
def test_the_objectives_a_space_model_records_are_accepted(objective):
    from automl_app.config import SearchConfig, TunerConfig, validate_search

    validate_search(SearchConfig(tuner=TunerConfig(objective=objective)))


def test_a_hypermodel_may_rank_by_its_own_metric():
    from automl_app.config import SearchConfig, SpaceConfig, TunerConfig, validate_search

    hyper = SpaceConfig(hypermodel="mine.py:build")
    validate_search(SearchConfig(space=hyper, tuner=TunerConfig(objective="val_top5")))


def test_a_budget_with_several_workers_is_not_the_schedule():
    from automl_app.config import SearchConfig, TunerConfig, validate_search

    validate_search(SearchConfig(tuner=TunerConfig(time_budget=25.0, workers=2)))


def test_a_binary_space_file_is_named_not_a_unicode_error(tmp_path):
    png = tmp_path / "space.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    res = run(*FAST[:2], "--space", str(png), "--run-dir", str(tmp_path / "r"))
    assert res.exit_code == 1
    line = error_line(res)
    assert line.startswith(f"{png}: not a YAML search space") and "UnicodeDecodeError" not in line
    assert not (tmp_path / "r").exists()


def test_too_few_examples_per_class_says_the_least():
    from automl_app.config import check_examples_per_class
    from automl_app.errors import UsageError

    with pytest.raises(UsageError) as err:
        check_examples_per_class(5, 10, max_samples=5)
    assert str(err.value) == (
        "--max-samples 5 is too few examples per class: 5 training examples for 10 classes; "
        "pass --max-samples 20 or more (at least 2 per class)"
    )
    check_examples_per_class(20, 10, max_samples=20)
    check_examples_per_class(3, 10, max_samples=None)  # a small dataset is the data's business


@pytest.mark.parametrize(
    "command, absent, present",
    [
        ("text", ["--block", "--engine", "--space", "--objective", "KerasTuner"], ["--task"]),
        ("structured", ["--block", "--engine", "--space", "KerasTuner"], ["--task"]),
        ("multi", ["--task", "--engine", "--space", "KerasTuner"], ["--block"]),
    ],
)  # fmt: skip
def test_autokeras_commands_offer_only_options_that_apply(command, absent, present):
    res = run("search", command, "--help")
    assert res.exit_code == 0
    for opt in absent:
        assert opt not in res.output, opt
    for opt in present:
        assert opt in res.output, opt


def test_an_option_that_does_not_apply_is_refused(tmp_path):
    res = run("search", "text", "--block", "resnet", "--data-dir", str(tmp_path))
    assert res.exit_code == 2 and "No such option '--block'" in res.output


def test_search_image_and_train_scratch_default_to_the_same_dataset():
    from automl_app.cli.search import build_config
    from automl_app.cli.train import build_train_config
    from automl_app.config import DEFAULT_DATASET, SearchConfig, TrainConfig

    search = build_config("image", {"max_trials": 1})
    train = build_train_config("mobilenetv2", {})
    assert search.data.dataset == train.data.dataset == DEFAULT_DATASET == "digits"
    assert SearchConfig().data.dataset == TrainConfig().data.dataset == "digits"
    for args in (["search", "image"], ["train-scratch"]):
        assert "[default: digits]" in " ".join(run(*args, "--help").output.split())


@pytest.mark.slow
def test_a_run_refused_on_its_data_leaves_nothing_and_the_fixed_rerun_needs_no_overwrite(
    tmp_path,
):
    good, small = tmp_path / "good", tmp_path / "small"
    make_folder(good, per_class=12, bad=False, seed=1)
    make_folder(small, per_class=4, bad=False)  # too few images to hold any out for testing
    for cls in ("blue", "green"):
        for f in (small / cls).iterdir():
            f.write_bytes(b"not an image")
    run_dir = tmp_path / "runs" / "first"
    res = run(*FAST, "--data-dir", str(small), "--image-size", "16", "--run-dir", str(run_dir))
    assert res.exit_code == 1
    assert str(small) in error_line(res)
    assert not run_dir.exists() and not run_dir.parent.exists()
    res = run(*FAST, "--data-dir", str(good), "--image-size", "16", "--run-dir", str(run_dir))
    assert res.exit_code == 0, res.output
    assert Path(run_dir / "best" / "saved_model").is_dir()


def test_max_samples_5_with_10_classes_is_refused_and_leaves_no_run(tmp_path):
    """Issue 17: `--max-samples 5` on digits (10 classes) says too few per class, exit 2."""
    res = run(*FAST, "--dataset", "digits", "--max-samples", "5", "--run-dir", str(tmp_path / "r"))
    assert res.exit_code == 2, res.output
    assert error_line(res).startswith("--max-samples 5 is too few examples per class")
    assert not (tmp_path / "r").exists()
