"""Issue 17: the commands that read a run (select, evaluate, reproduce, export, report, runs) on
the run kinds users met them with: a KerasTuner search whose chosen trial's weights were not kept,
an AutoKeras structured (CSV) run and a text run. One tiny run of each per session."""

from __future__ import annotations

import csv
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.matrix import write_text_csv
from support.runs import _ROOT

from automl_app import report, runs
from automl_app.cli.runs import (
    evaluate_cmd,
    export_cmd,
    report_cmd,
    reproduce_cmd,
    runs_cmd,
    select_cmd,
)
from automl_app.errors import UsageError

ANY = _ROOT / "any-run"
# The modules, not the functions of the same name that automl_app.analysis re-exports.
select_mod = importlib.import_module("automl_app.analysis.select")
reproduce_mod = importlib.import_module("automl_app.analysis.reproduce")


def invoke(cmd, *args: str):
    return CliRunner().invoke(cmd, [str(a) for a in args])


@pytest.fixture(scope="session")
def kt_run() -> Path:
    """3 digits trials x 1 epoch; only the best trial's weights are kept (--keep-checkpoints 1);
    trial 0 is the space's defaults (adam, cosine schedule)."""
    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig

    run = ANY / "kt"
    workflows.search(
        SearchConfig(
            data=DataConfig(dataset="digits", max_samples=300, seed=0),
            space=SpaceConfig(space="fcn", overrides={"num_layers": 1}),
            tuner=TunerConfig(tuner="random", max_trials=3, epochs=1, seed=0, keep_checkpoints=1),
            run_dir=str(run),
        ),
        say=lambda _line: None,
    )
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    """A private copy for a test that writes into the run."""
    return Path(shutil.copytree(run, tmp_path / run.name))


def _mixed_csv(path: Path, n: int = 120) -> Path:
    """Numbers, a category and missing values; the label follows x1."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x1", "x2", "colour", "label"])
        for i in range(n):
            x1 = rng.normal()
            cells = [f"{x1:.3f}", f"{rng.normal():.3f}", rng.choice(["red", "blue", "green"])]
            if i % 17 == 0:
                cells[1] = ""
            w.writerow([*cells, "high" if x1 > 0 else "low"])
    return path


@pytest.fixture(scope="session")
def table_run() -> Path:
    from automl_app.cli.search import search_structured

    ANY.mkdir(parents=True, exist_ok=True)
    csv_path = _mixed_csv(ANY / "mixed.csv")
    run = ANY / "structured"
    res = invoke(search_structured, "--csv", csv_path, "--target", "label", "--run-dir", run,
                 "--max-trials", "1", "--epochs", "1", "--seed", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    return run


@pytest.fixture(scope="session")
def text_run() -> Path:
    from automl_app.cli.search import search_text

    ANY.mkdir(parents=True, exist_ok=True)
    csv_path = write_text_csv(ANY / "reviews.csv")
    run = ANY / "text"
    res = invoke(search_text, "--csv", csv_path, "--text-column", "review", "--target",
                 "sentiment", "--run-dir", run, "--max-trials", "1", "--epochs", "1",
                 "--seed", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    return run


# ----------------------------------------------------------------------------- fast, no training


@pytest.mark.parametrize(
    "where", ["val_accuracy=>0.1", "val_accuracy>=abc", "val_accuracy>=0.1 or params<5", ">=0.1"]
)
def test_where_syntax_errors_say_cannot_parse(where):
    with pytest.raises(UsageError) as err:
        select_mod.parse_where(where)
    msg = str(err.value)
    assert msg.startswith(f"cannot parse --where {where!r}") and "loosen" not in msg
    assert ">=, <=, >, <, ==, !=" in msg and "\n" not in msg


def test_where_accepts_numbers_and_words():
    assert select_mod.parse_where("val_accuracy>=0.9, params<1e6 and optimizer==adam") == [
        ("val_accuracy", ">=", 0.9),
        ("params", "<", 1e6),
        ("optimizer", "==", "adam"),
    ]


def test_search_score_outside_the_reproduced_interval_is_flagged():
    manifest = {"best_trial": {"trial_id": "3"}, "test": {"accuracy": 0.95}}
    confs = [{"trial_id": "3", "ci95": [0.80, 0.85]}]
    flag = reproduce_mod.search_score_check(manifest, confs)
    assert flag["side"] == "above" and "0.9500, lies above" in flag["line"]
    assert "\n" not in flag["line"]
    inside = [{"trial_id": "3", "ci95": [0.90, 0.99]}]
    assert reproduce_mod.search_score_check(manifest, inside) is None
    assert reproduce_mod.search_score_check(manifest, [{"trial_id": "7", "ci95": [0, 0]}]) is None


def _manifest(run: Path, command: str, data: dict) -> Path:
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "schema_version": 2, "command": command, "status": "completed", "engine": "autokeras",
        "started_at": "2025-01-01T00:00:00+00:00",
        "config": {"data": {"dataset": "digits", "data_dir": None, "csv": None}},
        "data": data,
    }))  # fmt: skip
    return run


def test_runs_and_report_name_the_real_data_source(tmp_path):
    """The config's default dataset (digits) never stands for a CSV or a folder."""
    root = tmp_path / "runs"
    _manifest(root / "a", "search structured",
              {"kind": "csv", "source": "/data/houses.csv", "target": "price"})  # fmt: skip
    _manifest(root / "b", "search image",
              {"dataset": "photos", "folder": {"data_dir": "/data/photos"}})  # fmt: skip
    _manifest(root / "c", "search text", {"kind": "text_folder", "source": "/data/notes"})
    res = invoke(runs_cmd, root)
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()[2:]}
    assert "houses.csv" in lines["a"] and "/data/photos" in lines["b"]
    assert "/data/notes" in lines["c"] and "digits" not in res.output
    report.write_report(root / "a", say=lambda _l: None)
    page = (root / "a" / "report" / "index.html").read_text()
    assert "houses.csv" in page and "{&#x27;" not in page and "{'" not in page


