"""runs / select / evaluate / reproduce / tensorboard / mlflow on real digits searches."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.runs import _ROOT, make_search_run

from automl_app import analysis as experiments
from automl_app import report, runs
from automl_app.cli.runs import (
    evaluate_cmd,
    reproduce_cmd,
    runs_cmd,
    select_cmd,
)
from automl_app.errors import UsageError
from automl_app.integrations.mlflow import log_mlflow
from automl_app.integrations.tensorboard import tensorboard


@pytest.fixture(scope="session")
def search_run() -> Path:
    return make_search_run()


IDENTICAL = textwrap.dedent(
    """
    import keras
    from keras import layers


    def build(hp):
        hp.Choice("tag", ["a", "b"])  # read by nothing: every trial builds the same network
        model = keras.Sequential(
            [keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(32, activation="relu"),
             layers.Dense(10, activation="softmax")]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
    """
)


@pytest.fixture(scope="session")
def identical_run() -> Path:
    """A real search whose two trials differ only in a hyperparameter the model never reads."""
    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig

    src = _ROOT / "identical.py"
    src.write_text(IDENTICAL)
    run = _ROOT / "runs" / "identical"
    workflows.search(
        SearchConfig(
            data=DataConfig(dataset="digits", max_samples=300, seed=0),
            space=SpaceConfig(hypermodel=f"{src}:build"),
            tuner=TunerConfig(tuner="random", max_trials=2, epochs=2, seed=0),
            run_dir=str(run),
        ),
        say=lambda _line: None,
    )
    return run


# ----------------------------------------------------------------------------- fast, no training


def test_where_parsing_and_filtering():
    conds = experiments.parse_where("val_accuracy>=0.9, params<1e6 and optimizer==adam")
    assert conds == [("val_accuracy", ">=", 0.9), ("params", "<", 1e6), ("optimizer", "==", "adam")]
    row = {"val_accuracy": 0.95, "params": 5, "optimizer": "adam"}
    assert experiments.passes(row, conds)
    assert not experiments.passes({**row, "params": 2e6}, conds)
    assert not experiments.passes({"params": 5, "optimizer": "adam"}, conds)  # missing fails
    with pytest.raises(UsageError, match="COLUMN OP VALUE"):
        experiments.parse_where("val_accuracy is high")


def test_compare_gives_plain_verdicts():
    better = experiments.compare("12", [0.91, 0.92, 0.93], "7", [0.80, 0.81, 0.79])
    assert better["significant"] and better["verdict"].startswith(
        "configuration 12 is better than 7"
    )
    same = experiments.compare(
        "12", [0.9, 0.91, 0.89], "7", [0.905, 0.895, 0.9], seconds={"12": 3.0, "7": 1.0}
    )
    assert "not significant at 0.05" in same["verdict"] and "7 is faster" in same["verdict"]
    lo, hi = experiments.interval95([0.9, 0.91, 0.89])
    assert lo < 0.9 < hi


def test_mlflow_missing_names_the_extra(monkeypatch, tmp_path):
    from automl_app.integrations.mlflow import require_mlflow

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(UsageError, match=r"automl-app\[mlflow\]"):
        require_mlflow()


def test_commands_import_without_tensorflow_and_run_standalone():
    code = (
        "import sys, automl_app.cli.runs as c; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
        "print(len(c.COMMANDS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "automl_app.cli", "--help"],
        capture_output=True,
        text=True,
    )
    for name in ("runs", "report", "select", "evaluate", "reproduce", "tensorboard"):
        assert name in out.stdout


def test_runs_on_a_missing_folder_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(runs_cmd, [str(tmp_path / "nope")])
    assert res.exit_code == 2 and "is not a directory" in res.output


# ----------------------------------------------------------------------------- on real runs


@pytest.mark.slow
def test_runs_lists_the_search(search_run):
    res = CliRunner().invoke(runs_cmd, [str(search_run.parent)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith(search_run.name))
    assert "search image" in line and "digits" in line and "kerastuner/random" in line
    assert "4/0/0" in line and "completed" in line
    manifest = runs.load_manifest(search_run)
    assert f"{manifest['test']['accuracy']:.4f}".rstrip("0") in line


@pytest.mark.slow
def test_select_exports_a_model_that_meets_its_condition(search_run):
    from automl_app.data import datasets
    from automl_app.tf_env import tf

    rows = [r for r in report.load_trials(search_run) if r["status"] == "completed"]
    threshold = float(np.median([r["val_accuracy"] for r in rows]))
    passing = [r for r in rows if r["val_accuracy"] >= threshold]
    res = CliRunner().invoke(
        select_cmd, [str(search_run), "--where", f"val_accuracy>={threshold}", "--by", "params"]
    )
    assert res.exit_code == 0, res.output
    card = json.loads((search_run / "selected" / "model_card.json").read_text())
    assert card["trial_row"]["params"] == min(r["params"] for r in passing)
    assert card["serving"]["checked_examples"] > 0  # reload-and-compare ran
    assert card["weights"] == "checkpoint"  # KerasTuner's best-epoch weights, not a retrain
    # The exported SavedModel itself meets the condition on the run's validation split.
    cfg = runs.load_manifest(search_run)["config"]["data"]
    data = datasets.load("digits", seed=cfg["seed"], max_samples=cfg["max_samples"])
    served = tf().saved_model.load(str(search_run / "selected" / "saved_model"))
    probs = np.asarray(served.serve(tf().constant(data.x_val)))
    assert float(np.mean(probs.argmax(1) == data.y_val)) >= threshold
    assert (search_run / "selected" / "report" / "classification_report.json").is_file()
    assert runs.load_manifest(search_run)["selected"]["trial_id"] == card["trial"]


@pytest.mark.slow
def test_select_names_missing_columns_and_empty_picks(search_run):
    res = CliRunner().invoke(select_cmd, [str(search_run), "--by", "gpu_memory_mb"])
    assert res.exit_code == 2
    assert "'gpu_memory_mb' is not in trials.csv" in res.output and "params" in res.output
    cols = report.columns(report.load_trials(search_run))
    res = CliRunner().invoke(select_cmd, [str(search_run), "--by", "latency_ms"])
    if "latency_ms_b1" in cols:  # measured by the tuning layer: latency_ms means batch 1
        assert res.exit_code == 0 and "latency_ms_b1=" in res.output, res.output
    else:
        assert res.exit_code == 2 and "available:" in res.output
    res = CliRunner().invoke(select_cmd, [str(search_run), "--where", "val_accuracy>1.5"])
    assert res.exit_code == 2 and "no completed trial meets" in res.output


@pytest.mark.slow
def test_evaluate_run_and_saved_model_through_serving(search_run, tmp_path):
    res = CliRunner().invoke(evaluate_cmd, [str(search_run)])
    assert res.exit_code == 0, res.output
    out = search_run / "report" / "evaluate" / "digits-test"
    got = json.loads((out / "evaluation.json").read_text())["metrics"]
    assert got["accuracy"] == pytest.approx(runs.load_manifest(search_run)["test"]["accuracy"])
    assert (out / "classification_report.txt").is_file() and (
        out / "confusion_matrix.png"
    ).is_file()
    res = CliRunner().invoke(
        evaluate_cmd,
        [str(search_run / "best" / "saved_model"), "--split", "val", "--out", str(tmp_path / "e")],
    )
    assert res.exit_code == 0, res.output
    assert "digits val: accuracy" in res.output
    res = CliRunner().invoke(evaluate_cmd, [str(tmp_path)])
    assert res.exit_code == 2 and "neither a run directory" in res.output


@pytest.mark.slow
def test_reproduce_identical_configurations_is_not_significant(identical_run):
    rows = report.load_trials(identical_run)
    assert sorted(r["hp_tag"] for r in rows) == ["a", "b"]
    res = CliRunner().invoke(reproduce_cmd, [str(identical_run), "--top", "2", "--seeds", "3"])
    assert res.exit_code == 0, res.output
    assert "not significant at 0.05" in res.output
    saved = json.loads((identical_run / "report" / "reproduce.json").read_text())
    assert saved["comparison"]["p"] > 0.05 and not saved["comparison"]["significant"]
    assert [len(c["scores"]) for c in saved["configurations"]] == [3, 3]
    assert all(c["epochs"] == 2 for c in saved["configurations"])
    page = (identical_run / "report" / "index.html").read_text()
    assert "Reproducibility" in page and "not significant" in page
    assert (identical_run / "report" / "reproduce.png").is_file()


@pytest.mark.slow
def test_trial_without_checkpoint_is_retrained_to_its_best_epoch(identical_run):
    """The search kept only the best trial's weights; the other one is retrained on the split."""
    kept = {p.parent.name for p in (identical_run / "tuner").glob("trial_*/checkpoint.weights.h5")}
    other = next(
        r for r in report.load_trials(identical_run) if f"trial_{r['trial_id']}" not in kept
    )
    model, how = experiments.load_trial_model(identical_run, str(other["trial_id"]))
    assert how == "retrained" and model.count_params() == other["params"]


@pytest.mark.slow
def test_reproduce_needs_two_seeds(search_run):
    res = CliRunner().invoke(reproduce_cmd, [str(search_run), "--seeds", "1"])
    assert res.exit_code == 2


@pytest.mark.slow
def test_tensorboard_serves_on_localhost(search_run):
    url, _server = tensorboard(search_run, port=0, say=lambda _l: None)
    assert url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:")
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
    hparams = list((search_run / "tensorboard").rglob("events.out.tfevents*"))
    assert hparams  # KerasTuner's per-trial logs with the HParams plugin


@pytest.mark.slow
@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_mlflow_logs_trials_to_a_local_store(search_run, tmp_path, store):
    mlflow = pytest.importorskip("mlflow")
    if store == "file":
        uri = (tmp_path / "mlruns").as_uri()
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = log_mlflow(search_run, uri, say=lambda _l: None)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    rows = report.load_trials(search_run)
    assert len(children) == len(rows)
    child = children[0]
    assert child.data.tags["status"] in ("completed", "pruned", "failed")
    assert "learning_rate" in child.data.params
    history = client.get_metric_history(child.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert "test_accuracy" in parent.data.metrics
    arts = {a.path for a in client.list_artifacts(parent_id, "best")}
    assert "best/model_card.json" in arts
