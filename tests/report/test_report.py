"""The report package: every plot, the leaderboard, one self-contained interactive index.html.

Fast tests build a run directory by hand (run.json, trials.csv, KerasTuner trial.json files and a
real scikit-learn classification report), the way a search leaves it; the slow ones run a real
digits search once per session (support/runs.py, shared with analysis/test_experiments.py).
"""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from support.runs import SPACE, fake_run, make_search_run

from automl_app import report, runs

# --------------------------------------------------------------------------- fast: a fake run


def test_twelve_hyperparameters_give_importances_and_readable_figures(tmp_path):
    run = fake_run(tmp_path, trials=14)
    lines: list[str] = []
    info = report.write_report(run, say=lines.append)
    out = run / "report"
    for name in ("history", "parallel_coordinates", "intermediate_values", "importance"):
        assert name in info["plots"], info["skipped"]
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("history", "parallel_coordinates", "intermediate_values", "importance", "slice"):
        assert name in info["figures"], info["skipped"]
    imp = json.loads((out / "importance.json").read_text())
    assert set(imp) == {n for n, *_ in SPACE} and abs(sum(imp.values()) - 1) < 1e-6
    assert max(imp, key=imp.get) == "learning_rate"  # the one the objective depends on
    assert info["importance_note"] is None
    # the parallel-coordinates PNG shows the 8 most important axes, wide enough for them
    from PIL import Image

    width, _ = Image.open(out / "parallel_coordinates.png").size
    assert width >= 1000
    from automl_app.report.study import top_params

    shown, left_out = top_params(report.build_study(run), imp, 8)
    assert len(shown) == 8 and len(left_out) == 4 and shown[0] == "learning_rate"
    page = (out / "index.html").read_text()
    assert "top 12 by importance" in page  # the interactive one keeps all twelve
    labels = report.figures.parallel_figure(report.build_study(run), "val_accuracy", imp)
    ticks = list(labels.layout.xaxis.ticktext)
    assert len(ticks) == 13 and "dropout…_layer_0" in ticks and "dropout…_layer_1" in ticks
    board = "\n".join(lines)
    assert "top 10 of 14 trials by val_accuracy (max)" in board


def test_index_html_embeds_plotly_once_and_scrolls_the_leaderboard(tmp_path):
    run = fake_run(tmp_path, trials=12)
    report.write_report(run, say=lambda _l: None)
    page = (run / "report" / "index.html").read_text()
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert page.count(bundle[:200]) == 1 and bundle in page
    assert "cdn.plot.ly" not in page.replace(bundle, "")
    assert page.count("Plotly.newPlot") >= 5
    board = re.search(r"<section id='leaderboard'>.*?</section>", page, re.S).group(0)
    assert "<div class='scroll'><table>" in board and "learning_rate" in board
    assert ".scroll{overflow:auto" in page and "position:sticky" in page
    for section in ("summary", "leaderboard", "importance", "figures", "per-class", "plots"):
        assert f"<section id='{section}'>" in page, section


@pytest.mark.parametrize("completed", [3, 9])
def test_importance_waits_for_enough_completed_trials(tmp_path, completed):
    run = fake_run(tmp_path, trials=completed + 2)  # trial 1 fails, trial 2 is pruned
    stale = run / "report" / "importance.png"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x89PNG\r\n\x1a\n an old report's 0.0909 bars")
    info = report.write_report(run, say=lambda _l: None)
    more = 10 - completed
    sentence = (
        f"Importance needs at least 10 completed trials: {more} more completed "
        f"trial{'s' if more != 1 else ''} to go (this run has {completed})."
    )
    assert info["importance_note"] == sentence == info["skipped"]["importance"]
    assert "importance" not in info["plots"] and "importance" not in info["figures"]
    assert not stale.exists() and not (run / "report" / "importance.json").exists()
    page = (run / "report" / "index.html").read_text()
    section = re.search(r"<section id='importance'>.*?</section>", page, re.S).group(0)
    assert sentence in section and "0.0909" not in section
    assert "parallel_coordinates" in info["plots"] and "history" in info["figures"]


def test_chance_warning_when_test_accuracy_is_within_noise(tmp_path):
    run = fake_run(tmp_path, accuracy=0.1, test_key="test_metrics")  # an old train-scratch key
    lines: list[str] = []
    info = report.write_report(run, say=lines.append)
    ch = info["chance"]
    assert ch["rate"] == pytest.approx(0.1) and ch["basis"] == "1/10 classes"
    assert ch["examples"] == 300 and ch["within_noise"] is True
    page = (run / "report" / "index.html").read_text()
    assert "id='chance-warning'" in page and "Within noise of chance" in page
    assert any("within noise of chance" in line for line in lines)
    summary = re.search(r"<section id='summary'>.*?</section>", page, re.S).group(0)
    assert "test accuracy" in summary and "0.1 (1/10 classes)" in summary


