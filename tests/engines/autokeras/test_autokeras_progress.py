"""AutoKeras searches say what the KerasTuner engine says: a line per epoch of the running trial,
a line per finished trial, and the search's elapsed time / best so far after it (issue 19)."""

from __future__ import annotations

import re

import pytest
from support.matrix import build_run

from automl_app.tuning.progress import short_names, trial_line


def test_trial_line_is_the_kerastuner_format():
    line = trial_line("0", 1, 3, "completed", "lr=0.001", "val_loss", 0.5, 2.04, 0.5)
    assert line == "trial 0 (1/3) [completed] lr=0.001 | val_loss=0.5000 | 2.0s | best 0.5000"
    assert trial_line("1", 2, None, "failed", "", "val_loss", None, 1, None, "boom").endswith(
        "| best — | error: boom"
    )


def test_autokeras_hp_names_are_shortened_where_unique():
    got = short_names({"a_block_1/dense_block_1/units_0": 32, "a/b/dropout": 0.1, "x/dropout": 0.2})
    assert got == {"units_0": 32, "b/dropout": 0.1, "x/dropout": 0.2}


@pytest.mark.slow
def test_an_autokeras_search_prints_epoch_and_trial_lines(matrix_data):
    """The matrix's AutoKeras structured run (built once per session, its output kept)."""
    build_run(matrix_data, "ak-structured")
    out = matrix_data.outputs["ak-structured"]
    assert re.search(r"^  trial 0 epoch 1/1: .*val_\w+ \d\.\d{4}.*\| trial ETA", out, re.M), out
    assert re.search(r"^trial 0 \(1/1\) \[completed\] .* \| val_\w+=\d\.\d{4} \| ", out, re.M), out
    assert re.search(r"^search: 1/1 trials, .* best so far val_\w+=", out, re.M), out
    assert "image_block" not in out and "structured_data_block_1/" not in out  # short hp names


@pytest.mark.slow
def test_quiet_drops_the_progress_lines(matrix_data, tmp_path):
    from support.matrix import cli

    res = cli("search", "structured", "--csv", matrix_data.table_csv, "--target", "label",
              "--max-trials", "1", "--epochs", "1", "--seed", "1", "--quiet",
              "--run-dir", tmp_path / "run")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "epoch 1/1" not in res.output and "best so far" not in res.output
