"""Progress while a search or a training runs: per-epoch lines with the ETA, between trials the
search's elapsed / budget and best so far, a live bar on a terminal, and `--quiet`.

Fast: the pieces (durations, the between-trials line, the Keras callbacks on a tiny model, the
quiet filter and its summary). Slow: real searches through the CLI, with and without --quiet.
"""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner

from automl_app import workflows
from automl_app.cli import cli
from automl_app.training.loop import _epoch_log, format_duration, live_bars
from automl_app.tuning.budget import Deadline
from automl_app.tuning.progress import SearchProgress, curve_of


class Objective:
    def __init__(self, name="val_accuracy", direction="max"):
        self.name, self.direction = name, direction


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 185, 3720, -3)] == [
        "0s", "42s", "3m05s", "1h02m", "0s",
    ]  # fmt: skip


def test_between_trials_line_with_budget_eta_and_best():
    lines: list[str] = []
    progress = SearchProgress(lines.append, total=5, live=False)
    rows = {
        "0": {"trial_id": "0", "status": "completed", "objective": 0.8, "seconds": 10.0},
        "1": {"trial_id": "1", "status": "completed", "objective": 0.9, "seconds": 20.0},
        "2": {"trial_id": "2", "status": "failed", "objective": None, "seconds": 1.0},
    }
    line = progress.between_trials(rows, Objective(), Deadline.after(600))
    assert lines == [line]
    assert line.startswith("search: 3/5 trials, 0s elapsed of 10m00s budget (")
    assert "search ETA 20s" in line  # median 10 s a trial x 2 to go
    assert line.endswith("best so far val_accuracy=0.9000 (trial 1)")
    low = progress.between_trials(rows, Objective("val_loss", "min"))
    assert "no time budget" in low and "best so far val_loss=0.8000 (trial 0)" in low
    assert "best so far: none yet" in progress.between_trials({}, Objective())


def tiny_fit(callbacks, epochs=3):
    import keras
    import numpy as np

    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = (x.sum(axis=1) > 2).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_split=0.25, epochs=epochs, batch_size=16, verbose=0,
              callbacks=callbacks)  # fmt: skip


def test_trial_callback_prints_epoch_lines_with_eta_and_keeps_the_curve():
    lines: list[str] = []
    progress = SearchProgress(lines.append, total=2, live=False)
    store: dict = {}
    tiny_fit([progress.callback("07", store, "val_accuracy")])
    assert len(lines) == 3
    assert re.match(
        r"  trial 07 epoch 1/3: .*val_accuracy \S+ .*\(\S+s\) \| trial ETA \S+$", lines[0]
    )
    assert lines[-1].endswith("trial ETA 0s")
    assert [e for e, _ in curve_of(store)] == [1, 2, 3]


def test_trial_callback_on_a_terminal_draws_one_live_bar():
    lines: list[str] = []
    stream = io.StringIO()
    progress = SearchProgress(lines.append, total=2, live=True, stream=stream)
    tiny_fit([progress.callback("3", {}, "val_accuracy")], epochs=2)
    assert lines == []  # the bar replaces the lines
    drawn = stream.getvalue()
    assert "trial 3" in drawn and "epoch 2/2" in drawn and "step" in drawn
    assert progress.bar is None  # closed at the end of the fit


def test_train_scratch_epoch_log_has_the_eta():
    lines: list[str] = []
    tiny_fit([_epoch_log(3, 48, lines.append)])
    assert len(lines) == 3
    assert re.search(r"^epoch 1/3: .* lr \S+ \(\S+ s, \d+ img/s\) \| ETA \S+$", lines[0])
    assert lines[-1].endswith("| ETA 0s")


def test_live_bars_only_on_a_terminal_and_never_quiet():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    say = workflows.quiet_say(print)
    assert live_bars(print, Tty()) and not live_bars(print, io.StringIO())
    assert not live_bars(say, Tty())


def test_quiet_say_keeps_warnings_and_the_summary(tmp_path):
    seen: list[str] = []
    say = workflows.quiet_say(seen.append)
    say("  trial 1 epoch 1/2: loss 0.3 | trial ETA 3s")
    say("search: 1/2 trials, 3s elapsed, no time budget, best so far val_accuracy=0.5 (trial 1)")
    say("warning: trial 3 took 9.0s per epoch")
    assert seen == ["warning: trial 3 took 9.0s per epoch"]
    manifest = {
        "config": {"tuner": {"objective": "val_accuracy"}},
        "best_trial": {"trial_id": "02", "score": 0.91},
        "test": {"accuracy": 0.9, "loss": 0.3, "examples": 100},
    }
    assert workflows.summary_lines(manifest, tmp_path) == [
        "best trial 02: val_accuracy=0.9100",
        "test accuracy 0.9000, loss 0.3000 on 100 examples",
    ]


# ------------------------------------------------------------------ real searches, CLI


def search(tmp_path, *extra: str):
    args = ["search", "image", "--dataset", "digits", "--space", "fcn", "--max-trials", "2",
            "--epochs", "2", "--max-samples", "200", "--seed", "3",
            "--run-dir", str(tmp_path / "run"), *extra]  # fmt: skip
    res = CliRunner().invoke(cli, args, prog_name="automl")
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.slow
@pytest.mark.timing
def test_search_prints_epoch_lines_and_between_trials(tmp_path):
    out = search(tmp_path)
    epoch_lines = [ln for ln in out.splitlines() if re.search(r"trial \S+ epoch \d/2: .*ETA", ln)]
    assert len(epoch_lines) == 4, out  # 2 trials x 2 epochs
    between = [ln for ln in out.splitlines() if "best so far" in ln]
    assert len(between) == 2 and between[-1].startswith("search: 2/2 trials"), out
    assert "no time budget" in between[0]


@pytest.mark.slow
@pytest.mark.timing
def test_quiet_search_prints_only_the_summary(tmp_path):
    out = search(tmp_path, "--quiet", "--time-budget", "10m")
    assert "ETA" not in out and "best so far" not in out, out
    assert not re.search(r"^trial ", out, re.M), out
    lines = out.strip().splitlines()
    assert lines[0].startswith("best trial ") and lines[-1].startswith("report: "), out
    assert len(lines) <= 5, out