def test_no_chance_warning_for_a_good_model_and_run_json_chance_wins(tmp_path):
    good = fake_run(tmp_path, accuracy=0.9, name="good")
    info = report.write_report(good, say=lambda _l: None)
    assert info["chance"]["within_noise"] is False
    assert "chance-warning" not in (good / "report" / "index.html").read_text()
    given = {"rate": 0.4, "basis": "majority class", "within_noise": True}
    flagged = fake_run(tmp_path, accuracy=0.9, chance=given, name="given")
    info = report.write_report(flagged, say=lambda _l: None)
    assert info["chance"]["rate"] == 0.4 and info["chance"]["within_noise"] is True
    page = (flagged / "report" / "index.html").read_text()
    assert "chance-warning" in page and "majority class" in page


def test_a_run_without_trials_still_gets_a_page(tmp_path):
    """A train-scratch run: per-epoch history in run.json, no trials.csv."""
    run = tmp_path / "scratch"
    run.mkdir()
    manifest = {
        "command": "train-scratch",
        "status": "completed",
        "history": {"accuracy": [0.3, 0.5], "loss": [1.2, 0.9], "val_accuracy": [0.3, 0.4]},
        "data": {"classes": ["a", "b"], "counts": {"train": 10, "val": 2, "test": 4}},
        "test": {"accuracy": 0.5, "loss": 0.7, "examples": 4},
    }
    (run / "run.json").write_text(json.dumps(manifest))
    info = report.write_report(run, say=lambda _l: None)
    assert "history" in info["plots"] and info["figures"] == ["history"]
    assert info["skipped"]["importance"] == "no trials.csv (not a search)"
    assert info["chance"]["within_noise"] is True  # 0.5 on 4 examples of 2 classes is a coin
    page = (run / "report" / "index.html").read_text()
    assert "<section id='leaderboard'>" not in page and "chance-warning" in page


def test_report_on_a_missing_run_is_a_usage_error(tmp_path):
    from click.testing import CliRunner

    from automl_app.cli.runs import report_cmd

    res = CliRunner().invoke(report_cmd, [str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(report_cmd, [str(tmp_path)])
    assert res.exit_code == 2 and "not a run directory" in res.output


def test_direction_and_conversion():
    assert report.direction_of("val_loss") == "min" and report.direction_of("val_accuracy") == "max"
    assert report.convert("") is None and report.convert("3") == 3 and report.convert("a") == "a"
    assert report.convert("0.5") == 0.5


def test_public_api_callers_use_is_kept():
    for name in (
        "write_report leaderboard load_trials build_study importances plot_reproduce lr_curve "
        "objective direction_of trial_curves convert columns is_pruned ranked format_table "
        "leaderboard_rows kerastuner_trials REPORT_DIR LEADER_METRICS Skip _fmt _status_counts"
    ).split():
        assert hasattr(report, name), name


# --------------------------------------------------------------------------- slow: a real search


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
        "epoch_time_vs_batch_size",
        "confusion_matrix",
        "per_class",
    ):
        assert name in info["plots"], info["skipped"]
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("history", "parallel_coordinates", "intermediate_values", "slice"):
        assert name in info["figures"], info["skipped"]
    assert "not a train-scratch run" in info["skipped"]["lr_schedule"]
    # the refreshed table is the run's table, ranked by the objective
    rows = report.load_trials(run)
    refreshed = list(csv.DictReader((out / "trials.csv").open()))
    assert {r["trial_id"] for r in refreshed} == {str(r["trial_id"]) for r in rows}
    objs = [float(r["objective"]) for r in refreshed if r["objective"]]
    assert objs == sorted(objs, reverse=True)
    # four trials are too few for importances: one sentence instead of 0.0909 everywhere
    done = sum(r["status"] == "completed" for r in rows)
    assert info["skipped"]["importance"].startswith(
        f"Importance needs at least 10 completed trials: {10 - done} more"
    )
    assert not (out / "importance.json").exists()
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
    # plotly.js is code, not a reference: drop <script> bodies before looking for src/href
    markup = re.sub(r"<script[^>]*>.*?</script>", "<script></script>", page, flags=re.S)
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", markup)
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
    assert page.count("<script type='text/javascript'>") == 1  # plotly.js, once
    manifest = runs.load_manifest(run)
    assert manifest["started_at"] in page and "Leaderboard" in page


@pytest.mark.slow
def test_report_command_and_open(search_run, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from automl_app.cli.runs import report_cmd

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
    assert "history" in info["plots"] and "Importance needs" in info["skipped"]["importance"]