# ----------------------------------------------------------------------------- KerasTuner run


@pytest.mark.slow
def test_select_a_trial_whose_weights_were_not_kept_exports_it(kt_run, tmp_path):
    run = _copy(kt_run, tmp_path)
    rows = {str(r["trial_id"]): r for r in report.load_trials(run)}
    assert rows["0"]["hp_optimizer"] == "adam"
    assert not (run / "tuner" / "trial_0" / "checkpoint.weights.h5").exists()
    res = invoke(select_cmd, run, "--where", "optimizer==adam", "--by", "latency_ms")
    assert res.exit_code == 0, res.output
    assert "selected trial 0" in res.output and "weights: retrained" in res.output
    assert (run / "selected" / "saved_model" / "saved_model.pb").is_file()
    card = json.loads((run / "selected" / "model_card.json").read_text())
    assert card["weights"] == "retrained" and card["trial"] == "0"
    assert runs.load_manifest(run)["selected"]["trial_id"] == "0"


@pytest.mark.slow
def test_select_decides_before_it_announces(kt_run, tmp_path, monkeypatch):
    """A pick that fails its condition once rebuilt gives one answer: the refusal, no
    "selected trial" line before it."""
    run = _copy(kt_run, tmp_path)
    k = len(runs.load_manifest(run)["data"]["class_names"])
    monkeypatch.setattr(select_mod, "probabilities", lambda _m, x, _s: np.full((len(x), k), 1 / k))
    res = invoke(select_cmd, run, "--where", "val_accuracy>=0.15", "--by", "params")
    assert res.exit_code == 1
    assert "selected trial" not in res.output
    assert (
        res.output.startswith("Error: no trial exported: trial ") and "val_accuracy=" in res.output
    )
    assert len(res.output.strip().splitlines()) == 1
    assert not (run / "selected").exists()


@pytest.mark.slow
def test_rebuilt_trial_is_the_trial_that_ran(kt_run, monkeypatch):
    """analysis/rebuild builds a trial with the engine's own space → hypermodel step."""
    from automl_app.analysis import rebuild
    from automl_app.models import hypermodel

    used = []
    real = hypermodel.hypermodel_for
    monkeypatch.setattr(
        hypermodel, "hypermodel_for", lambda *a, **k: used.append(1) or real(*a, **k)
    )
    manifest = runs.load_manifest(kt_run)
    for row in report.load_trials(kt_run):
        hp = rebuild.trial_hyperparameters(kt_run, str(row["trial_id"]))
        model = rebuild.hypermodel_of(manifest, seed=0).build(hp)
        assert model.count_params() == row["params"]
    assert used


@pytest.mark.slow
def test_select_reproduce_report_take_the_run_lock(kt_run, tmp_path):
    run = _copy(kt_run, tmp_path)
    with runs.lock(run).hold():
        for cmd, args in ((select_cmd, []), (reproduce_cmd, ["--seeds", "2"]), (report_cmd, [])):
            res = invoke(cmd, run, *args)
            assert res.exit_code == 2 and "is in use by" in res.output, res.output
    assert not (run / "selected").exists()


