"""A search that earns its keep (issue 13), through the CLI: the defaults run first, a model at
chance is called out (and fails the command with --fail-below), and a time budget never starts a
trial that cannot finish."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from automl_app.cli import cli

pytestmark = pytest.mark.slow


def automl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl_app.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=1200,
    )


def rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_readme_tour_command_exports_a_model_that_learned(tmp_path, data_dir, tfds_dir):
    """The README's tour command exported a 10% model before (both random draws diverged)."""
    os.environ["AUTOML_DATA_DIR"] = str(data_dir)
    os.environ["TFDS_DATA_DIR"] = str(tfds_dir)
    run = tmp_path / "r"
    argv = ["search", "image", "--dataset", "fashion_mnist", "--space", "fcn", "--tuner"]
    argv += ["random", "--max-trials", "2", "--epochs", "1", "--max-samples", "6000"]
    proc = automl(*argv, "--seed", "1", "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["test"]["accuracy"] > 0.6, proc.stdout
    assert manifest["chance"]["within_noise"] is False
    first = rows(run)[0]  # the space's defaults, whatever the tuner
    assert (first["hp_learning_rate"], first["hp_num_layers"]) == ("0.001", "2")
    assert "no better than chance" not in proc.stdout


DIVERGING = """
model: fcn
hyperparameters:
  optimizer:     {type: fixed, value: adam}
  learning_rate: {type: choice, values: [5.0, 8.0]}
  activation:    {type: fixed, value: relu}
  num_layers:    {type: fixed, value: 3}
  layer_size:    {type: choice, values: [128, 256]}
  batch_size:    {type: fixed, value: 32}
"""


def test_every_trial_diverging_ends_with_the_chance_line_and_fail_below(tmp_path):
    space = tmp_path / "diverging.yaml"
    space.write_text(DIVERGING)
    run = tmp_path / "run"
    args = ["search", "image", "--space", str(space), "--max-trials", "2", "--epochs", "2"]
    res = CliRunner().invoke(cli, [*args, "--run-dir", str(run), "--fail-below", "0.5"])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if "no better than chance" in ln]
    assert len(lines) == 1 and "likely cause: training diverged" in lines[0], res.output
    assert "next: lower the learning rate" in lines[0]
    assert "is below --fail-below 0.5 (within noise of chance)" in res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "completed"  # the run is written; only the exit code says no
    chance = manifest["chance"]
    assert chance["within_noise"] is True and chance["basis"] in ("majority class", "1/10 classes")
    assert {"rate", "margin", "examples", "cause", "next_step"} <= set(chance)
    # Without --fail-below the same run exits 0, still with its line.
    again = CliRunner().invoke(cli, [*args, "--run-dir", str(tmp_path / "again")])
    assert again.exit_code == 0 and "no better than chance" in again.output


CHEAP_DEFAULTS = """
model: fcn
hyperparameters:
  num_layers:    {type: int, min: 1, max: 6, default: 1}
  layer_size:    {type: choice, values: [32, 4096], default: 32}
  batch_size:    {type: choice, values: [128, 8], default: 128}
"""


def test_a_trial_that_cannot_fit_the_budget_is_not_started(tmp_path):
    """The enqueued network is ~35000x the defaults' work per example: predicted from the
    defaults' measured epochs it cannot finish in the explore phase, so it is skipped (or shrunk)
    with one line."""
    space = tmp_path / "cheap.yaml"
    space.write_text(CHEAP_DEFAULTS)
    run = tmp_path / "run"
    huge = '{"num_layers": 6, "layer_size": 4096, "batch_size": 8}'
    res = CliRunner().invoke(
        cli,
        [
            "search", "image", "--space", str(space), "--max-trials", "3", "--epochs", "3",
            "--time-budget", "2m", "--enqueue", huge, "--run-dir", str(run),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    line = [ln for ln in res.output.splitlines() if "not started" in ln or "shrunk to" in ln]
    assert len(line) >= 1, res.output
    table = rows(run)
    assert table[0]["hp_layer_size"] == "32"  # the defaults ran first and were measured
    big = table[1]
    assert big["hp_layer_size"] == "4096"
    assert big["status"] == "skipped" or int(big["epochs"]) < 3
    manifest = json.loads((run / "run.json").read_text())
    phases = {p["phase"]: p for p in manifest["phases"]}
    assert [p["phase"] for p in manifest["phases"]] in (
        ["explore", "final"],
        ["explore", "promote", "final"],
    )
    if "promote" in phases:  # never the network that cannot fit an epoch
        promoted = {c["trial_id"] for c in phases["promote"]["candidates"]}
        assert big["trial_id"] not in promoted
    assert manifest["search"]["time_budget_s"] == 120
    assert manifest["wall_seconds"] < 120 * 1.15
