"""report.py on a real digits search: every plot, the leaderboard, a self-contained index.html."""

from __future__ import annotations

import base64
import csv
import functools
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from automl_app import report, runs
from automl_app.cli_experiments import report_cmd

_ROOT = Path(tempfile.mkdtemp(prefix="automl-experiments-"))


@functools.cache
def make_search_run() -> Path:
    """One real digits search (fcn space, 4 trials x 2 epochs), shared by the test modules."""
    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig

    run = _ROOT / "runs" / "digits-fcn"
    workflows.search(
        SearchConfig(
            data=DataConfig(dataset="digits", max_samples=300, seed=0),
            space=SpaceConfig(space="fcn", overrides={"num_layers": 2}),
            tuner=TunerConfig(tuner="random", max_trials=4, epochs=2, seed=0, keep_checkpoints=4),
            run_dir=str(run),
        ),
        say=lambda _line: None,
    )
    return run


@pytest.fixture(scope="session")
def search_run() -> Path:
    return make_search_run()


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / run.name
    shutil.copytree(run, dst)
    return dst


@pytest.mark.slow
def test_report_writes_every_plot_for_a_search(search_run, tmp_path):
    run = _copy(search_run, tmp_path)
    lines: list[str] = []
    info = report.write_report(run, say=lines.append)
    out = run / "report"
    for name in (
        "history",
        "parallel_coordinates",
        "intermediate_values",
        "importance",
        "epoch_time_vs_batch_size",
        "confusion_matrix",
        "per_class",
    ):
        assert name in info["plots"], info["skipped"]
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "not a train-scratch run" in info["skipped"]["lr_schedule"]
    # the refreshed table is the run's table, ranked by the objective
    rows = report.load_trials(run)
    refreshed = list(csv.DictReader((out / "trials.csv").open()))
    assert {r["trial_id"] for r in refreshed} == {str(r["trial_id"]) for r in rows}
    objs = [float(r["objective"]) for r in refreshed if r["objective"]]
    assert objs == sorted(objs, reverse=True)
    # importances come from Optuna over the hyperparameters that varied
    imp = json.loads((out / "importance.json").read_text())
    assert imp and set(imp) <= {c[3:] for c in report.columns(rows) if c.startswith("hp_")}
    assert abs(sum(imp.values()) - 1.0) < 1e-6
    # the printed leaderboard ranks every trial with its hyperparameters
    board = "\n".join(lines)
    assert "rank" in board and "learning_rate" in board and "seconds" in board
    assert f"top {len(rows)} of {len(rows)} trials by val_accuracy (max)" in board


@pytest.mark.slow
def test_index_html_is_self_contained(search_run, tmp_path):
    run = _copy(search_run, tmp_path)
    report.write_report(run, say=lambda _l: None)
    out = run / "report"
    page = (out / "index.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", page)
    assert refs
    embedded = []
    for ref in refs:
        if ref.startswith("data:image/png;base64,"):
            embedded.append(base64.b64decode(ref.split(",", 1)[1]))
        else:
            assert not re.match(r"^[a-z]+://", ref), f"external reference {ref}"
            assert (out / ref).resolve().is_file(), f"index.html links to missing {ref}"
    for png in out.glob("*.png"):
        assert png.read_bytes() in embedded, f"{png.name} is not embedded"
    manifest = runs.load_manifest(run)
    assert manifest["started_at"] in page and "Leaderboard" in page


@pytest.mark.slow
def test_report_command_and_open(search_run, tmp_path, monkeypatch):
    run = _copy(search_run, tmp_path)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or True)
    res = CliRunner().invoke(report_cmd, [str(run), "--top", "2", "--open"])
    assert res.exit_code == 0, res.output
    assert "top 2 of 4 trials" in res.output and "report:" in res.output
    assert opened and opened[0].endswith("report/index.html")


@pytest.mark.slow
def test_report_degrades_when_columns_and_curves_are_missing(search_run, tmp_path):
    """An older run: no batch-size or timing columns, no TensorBoard logs → notes, not errors."""
    run = _copy(search_run, tmp_path)
    shutil.rmtree(run / "tensorboard")
    rows = runs.read_csv(run / "trials.csv")
    keep = [c for c in rows[0] if c not in ("hp_batch_size", "seconds_per_epoch")]
    runs.write_csv(run / "trials.csv", [{k: r[k] for k in keep} for r in rows], first=keep)
    info = report.write_report(run, say=lambda _l: None)
    assert "hp_batch_size" in info["skipped"]["epoch_time_vs_batch_size"]
    assert "seconds_per_epoch" in info["skipped"]["epoch_time_vs_batch_size"]
    assert "history" in info["plots"] and "importance" in info["plots"]


def test_report_on_a_missing_run_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(report_cmd, [str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(report_cmd, [str(tmp_path)])
    assert res.exit_code == 2 and "not a run directory" in res.output


def test_direction_and_conversion():
    assert report.direction_of("val_loss") == "min" and report.direction_of("val_accuracy") == "max"
    assert report.convert("") is None and report.convert("3") == 3 and report.convert("a") == "a"
    assert report.convert("0.5") == 0.5