@pytest.mark.slow
def test_reproduce_flags_the_search_score_outside_its_interval(kt_run, tmp_path):
    run = _copy(kt_run, tmp_path)
    m = runs.load_manifest(run)
    runs.update(run, test={**m["test"], "accuracy": 1.5})  # no reproduction reaches it
    res = invoke(reproduce_cmd, run, "--top", "1", "--seeds", "2")
    assert res.exit_code == 0, res.output
    flagged = [line for line in res.output.splitlines() if "lies above" in line]
    assert len(flagged) == 1 and f"trial {m['best_trial']['trial_id']}" in flagged[0]
    saved = json.loads((run / "report" / "reproduce.json").read_text())
    assert saved["search_test_outside"]["side"] == "above"
    assert "lies above its reproduced 95% interval" in (run / "report" / "index.html").read_text()


@pytest.mark.slow
def test_export_out_existing_directory(kt_run, tmp_path):
    run = _copy(kt_run, tmp_path)
    into = tmp_path / "phone"
    into.mkdir()
    res = invoke(export_cmd, run, "--format", "tflite", "--out", into)
    assert res.exit_code == 0, res.output
    assert (into / "model.tflite").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    res = invoke(export_cmd, run, "--out", mine)
    assert res.exit_code == 2 and repr(str(mine)) in res.output, res.output
    assert (mine / "thesis.txt").read_text() == "years of work" and len(list(mine.iterdir())) == 1
    other = tmp_path / "notes.tflite"
    other.write_text("not a model")
    res = invoke(export_cmd, run, "--format", "tflite", "--out", other)
    assert res.exit_code == 2 and "not written by this run" in res.output
    assert other.read_text() == "not a model"
    empty = tmp_path / "empty"
    empty.mkdir()
    res = invoke(export_cmd, run, "--out", empty)
    assert res.exit_code == 0, res.output
    assert (empty / "saved_model.pb").is_file()


# ----------------------------------------------------------------------------- AutoKeras runs


@pytest.mark.slow
def test_evaluate_a_structured_run_with_no_data_options(table_run):
    res = invoke(evaluate_cmd, table_run)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("mixed.csv test: accuracy")
    got = json.loads(
        (table_run / "report" / "evaluate" / "mixed.csv-test" / "evaluation.json").read_text()
    )["metrics"]
    test = runs.load_manifest(table_run)["test"]
    assert got["examples"] == test["examples"]
    assert got["accuracy"] == pytest.approx(test["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--dataset", "--data-dir"])
def test_data_options_do_not_apply_to_a_structured_run(table_run, flag, tmp_path):
    res = invoke(evaluate_cmd, table_run, flag, "digits" if flag == "--dataset" else tmp_path)
    assert res.exit_code == 2
    assert f"{flag} does not apply to a 'search structured' run (it read mixed.csv)" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_evaluate_a_stale_csv_is_one_line(table_run, tmp_path):
    run = _copy(table_run, tmp_path)
    changed = tmp_path / "mixed.csv"
    text = (ANY / "mixed.csv").read_text().splitlines()
    text[5] = text[5].replace("low", "high") if "low" in text[5] else text[5].replace("high", "low")
    changed.write_text("\n".join(text) + "\n")
    m = runs.load_manifest(run)
    runs.update(run, data={**m["data"], "source": str(changed)})
    res = invoke(evaluate_cmd, run)
    assert res.exit_code == 1 and "fingerprint differs" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_other_commands_on_a_structured_run_say_why_in_one_line(table_run):
    for cmd, word in ((select_cmd, "automl evaluate"), (reproduce_cmd, "automl evaluate"),
                      (export_cmd, "'search structured'")):  # fmt: skip
        res = invoke(cmd, table_run)
        assert res.exit_code == 2 and word in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    res = invoke(runs_cmd, ANY)
    line = next(x for x in res.output.splitlines() if x.startswith("structured"))
    assert "mixed.csv" in line and "digits" not in line


@pytest.mark.slow
def test_evaluate_a_text_run_with_no_data_options(text_run):
    res = invoke(evaluate_cmd, text_run)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("reviews.csv test: accuracy")
    got = json.loads(
        (text_run / "report" / "evaluate" / "reviews.csv-test" / "evaluation.json").read_text()
    )["metrics"]
    assert got["accuracy"] == pytest.approx(runs.load_manifest(text_run)["test"]["accuracy"])
